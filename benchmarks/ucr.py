"""Every UCR/UEA classification set sktime bundles, trained as ``rnnlab train --task ucr:NAME``
trains it, over several seeds, beside the published FCN, ResNet and InceptionTime figures.

    python benchmarks/ucr.py [--sets GunPoint,ArrowHead] [--seeds 0,1,2] [--quick] [--out FILE]

Each (set, seed) is one :func:`rnnlab.apps.train_task` call with the task's own settings
(:func:`rnnlab.apps.ucr_task`: decided from the training split's shape; only ``seed`` is
given), which writes a run folder (here a temporary one) whose ``run.json`` holds the test
accuracy and the training time. Wall time is that call's, data loading and the test scoring
included; a first, untimed training of 3 epochs on UnitTest loads the compiled kernels
beforehand, so that no set's first seed pays for it. The table gives, per set, the mean
test accuracy ± the sample standard deviation over the seeds, the mean wall time per
training and the set's total; the JSON file (default
``benchmarks/results/ucr.json``) keeps every run, its settings and the environment
(:func:`rnnlab.environment.environment`: versions, CPU, threads).

``--quick`` caps every training at 3 epochs: a check that the runner works end to end, whose
accuracies are not results (its JSON goes to ``ucr_quick.json``).

Published figures (accuracy on the archive's test split; the same train/test splits that
sktime bundles):

* FCN and ResNet: Fawaz et al., "Deep learning for time series classification: a review",
  Data Mining and Knowledge Discovery 33 (2019), results published with the paper's code,
  github.com/hfawaz/dl-4-tsc: ``results/results-ucr-128.csv`` (commit 4c2cdff; the UCR 2018
  archive, 5 runs per set) for the univariate sets, ``results/results-mts.csv`` (commit
  eb2953e; Baydogan's multivariate archive, 10 runs) for JapaneseVowels; shown as the mean
  ± the sample standard deviation over those runs, computed from the files.
* InceptionTime: Fawaz et al., "InceptionTime: finding AlexNet for time series
  classification", Data Mining and Knowledge Discovery 34 (2020), results published with
  the paper's code, github.com/hfawaz/InceptionTime: ``results-InceptionTime-128.csv``
  (commit 365ce4d; the UCR 2018 archive; one figure per set, the ensemble of five networks).

A cell is empty where those sources have no figure: BasicMotions (a UEA 2018 set, in neither)
and InceptionTime on JapaneseVowels; UnitTest is sktime's cut-down Chinatown (its training
split with 22 of its test series), so Chinatown's figures, on the whole test split, are not
comparable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rnnlab import apps
from rnnlab.data.series import ucr, ucr_names
from rnnlab.environment import environment

#: set -> model -> (mean accuracy, sample standard deviation or None, runs); see above
PUBLISHED = {
    "ACSF1": {"FCN": (0.898, 0.0164, 5), "ResNet": (0.916, 0.0261, 5),
              "InceptionTime": (0.920, None, 1)},
    "ArrowHead": {"FCN": (0.8434, 0.0125, 5), "ResNet": (0.8377, 0.0238, 5),
                  "InceptionTime": (0.8457, None, 1)},
    "GunPoint": {"FCN": (1.0, 0.0, 5), "ResNet": (0.9907, 0.0076, 5),
                 "InceptionTime": (1.0, None, 1)},
    "ItalyPowerDemand": {"FCN": (0.9629, 0.0013, 5), "ResNet": (0.9615, 0.0027, 5),
                         "InceptionTime": (0.9650, None, 1)},
    "JapaneseVowels": {"FCN": (0.9930, 0.0019, 10), "ResNet": (0.9916, 0.0030, 10)},
    "OSULeaf": {"FCN": (0.9785, 0.0054, 5), "ResNet": (0.9802, 0.0061, 5),
                "InceptionTime": (0.9421, None, 1)},
    "PLAID": {"FCN": (0.9039, 0.0082, 5), "ResNet": (0.9404, 0.0051, 5),
              "InceptionTime": (0.9441, None, 1)},
}
MODELS = ("FCN", "ResNet", "InceptionTime")
QUICK_EPOCHS = 3


def mean_spread(values: list[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def cell(mean: float, spread: float | None, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + ("" if spread is None else f" ± {spread:.{digits}f}")


def run_one(name: str, seed: int, quick: bool) -> dict:
    """One training through the public API; its settings, test accuracy and times."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        t0 = time.perf_counter()
        apps.train_task(f"ucr:{name}", seed=seed, out=out, progress=False,
                        echo=lambda *a, **k: None, epochs=QUICK_EPOCHS if quick else None)
        wall = time.perf_counter() - t0
        info = apps.open_task_run(out)
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    results = info["results"]
    return {"set": name, "seed": seed, "accuracy": results["accuracy"],
            "n_test": results["n_test"], "epochs": results["epochs"],
            "train_seconds": results["seconds"], "wall_seconds": round(wall, 3),
            "config": config}


