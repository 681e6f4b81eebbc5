"""Success against time lag on the adding problem, Elman against LSTM (not run in CI).

For each lag T and cell, trains on freshly generated sequences in rounds of
``--round`` sequences until 99 % of a validation set is solved or ``--budget`` sequences
have been seen, then reports the fraction of 2,560 test sequences solved with
Hochreiter & Schmidhuber's (1997) criterion, absolute error < 0.04.

    python benchmarks/long_range.py                 # lags 5 10 20 50 100, both cells
    python benchmarks/long_range.py --lags 10 100 --cells lstm --budget 200000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import rnnlab
from rnnlab.data.synthetic import adding_accuracy, adding_problem
from rnnlab.optim import cosine
from rnnlab.train import NonFiniteError, Trainer


def run(cell: str, T: int, args) -> dict:
    net = rnnlab.Network(2, args.hidden, 1, cell=cell, output="linear", readout="last",
                         seed=args.seed)
    schedule = None
    if args.cosine:  # anneal over the whole budget: the 0.04 criterion needs precise answers
        schedule = cosine(args.lr, total_steps=args.budget // args.batch + 1, min_lr=args.lr / 30)
    tr = Trainer(net, "adam", args.lr, clip_norm=1.0, batch_size=args.batch, seed=args.seed,
                 schedule=schedule, progress=False)
    Xv, Yv = adding_problem(1000, T, seed=10_000 + T)
    Xt, Yt = adding_problem(2560, T, seed=20_000 + T)
    seen, t0, val_acc, diverged = 0, time.perf_counter(), 0.0, False
    r = 0
    while seen < args.budget:
        X, Y = adding_problem(args.round, T, seed=args.seed * 1_000_003 + T * 1009 + r)
        r += 1
        try:
            tr.fit(X, Y, epochs=1)
        except NonFiniteError:
            diverged = True
            break
        seen += len(X)
        val_acc = adding_accuracy(net.predict(Xv), Yv)
        print(f"  {cell:5s} T={T:4d} seen {seen:7d} validation solved {val_acc:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if val_acc >= 0.99:
            break
    test_acc = adding_accuracy(net.predict(Xt), Yt)
    wrong = int(round((1 - test_acc) * len(Xt)))
    return {"cell": cell, "lag": T, "test_solved": test_acc, "test_wrong": wrong,
            "test_n": len(Xt), "sequences": seen, "seconds": time.perf_counter() - t0,
            "diverged": diverged}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lags", type=int, nargs="+", default=[5, 10, 20, 50, 100])
    p.add_argument("--cells", nargs="+", default=["elman", "lstm"])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--budget", type=int, default=100_000, help="training sequences at most")
    p.add_argument("--round", type=int, default=5_000, help="sequences between evaluations")
    p.add_argument("--cosine", action="store_true", help="cosine learning-rate decay "
                   "over the budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/long_range")
    args = p.parse_args()
    rows = []
    for T in args.lags:
        for cell in args.cells:
            rows.append(run(cell, T, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    lines = ["| lag T | cell | test solved (|err| < 0.04) | wrong / 2560 | training sequences "
             "| wall time |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['lag']} | {r['cell']} | {r['test_solved']:.3f} | {r['test_wrong']} "
                     f"| {r['sequences']:,} | {r['seconds']:.0f} s |")
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
