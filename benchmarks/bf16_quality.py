"""Does bf16 training learn as well? The default job in fp32 and in bf16, at equal updates.

    python benchmarks/bf16_quality.py [--steps 2000] [--seeds 0 1 2] [--out runs/bf16-quality]

Trains ``rnnlab train`` (the default model and corpus) for ``--steps`` updates per seed in
each precision and prints the final validation loss (the whole validation text, nats per
character, each model in the precision it was trained in) with the bf16 - fp32 difference
per seed, their mean and spread. On a CPU without BF16 instructions the bf16 runs use the
emulated bf16 tile (``RNNLAB_BF16=emulate``), which rounds exactly as the instructions do
(it sums in another order), so the figures hold for both; only their speed differs. Each
run is a subprocess with its own run folder, so finished runs are kept and reused on a
second call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rnnlab import kernels
from rnnlab.bench import cpu_description


def run(precision: str, seed: int, steps: int, out: Path, threads: int | None) -> dict:
    folder = out / f"{precision}-seed{seed}"
    done = folder / "run.json"
    if done.exists() and json.loads(done.read_text()).get("steps") == steps:
        return json.loads(done.read_text())
    env = dict(os.environ)
    if precision == "bf16" and not kernels.bf16_native():
        env["RNNLAB_BF16"] = "emulate"
    if threads:
        env["NUMBA_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    subprocess.run([sys.executable, "-m", "rnnlab", "train", "--steps", str(steps),
                    "--seed", str(seed), "--precision", precision, "--out", str(folder),
                    "--no-progress"], check=True, env=env)
    return json.loads(done.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=None, help="threads per run")
    ap.add_argument("--out", default="runs/bf16-quality")
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        r = {p: run(p, seed, args.steps, out, args.threads) for p in ("fp32", "bf16")}
        rows.append((seed, r["fp32"], r["bf16"]))
    print(f"{cpu_description()}; bf16 instructions: {kernels.bf16_native() or 'none (emulated)'}")
    print(f"\n{args.steps} updates of the default job, final validation nats/char\n")
    print("| seed | fp32 | bf16 | bf16 - fp32 | bf16 computed in | seconds fp32 / bf16 |")
    print("|---|---|---|---|---|---|")
    diffs = []
    for seed, a, b in rows:
        diffs.append(b["val_nats"] - a["val_nats"])
        print(f"| {seed} | {a['val_nats']:.4f} | {b['val_nats']:.4f} | {diffs[-1]:+.4f} "
              f"| {b['precision']['computes_in']} | {a['seconds']:.0f} / {b['seconds']:.0f} |")
    spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    print(f"\nmean difference {statistics.mean(diffs):+.4f} nats/char (sd {spread:.4f}, "
          f"{len(diffs)} seeds); largest |difference| {max(map(abs, diffs)):.4f}")


if __name__ == "__main__":
    main()
