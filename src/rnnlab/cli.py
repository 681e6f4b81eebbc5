"""The ``rnnlab`` command line: thin subcommands over library functions.

Exit codes: 0 success, 1 a user error (one line on standard error, no traceback),
2 a usage error (from argparse), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from ._version import __version__
from .parallel import RankLost

_TASK_ONLY = ("epochs", "patch", "horizon", "noise", "max_train", "max_test", "readout",
              "augment", "val_split", "patience", "ensemble", "bidirectional")
_LM_ONLY = ("data", "tokens", "bptt", "lr_decay", "steps", "time_budget", "resume", "config")


def _parse_patch(text: str) -> tuple[int, int]:
    """``"4x4"`` -> (4, 4); ``"4"`` -> (4, 4)."""
    parts = text.lower().split("x")
    try:
        pq = tuple(int(v) for v in parts)
    except ValueError:
        pq = ()
    if len(pq) == 1:
        pq = pq * 2
    if len(pq) != 2 or min(pq) < 1:
        raise ValueError(f"--patch must be HEIGHTxWIDTH in pixels, e.g. 4x4, got {text!r}")
    return pq


def _parse_steps(text: str) -> int:
    """--patch of a series task: ``"8"`` -> 8 steps read as one."""
    try:
        steps = int(text)
    except ValueError:
        steps = 0
    if steps < 1:
        raise ValueError(f"--patch of a ucr: task must be a positive number of steps, e.g. 8, "
                         f"got {text!r}")
    return steps


def _task_name(text: str) -> str:
    """--task: a name of TASKS or ucr:NAME / ucr:PATH (checked when the data is read)."""
    from .apps import TASKS, UCR_PREFIX

    if text in TASKS or (text.startswith(UCR_PREFIX) and len(text) > len(UCR_PREFIX)):
        return text
    raise argparse.ArgumentTypeError(f"unknown task {text!r}; expected one of "
                                     f"{', '.join(TASKS)}, {UCR_PREFIX}NAME or {UCR_PREFIX}PATH")


def _zoneout(text: str):
    """``--zoneout``: one rate, or ``ZH,ZC``."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected a rate Z or a pair ZH,ZC, got {text!r}")
    return parts[0] if len(parts) == 1 else parts


def _train_task(args) -> int:
    from . import apps

    for k in _LM_ONLY:
        if getattr(args, k) is not None:
            raise ValueError(f"--{k.replace('_', '-')} applies to language models; it cannot "
                             f"be given with --task")
    options = {"cell": args.cell, "hidden": args.hidden, "layers": args.layers,
               "proj_size": args.proj_size, "peepholes": args.peepholes,
               "layer_norm": args.layer_norm, "dropout": args.dropout,
               "recurrent_dropout": args.recurrent_dropout, "zoneout": args.zoneout,
               "epochs": args.epochs, "batch": args.batch,
               "lr": args.lr, "clip": args.clip,
               "seed": args.seed, "noise": args.noise, "readout": args.readout,
               "max_train": args.max_train, "max_test": args.max_test, "window": args.window,
               "precision": args.precision,
               "augment": args.augment, "val_split": args.val_split,
               "patience": args.patience, "ensemble": args.ensemble,
               "bidirectional": args.bidirectional}
    options = {k: v for k, v in options.items() if v is not None}
    if options.get("augment", "").lower() == "none":
        options["augment"] = ""
    patch = None if args.patch is None else (
        _parse_steps(args.patch) if args.task.startswith(apps.UCR_PREFIX)
        else _parse_patch(args.patch))
    out = apps.train_task(args.task, patch=patch,
                          horizon=1 if args.horizon is None else args.horizon, out=args.out,
                          progress=args.progress, tensorboard=args.tensorboard, **options)
    _maybe_report(args, out)
    return 0


def _maybe_report(args, run) -> None:
    """With ``--report``: write ``RUN/report.html`` (rank 0 alone under mpiexec)."""
    if not getattr(args, "report", False):
        return
    from . import parallel

    dp = parallel.DataParallel.of(None)
    if dp is not None and not dp.root:
        return
    from .report import write_report

    print(f"rnnlab: report in {write_report(run)}")


def _report(args) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.run, out=args.out)}")
    return 0


