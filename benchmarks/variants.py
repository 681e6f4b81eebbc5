"""The LSTM against each of its variants and the feedforward baseline, at equal budget.

    python benchmarks/variants.py                       # all tasks, variants and seeds 0 1 2
    python benchmarks/variants.py --tasks adding --seeds 0 --adding-budget 20000
    python benchmarks/variants.py --tasks lm --lm-budget 600 --variants lstm layer-norm

Three tasks, each variant with the same budget and otherwise the same settings:

* ``adding``: the adding problem at T = 100 (Hochreiter & Schmidhuber 1997), a 1x64 layer,
  Adam 3e-3 with a cosine decay over ``--adding-budget`` training sequences; the test
  score is the fraction of 2,560 fresh sequences solved (|error| < 0.04) and their MSE;
* ``lm``: ``rnnlab train`` (the default character model on Shakespeare) for
  ``--lm-budget`` seconds; the score is the final validation loss on the whole validation
  text, nats per character;
* ``vowels``: ``rnnlab train --task japanese-vowels`` with the task's settings; the score
  is the test accuracy.

Variants: the plain LSTM, its projection (P = H / 2), peepholes, layer normalisation,
zoneout (0.1 on h and c), variational recurrent dropout (0.25), dropout 0.25 between two
stacked layers (and a plain two-layer LSTM to compare with), the layer-normalised GRU, and
the feedforward baseline over a window of 8 inputs. Every run is a subprocess or a fresh
network; results are kept in ``--out`` (one JSON file per run), so an interrupted call
resumes, and the table (mean and sample standard deviation over seeds) is printed and
written as ``variants.md`` beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rnnlab.bench import cpu_description

#: name -> (options of rnnlab train, Network keyword arguments) of each variant
VARIANTS = {
    "lstm": ([], {}),
    "projection": (["--proj-size", "{half}"], {"proj_size": "{half}"}),
    "peepholes": (["--peepholes"], {"peepholes": True}),
    "layer-norm": (["--layer-norm"], {"layer_norm": True}),
    "zoneout": (["--zoneout", "0.1"], {"zoneout": 0.1}),
    "recurrent-dropout": (["--recurrent-dropout", "0.25"], {"recurrent_dropout": 0.25}),
    "lstm-2-layers": (["--layers", "2"], {"num_layers": 2}),
    "dropout-2-layers": (["--layers", "2", "--dropout", "0.25"],
                         {"num_layers": 2, "dropout": 0.25}),
    "gru-layer-norm": (["--cell", "gru", "--layer-norm"], {"cell": "gru", "layer_norm": True}),
    "ffnn": (["--cell", "ffnn", "--window", "8"], {"cell": "ffnn", "window": 8}),
}
TASKS = ("adding", "lm", "vowels")


def _filled(value, hidden: int):
    return hidden // 2 if value == "{half}" else value


def adding(variant: str, seed: int, args) -> dict:
    import rnnlab
    from rnnlab.data.synthetic import adding_accuracy, adding_problem
    from rnnlab.optim import cosine

    T, H = 100, 64
    kwargs = {"cell": "lstm", **{k: _filled(v, H) for k, v in VARIANTS[variant][1].items()}}
    net = rnnlab.Network(2, H, 1, output="linear", readout="last", seed=seed, **kwargs)
    steps = args.adding_budget // 32
    trainer = rnnlab.Trainer(net, "adam", 3e-3, clip_norm=1.0, batch_size=32, seed=seed,
                             schedule=cosine(3e-3, steps + 1, min_lr=1e-4), progress=False)
    t0 = time.perf_counter()
    X, Y = adding_problem(args.adding_budget, T, seed=1000 + seed)
    trainer.fit(X, Y, epochs=1)
    Xt, Yt = adding_problem(2560, T, seed=20_000 + T)
    pred = net.predict(Xt)
    return {"score": adding_accuracy(pred, Yt), "mse": float(((pred - Yt) ** 2).mean()),
            "seconds": time.perf_counter() - t0, "parameters": net.n_params}


def _cli(options: list, folder: Path) -> dict:
    subprocess.run([sys.executable, "-m", "rnnlab", "train", *options, "--out", str(folder),
                    "--no-progress"], check=True)
    return json.loads((folder / "run.json").read_text())


def lm(variant: str, seed: int, args) -> dict:
    options = [_filled(o, 256) if o == "{half}" else o for o in VARIANTS[variant][0]]
    folder = Path(args.out) / "runs" / f"lm-{variant}-seed{seed}"
    info = _cli(["--time-budget", str(args.lm_budget), "--seed", str(seed),
                 *map(str, options)], folder)
    return {"score": info["val_nats"], "steps": info["steps"], "seconds": info["seconds"],
            "parameters": info["parameters"]}


def vowels(variant: str, seed: int, args) -> dict:
    options = [str(_filled(o, 64)) if o == "{half}" else o for o in VARIANTS[variant][0]]
    if "--cell" not in options:  # the task's own cell may be another
        options = ["--cell", "lstm", *options]
    folder = Path(args.out) / "runs" / f"vowels-{variant}-seed{seed}"
    info = _cli(["--task", "japanese-vowels", "--seed", str(seed), *options], folder)
    r = info["results"]
    return {"score": r["accuracy"], "seconds": r["seconds"]}


SCORES = {"adding": ("solved", adding), "lm": ("val nats/char", lm),
          "vowels": ("test accuracy", vowels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--adding-budget", type=int, default=100_000,
                    help="training sequences per adding-problem run")
    ap.add_argument("--lm-budget", type=float, default=600.0,
                    help="seconds of training per language-model run")
    ap.add_argument("--out", default="benchmarks/results/variants")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for task in args.tasks:
        for variant in args.variants:
            for seed in args.seeds:
                path = out / f"{task}-{variant}-seed{seed}.json"
                if path.exists():
                    r = json.loads(path.read_text())
                else:
                    r = SCORES[task][1](variant, seed, args)
                    path.write_text(json.dumps(r, indent=1))
                results.setdefault((task, variant), []).append(r)
                print(f"{task} {variant} seed {seed}: {r['score']:.4f}", flush=True)
    lines = [f"{cpu_description()}; seeds {args.seeds}; adding T = 100, "
             f"{args.adding_budget:,} sequences; language model {args.lm_budget:.0f} s", "",
             "| task | variant | score (mean ± sd) | seconds per run |", "|---|---|---|---|"]
    for (task, variant), rs in results.items():
        scores = [r["score"] for r in rs]
        sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"| {task} ({SCORES[task][0]}) | {variant} | {statistics.mean(scores):.4f}"
                     f" ± {sd:.4f} | {statistics.mean(r['seconds'] for r in rs):.0f} |")
    table = "\n".join(lines)
    (out / "variants.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
