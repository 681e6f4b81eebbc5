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
own (two passes, in opposite orders; see :func:`_median_times` for why calls are not
interleaved), and how busy other processes kept the machine meanwhile. Throughput counts the
matrix-product FLOPs only (forward ``2 B T (D + H) G H``, a training step three times
that) against the machine's measured sgemm peak (the better of NumPy's and PyTorch's).

Peak memory of a training step is measured the same way for both libraries, in a fresh
subprocess per row: the growth of the resident set (Linux ``VmHWM`` after resetting it,
minus ``VmRSS`` before) across one step, after a warm-up on a tiny problem and one
unmeasured step at full size (thread pools started), with the freed heap returned to
the system and the model and inputs already built. For rnnlab the NumPy allocations
seen by ``tracemalloc`` are reported too, as a cross-check that counts arrays only.

Results go to ``bench.json`` and ``bench.md`` in ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import kernels
from .cells import LAYERS
from .stream import Stream

#: (B, T, D, H) rows of the standard benchmark grid.
GRID = ((32, 100, 64, 128), (64, 50, 128, 256), (1, 100, 32, 64), (128, 28, 28, 128),
        (16, 200, 32, 64))
#: gates per cell, from each cell's own facts
GATES = {name: len(layer.Cell.gates) for name, layer in LAYERS.items()}


@dataclass
class BenchConfig:
    """What to measure; :func:`run_bench` rejects unknown keys."""

    cells: tuple = tuple(LAYERS)  # any of the cells' names: "elman", "lstm", "gru"
    shapes: tuple = GRID  # (B, T, D, H) rows
    threads: int | None = None  # threads for both libraries; None: one per available core
    repeats: int = 7  # timed repeats per measurement; the median is reported
    warmup: int = 2  # untimed calls before timing
    stream_steps: int = 200  # streaming steps per timed repeat (reported per step)
    torch: bool = True  # compare with PyTorch when it can be imported
    memory: bool = True  # peak memory of a training step, one subprocess per row and library
    compile_time: bool = True  # cold and cached numba compilation, in subprocesses
    keep_freed_memory: bool = False  # call rnnlab.kernels.keep_freed_memory() first (both libs)
    blas: str = "tile"  # per-step products: "tile", "numpy" or "mkl" (rnnlab.kernels.use_blas)
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
    cfg = dataclasses.replace(config or BenchConfig(), **_checked(overrides))
    for c in cfg.cells:
        if c not in GATES:
            raise ValueError(f"unknown cell {c!r}; expected some of {sorted(GATES)}")
    n = cfg.threads or len(os.sched_getaffinity(0))
    if cfg.keep_freed_memory:
        kernels.keep_freed_memory()  # process-wide: PyTorch's allocations benefit alike
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    torch = _import_torch() if cfg.torch else None
    if torch is not None:
        torch.set_num_threads(n)
    result = {
        "config": {**dataclasses.asdict(cfg), "threads": n},
        "machine": _machine(torch),
        "fast_path": kernels.AVAILABLE,
    }
    with kernels.threads(n), kernels.use_blas(cfg.blas):
        result["machine"]["sgemm_peak_gflops"] = _sgemm_peak(torch)
        result["compile"] = _compile_times(cfg.cells) if cfg.compile_time and kernels.AVAILABLE \
            else None
        rows = []
        for cell in cfg.cells:
            for shape in cfg.shapes:
                row = _time_row(cell, tuple(shape), cfg, torch)
                if cfg.memory:
                    row["memory_mb"] = {lib: _memory(lib, cell, shape, n)
                                        for lib in ("rnnlab", "torch") if lib == "rnnlab" or torch}
                rows.append(row)
                print(_row_line(row), file=sys.stderr, flush=True)
    peak = result["machine"]["sgemm_peak_gflops"]["best"]
    for row in rows:
        for kind in ("train", "infer"):
            row[kind]["fraction_of_peak"] = row[kind]["rnnlab_gflops"] / peak
    result["rows"] = rows
    result["targets"] = _targets(rows)
    result["machine"]["load_average_end"] = os.getloadavg()
    result["machine"]["threading_layer"] = _threading_layer()
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


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _machine(torch) -> dict:
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": None if torch is None else torch.__version__,
        # how long OpenBLAS's idle threads spin; None: OpenBLAS's default (about 0.1 s)
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    }
    if kernels.AVAILABLE:
        import numba

        from .kernels import blas

        info["numba"] = numba.__version__
        info["blas"] = blas.blas().path
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


