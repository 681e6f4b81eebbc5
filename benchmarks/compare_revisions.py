"""rnnlab against an earlier revision of itself, interleaved in one process.

    python benchmarks/compare_revisions.py --base c090630        # a commit, tag or branch
    python benchmarks/compare_revisions.py --base HEAD~3 --shape 1 100 32 64

`rnnlab bench` compares with PyTorch, and two of its runs differ by 10-30 % on a shared
machine; a change to rnnlab's own overheads (a few hundred nanoseconds on a streaming step)
is below that. This script puts both revisions in one process: the base revision's
``src/rnnlab`` is exported with ``git archive`` into a temporary folder as the package
``rnnlab_base``, and every measurement alternates between the two in short blocks, so a slow
phase of the machine falls on both. It reports medians and the median of the paired ratios
(this revision's time over the base's; below 1: faster now).

Measured per cell and (B, T, D, H): a training step (``forward`` + ``backward``), inference
(``infer``), and at batch 1 a streaming step through ``layer.step`` and ``rnnlab.Stream``.
The base revision's kernels compile on first use (numba caches them in the temporary copy,
so each run compiles once: 10-40 s per cell).
"""

from __future__ import annotations

import argparse
import io
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ((1, 100, 32, 64), (32, 100, 64, 128), (128, 28, 28, 128))


def export_base(rev: str, folder: Path):
    """Import the package of revision ``rev`` as ``rnnlab_base`` (from a copy in ``folder``)."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/rnnlab"],
                         capture_output=True, check=True).stdout
    tarfile.open(fileobj=io.BytesIO(tar)).extractall(folder, filter="data")
    pkg = folder / "src" / "rnnlab"
    absolute = re.compile(r"\b(from|import) rnnlab\b")
    for f in pkg.rglob("*.py"):  # the few absolute imports must find the copy, not this tree
        f.write_text(absolute.sub(r"\1 rnnlab_base", f.read_text(encoding="utf-8")),
                     encoding="utf-8")
    pkg.rename(folder / "rnnlab_base")
    sys.path.insert(0, str(folder))
    import rnnlab_base

    return rnnlab_base


def _layer(lib, cell: str, D: int, H: int):
    return {"elman": lib.Elman, "lstm": lib.LSTM, "gru": lib.GRU}[cell](D, H, seed=0)


def _calls(lib, cell, shape):
    """name -> a function making one call of that kind, for one library."""
    B, T, D, H = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    dy = rng.normal(size=(B, T, H)).astype(np.float32)
    layer = _layer(lib, cell, D, H)

    def train():
        _, _, cache = layer.forward(x)
        layer.backward(cache, dy)

    calls = {"train": train, "infer": lambda: layer.infer(x)}
    if B == 1:
        x_t = x[:, 0].copy()
        _, state = layer.step(x_t)
        stream = (lib.Stream if hasattr(lib, "Stream") else lib.recurrent.Stream)(layer, 1)
        calls["layer.step"] = lambda: layer.step(x_t, state)
        calls["Stream.step"] = lambda: stream.step(x_t)
    return calls


def _block(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def compare(base, cells, shapes, rounds: int, seconds: float) -> list[str]:
    import rnnlab

    rows = ["| cell | B, T, D, H | call | base | now | now / base (median of pairs) |",
            "|---|---|---|---|---|---|"]
    for cell in cells:
        for shape in shapes:
            old, new = _calls(base, cell, shape), _calls(rnnlab, cell, shape)
            for name in new:
                for fn in (old[name], new[name]):  # warm-up (and first compile)
                    fn(), fn()
                n = max(1, int(seconds / max(_block(new[name], 3), 1e-7)))
                times = {"base": [], "now": []}
                for r in range(rounds):  # alternate, and alternate who goes first
                    order = (("base", old[name]), ("now", new[name]))
                    for who, fn in (order if r % 2 else order[::-1]):
                        times[who].append(_block(fn, n))
                b, a = np.array(times["base"]), np.array(times["now"])
                unit, scale = ("µs", 1e6) if np.median(b) < 1e-3 else ("ms", 1e3)
                rows.append(f"| {cell} | {', '.join(map(str, shape))} | {name} | "
                            f"{np.median(b) * scale:.3g} {unit} | {np.median(a) * scale:.3g} "
                            f"{unit} | {np.median(a / b):.2f} |")
                print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="a git revision of this repository")
    ap.add_argument("--cells", nargs="+", default=["elman", "lstm", "gru"])
    ap.add_argument("--shape", nargs=4, type=int, action="append", metavar=("B", "T", "D", "H"))
    ap.add_argument("--rounds", type=int, default=21, help="blocks per revision")
    ap.add_argument("--seconds", type=float, default=0.02, help="length of one block")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = export_base(args.base, Path(tmp))
        print(f"{platform.processor() or platform.machine()}; base {args.base} against the "
              f"working tree; {args.rounds} alternating blocks of ~{args.seconds * 1e3:.0f} ms")
        compare(base, args.cells, [tuple(s) for s in args.shape] if args.shape else SHAPES,
                args.rounds, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
