"""What a run ran on: versions, processor and threads, as one JSON-ready record.

Run folders keep it in ``run.json`` (``"environment"``) and ``rnnlab report`` shows it
beside the environment of the machine that writes the report: the processor of a machine
can change between runs, and a speed is only comparable on the same one.
"""

from __future__ import annotations

import os
import platform
import sys

from ._version import __version__


def environment() -> dict:
    """rnnlab, Python, NumPy and numba versions, the processor and its features
    (:func:`rnnlab.bench.cpu_description`), and the threads rnnlab may use."""
    import numpy as np

    from .bench import cpu_description
    from .kernels import blas

    try:
        import numba
        numba_version = numba.__version__
    except ImportError:  # a dependency, but the record should not fail for want of it
        numba_version = None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count()
    return {"rnnlab": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba_version,
            "platform": f"{platform.system()} {platform.release()} ({sys.platform})",
            "cpu": cpu_description(), "cores_available": cores,
            "threads": blas.allowed_threads()}