def _threading_layer() -> str | None:
    """numba's threading layer once a parallel loop has run, else None."""
    try:
        import numba

        return numba.threading_layer()
    except (ImportError, ValueError):
        return None


# timing -------------------------------------------------------------------------------


def _median_times(fns: dict, repeats: int, warmup: int, block: int = 3) -> tuple[dict, dict]:
    """Median and minimum seconds of each callable, timed in blocks, one library at a time.

    Both libraries keep thread pools whose idle threads spin for a while before they
    sleep (OpenBLAS's, the OpenMP runtimes of numba and PyTorch). Alternating single
    calls would time each library against the other's spinning threads, which on 2 cores
    cost whichever ran second up to 2x. So each library runs ``warmup`` untimed calls and
    then a block of at most ``block`` timed ones; passes over the libraries, in
    alternating order, share out ``repeats``. Short blocks spread each library's calls
    over the whole run: on a shared virtual machine the speed drifts by 30 % and more for
    seconds at a time, and one long block per library caught such a phase (a 1.30 median
    ratio whose ratio of minima was 0.82; 0.80-0.83 interleaved). The median is the figure
    reported; the minimum is kept too, to show bursts of load.
    """
    times = {k: [] for k in fns}
    keys = list(fns)
    left, flip = repeats, False
    while left > 0:
        n = min(block, left)
        for k in (keys[::-1] if flip else keys):
            for _ in range(max(warmup, 1)):
                fns[k]()
            for _ in range(n):
                t = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t)
        left -= n
        flip = not flip
    return ({k: statistics.median(v) for k, v in times.items()},
            {k: min(v) for k, v in times.items()})


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


def _sgemm_peak(torch) -> dict:
    """Best float32 GEMM rate (GFLOP/s) of NumPy's BLAS and of PyTorch, n = 2048."""
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    c = np.empty_like(a)
    fns = {"numpy": lambda: np.matmul(a, a, out=c)}
    if torch is not None:
        ta, tc = torch.from_numpy(a), torch.empty(n, n)
        fns["torch"] = lambda: torch.matmul(ta, ta, out=tc)
    best = {k: 2 * n**3 / 1e9 / min(_repeat(f, 5)) for k, f in fns.items()}
    best["best"] = max(best.values())
    return best


def _repeat(f, k):
    f()
    out = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def _make(cell, shape, seed, torch):
    """rnnlab layer, its PyTorch twin (same weights) and the inputs of one row."""
    B, T, D, H = shape
    rng = np.random.default_rng(seed)
    layer = LAYERS[cell](D, H, seed=seed)
    x = rng.standard_normal((B, T, D), dtype=np.float32)
    dy = rng.standard_normal((B, T, H), dtype=np.float32)
    module = None
    if torch is not None:
        from .interop import to_torch

        module = to_torch(layer)
    return layer, module, x, dy


def _flops(cell, shape) -> float:
    B, T, D, H = shape
    return 2.0 * B * T * (D + H) * GATES[cell] * H


