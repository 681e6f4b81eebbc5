"""Choose the recipe of ``rnnlab train --task ucr:NAME`` by validation on training splits.

Every setting of a stage is trained on each set with ``val_split=0.25`` (a stratified cut of
the training split, a different one per seed) and scored on that cut; the test splits are
never read. One JSON line per run goes to ``OUT/results.jsonl`` (a run already there is not
run again), and a table of the mean validation accuracy and loss per setting and set is
printed at the end. docs/ucr.md gives the numbers and the choices made from them.

    python benchmarks/ucr_recipe.py OUT --stage 1 --seeds 4
    python benchmarks/ucr_recipe.py OUT --stage 2 --seeds 4
    python benchmarks/ucr_recipe.py OUT --stage 3 --seeds 4
    python benchmarks/ucr_recipe.py OUT --stage 4 --seeds 4

Stage 1: patch lengths (1, 4, 8, 16 steps) by readout (last state, mean). Stage 2: the
rule's patch (``max(1, T // 32)``) with the last state, the maximum, augmentations, a
bidirectional GRU, 128 units, an LSTM. Stage 3: around the rule's setting, other learning
rates, 32 units, two layers, light jitter, an ensemble of three. Stage 4: the attention
readout, one and two directions.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

SETS = ["ArrowHead", "GunPoint", "ItalyPowerDemand", "BasicMotions"]
ALL4 = "jitter,scale,slice,warp"
STAGES = {
    1: {f"p{p}-{r}": {"patch": p, "readout": r} for p in (8, 4, 16, 1) for r in ("last", "mean")},
    2: {"rule-last": {"readout": "last"},
        "rule-max": {"readout": "max"},
        "rule-last-js": {"readout": "last", "augment": "jitter,scale"},
        "rule-last-a4": {"readout": "last", "augment": ALL4},
        "rule-last-bi": {"readout": "last", "bidirectional": True},
        "rule-mean-bi": {"readout": "mean", "bidirectional": True},
        "rule-last-h128": {"readout": "last", "hidden": 128},
        "rule-last-lstm": {"readout": "last", "cell": "lstm"}},
    3: {"rule-last-lr2e-3": {"lr": 2e-3},
        "rule-last-lr1e-2": {"lr": 1e-2},
        "rule-last-h32": {"hidden": 32},
        "rule-last-2layers": {"layers": 2},
        "rule-last-jitter0.01": {"augment": "jitter=0.01"},
        "rule-last-ens3": {"ensemble": 3}},
    4: {"rule-attention": {"readout": "attention"},
        "rule-attention-bi": {"readout": "attention", "bidirectional": True}},
}


def main() -> None:
    from rnnlab import apps

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--stage", type=int, choices=sorted(STAGES), default=1)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--sets", nargs="+", default=SETS)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "results.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["name"], r["set"], r["seed"]) for r in rows}
    for name, options in STAGES[args.stage].items():
        for s in args.sets:
            for seed in range(args.seeds):
                if (name, s, seed) in done:
                    continue
                t0 = time.perf_counter()
                run = apps.train_task(f"ucr:{s}", seed=seed, val_split=0.25, progress=False,
                                      out=args.out / f"{name}-{s}-{seed}",
                                      echo=lambda *a: None, **options)
                r = json.loads((run / "run.json").read_text())["results"]
                row = {"name": name, "set": s, "seed": seed, "val_accuracy": r["val_accuracy"],
                       "val_loss": r["val_loss"][0], "best_epoch": r["best_epoch"][0],
                       "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    table = collections.defaultdict(list)
    for r in rows:
        if r["name"] in STAGES[args.stage]:
            table[r["name"], r["set"]].append((r["val_accuracy"], r["val_loss"]))
    print("setting".ljust(16) + "".join(s[:16].rjust(18) for s in args.sets) + "      mean")
    for name in STAGES[args.stage]:
        cells = [table.get((name, s)) for s in args.sets]
        means = [sum(a for a, _ in c) / len(c) for c in cells if c]
        print(name.ljust(16) + "".join(
            (f"{sum(a for a, _ in c) / len(c):.3f} / {sum(v for _, v in c) / len(c):.2f}"
             if c else "-").rjust(18) for c in cells)
            + (f"     {sum(means) / len(means):.3f}" if means else ""))


if __name__ == "__main__":
    main()
