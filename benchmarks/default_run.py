"""The default ``rnnlab train`` run: validation loss reached against wall time (not run in CI).

Trains the default model on the default corpus (exactly what ``rnnlab train`` does), then
prints validation nats and bits per character against seconds and the time at which the
validation estimate first reached 1.60 nats per character.

    python benchmarks/default_run.py                       # trains into runs/default-bench
    python benchmarks/default_run.py --metrics RUN/metrics.jsonl   # only report a run
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

TARGET = 1.60  # nats per character


def report(metrics: Path, run_json: Path | None = None) -> None:
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if "val_nats" in r]
    print("| seconds | step | validation nats/char | bits/char |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['seconds']:.0f} | {r['step']} | {r['val_nats']:.3f} | "
              f"{r['val_nats'] / math.log(2):.3f} |")
    first = next((r for r in rows if r["val_nats"] <= TARGET), None)
    print(f"\nfirst estimate at or below {TARGET} nats/char: "
          + (f"step {first['step']}, {first['seconds']:.0f} s" if first else "never"))
    if run_json is not None and run_json.exists():
        info = json.loads(run_json.read_text())
        print(f"final (whole validation text): {info['val_nats']:.3f} nats/char, "
              f"{info['val_bits']:.3f} bits/char after {info['steps']} steps, "
              f"{info['seconds']:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metrics", type=Path, help="report an existing run's metrics.jsonl")
    p.add_argument("--out", default="runs/default-bench")
    a = p.parse_args()
    if a.metrics is None:
        from rnnlab import kernels, lm

        kernels.keep_freed_memory()  # as rnnlab train does
        run = lm.train(lm.LMConfig(), out=a.out)
        a.metrics = run / "metrics.jsonl"
    report(a.metrics, a.metrics.parent / "run.json")


if __name__ == "__main__":
    main()
