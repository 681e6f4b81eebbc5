"""rnnlab against PyTorch on the CPU, side by side: the library behind ``rnnlab bench``.

Shape legend: B batch, T time, D input features, H hidden units, G gates per cell.

For every cell and every (B, T, D, H) of the grid, in one process and with the same
number of threads for both libraries, :func:`run_bench` times

* a training step: forward and the full backward (all weight gradients and ``dx``),
  from a loss whose gradient ``dy`` is given, as ``layer.backward`` takes it;
* inference: a forward pass keeping nothing for backward (``layer.infer``; PyTorch
  under ``torch.inference_mode``);
* a streaming step at batch 1: ``layer.step`` (the layer contract, which checks and
  converts its arguments on every call) and :class:`rnnlab.Stream` (which keeps
  the state and does that once); PyTorch's module called with T = 1 and its state,

reporting the median over repeats after warm-up, each library timed in blocks of its
own (two passes, in opposite orders; see :func:`rnnlab.bench.timing.median_times` for why
calls are not interleaved), and how busy other processes kept the machine meanwhile.
Throughput counts the matrix-product FLOPs only (forward ``2 B T (D + H) G H``, a training
step three times that) against the machine's measured sgemm peak (the better of NumPy's
and PyTorch's).

Peak memory of a training step is measured the same way for both libraries, in a fresh
subprocess per row (:mod:`rnnlab.bench.memory`); the first calls' compile times, cold and
cached, in subprocesses as well (:mod:`rnnlab.bench.compile_time`).

Results go to ``bench.json`` and ``bench.md`` in ``out_dir`` (:mod:`rnnlab.bench.report`).

Modules
-------
rnnlab.bench
    :class:`BenchConfig`, :func:`run_bench` and the command-line options.
rnnlab.bench.timing
    One row's callables and the block-wise timing.
rnnlab.bench.memory
    Peak memory of a training step, one subprocess per row and library.
rnnlab.bench.compile_time
    Cold and cached numba compile times, in subprocesses.
rnnlab.bench.report
    The speed targets and the markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import checks, kernels
from ..cells import RECURRENT
from .compile_time import compile_times
from .memory import peak_memory
from .report import markdown, row_line, targets
from .timing import GATES, bf16_gemm_peak, import_torch, sgemm_peak, time_row

__all__ = ["BUSY_CORES", "GATES", "GRID", "BenchConfig", "add_arguments", "markdown",
           "run_bench", "run_from_args"]

#: (B, T, D, H) rows of the standard benchmark grid.
GRID = ((32, 100, 64, 128), (64, 50, 128, 256), (1, 100, 32, 64), (128, 28, 28, 128),
        (16, 200, 32, 64))


@dataclass
class BenchConfig:
    """What to measure; :func:`run_bench` rejects unknown keys."""

    cells: tuple = RECURRENT  # any of the cells' names: "elman", "lstm", "gru"
    shapes: tuple = GRID  # (B, T, D, H) rows
    threads: int | None = None  # threads for both libraries; None: one per available core
    repeats: int = 7  # timed repeats per measurement; the median is reported
    warmup: int = 2  # untimed calls before timing
    stream_steps: int = 200  # streaming steps per timed repeat (reported per step)
    torch: bool = True  # compare with PyTorch when it can be imported
    memory: bool = True  # peak memory of a training step, one subprocess per row and library
    compile_time: bool = True  # cold and cached numba compilation, in subprocesses
    # glibc keeps freed memory (rnnlab.kernels.keep_freed_memory, as rnnlab train does;
    # process-wide, both libraries); False: its defaults (a process that has not called it)
    keep_freed_memory: bool = True
    blas: str = "tile"  # per-step products: "tile", "numpy" or "mkl" (rnnlab.kernels.use_blas)
    # bf16 columns (rnnlab precision="bf16", PyTorch under bf16 autocast); None: where the
    # CPU has BF16 instructions (elsewhere both would time an emulation)
    bf16: bool | None = None
    out_dir: str | None = "runs/bench"  # where bench.json and bench.md go; None: nowhere
    seed: int = 0
    extra: dict = field(default_factory=dict)  # free-form notes copied into the results


#: Results are marked as taken on a busy machine when other processes used more than this
#: many cores on average while the benchmark ran (they slow both libraries, unevenly).
BUSY_CORES = 0.2


def run_bench(config: BenchConfig | None = None, **overrides) -> dict:
    """Run the benchmark and write ``bench.json`` and ``bench.md``.

    Parameters
    ----------
    config : BenchConfig, optional
    **overrides
        Fields of :class:`BenchConfig` to change, e.g. ``cells=("lstm",)``.

    Returns
    -------
    dict with ``config``, ``machine``, ``compile``, ``rows`` (one per cell and shape) and
    ``targets`` (the speed targets, met or not, row by row).
    """
    cfg = _validated(dataclasses.replace(config or BenchConfig(), **_checked(overrides)))
    if cfg.keep_freed_memory:
        kernels.keep_freed_memory()  # process-wide: PyTorch's allocations benefit alike
    elif kernels.freed_memory_kept():
        raise ValueError("keep_freed_memory=False needs a process that has not called "
                         "rnnlab.kernels.keep_freed_memory(): run the benchmark in a fresh one")
    return _run(cfg)


def _run(cfg: BenchConfig) -> dict:
    n = cfg.threads or len(os.sched_getaffinity(0))
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    torch = import_torch() if cfg.torch else None
    if torch is not None:
        torch.set_num_threads(n)
    if cfg.bf16 is None:
        cfg = dataclasses.replace(cfg, bf16=bool(kernels.bf16_native()))
    if cfg.bf16 and not kernels.bf16_available():
        raise ValueError("bf16 columns need bf16 products, which cannot run here: this CPU "
                         "has no AVX512_BF16 instructions (or numba is absent)")
    result = {
        "config": {**dataclasses.asdict(cfg), "threads": n},
        "machine": _machine(torch),
        "fast_path": kernels.AVAILABLE,
    }
    with kernels.threads(n), kernels.use_blas(cfg.blas):
        result["machine"]["sgemm_peak_gflops"] = sgemm_peak(torch)
        if cfg.bf16 and torch is not None:
            result["machine"]["bf16_gemm_peak_gflops"] = bf16_gemm_peak(torch)
        result["compile"] = compile_times(cfg.cells) if cfg.compile_time and kernels.AVAILABLE \
            else None
        rows = []
        for cell in cfg.cells:
            for shape in cfg.shapes:
                row = time_row(cell, tuple(shape), cfg, torch)
                if cfg.memory:
                    row["memory_mb"] = {lib: peak_memory(lib, cell, shape, n)
                                        for lib in ("rnnlab", "torch") if lib == "rnnlab" or torch}
                rows.append(row)
                print(row_line(row), file=sys.stderr, flush=True)
    peak = result["machine"]["sgemm_peak_gflops"]["best"]
    peak16 = result["machine"].get("bf16_gemm_peak_gflops", {}).get("best")
    for row in rows:
        for kind in ("train", "infer"):
            row[kind]["fraction_of_peak"] = row[kind]["rnnlab_gflops"] / peak
            if peak16 and "torch_bf16_gflops" in row[kind]:  # of the bf16 roof
                for lib in ("rnnlab_bf16", "torch_bf16"):
                    row[kind][f"{lib}_fraction_of_bf16_peak"] = \
                        row[kind][f"{lib}_gflops"] / peak16
    result["rows"] = rows
    result["targets"] = targets(rows)
    result["machine"]["load_average_end"] = os.getloadavg()
    result["machine"]["threading_layer"] = _threading_layer()
    result["machine"]["freed_memory_kept"] = kernels.freed_memory_kept()
    cpu_end, wall = _cpu_seconds(), time.perf_counter() - wall0
    others = None
    if cpu0 is not None and cpu_end is not None and wall > 0:
        # cores kept busy by other processes while the benchmark ran, on average
        others = max(0.0, ((cpu_end[0] - cpu0[0]) - (cpu_end[1] - cpu0[1])) / wall)
    result["machine"]["other_processes_cores"] = others
    result["busy"] = others is not None and others > BUSY_CORES
    if result["busy"]:
        print(f"rnnlab bench: warning: other processes kept {others:.2f} cores busy on average "
              "while this ran; they slow both libraries unevenly: rerun on a quiet machine "
              "before quoting the ratios", file=sys.stderr)
    if cfg.out_dir is not None:
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(result, indent=1))
        (out / "bench.md").write_text(markdown(result))
    return result


def _checked(overrides: dict) -> dict:
    names = {f.name for f in dataclasses.fields(BenchConfig)}
    for k in overrides:
        if k not in names:
            raise ValueError(f"unknown benchmark setting {k!r}; expected one of {sorted(names)}")
    return overrides


def _validated(cfg: BenchConfig) -> BenchConfig:
    """``cfg`` if every setting is usable, checked before anything is timed or started."""
    for c in cfg.cells:
        if c not in GATES:
            raise ValueError(f"unknown cell {c!r}; expected some of {sorted(GATES)}")
    for shape in cfg.shapes:
        if len(shape) != 4:
            raise ValueError(f"a benchmark shape is (B, T, D, H), got {shape!r}")
        for name, v in zip("BTDH", shape, strict=True):
            checks.positive_int(v, f"shape {name}")
    checks.positive_int(cfg.repeats, "repeats")
    checks.integer(cfg.warmup, "warmup", minimum=0)
    checks.positive_int(cfg.stream_steps, "stream_steps")
    checks.optional(checks.positive_int, cfg.threads, "threads")
    return cfg


def _machine(torch) -> dict:
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "bf16_instructions": kernels.bf16_native(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": None if torch is None else torch.__version__,
        # how long OpenBLAS's idle threads spin; None: OpenBLAS's default (about 0.1 s)
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    }
    if kernels.AVAILABLE:
        import numba

        from ..kernels import blas

        info["numba"] = numba.__version__
        info["blas"] = Path(blas.blas().path or "").name or None  # the library, not where
    return info


def _cpu_model() -> str | None:
    """The processor's name as Linux reports it (``model name``), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


