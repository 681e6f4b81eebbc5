"""rnnlab's Elman, LSTM and GRU against PyTorch's, side by side (the same as ``rnnlab bench``).

A thin command line over :func:`rnnlab.bench.run_bench`, which does the measuring and
writes ``bench.json`` and ``bench.md``. Examples::

    python benchmarks/bench_cells.py                      # all cells, all rows, all cores
    python benchmarks/bench_cells.py --threads 1 --cells lstm --out runs/bench-1t
    python benchmarks/bench_cells.py --no-torch           # rnnlab's own figures only
"""

from __future__ import annotations

import argparse

from rnnlab.bench import add_arguments, run_from_args


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    run_from_args(ap.parse_args(argv))


if __name__ == "__main__":
    main()