def _time_row(cell, shape, cfg, torch) -> dict:
    layer, module, x, dy = _make(cell, shape, cfg.seed, torch)
    B, T, D, H = shape

    def r_train():
        _, _, cache = layer.forward(x)
        layer.backward(cache, dy)

    def r_infer():
        layer.infer(x)  # nothing kept for backward, as under torch.inference_mode

    x1 = x[:1, 0]  # (1, D)

    def r_stream():
        state = None
        for _ in range(cfg.stream_steps):
            _, state = layer.step(x1, state)

    streamer = Stream(layer, 1)

    def r_stream_lean():
        for _ in range(cfg.stream_steps):
            streamer.step(x1)

    train, infer = {"rnnlab": r_train}, {"rnnlab": r_infer}
    stream, stream_lean = {"rnnlab": r_stream}, {"rnnlab": r_stream_lean}
    agree = None
    if module is not None:
        xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)
        x1t = torch.from_numpy(np.ascontiguousarray(x[:1, :1]))  # (1, 1, D)

        def t_train():
            module.zero_grad(set_to_none=True)
            xt.grad = None
            y, _ = module(xt)
            y.backward(dyt)

        def t_infer():
            with torch.inference_mode():
                module(xt)

        def t_stream():
            state = None
            with torch.inference_mode():
                for _ in range(cfg.stream_steps):
                    _, state = module(x1t, state)

        train["torch"], infer["torch"] = t_train, t_infer
        stream["torch"] = stream_lean["torch"] = t_stream
        with torch.inference_mode():
            y_torch = module(torch.from_numpy(x))[0].numpy()
        agree = float(np.abs(y_torch - layer.forward(x)[0]).max())  # same weights, same maths
    fl = _flops(cell, shape)
    row = {"cell": cell, "shape": {"B": B, "T": T, "D": D, "H": H},
           "max_abs_diff_outputs": agree}
    if torch is not None:
        row["gemm_only"] = _gemm_only(cell, shape, cfg, torch)
    for kind, fns, flops, scale in (
        ("train", train, 3 * fl, 1.0),
        ("infer", infer, fl, 1.0),
        ("stream", stream, _flops(cell, (1, 1, D, H)), 1.0 / cfg.stream_steps),
        ("stream_lean", stream_lean, _flops(cell, (1, 1, D, H)), 1.0 / cfg.stream_steps),
    ):
        med, low = _median_times(fns, cfg.repeats, cfg.warmup)
        entry = {"gflop": flops / 1e9}
        for lib, sec in med.items():
            entry[f"{lib}_ms"] = sec * scale * 1e3
            entry[f"{lib}_min_ms"] = low[lib] * scale * 1e3
            entry[f"{lib}_gflops"] = flops / (sec * scale) / 1e9
        if "torch" in med:
            entry["ratio"] = med["rnnlab"] / med["torch"]
            entry["ratio_of_minima"] = low["rnnlab"] / low["torch"]
        row[kind] = entry
    return row


def _gemm_only(cell, shape, cfg, torch) -> dict:
    """The matrix products of one training step alone, in NumPy's BLAS and in PyTorch's.

    Same shapes as rnnlab's step: the input projection, T recurrent products forward and
    T backward, both weight gradients and ``dx``, each into a preallocated output. The
    ratio NumPy/PyTorch is what the BLAS alone allows; both loops pay Python's per-call
    overhead (a little more for PyTorch), which rnnlab's compiled loop does not.
    """
    B, T, D, H = shape
    GH = GATES[cell] * H
    rng = np.random.default_rng(cfg.seed)
    a = {k: rng.standard_normal(s, dtype=np.float32) for k, s in (
        ("x", (T * B, D)), ("W_x", (D, GH)), ("h", (B, H)), ("W_h", (H, GH)),
        ("W_hT", (GH, H)), ("da", (T * B, GH)), ("hs", (T * B, H)))}
    o = {k: np.empty(s, np.float32) for k, s in (
        ("xp", (T * B, GH)), ("hp", (B, GH)), ("dh", (B, H)), ("dWx", (D, GH)),
        ("dWh", (H, GH)), ("dx", (T * B, D)))}

    def run(mm, a, o):
        mm(a["x"], a["W_x"], out=o["xp"])
        for _ in range(T):
            mm(a["h"], a["W_h"], out=o["hp"])
        for t in range(T):
            mm(a["da"][t * B:(t + 1) * B], a["W_hT"], out=o["dh"])
        mm(a["x"].T, a["da"], out=o["dWx"])
        mm(a["hs"].T, a["da"], out=o["dWh"])
        mm(a["da"], a["W_x"].T, out=o["dx"])

    ta = {k: torch.from_numpy(v) for k, v in a.items()}
    to = {k: torch.from_numpy(v.copy()) for k, v in o.items()}
    med, low = _median_times({"numpy": lambda: run(np.matmul, a, o),
                              "torch": lambda: run(torch.matmul, ta, to)},
                             cfg.repeats, cfg.warmup)
    return {"numpy_ms": med["numpy"] * 1e3, "torch_ms": med["torch"] * 1e3,
            "ratio": med["numpy"] / med["torch"], "ratio_of_minima": low["numpy"] / low["torch"]}