#: instruction sets that decide a kernel's speed, as /proc/cpuinfo names them
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_features() -> list[str]:
    """Which of :data:`CPU_FEATURES` the processor reports (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [name for name in CPU_FEATURES if name in flags]
    except OSError:
        pass
    return []


def cpu_description() -> str:
    """The processor's name, its core count and the features of :func:`cpu_features`, in
    one line for a benchmark's header."""
    features = " ".join(cpu_features()) or "features unknown"
    return f"{_cpu_model() or platform.machine()}, {os.cpu_count()} cores ({features})"


def _threading_layer() -> str | None:
    """numba's threading layer once a parallel loop has run, else None."""
    try:
        import numba

        return numba.threading_layer()
    except (ImportError, ValueError):
        return None


def _cpu_seconds() -> tuple | None:
    """(CPU seconds used by every process, by this one and its children), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), own


def add_arguments(ap) -> None:
    """The benchmark's command-line options (``rnnlab bench`` and benchmarks/bench_cells.py)."""
    ap.add_argument("--cells", nargs="+", default=list(RECURRENT))
    ap.add_argument("--shape", nargs=4, type=int, action="append", metavar=("B", "T", "D", "H"),
                    help="a (B, T, D, H) row; repeat for several (default: the standard grid)")
    ap.add_argument("--threads", type=int, default=None, help="default: one per core")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true", help="rnnlab's own figures only")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-compile-time", action="store_true")
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's defaults instead of keeping freed memory for reuse, "
                         "as rnnlab train does (process-wide, both libraries)")
    ap.add_argument("--blas", default="tile", choices=["tile", "numpy", "mkl"],
                    help="per-step products: rnnlab's tile (default), NumPy's BLAS, or MKL "
                         "(pip install mkl)")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 columns: rnnlab with precision bf16 and PyTorch under bf16 "
                         "autocast (default: where the CPU has BF16 instructions)")
    ap.add_argument("--out", default="runs/bench")


def run_from_args(a) -> dict:
    """Run :func:`run_bench` with options parsed by :func:`add_arguments`."""
    result = run_bench(
        cells=tuple(a.cells), shapes=tuple(map(tuple, a.shape)) if a.shape else GRID,
        threads=a.threads, repeats=a.repeats, torch=not a.no_torch, memory=not a.no_memory,
        compile_time=not a.no_compile_time, keep_freed_memory=not a.system_malloc, blas=a.blas,
        bf16=a.bf16, out_dir=a.out,
    )
    print(f"wrote {a.out}/bench.json and {a.out}/bench.md ({len(result['rows'])} rows)")
    return result