def describe(name: str) -> dict:
    """The set's shape, as the archive gives it."""
    d = ucr(name)
    return {"n_train": len(d.X_train), "n_test": len(d.X_test), "steps": d.X_train.shape[1],
            "features": d.input_size, "classes": len(d.meta["classes"]),
            "equal_length": d.lengths_train is None}


def summarise(name: str, shape: dict, runs: list[dict]) -> dict:
    acc = [r["accuracy"] for r in runs]
    mean, spread = mean_spread(acc)
    c = runs[0]["config"]
    return {"set": name, **shape, "seeds": [r["seed"] for r in runs],
            "accuracy_mean": mean, "accuracy_sd": spread,
            "accuracy_min": min(acc), "accuracy_max": max(acc),
            "wall_seconds_mean": statistics.fmean(r["wall_seconds"] for r in runs),
            "wall_seconds_total": sum(r["wall_seconds"] for r in runs),
            "settings": f"{c['cell']} {c['hidden']}, patch {c.get('patch') or 1}, "
                        f"pool {c.get('pool', 1)}, "
                        f"{c['readout']}, {runs[0]['epochs']} epochs, batch {c['batch']}",
            "published": {m: dict(zip(("mean", "sd", "runs"), v, strict=True))
                          for m, v in PUBLISHED.get(name, {}).items()}}


def table(rows: list[dict], env: dict, quick: bool) -> str:
    head = ("| set | train / test | T × D | rnnlab settings | rnnlab accuracy | "
            + " | ".join(MODELS) + " | wall time per training | total |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        pub = PUBLISHED.get(r["set"], {})
        lines.append(
            f"| {r['set']} | {r['n_train']} / {r['n_test']} | "
            f"{r['steps']} × {r['features']}{'' if r['equal_length'] else ' (unequal)'} | "
            f"{r['settings']} | {cell(r['accuracy_mean'], r['accuracy_sd'])} | "
            + " | ".join(cell(*pub[m][:2]) if m in pub else "" for m in MODELS)
            + f" | {r['wall_seconds_mean']:.1f} s | {r['wall_seconds_total']:.1f} s |")
    seeds = rows[0]["seeds"] if rows else []
    note = (f"\nrnnlab: mean ± sample standard deviation over seeds {seeds}; {env['cpu']}, "
            f"{env['cores_available']} available to the process, {env['threads']} "
            f"thread(s); rnnlab {env['rnnlab']}, NumPy {env['numpy']}, numba {env['numba']}.")
    if quick:
        note += (f" QUICK RUN ({QUICK_EPOCHS} epochs per training): a check of the runner; "
                 "its accuracies are not results.")
    return "\n".join(lines) + "\n" + note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", help="comma-separated set names (default: every bundled set)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EPOCHS} epochs per training: checks the runner only")
    parser.add_argument("--out", type=Path, help="JSON file (default "
                        "benchmarks/results/ucr.json, ucr_quick.json with --quick)")
    args = parser.parse_args(argv)
    known = ucr_names()
    sets = known if args.sets is None else [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in known]
    if unknown or not sets:
        parser.error(f"unknown set(s) {unknown}; the bundled sets are {', '.join(known)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    out = args.out or (Path(__file__).parent / "results"
                       / ("ucr_quick.json" if args.quick else "ucr.json"))
    env = environment()
    run_one("UnitTest", 0, quick=True)  # untimed, 3 epochs: loads the compiled kernels
    runs, rows = [], []
    for name in sets:
        shape = describe(name)
        mine = []
        for seed in seeds:
            r = run_one(name, seed, args.quick)
            print(f"{name} seed {seed}: accuracy {r['accuracy']:.4f}, "
                  f"{r['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
            mine.append(r)
        runs += mine
        rows.append(summarise(name, shape, mine))
    text = table(rows, env, args.quick)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"quick": args.quick, "seeds": seeds, "environment": env, "sets": rows,
              "runs": runs, "table": text}
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