def _row_line(row) -> str:
    s = row["shape"]
    parts = [f"{row['cell']:5s} B={s['B']} T={s['T']} D={s['D']} H={s['H']}:"]
    for kind in ("train", "infer", "stream", "stream_lean"):
        e = row[kind]
        ratio = f" (x{e['ratio']:.2f})" if "ratio" in e else ""
        parts.append(f"{kind} {e['rnnlab_ms']:.3f} ms{ratio}")
    return "  ".join(parts)


# memory -------------------------------------------------------------------------------


def _memory(lib, cell, shape, threads) -> dict | None:
    """Peak memory of one training step, measured in a fresh subprocess."""
    code = (f"from rnnlab.bench import _memory_child; "
            f"_memory_child({lib!r}, {cell!r}, {tuple(shape)!r}, {threads})")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=600, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return json.loads(out.strip().splitlines()[-1])


def _rss_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(f"{field_name} not in /proc/self/status")


def _trim_heap() -> None:
    """Return the free heap of every glibc arena to the system (no-op elsewhere)."""
    try:
        import ctypes
        import ctypes.util

        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def _memory_child(lib, cell, shape, threads) -> None:
    """In a subprocess: print JSON with the step's resident-set growth (and tracemalloc)."""
    torch = _import_torch() if lib == "torch" else None
    if torch is not None:
        torch.set_num_threads(threads)
    small = (2, 3, shape[2], 4)
    # the first pass loads kernels and initialises operators; the full-size step then runs
    # once unmeasured as well, since its first run also starts thread pools (PyTorch's
    # OpenMP, rnnlab's parallel loops) whose stacks are paid once per process, not per
    # step. The heap it freed is handed back to the system before the measured step
    # (malloc_trim), so that step cannot hide its allocations in memory already resident.
    for s in (small, shape):
        layer, module, x, dy = _make(cell, s, 0, torch)
        if torch is not None:
            xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)

            def step(module=module, xt=xt, dyt=dyt):
                y, _ = module(xt)
                y.backward(dyt)
                return y
        else:

            def step(layer=layer, x=x, dy=dy):
                y, state, cache = layer.forward(x)
                return y, layer.backward(cache, dy)

        step()
    gc.collect()
    _trim_heap()
    result = {"rss_growth": None}
    with kernels.threads(threads):
        try:
            before = _rss_kb("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM, the peak resident set, to the current size
        except OSError:
            before = None  # not Linux, or not allowed: no resident-set figure
        kept = step()
        if before is not None:
            result["rss_growth"] = (_rss_kb("VmHWM") - before) / 1024
        del kept
        gc.collect()
        if torch is None:
            import tracemalloc

            tracemalloc.start()
            step()
            result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    print(json.dumps(result))


# compilation --------------------------------------------------------------------------


def _compile_times(cells) -> dict:
    """Seconds to the first result with an empty numba cache, then with the cache filled."""
    code = ("import json, time, numpy as np; t0 = time.perf_counter(); import numba, rnnlab; "
            "t1 = time.perf_counter(); from rnnlab.bench import _first_calls; "
            f"r = _first_calls({tuple(cells)!r}); r['import_s'] = t1 - t0; print(json.dumps(r))")
    out = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        # a private cache directory, so "cold" really compiles and the user's cache is untouched
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        for label in ("cold", "cached"):
            try:
                res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     env=env, timeout=1800, check=True)
                out[label] = json.loads(res.stdout.strip().splitlines()[-1])
            except (subprocess.SubprocessError, OSError, ValueError) as e:
                out[label] = {"error": str(e)}
    return out


def _first_calls(cells) -> dict:
    """Seconds for the first forward + backward + step of each cell, float32 then float64."""
    times = {}
    for dtype in (np.float32, np.float64):
        for cell in cells:
            layer = LAYERS[cell](3, 4, seed=0, dtype=dtype)
            x = np.ones((2, 3, 3), dtype)
            t = time.perf_counter()
            _, _, cache = layer.forward(x)
            layer.backward(cache, np.ones((2, 3, 4), dtype))
            _, _, cache = layer.forward(x, lengths=[3, 1])
            layer.backward(cache, np.ones((2, 3, 4), dtype))
            layer.step(x[:, 0])
            times[f"{cell}_{np.dtype(dtype).name}_s"] = time.perf_counter() - t
    return times


