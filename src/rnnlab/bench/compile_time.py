"""Compile times for ``rnnlab bench``: the first calls of each cell, in subprocesses.

:func:`compile_times` runs :func:`first_calls` twice in fresh interpreters sharing a
private numba cache: once with the cache empty (cold: numba compiles) and once filled
(cached: numba loads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..cells import LAYERS


def compile_times(cells) -> dict:
    """Seconds to the first result with an empty numba cache, then with the cache filled."""
    code = ("import json, time, numpy as np; t0 = time.perf_counter(); import numba, rnnlab; "
            "t1 = time.perf_counter(); from rnnlab.bench.compile_time import first_calls; "
            f"r = first_calls({tuple(cells)!r}); r['import_s'] = t1 - t0; print(json.dumps(r))")
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


def first_calls(cells) -> dict:
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