def _train(args) -> int:
    from . import kernels, lm

    # Every update allocates the same large arrays again; keeping freed memory in the
    # process saves re-faulting them (measurements: docs/performance.md, "Memory and page
    # faults"). The CLI owns its process, so the process-wide setting is harmless here.
    kernels.keep_freed_memory()
    if args.task is not None:
        return _train_task(args)
    for k in _TASK_ONLY:
        if getattr(args, k) is not None:
            raise ValueError(f"--{k.replace('_', '-')} applies to --task runs only")
    overrides = {
        "data": args.data, "tokens": args.tokens, "cell": args.cell, "hidden": args.hidden,
        "layers": args.layers, "proj_size": args.proj_size, "peepholes": args.peepholes,
        "layer_norm": args.layer_norm, "dropout": args.dropout,
        "recurrent_dropout": args.recurrent_dropout, "zoneout": args.zoneout,
        "bptt": args.bptt, "batch": args.batch, "lr": args.lr, "lr_decay": args.lr_decay,
        "clip": args.clip, "steps": args.steps, "time_budget": args.time_budget,
        "seed": args.seed, "window": args.window, "precision": args.precision,
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
        run = lm.train(base, resume=args.resume, progress=args.progress,
                       tensorboard=args.tensorboard)
    else:
        base = lm.LMConfig.from_toml(args.config) if args.config else lm.LMConfig()
        cfg = lm.LMConfig.from_dict({**dataclasses.asdict(base), **overrides})
        run = lm.train(cfg, out=args.out, progress=args.progress, tensorboard=args.tensorboard)
    _maybe_report(args, run)
    return 0


def _sample(args) -> int:
    from . import lm

    lm.sample(args.run, prime=args.prime, length=args.length, temperature=args.temperature,
              top_k=args.top_k, seed=args.seed)
    return 0


def _is_task_run(path) -> bool:
    from pathlib import Path

    try:
        info = json.loads((Path(path) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    from .apps import TASK_FORMAT

    return isinstance(info, dict) and info.get("format") == TASK_FORMAT


def _eval(args) -> int:
    from . import lm

    if _is_task_run(args.run):
        from . import apps

        if args.data is not None:
            raise ValueError(f"{args.run} is a --task run; it is scored on its own test "
                             f"split, so --data cannot be given")
        r = apps.evaluate_task(args.run)
        if args.json:
            print(json.dumps(r))
        elif "accuracy" in r:
            print(f"{r['task']}: test accuracy {r['accuracy']:.4f} on {r['n_test']:,} "
                  f"sequences; confusion matrix in {r['plot']}")
        else:
            print(f"{r['task']}: test RMSE {r['rmse']:.2f} {r['units']}s over {r['n_test']} "
                  f"windows (horizon {r['horizon']}), persistence {r['persistence_rmse']:.2f}; "
                  f"forecast plot in {r['plot']}")
        _maybe_report(args, args.run)
        return 0
    if args.data is None:
        lm.open_run(args.run)  # not a run folder at all: that error first
        raise ValueError(f"{args.run} is a language-model run: give the text to score with "
                         f"--data PATH")
    r = lm.evaluate(args.run, args.data)
    if args.json:
        print(json.dumps(r))
    else:
        u = r["unit"]
        print(f"{r['tokens']:,} {u}s: {r['nats']:.4f} nats/{u}, {r['bits']:.4f} bits/{u}, "
              f"perplexity {r['perplexity']:.3f}"
              + (f" ({r['unknown']:,} outside the vocabulary)" if r["unknown"] else ""))
    _maybe_report(args, args.run)
    return 0


def _open_model(path):
    """The model of a run folder (``rnnlab train``'s, with or without ``--task``), checked
    as ``sample`` and ``eval`` check it, or of a model file (``.rnnlab``)."""
    from pathlib import Path

    from . import lm
    from .saving import load

    path = Path(path)
    if path.is_file():
        return load(path)
    if not path.exists():
        raise ValueError(f"{path}: no such run folder or model file")
    if _is_task_run(path):
        from .apps import open_task_run

        open_task_run(path)
        return load(path / "model.rnnlab")
    return lm.open_run(path).net


def _export(args) -> int:
    from . import onnx

    model = _open_model(args.run)
    inputs, outputs = onnx.signature(model, lengths=args.lengths, states=args.states)
    opset = onnx.DEFAULT_OPSET if args.opset is None else args.opset
    path = onnx.export(model, args.onnx, lengths=args.lengths, states=args.states, opset=opset)

    def shapes(named):
        return ", ".join(f"{n} ({', '.join(map(str, s))})" for n, s in named.items())

    print(f"wrote {path} (ONNX opset {opset}): inputs {shapes(inputs)}; "
          f"outputs {shapes(outputs)}")
    return 0


# fresh-model options of `diagnose`, with their defaults; None on the parser means "not given"
_FRESH = {"cell": None, "hidden": 64, "layers": 1, "input_size": 8, "activation": "tanh",
          "init": "uniform", "seed": 0}


def _run_windows(run, batch: int, steps: int):
    """``batch`` evenly spaced windows of ``steps`` validation tokens of a run, and targets.

    Returns one-hot inputs (B, T, V) and next-token labels (B, T). A validation text too
    short for that gives fewer or shorter windows.
    """
    import numpy as np

    from . import lm
    from .data.text import one_hot

    ids = run.vocab.encode(lm.load_corpus(run.config).validation, unk=True)
    if len(ids) < 2:
        raise ValueError(f"{run.path}: the validation text has {len(ids)} tokens; "
                         "need at least 2 to diagnose on")
    steps = min(steps, len(ids) - 1)
    batch = max(1, min(batch, (len(ids) - 1) // steps))
    starts = np.linspace(0, len(ids) - 1 - steps, batch).astype(int)
    windows = np.stack([ids[s:s + steps + 1] for s in starts])  # (B, T + 1)
    return one_hot(windows[:, :-1], len(run.vocab), run.net.dtype), windows[:, 1:]


def _flow_records(log):
    """(step, flow) pairs of the gradient-flow lines in a JSON-lines log, if any."""
    rows = []
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interrupted run
            if isinstance(r, dict) and isinstance(r.get("flow"), list) and "step" in r:
                rows.append((r["step"], [float("nan") if v is None else v
                                         for v in r["flow"]]))
    return rows


def _diagnose(args) -> int:
    from pathlib import Path

    import numpy as np

    from . import diagnostics, lm, plots
    from .cells import LAYERS
    from .checks import positive_int

    steps = positive_int(args.steps, "steps")
    batch = positive_int(args.batch, "batch")
    given = [k for k in _FRESH if getattr(args, k) is not None]
    if args.run is not None:
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} describes a fresh model; "
                             f"it cannot be given with a run folder ({args.run})")
        run = lm.open_run(args.run)
        x, y = _run_windows(run, batch, steps)
        report = diagnostics.diagnose(run.net, x, y, norm=args.norm)
        what = f"run {run.path}: {len(x)} validation windows of {x.shape[1]} tokens"
        out = Path(args.out) if args.out else run.path / "diagnostics"
        history = _flow_records(run.path / "metrics.jsonl")
    else:
        if args.cell is None:
            raise ValueError("give a run folder (rnnlab diagnose RUN) or a fresh model "
                             "(rnnlab diagnose --cell elman --hidden 64 --steps 100)")
        o = {k: (_FRESH[k] if getattr(args, k) is None else getattr(args, k)) for k in _FRESH}
        for k in ("hidden", "layers", "input_size"):
            positive_int(o[k], k.replace("_", "-"))
        if o["seed"] < 0:
            raise ValueError(f"seed must be a non-negative integer, got {o['seed']}")
        takes_activation = "activation" in LAYERS[o["cell"]].options
        options = {"activation": o["activation"]} if takes_activation else {}
        if not takes_activation and args.activation is not None:
            raise ValueError(f"--activation applies to the elman cell only, got "
                             f"{args.activation!r} with --cell {o['cell']}")
        layer = LAYERS[o["cell"]](o["input_size"], o["hidden"], o["layers"], seed=o["seed"],
                                  init=o["init"], **options)
        x = np.random.default_rng(o["seed"]).normal(size=(batch, steps, o["input_size"]))
        report = diagnostics.diagnose(layer, x, norm=args.norm)
        what = (f"fresh model, init {o['init']}, seed {o['seed']}: {batch} sequences of "
                f"{steps} steps of N(0, 1) input, {o['input_size']} features")
        out = Path(args.out) if args.out else Path("diagnostics")
        history = []
    print(what)
    print(report.summary())
    paths = plots.plot_report(report, out)
    if history:
        paths.append(plots.plot_flow_heatmap(history, out / "flow_heatmap.png"))
    print(f"wrote {', '.join(p.name for p in paths)} to {out}")
    return 0


def _demo_memory(args) -> int:
    from . import demo

    overrides = {"tasks": args.task, "cells": args.cells, "lags": args.lags,
                 "optimizer": args.optimizer, "lr": args.lr, "epochs": args.epochs,
                 "train": args.train, "hidden": args.hidden, "seeds": args.seeds,
                 "init": args.init}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = demo.MemoryConfig.quick(**overrides) if args.quick else \
        demo.MemoryConfig.from_dict(overrides)
    if not args.sweep and (args.address is not None or args.max_concurrent is not None):
        raise ValueError("--address and --max-concurrent apply to --sweep runs only")
    if args.sweep and args.jobs != 1:
        raise ValueError("--jobs applies without --sweep; with it, give --max-concurrent")
    demo.memory(cfg, out=args.out, jobs=args.jobs, sweep=args.sweep, address=args.address,
                max_concurrent=args.max_concurrent)
    _maybe_report(args, args.out)
    return 0


def _sweep(args) -> int:
    from . import sweep

    sweep.run(args.spec, args.out, address=args.address, max_concurrent=args.max_concurrent)
    _maybe_report(args, args.out)
    return 0


def _bench(args) -> int:
    from .bench import run_from_args

    run_from_args(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent neural networks with exact, hand-written BPTT, on the CPU.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from .apps import TASKS
    from .cells import LAYERS
    from .onnx import DEFAULT_OPSET, MIN_OPSET

    cells = list(LAYERS)

    t = sub.add_parser(
        "train", help="train a character-level language model (default: Shakespeare), or "
                      "a classifier or forecaster on an application data set (--task)",
        description="Train a language model with truncated BPTT on stream-aligned batches. "
                    "With no options: an LSTM on the bundled Shakespeare plays for ten "
                    "minutes. Options override --config, which overrides the defaults. "
                    "With --task: a many-to-one network on that data set's fixed split "
                    "(softmax for classification, a linear head for sunspots), full BPTT "
                    "for --epochs, with the settings of examples/apps_*.py as defaults.",
        epilog="examples: rnnlab train --task digits; rnnlab train --task fashion-mnist "
               "--patch 4x4; rnnlab train --task sunspots --horizon 1")
    t.add_argument("--data", metavar="PATH", help="UTF-8 text file or folder of .txt files")
    t.add_argument("--tokens", choices=["char", "word"], help="token unit (default char)")
    t.add_argument("--cell", choices=cells, help="default lstm")
    t.add_argument("--hidden", type=int, metavar="H", help="units per layer (default 256)")
    t.add_argument("--layers", type=int, metavar="L", help="stacked layers (default 1)")
    t.add_argument("--proj-size", type=int, metavar="P", help="lstm only: project each "
                   "layer's output to P < H units, as PyTorch's proj_size (default 0: none)")
    t.add_argument("--peepholes", action="store_true", default=None,
                   help="lstm only: peephole connections from the cell state to the gates")
    t.add_argument("--layer-norm", action="store_true", default=None,
                   help="lstm and gru: layer normalisation of the gate pre-activations and "
                        "the cell state (Ba et al. 2016, as haste's LayerNormLSTM)")
    t.add_argument("--dropout", type=float, metavar="P", help="train-time dropout between "
                   "stacked layers, as PyTorch's nn.LSTM(dropout=P); needs --layers >= 2 "
                   "(default 0: none)")
    t.add_argument("--recurrent-dropout", type=float, metavar="P", help="train-time dropout "
                   "on h in the recurrent product, one mask per sequence (Gal & Ghahramani "
                   "2016; default 0: none)")
    t.add_argument("--zoneout", type=_zoneout, metavar="Z[,ZC]", help="train-time zoneout "
                   "rate (Krueger et al. 2016), or ZH,ZC for an LSTM's h and c; inference "
                   "uses its expectation (default 0: none)")
    t.add_argument("--window", type=int, metavar="K", help="--cell ffnn only: inputs each "
                   "step sees, its own and the K-1 before (default 8)")
    t.add_argument("--bptt", type=int, metavar="T", help="steps per BPTT window (default 64)")
    t.add_argument("--batch", type=int, metavar="B", help="parallel streams (default 32)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default 3e-3)")
    t.add_argument("--lr-decay", type=float, metavar="SHARE",
                   help="language model: the share of the run at its end over which the "
                        "learning rate falls linearly to 0 (default 0.3; 0: constant)")
    t.add_argument("--clip", type=float, help="global gradient-norm clip, 0 for none "
                   "(default 1)")
    t.add_argument("--steps", type=int, help="updates to make (alone: no time limit)")
    t.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="seconds of training (default 600)")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--precision", choices=["fp32", "bf16", "auto"],
                   help="what the matrix products compute in: bf16 (float32 sums, weights "
                        "and optimiser state in float32) where the CPU has BF16 "
                        "instructions with auto (the default), else fp32")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/<cell>-<time>)")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder")
    t.add_argument("--config", metavar="FILE", help="TOML file of settings (keys as options, "
                   "with underscores); unknown keys are refused")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when standard error is a terminal)")
    t.add_argument("--report", action="store_true",
                   help="write RUN/report.html at the end (as rnnlab report RUN)")
    t.add_argument("--tensorboard", metavar="DIR",
                   help="also write TensorBoard event files to DIR: losses, learning rate, "
                        "gradient norm, clipping, histograms of weights and gradients, "
                        "gradient flow (needs rnnlab[tensorboard])")
    a = t.add_argument_group("application data sets (--task)")
    a.add_argument("--task", type=_task_name, metavar="TASK",
                   help=f"train on this data set instead of text: one of {', '.join(TASKS)}, "
                        "ucr:NAME (a UCR/UEA set bundled with sktime) or ucr:PATH (a folder "
                        "holding NAME_TRAIN.ts and NAME_TEST.ts); run folder default "
                        "runs/<task>-<time>")
    a.add_argument("--epochs", type=int, help="passes over the training split "
                   "(default: the task's)")
    a.add_argument("--patch", metavar="PxQ", help="image tasks: read p x q patches in "
                   "raster order, e.g. 4x4 (default: rows); ucr: tasks: read P consecutive "
                   "steps as one, e.g. 8 (default: the set's rule, 1 for none)")
    a.add_argument("--horizon", type=int, metavar="K",
                   help="sunspots: years forecast from each window (default 1)")
    a.add_argument("--noise", type=float, metavar="STD",
                   help="Gaussian noise of this standard deviation on the real steps of each "
                        "training batch (default: the task's; 1.2 for japanese-vowels, else 0)")
    a.add_argument("--readout", choices=["last", "mean", "max", "attention"],
                   help="what the head reads: the last state, or the mean, maximum or a "
                        "learned attention-weighted sum of the top layer's outputs over the "
                        "real steps (default: the task's)")
    a.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="read each sequence both ways (default: the task's)")
    a.add_argument("--augment", metavar="LIST",
                   help="augment training batches: some of jitter, scale, slice, warp, "
                        "comma-separated, each optionally =strength (jitter=0.05); 'none' "
                        "for none (default: the task's)")
    a.add_argument("--val-split", type=float, metavar="FRACTION",
                   help="hold out this share of the training split (stratified) and keep "
                        "the epoch with the best validation loss; 0 for none (default: the "
                        "task's)")
    a.add_argument("--patience", type=int, metavar="EPOCHS",
                   help="with --val-split: stop after this many epochs without a better "
                        "validation loss (default: train all epochs)")
    a.add_argument("--ensemble", type=int, metavar="K",
                   help="train K networks (seeds SEED..SEED+K-1) and average their class "
                        "probabilities; model.rnnlab, model-1.rnnlab, ... (default 1)")
    a.add_argument("--max-train", type=int, metavar="N", help=argparse.SUPPRESS)
    a.add_argument("--max-test", type=int, metavar="N", help=argparse.SUPPRESS)
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

    e = sub.add_parser("eval", help="bits per character and perplexity on held-out text, "
                                    "or a --task run's test accuracy or forecast error",
                       description="Score a language-model run on a text file or folder "
                                   "(--data). A --task run is scored on its own test split: "
                                   "accuracy and RUN/confusion.png, or RMSE against "
                                   "persistence and RUN/forecast.png.")
    e.add_argument("run", metavar="RUN", help="run folder written by rnnlab train")
    e.add_argument("--data", metavar="PATH",
                   help="UTF-8 text file or folder (language-model runs)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--report", action="store_true",
                   help="write RUN/report.html afterwards (as rnnlab report RUN)")
    e.set_defaults(func=_eval)

    r = sub.add_parser(
        "report", help="write a run's report: one web page that opens from disk",
        description="Write RUN/report.html: one self-contained HTML file (figures and data "
                    "inline, nothing fetched) with the settings and environment, loss against "
                    "step and wall time, gradient norm and clipping, gradient flow before and "
                    "after training, saturation, and samples (language models), the confusion "
                    "matrix or forecast (--task runs), the results table (a sweep folder) or "
                    "the memory figures (rnnlab demo memory's folder).",
        epilog="example: rnnlab report runs/lstm-20250101-120000")
    r.add_argument("run", metavar="RUN", help="run folder of rnnlab train (with or without "
                   "--task), rnnlab demo memory or rnnlab sweep")
    r.add_argument("--out", metavar="FILE", help="the HTML file (default RUN/report.html)")
    r.set_defaults(func=_report)

    d = sub.add_parser(
        "diagnose", help="gradient flow, memory length, spectral radius and saturation",
        description="Measure how far back the gradient reaches in a trained run (on windows "
                    "of its validation text) or in a fresh model (on N(0, 1) input): print a "
                    "summary and write PNG plots (flow against lag, saturation over time, "
                    "and for a run the loss gradient per step and, when its log holds "
                    "gradient-flow records, a heat map across training).",
        epilog="examples: rnnlab diagnose runs/lstm-20250101-120000; "
               "rnnlab diagnose --cell elman --hidden 64 --steps 100")
    d.add_argument("run", metavar="RUN", nargs="?", help="run folder written by rnnlab train")
    d.add_argument("--steps", type=int, default=100, metavar="T",
                   help="time steps per sequence (default 100)")
    d.add_argument("--batch", type=int, default=8, metavar="B",
                   help="sequences to average over (default 8)")
    d.add_argument("--norm", choices=["fro", "spectral"], default="fro",
                   help="Jacobian norm: Frobenius (default) or spectral")
    d.add_argument("--out", metavar="DIR",
                   help="folder for the PNGs (default RUN/diagnostics or ./diagnostics)")
    f = d.add_argument_group("a fresh model (instead of RUN)")
    f.add_argument("--cell", choices=cells)
    f.add_argument("--hidden", type=int, metavar="H", help="units per layer (default 64)")
    f.add_argument("--layers", type=int, metavar="L", help="stacked layers (default 1)")
    f.add_argument("--input-size", type=int, metavar="D", help="input features (default 8)")
    f.add_argument("--activation", choices=["tanh", "relu", "sigmoid"],
                   help="elman only (default tanh)")
    f.add_argument("--init", choices=["uniform", "orthogonal", "identity"],
                   help="recurrent weights (default uniform, as PyTorch)")
    f.add_argument("--seed", type=int, help="weights and input (default 0)")
    d.set_defaults(func=_diagnose)

    m = sub.add_parser("demo", help="demonstrations of the notes' claims, measured",
                       description="Demonstrations that train networks and write one figure "
                                   "and one table with every condition stated.")
    demos = m.add_subparsers(dest="demo", metavar="DEMO", required=True)
    mem = demos.add_parser(
        "memory", help="Elman against LSTM: success and gradient flow against lag",
        description="Train Elman and LSTM networks on long-range tasks across lags (delayed "
                    "recall and the adding problem) and write memory.png, memory.md and "
                    "memory.json: success against lag, and the gradient flow back to the "
                    "information at the start and end of training. The defaults take tens "
                    "of minutes on two cores; --quick takes seconds (a smoke test, not a "
                    "result).")
    mem.add_argument("--task", nargs="+", choices=["recall", "adding"],
                     help="tasks (default both)")
    mem.add_argument("--cells", nargs="+", choices=cells,
                     help="default elman lstm")
    mem.add_argument("--lags", nargs="+", type=int, metavar="LAG",
                     help="default 2 5 10 20 50 100 200")
    mem.add_argument("--optimizer", choices=["adam", "sgd"], help="default adam")
    mem.add_argument("--lr", type=float, help="default 1e-2 (Adam) or 0.1 (SGD, momentum 0.9)")
    mem.add_argument("--epochs", type=int, help="passes over the training set (default 60)")
    mem.add_argument("--train", type=int, metavar="N", help="training sequences (default 2000)")
    mem.add_argument("--hidden", type=int, metavar="H", help="default 32")
    mem.add_argument("--init", choices=["uniform", "orthogonal"], help="default uniform")
    mem.add_argument("--seeds", nargs="+", type=int, help="default 0 1 2")
    mem.add_argument("--quick", action="store_true",
                     help="tiny settings that run in seconds (options still override them)")
    mem.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    mem.add_argument("--out", default="memory-demo", metavar="DIR",
                     help="output folder (default memory-demo)")
    mem.add_argument("--sweep", action="store_true",
                     help="run the grid on Ray Tune as rnnlab sweep does: a run folder per "
                          "run under DIR/trials, DIR/results.csv, and a rerun resumes "
                          '(pip install "rnnlab[cluster]")')
    _ray_options(mem)
    mem.add_argument("--report", action="store_true",
                     help="write DIR/report.html at the end (as rnnlab report DIR)")
    mem.set_defaults(func=_demo_memory)
    w = sub.add_parser(
        "sweep", help="many trainings over a grid of settings, on Ray Tune",
        description="Train every combination of the [grid] lists of SPEC (a TOML file; "
                    "[base] holds the settings all trials share: the keys of rnnlab train's "
                    "--config, or of a --task run when either table names a task). Each "
                    "trial is a run folder under DIR/trials; DIR/results.csv has a row per "
                    "trial (the grid's columns, the final validation score, seconds, "
                    "status), DIR/scores.png the score against each axis. Rerunning the "
                    "same command resumes: finished trials are not run again. Needs Ray: "
                    'pip install "rnnlab[cluster]".',
        epilog="example: rnnlab sweep lr.toml --out sweeps/lr --max-concurrent 2")
    w.add_argument("spec", metavar="SPEC", help="TOML file with [base] and [grid] tables")
    w.add_argument("--out", required=True, metavar="DIR", help="sweep folder")
    _ray_options(w)
    w.add_argument("--report", action="store_true",
                   help="write DIR/report.html at the end (as rnnlab report DIR)")
    w.set_defaults(func=_sweep)

    x = sub.add_parser(
        "export", help="write a trained model as an ONNX file",
        description="Write the network of a run folder (or the model of a .rnnlab file) as "
                    "an ONNX graph of the standard RNN, LSTM and GRU operators: input x "
                    "(batch, time, features) float32, output y as the network's predictions "
                    "(a layer's file: y, h_n and for the LSTM c_n). Needs the onnx extra: "
                    'pip install "rnnlab[onnx]". See docs/onnx.md.',
        epilog="example: rnnlab export runs/lstm-20250101-120000 --onnx model.onnx --lengths")
    x.add_argument("run", metavar="RUN", help="run folder written by rnnlab train, or a "
                   ".rnnlab model file")
    x.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    x.add_argument("--lengths", action="store_true",
                   help="add the input lengths (batch,) int64: real steps per sequence")
    x.add_argument("--states", action="store_true",
                   help="add the initial-state inputs h0 (and c0), (layers, batch, hidden)")
    x.add_argument("--opset", type=int, metavar="N",
                   help=f"ONNX opset, {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    x.set_defaults(func=_export)

    b = sub.add_parser("bench", help="time rnnlab against PyTorch on this CPU",
                       description="Training step, inference and streaming step of each cell, "
                                   "rnnlab and PyTorch side by side in one process; writes "
                                   "bench.json and bench.md.")
    from .bench import add_arguments

    add_arguments(b)
    b.set_defaults(func=_bench)
    return p


def _ray_options(p) -> None:
    p.add_argument("--address", metavar="ADDR",
                   help="a running Ray cluster (e.g. auto or HOST:6379); default: a local "
                        "Ray started for the sweep, one CPU per trial")
    p.add_argument("--max-concurrent", type=int, metavar="K",
                   help="trials at once (default: one per CPU)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    except RankLost as e:
        print(f"rnnlab: error: {e}", file=sys.stderr, flush=True)
        # not a normal exit: MPI's finalisation would wait for the lost rank for ever
        os._exit(1)
    except (ValueError, ModuleNotFoundError, OSError) as e:
        # OSError: besides a missing or unreadable file, a write that fails (no space left
        # on the device, a read-only folder); the files written before it stay as they were
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
