"""The ``rnnlab`` command line: thin subcommands over library functions.

Exit codes: 0 success, 1 a user error (one line on standard error, no traceback),
2 a usage error (from argparse), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from . import __version__


def _train(args) -> int:
    from . import lm

    overrides = {
        "data": args.data, "tokens": args.tokens, "cell": args.cell, "hidden": args.hidden,
        "layers": args.layers, "bptt": args.bptt, "batch": args.batch, "lr": args.lr,
        "clip": args.clip, "steps": args.steps, "time_budget": args.time_budget,
        "seed": args.seed,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.steps is not None and args.time_budget is None:
        overrides["time_budget"] = None  # --steps alone: exactly that many updates
    if args.resume is not None:
        allowed = {"steps", "time_budget"}
        if args.config or set(overrides) - allowed:
            raise ValueError("--resume continues a run with its own configuration; only "
                             "--steps and --time-budget may be given with it")
        base = lm.LMConfig(steps=args.steps, time_budget=overrides.get("time_budget", 600.0))
        lm.train(base, resume=args.resume, progress=args.progress)
        return 0
    base = lm.LMConfig.from_toml(args.config) if args.config else lm.LMConfig()
    cfg = lm.LMConfig.from_dict({**dataclasses.asdict(base), **overrides})
    lm.train(cfg, out=args.out, progress=args.progress)
    return 0


def _sample(args) -> int:
    from . import lm

    lm.sample(args.run, prime=args.prime, length=args.length, temperature=args.temperature,
              top_k=args.top_k, seed=args.seed)
    return 0


def _eval(args) -> int:
    from . import lm

    r = lm.evaluate(args.run, args.data)
    if args.json:
        print(json.dumps(r))
    else:
        u = r["unit"]
        print(f"{r['tokens']:,} {u}s: {r['nats']:.4f} nats/{u}, {r['bits']:.4f} bits/{u}, "
              f"perplexity {r['perplexity']:.3f}"
              + (f" ({r['unknown']:,} outside the vocabulary)" if r["unknown"] else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent neural networks with exact, hand-written BPTT, on the CPU.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser(
        "train", help="train a character-level language model (default: Shakespeare)",
        description="Train a language model with truncated BPTT on stream-aligned batches. "
                    "With no options: an LSTM on the bundled Shakespeare plays for ten "
                    "minutes. Options override --config, which overrides the defaults.")
    t.add_argument("--data", metavar="PATH", help="UTF-8 text file or folder of .txt files")
    t.add_argument("--tokens", choices=["char", "word"], help="token unit (default char)")
    t.add_argument("--cell", choices=["lstm", "gru", "elman"], help="default lstm")
    t.add_argument("--hidden", type=int, metavar="H", help="units per layer (default 256)")
    t.add_argument("--layers", type=int, metavar="L", help="stacked layers (default 1)")
    t.add_argument("--bptt", type=int, metavar="T", help="steps per BPTT window (default 64)")
    t.add_argument("--batch", type=int, metavar="B", help="parallel streams (default 32)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default 3e-3)")
    t.add_argument("--clip", type=float, help="global gradient-norm clip, 0 for none "
                   "(default 1)")
    t.add_argument("--steps", type=int, help="updates to make (alone: no time limit)")
    t.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="seconds of training (default 600)")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/<cell>-<time>)")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder")
    t.add_argument("--config", metavar="FILE", help="TOML file of settings (keys as options, "
                   "with underscores); unknown keys are refused")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when standard error is a terminal)")
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="generate text from a trained run",
                       description="Stream generated text, one token at a time.")
    s.add_argument("run", metavar="RUN", help="run folder written by rnnlab train")
    s.add_argument("--prime", default="", help="text to start from")
    s.add_argument("--length", type=int, default=500, help="tokens to generate (default 500)")
    s.add_argument("--temperature", type=float, default=0.8, help="default 0.8")
    s.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(func=_sample)

    e = sub.add_parser("eval", help="bits per character and perplexity on held-out text",
                       description="Score a trained run on a text file or folder.")
    e.add_argument("run", metavar="RUN", help="run folder written by rnnlab train")
    e.add_argument("--data", metavar="PATH", required=True, help="UTF-8 text file or folder")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=_eval)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    except (ValueError, ModuleNotFoundError, FileNotFoundError, IsADirectoryError,
            PermissionError) as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
