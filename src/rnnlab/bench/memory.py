"""Peak memory of one training step, for ``rnnlab bench``: one fresh subprocess per row.

Shape legend: B batch, T time, D input features, H hidden units.

Both libraries are measured the same way: the growth of the resident set (Linux
``VmHWM`` after resetting it, minus ``VmRSS`` before) across one step, after a warm-up
on a tiny problem and one unmeasured step at full size (thread pools started), with the
freed heap returned to the system and the model and inputs already built. For rnnlab the
NumPy allocations seen by ``tracemalloc`` are reported too, as a cross-check that counts
arrays only. :func:`peak_memory` starts the subprocess, which runs :func:`memory_child`.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from .. import kernels
from .timing import import_torch, make_row


def peak_memory(lib, cell, shape, threads) -> dict | None:
    """Peak memory of one training step, measured in a fresh subprocess."""
    code = (f"from rnnlab.bench.memory import memory_child; "
            f"memory_child({lib!r}, {cell!r}, {tuple(shape)!r}, {threads})")
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


def memory_child(lib, cell, shape, threads) -> None:
    """In a subprocess: print JSON with the step's resident-set growth (and tracemalloc)."""
    torch = import_torch() if lib == "torch" else None
    if torch is not None:
        torch.set_num_threads(threads)
    small = (2, 3, shape[2], 4)
    # the first pass loads kernels and initialises operators; the full-size step then runs
    # once unmeasured as well, since its first run also starts thread pools (PyTorch's
    # OpenMP, rnnlab's parallel loops) whose stacks are paid once per process, not per
    # step. The heap it freed is handed back to the system before the measured step
    # (malloc_trim), so that step cannot hide its allocations in memory already resident.
    for s in (small, shape):
        layer, module, x, dy = make_row(cell, s, 0, torch)
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
