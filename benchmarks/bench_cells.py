"""rnnlab's Elman, LSTM and GRU against PyTorch's, side by side (issue 4's grid).

A thin command line over :func:`rnnlab.bench.run_bench`, which does the measuring and
writes ``bench.json`` and ``bench.md``. Examples::

    python benchmarks/bench_cells.py                      # all cells, all rows, all cores
    python benchmarks/bench_cells.py --threads 1 --cells lstm --out runs/bench-1t
    python benchmarks/bench_cells.py --no-torch           # rnnlab's own figures only
"""

from __future__ import annotations

import argparse

from rnnlab.bench import GRID, run_bench


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", nargs="+", default=["elman", "lstm", "gru"])
    ap.add_argument("--shape", nargs=4, type=int, action="append", metavar=("B", "T", "D", "H"),
                    help="a (B, T, D, H) row; repeat for several (default: issue 4's grid)")
    ap.add_argument("--threads", type=int, default=None, help="default: one per core")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-compile-time", action="store_true")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="rnnlab.kernels.keep_freed_memory() first (process-wide, both libraries)")
    ap.add_argument("--blas", default="numpy", choices=["numpy", "mkl"],
                    help="BLAS for rnnlab's products (mkl: pip install mkl)")
    ap.add_argument("--out", default="runs/bench")
    a = ap.parse_args(argv)
    result = run_bench(
        cells=tuple(a.cells), shapes=tuple(map(tuple, a.shape)) if a.shape else GRID,
        threads=a.threads, repeats=a.repeats, torch=not a.no_torch, memory=not a.no_memory,
        compile_time=not a.no_compile_time, keep_freed_memory=a.keep_freed_memory, blas=a.blas,
        out_dir=a.out,
    )
    print(f"wrote {a.out}/bench.json and {a.out}/bench.md ({len(result['rows'])} rows)")


if __name__ == "__main__":
    main()