# reporting ----------------------------------------------------------------------------


def _targets(rows) -> list:
    """The speed targets, row by row: met (True), missed (False) or not measurable (None)."""
    out = []
    for row in rows:
        s = row["shape"]
        small, large = s["B"] <= 16, s["B"] >= 64 or s["H"] >= 256
        t = {"cell": row["cell"], "shape": s}
        for kind in ("train", "infer"):
            r = row[kind].get("ratio")
            t[f"{kind}_ratio_le_1"] = None if r is None else r <= 1.0
            if small:
                t[f"{kind}_ratio_le_0.5"] = None if r is None else r <= 0.5
        for kind in ("stream", "stream_lean"):
            r = row[kind].get("ratio")
            t[f"{kind}_ratio_le_0.2"] = None if r is None else r <= 0.2
        if large:
            t["train_ge_60pct_peak"] = row["train"]["fraction_of_peak"] >= 0.6
        mem = row.get("memory_mb") or {}
        a = (mem.get("rnnlab") or {}).get("rss_growth")
        b = (mem.get("torch") or {}).get("rss_growth")
        t["memory_le_torch"] = None if a is None or b is None else a <= b
        out.append(t)
    return out


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def markdown(result: dict) -> str:
    """The results as markdown tables: one row per cell and shape."""
    cfg, m = result["config"], result["machine"]
    lines = [
        "# rnnlab vs PyTorch, CPU",
        "",
        *(["**Taken on a busy machine: the ratios are not reliable.**", ""]
          if result.get("busy") else []),
        f"{m.get('cpu_model') or m.get('cpu')}, {m.get('cores')} cores; "
        f"{cfg['threads']} thread(s); numba threading layer "
        f"{m.get('threading_layer') or 'none'}; rnnlab's per-step products: {cfg['blas']}; "
        "float32; "
        "glibc keeps freed memory: "
        f"{cfg['keep_freed_memory']}; median of {cfg['repeats']} repeats in blocks of at "
        f"most 3 per library, libraries alternating, each block after {cfg['warmup']} "
        f"warm-up calls; numpy {m['numpy']}, torch {m['torch']}, "
        f"numba {m.get('numba', 'absent')}; OPENBLAS_THREAD_TIMEOUT "
        f"{m.get('openblas_thread_timeout') or 'unset'}; other processes kept "
        f"{_fmt(m.get('other_processes_cores'), '.2f')} cores busy on average meanwhile.",
        "sgemm peak (n=2048): "
        + ", ".join(f"{k} {v:.0f}" for k, v in m["sgemm_peak_gflops"].items()) + " GFLOP/s.",
        "Ratio = rnnlab time / PyTorch time (below 1: rnnlab faster). GFLOP/s counts matrix "
        "products only. Stream: `layer.step` (checks and converts its arguments every call); "
        "Stream: `rnnlab.Stream.step`, the same maths with the state kept. "
        "GEMMs only: the training step's matrix products alone, NumPy's BLAS over PyTorch's "
        "(what the BLAS allows). "
        "Memory: resident-set growth over one training step (MB), same method "
        "for both; tracemalloc = NumPy arrays only.",
        "",
        "| cell | B,T,D,H | train ms (rnnlab / torch) | ratio (of minima) | GFLOP/s | % peak "
        "| infer ms (rnnlab / torch) | ratio (of minima) | stream µs (rnnlab / torch) | ratio "
        "| Stream µs | ratio | mem MB rnnlab (tracemalloc) / torch | GEMMs only numpy/torch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        s = row["shape"]
        tr, inf, st = row["train"], row["infer"], row["stream"]
        mem = row.get("memory_mb") or {}
        mr, mt = mem.get("rnnlab") or {}, mem.get("torch") or {}
        lines.append(
            f"| {row['cell']} | {s['B']},{s['T']},{s['D']},{s['H']} "
            f"| {tr['rnnlab_ms']:.2f} / {_fmt(tr.get('torch_ms'), '.2f')} "
            f"| {_fmt(tr.get('ratio'), '.2f')} ({_fmt(tr.get('ratio_of_minima'), '.2f')}) "
            f"| {tr['rnnlab_gflops']:.0f} "
            f"| {100 * tr['fraction_of_peak']:.0f} "
            f"| {inf['rnnlab_ms']:.2f} / {_fmt(inf.get('torch_ms'), '.2f')} "
            f"| {_fmt(inf.get('ratio'), '.2f')} ({_fmt(inf.get('ratio_of_minima'), '.2f')}) "
            f"| {1e3 * st['rnnlab_ms']:.1f} / {_fmt(st.get('torch_ms', 0) * 1e3 or None, '.1f')} "
            f"| {_fmt(st.get('ratio'), '.2f')} "
            f"| {1e3 * row['stream_lean']['rnnlab_ms']:.1f} "
            f"| {_fmt(row['stream_lean'].get('ratio'), '.2f')} "
            f"| {_fmt(mr.get('rss_growth'), '.1f')} ({_fmt(mr.get('tracemalloc_peak'), '.1f')}) "
            f"/ {_fmt(mt.get('rss_growth'), '.1f')} "
            f"| {_fmt((row.get('gemm_only') or {}).get('ratio'), '.2f')} |"
        )
    comp = result.get("compile")
    if comp:
        keys = [k for k in comp.get("cold", {}) if k != "error"]
        lines += ["", "First calls (forward + backward, masked forward + backward, step), "
                  "seconds, empty numba cache (cold) and filled (cached):", "",
                  "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for label in ("cold", "cached"):
            d = comp.get(label, {})
            lines.append(f"| {label} | " + " | ".join(_fmt(d.get(k), ".2f") for k in keys) + " |")
    met = result["targets"]
    lines += ["", "Speed targets: ✓ met, ✗ missed, – not measured", "",
              "| cell | B,T,D,H | " + " | ".join(k for k in _target_keys(met)) + " |",
              "|---|---|" + "---|" * len(_target_keys(met))]
    for t in met:
        s = t["shape"]
        cells = [{True: "✓", False: "✗", None: "–"}.get(t.get(k), "") if k in t else ""
                 for k in _target_keys(met)]
        lines.append(f"| {t['cell']} | {s['B']},{s['T']},{s['D']},{s['H']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n"


def _target_keys(targets) -> list:
    keys = []
    for t in targets:
        keys += [k for k in t if k not in ("cell", "shape") and k not in keys]
    return keys


def add_arguments(ap) -> None:
    """The benchmark's command-line options (``rnnlab bench`` and benchmarks/bench_cells.py)."""
    ap.add_argument("--cells", nargs="+", default=list(LAYERS))
    ap.add_argument("--shape", nargs=4, type=int, action="append", metavar=("B", "T", "D", "H"),
                    help="a (B, T, D, H) row; repeat for several (default: the standard grid)")
    ap.add_argument("--threads", type=int, default=None, help="default: one per core")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true", help="rnnlab's own figures only")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-compile-time", action="store_true")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="rnnlab.kernels.keep_freed_memory() first (process-wide, both libraries)")
    ap.add_argument("--blas", default="tile", choices=["tile", "numpy", "mkl"],
                    help="per-step products: rnnlab's tile (default), NumPy's BLAS, or MKL "
                         "(pip install mkl)")
    ap.add_argument("--out", default="runs/bench")


def run_from_args(a) -> dict:
    """Run :func:`run_bench` with options parsed by :func:`add_arguments`."""
    result = run_bench(
        cells=tuple(a.cells), shapes=tuple(map(tuple, a.shape)) if a.shape else GRID,
        threads=a.threads, repeats=a.repeats, torch=not a.no_torch, memory=not a.no_memory,
        compile_time=not a.no_compile_time, keep_freed_memory=a.keep_freed_memory, blas=a.blas,
        out_dir=a.out,
    )
    print(f"wrote {a.out}/bench.json and {a.out}/bench.md ({len(result['rows'])} rows)")
    return result
