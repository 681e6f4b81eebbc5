"""Before any test: the kernels compiled once, in a child process, into numba's cache.

Every test process then loads the kernels instead of compiling its own. That is quicker,
and it was once needed for exactness: with fastmath's ``reassoc`` a kernel compiled in a
process and its cached build summed in different orders, 1 to 4 float32 ulps apart, so
the tests that compare a run in a child process (killed, resumed, data-parallel) with one
in this process bit for bit compared two builds. The kernels no longer allow it
(:data:`rnnlab.kernels._jit.JIT`), and ``tests/test_kernels.py`` checks that a fresh
build and a cached one agree bit for bit. Variants that the warm-up does not reach
compile where they are first used.
"""

import subprocess
import sys

WARM_UP = """
import numpy as np
import rnnlab
from rnnlab import kernels
if kernels.AVAILABLE:
    rng = np.random.default_rng(0)
    # float32 in bf16 too where the CPU has it ("auto"), as the language model runs it
    for dtype, precision in ((np.float32, "fp32"), (np.float32, "auto"), (np.float64, "fp32")):
        for cell in ("lstm", "gru", "elman"):
            for B, threads in ((1, 1), (4, 1), (64, 2)):
                net = rnnlab.Network(6, 8, 6, cell=cell, seed=0, dtype=dtype,
                                     precision=precision)
                ids = rng.integers(0, 6, size=(B, 9))
                with kernels.threads(threads):
                    net.loss_and_grad(ids, ids)
                    net.loss_and_grad(rng.normal(size=(B, 9, 6)).astype(dtype), ids,
                                      lengths=np.full(B, 5))
                    net.infer(ids)
                    net.step(np.zeros((B, 6), dtype))
    import tempfile
    from rnnlab import demo  # its float64 LSTM and Elman with the gradient-flow probes
    with tempfile.TemporaryDirectory() as d:
        demo.memory(demo.MemoryConfig.quick(lags=(2,), tasks=("recall",), epochs=1, train=16,
                                            test=8), out=d + "/memory", echo=None)
"""


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller warmed up
        return
    subprocess.run([sys.executable, "-c", WARM_UP], check=False, timeout=1800,
                   capture_output=True)
