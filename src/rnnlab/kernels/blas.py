"""NumPy's own BLAS, called from compiled loops, and the threads it may use.

The recurrent product ``h_{t-1} @ W_h`` must run once per time step inside the
compiled loop. Rather than numba's ``np.dot`` (which loads SciPy's separate OpenBLAS,
a second thread pool that fights NumPy's), the kernels call the ``cblas_?gemm`` of the
very library NumPy uses, found through threadpoolctl and opened with ctypes. If it
cannot be found (another BLAS vendor, no threadpoolctl) the kernels fall back to a
compiled loop, which is correct but slower for large H.

By default the per-step products run in rnnlab's own tile (:mod:`rnnlab.kernels.tile`,
:func:`tile_for`) and BLAS serves the products batched over all steps; :func:`use_blas`
sends the per-step products to NumPy's BLAS (or MKL) instead.

Threads: the rows of a batch are independent, so a time loop with more than one thread
allowed runs its batch in runs of rows, one per thread, each thread looping over all
steps for its rows with no synchronisation between steps (:func:`loop_chunks`; numba's
threads, BLAS held to one thread meanwhile). Splitting each step's product among BLAS
threads instead costs a hand-off per step, which the small per-step products of most
recurrent nets do not repay; a serial loop (one row, little work, one thread allowed)
still gives BLAS all threads for a product of :data:`SINGLE_THREAD_BELOW` or more. The
batched products (weight gradients and ``dx``, from :data:`PRODUCTS_PARALLEL_FROM`
multiply-adds; the network's output layer through :func:`rnnlab.kernels.matmul`) run in
parts on the same threads, one single-threaded BLAS call each (:func:`product_chunks`),
so that BLAS's own thread pool stays asleep: OpenBLAS's idle threads spin for about
0.1 s after each threaded call and slow the time loops that follow on the same cores
(measurements: docs/performance.md).
Smaller ones run whole with BLAS held to one thread.

rnnlab's threads are numba's, on its OpenMP layer where an OpenMP runtime is present
(:func:`_numba_threads` says why), else on its workqueue layer; with the latter, whose
threads sleep between loops and are slow to wake, products split only from
:data:`PRODUCTS_PARALLEL_FROM_ASLEEP` on and the layers' smaller ones keep BLAS's
threads. :func:`threads` sets how many are allowed (the default is whatever NumPy's BLAS
is set to, normally one per core).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import os
import sys
import threading
from contextvars import ContextVar
from functools import cache

import numpy as np

#: (symbol, integer width) of CBLAS gemm in the builds NumPy ships with: the
#: ``scipy-openblas64`` wheels (NumPy >= 2), the older ``openblas64_`` ones, and LP64 builds.
_GEMM_SYMBOLS = (("scipy_cblas_{}gemm64_", 64), ("cblas_{}gemm64_", 64), ("cblas_{}gemm", 32))
_THREAD_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)

#: Per-step products below this many multiply-adds run on one thread: below it the
#: hand-off between threads costs more than splitting the product saves (two threads
#: start to pay at about an LSTM step at B=64, H=256, 64*256*1024 = 16.8 M; measurements:
#: docs/performance.md).
SINGLE_THREAD_BELOW = 8_000_000

#: A time loop of at least this many multiply-adds in its recurrent products (T*B*H*G)
#: runs its batch in parallel runs of rows when more than one thread is allowed.
PARALLEL_FROM = 1_000_000

#: Batched products of at least this many multiply-adds go to rnnlab's threads
#: (:func:`product_chunks`) when those spin between parallel loops (numba's OpenMP layer,
#: rnnlab's default, see :func:`_numba_threads`): handing them work is cheap, so even
#: products of a few million multiply-adds repay the split (measurements on the
#: JapaneseVowels example: docs/performance.md).
PRODUCTS_PARALLEL_FROM = 4_000_000

#: The same for threads that sleep between parallel loops (numba's workqueue layer, the
#: fallback without an OpenMP runtime): waking them is costly, so only far larger
#: products repay the split (measurements: docs/performance.md).
PRODUCTS_PARALLEL_FROM_ASLEEP = 64_000_000

# numba's "workqueue" threading layer aborts the process when two threads enter parallel
# code at once; a second caller runs its loop serially instead (whatever the layer).
_parallel = threading.Lock()

_threads: ContextVar[int | None] = ContextVar("rnnlab_threads", default=None)
_backend: ContextVar[str] = ContextVar("rnnlab_blas", default="tile")
BACKENDS = ("tile", "numpy", "mkl")


class _Blas:
    """The handles found in NumPy's BLAS library (any of them may be None)."""

    def __init__(self):
        self.sgemm = self.dgemm = None
        self._set = self._get = None
        self.path = None
        lib = _numpy_blas_path()
        if lib is None:
            return
        try:
            dll = ctypes.CDLL(lib)
        except OSError:
            return
        self.path = lib
        for pattern, bits in _GEMM_SYMBOLS:
            if hasattr(dll, pattern.format("s")) and hasattr(dll, pattern.format("d")):
                self.sgemm = _address(getattr(dll, pattern.format("s")), bits)
                self.dgemm = _address(getattr(dll, pattern.format("d")), bits)
                break
        for set_name, get_name in _THREAD_SYMBOLS:
            if hasattr(dll, set_name) and hasattr(dll, get_name):
                self._set, self._get = getattr(dll, set_name), getattr(dll, get_name)
                self._set.argtypes, self._set.restype = [ctypes.c_int], None
                self._get.argtypes, self._get.restype = [], ctypes.c_int
                break

    def get_threads(self) -> int | None:
        return None if self._get is None else int(self._get())

    def set_threads(self, n: int) -> None:
        if self._set is not None:
            self._set(int(n))


def _address(fn, bits) -> tuple[int, bool]:
    """What the kernels take (see :func:`rnnlab.kernels._jit.mm`): address and integer width."""
    return ctypes.cast(fn, ctypes.c_void_p).value, bits == 64


def _numpy_blas_path() -> str | None:
    """File of the BLAS that NumPy's own ``matmul`` calls, or None if unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    np_dir = os.path.dirname(os.path.dirname(np.__file__))
    found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    # NumPy wheels vendor their BLAS in site-packages/numpy.libs; prefer that copy over
    # SciPy's, which threadpoolctl also lists once SciPy is imported.
    for info in found:
        if os.path.dirname(info["filepath"]) == os.path.join(np_dir, "numpy.libs"):
            return info["filepath"]
    openblas = [i for i in found if i.get("internal_api") == "openblas"]
    return openblas[0]["filepath"] if len(openblas) == 1 else None


@cache
def blas() -> _Blas:
    """NumPy's BLAS handles, looked up once per process."""
    return _Blas()


@cache
def mkl() -> tuple | None:
    """``(sgemm, dgemm)`` of Intel MKL (the ``mkl`` wheel's ``libmkl_rt``), or None.

    MKL is switched to its sequential layer: it then brings no thread pool of its own,
    and the per-step products it serves run on one thread anyway.
    """
    import ctypes.util
    import glob
    import sys

    paths = [ctypes.util.find_library("mkl_rt")]
    paths += sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    for path in filter(None, paths):
        try:
            dll = ctypes.CDLL(path)
            dll.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
            dll.MKL_Set_Threading_Layer(1)  # MKL_THREADING_SEQUENTIAL
            return _address(dll.cblas_sgemm, 32), _address(dll.cblas_dgemm, 32)
        except (OSError, AttributeError):
            continue
    return None


@contextlib.contextmanager
def use_blas(name: str):
    """Serve the per-step recurrent products from ``name``: "tile" (default), "numpy" or "mkl".

    "tile" is rnnlab's own register-blocked product (:mod:`rnnlab.kernels.tile`), with
    the weights packed once per sequence; it also computes the input projection step by
    step inside the loop, and the weight gradients and ``dx`` run in NumPy's BLAS.
    "numpy" calls NumPy's BLAS for every step, and for the input projection of all
    steps at once. "mkl" needs the ``mkl`` wheel;
    its GEMM is faster than OpenBLAS at the per-step sizes of the benchmark grid
    (measurements: docs/performance.md). It runs sequentially (no second thread pool), so
    the batched products (input projection, weight gradients, ``dx``) go to it too only
    when one thread is allowed, and to NumPy's BLAS otherwise.
    """
    if name not in BACKENDS:
        names = ", ".join(map(repr, BACKENDS))
        raise ValueError(f"unknown BLAS {name!r}; expected one of {names}")
    if name == "mkl" and mkl() is None:
        raise ValueError("BLAS 'mkl' needs Intel MKL's libmkl_rt (pip install mkl); not found")
    token = _backend.set(name)
    try:
        yield
    finally:
        _backend.reset(token)


def uses_numpy_blas() -> bool:
    """Whether the batched products run in NumPy's own BLAS (all but "mkl")."""
    return _backend.get() != "mkl"


def tile_for(dtype) -> int:
    """Address of the tile function for ``dtype``, or 0 when the per-step products go
    to a BLAS (``use_blas("numpy")``/``("mkl")``, or the tile could not be compiled)."""
    if _backend.get() != "tile" or _tile_failed:
        return 0
    address = _tile_addresses.get("tile_f32" if dtype == np.float32 else "tile_f64")
    return address if address is not None else \
        _tile_address("tile_f32" if dtype == np.float32 else "tile_f64")


_tile_failed = False
_tile_addresses: dict[str, int] = {}  # kept here: cheaper than asking the tile module per call


def _tile_address(name: str) -> int:
    """Address of the tile function ``name``, 0 when this CPU has none by that name or the
    tile could not be compiled."""
    if _tile_failed:
        return 0
    if not _tile_addresses:
        from . import tile

        try:
            _tile_addresses.update(tile.addresses())
        except Exception as err:  # noqa: BLE001 - any LLVM failure: fall back, say so once
            _tile_fallback(err)
            return 0
    return _tile_addresses.get(name, 0)


# bf16 -----------------------------------------------------------------------------------

#: what :func:`bf16_tile` may use: None the CPU's instructions where it has them; "off"
#: none (as on a CPU without them); "emulate" the bf16 tile in generic instructions,
#: which rounds the operands as the BF16 instructions do and runs on any CPU (slower)
BF16_MODES = (None, "off", "emulate")


def _mode_from_environment():
    """The default of :func:`bf16_instructions`: ``RNNLAB_BF16`` ("off" or "emulate"),
    so that a whole process (a CLI run, a test session) can be run as on another CPU."""
    mode = os.environ.get("RNNLAB_BF16") or None
    if mode not in BF16_MODES:
        raise ValueError(f"RNNLAB_BF16={mode!r}: expected 'off' or 'emulate' (or unset)")
    return mode


_BF16_DEFAULT = _mode_from_environment()
_bf16_mode: ContextVar = ContextVar("rnnlab_bf16_mode", default=_BF16_DEFAULT)


@contextlib.contextmanager
def bf16_instructions(mode: str | None):
    """Inside the block, bf16 products use ``mode`` (:data:`BF16_MODES`): ``"off"`` runs
    as on a CPU without BF16 instructions, ``"emulate"`` runs the bf16 maths on any CPU.
    For tests and for comparing; a context variable, as :func:`use_blas`."""
    if mode not in BF16_MODES:
        raise ValueError(f"unknown bf16 mode {mode!r}; expected one of {BF16_MODES}")
    token = _bf16_mode.set(mode)
    try:
        yield
    finally:
        _bf16_mode.reset(token)


def bf16_native() -> str | None:
    """The BF16 matrix instructions rnnlab uses on this CPU (``"avx512_bf16"``), or None
    (none there, or switched off by :func:`bf16_instructions`)."""
    if _bf16_mode.get() is not None:
        return None
    return "avx512_bf16" if _tile_address("tile_bf16") else None


def bf16_tile() -> int:
    """Address of the bf16 tile that runs now (the AVX512_BF16 one, or the emulated one
    when :func:`bf16_instructions` asks for it), or 0 when bf16 products cannot run."""
    mode = _bf16_mode.get()
    if mode == "off":
        return 0
    return _tile_address("tile_bf16e" if mode == "emulate" else "tile_bf16")


def _tile_fallback(err: Exception) -> None:
    global _tile_failed
    import warnings

    _tile_failed = True
    warnings.warn(f"rnnlab's tile product could not be compiled ({err}); the per-step "
                  "products use NumPy's BLAS instead", RuntimeWarning, stacklevel=3)


def gemm_for(dtype):
    """``(address, ilp64)`` of CBLAS ``?gemm`` for ``dtype`` (float32 or float64), or None."""
    if _backend.get() == "mkl":
        return mkl()[0 if dtype == np.float32 else 1]
    b = blas()
    return b.sgemm if dtype == np.float32 else b.dgemm


# thread control ----------------------------------------------------------------------


@contextlib.contextmanager
def threads(n: int | None):
    """Allow at most ``n`` threads inside the block (None: BLAS's own setting).

    Applies to rnnlab's fast kernels (their parallel runs of rows and their BLAS calls)
    and, while the block runs, to all of NumPy's BLAS. See the module docstring for how
    the threads are used.
    Pass the same number to ``torch.set_num_threads`` for a fair comparison.

    Examples
    --------
    >>> with rnnlab.kernels.threads(1):
    ...     y, state, cache = layer.forward(x)
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    token = _threads.set(n)
    before = blas().get_threads()
    try:
        if n is not None:
            blas().set_threads(n)
        yield
    finally:
        _threads.reset(token)
        if before is not None:
            blas().set_threads(before)


def allowed_threads() -> int:
    """Threads rnnlab may use: the user's :func:`threads`, else BLAS's own setting."""
    n = _threads.get()
    return n if n is not None else (blas().get_threads() or 1)


def loop_threads(work: int) -> int:
    """Threads for a per-step product of ``work`` multiply-adds."""
    return 1 if work < SINGLE_THREAD_BELOW else allowed_threads()


@contextlib.contextmanager
def loop_threads_set(work: int):
    """Set BLAS threads for the per-step loop, restoring the previous count after."""
    with _blas_held(loop_threads(work)):
        yield


def _numba_threads() -> int:
    """numba's thread count, its threading layer chosen first (see below)."""
    import numba

    # The threading layer, chosen only when nobody chose (NUMBA_THREADING_LAYER unset and
    # numba.config untouched); it applies from the process's first parallel loop on.
    # OpenMP's idle threads spin for a while after each parallel loop, so the next loop
    # starts at once; the workqueue layer's threads sleep, and on the benchmark machine (a
    # virtual machine) a two-thread loop that had to wake them mostly ran at one thread's
    # speed (measurements: docs/performance.md). The spinning threads
    # would slow BLAS's own threads, so with OpenMP no BLAS call uses more than one thread
    # while rnnlab trains (:func:`product_chunks` holds it). Without an OpenMP runtime
    # (libgomp), workqueue.
    if numba.config.THREADING_LAYER == "default" and "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "omp" if _openmp_available() else "workqueue"
    return numba.get_num_threads()


@cache
def _openmp_available() -> bool:
    try:
        import numba.np.ufunc.omppool  # noqa: F401  (loads the OpenMP runtime)
    except ImportError:
        return False
    return True


def threads_spin() -> bool:
    """Whether numba's threads spin between parallel loops (its OpenMP layer), so that
    handing them work is cheap and BLAS must not run threads of its own beside them."""
    import numba

    try:
        return numba.threading_layer() == "omp"
    except ValueError:  # no parallel loop has run yet: the layer that will be loaded
        _numba_threads()
        return numba.config.THREADING_LAYER == "omp"


# GNU OpenMP cannot run in a child forked after its threads started: numba would end the
# child at its first parallel loop. A forked child of such a process runs serially.
_forked_after_openmp = False


def _after_fork_in_child() -> None:
    global _forked_after_openmp, _side
    _side = None  # the parent's worker thread does not exist here
    numba = sys.modules.get("numba")
    if numba is None:
        return
    try:
        _forked_after_openmp = numba.threading_layer() == "omp"
    except ValueError:  # no parallel loop ran in the parent
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def _own_threads(most: int, work: int, start: int):
    """Up to ``most`` of rnnlab's threads for ``work`` multiply-adds from ``start`` on,
    with BLAS held at one thread inside (each thread calls it on its own part); yields
    the count, 0 when the work stays where it is (one thread allowed, too little work,
    or another thread running parallel code)."""
    n = min(allowed_threads(), most, _numba_threads())
    if n < 2 or work < start or _forked_after_openmp or not _parallel.acquire(blocking=False):
        yield 0
        return
    try:
        with _blas_held(1):
            yield n
    finally:
        _parallel.release()


@contextlib.contextmanager
def loop_chunks(T: int, B: int, hg: int, blas_inside: bool = True):
    """How many runs of rows a time loop over ``T`` steps of batch ``B`` takes at once.

    ``hg`` is H*G, the multiply-adds of one row's recurrent product. The rows of a batch
    are independent, so with ``n`` threads allowed each thread can run the whole time
    loop over its own ``B/n`` rows, with no synchronisation between steps; the per-step
    products then run single-threaded in each. Yields 1 (the serial loop, BLAS threads
    per :func:`loop_threads_set`) when one thread is allowed, the batch has one row, the
    loop is below :data:`PARALLEL_FROM`, or another thread is running a parallel loop.
    ``blas_inside=False`` tells that the loop makes no BLAS call (its products run in
    the tile): the serial loop then leaves BLAS's setting alone, and a batch of one row
    yields 1 at once (these context managers cost a visible share of a short inference
    at batch 1; measurements: docs/performance.md).
    """
    if B < 2 and not blas_inside:
        yield 1
        return
    with _own_threads(B, T * B * hg, PARALLEL_FROM) as n:
        if n:
            yield n
            return
    if not blas_inside:
        yield 1
        return
    with loop_threads_set(B * hg):
        yield 1


@contextlib.contextmanager
def product_chunks(K: int, work: int, hold: bool | None = None):
    """In how many parts rnnlab's own threads run a batched product (the weight
    gradients and ``dx`` of a backward, the output layer's products; ``work``
    multiply-adds over ``K`` rows), each part one single-threaded BLAS call.

    With more than one thread allowed, a product of :data:`PRODUCTS_PARALLEL_FROM`
    multiply-adds or more (:data:`PRODUCTS_PARALLEL_FROM_ASLEEP` when numba's threads
    sleep between loops) is split over rnnlab's threads (yields the number of parts,
    BLAS held to one thread inside); a smaller one runs whole (yields 1), with BLAS held
    to one thread when ``hold``, else with BLAS's own threads. ``hold=None`` holds
    whenever numba's threads spin (:func:`threads_spin`). With one thread allowed, or
    while another thread runs parallel code, BLAS keeps its setting.

    Why: idle threads spin after their work, BLAS's for about 0.1 s after each threaded
    call (OpenBLAS's default ``OPENBLAS_THREAD_TIMEOUT``) and OpenMP's for milliseconds,
    and whatever runs beside them on the same cores runs slower: rnnlab's time loops,
    and BLAS's threads beside OpenMP's most of all. So BLAS's pool never runs beside
    rnnlab's threads. Only with sleeping threads (workqueue) do small products keep
    BLAS's threads (``hold=False`` from the layers): there small nets lost time with them
    held or split. The output layer holds them in any case: its products run just before
    the backward loops of the whole stack (measurements: docs/performance.md).
    """
    n = min(allowed_threads(), K, _numba_threads())
    if n < 2:
        yield 1
        return
    spin = threads_spin()
    if work >= (PRODUCTS_PARALLEL_FROM if spin else PRODUCTS_PARALLEL_FROM_ASLEEP):
        with _own_threads(K, work, 0) as parts:
            if parts:
                yield parts
                return
        yield 1  # another thread is inside parallel code: BLAS as set
        return
    if not (spin if hold is None else hold):
        yield 1
        return
    with _blas_held(1):
        yield 1


@contextlib.contextmanager
def _blas_held(n: int):
    """BLAS at ``n`` threads inside the block, its setting restored after."""
    b = blas()
    before = b.get_threads()
    if before is None or before == n:
        yield
        return
    b.set_threads(n)
    try:
        yield
    finally:
        b.set_threads(before)


#: multiply-adds per direction from which :func:`side_by_side` runs the two at once
#: (below, starting the worker costs more than it saves; measurements: docs/performance.md)
SIDE_BY_SIDE_FROM = 4_000_000
_side = None  # one worker thread, made on first use


def side_by_side(work: int, first, second):
    """``(first(), second())`` for two independent calls into the kernels (which release
    the GIL), on two threads at once when two are allowed and each call does at least
    :data:`SIDE_BY_SIDE_FROM` multiply-adds, else one after the other: the two directions
    of a bidirectional layer.

    Side by side, each call runs its loops on one thread (:func:`allowed_threads` is 1
    inside, so neither splits its rows or touches BLAS's setting) and BLAS is held at
    one thread around both, set once here.
    """
    global _side
    if allowed_threads() < 2 or work < SIDE_BY_SIDE_FROM:
        return first(), second()
    if _side is None:
        from concurrent.futures import ThreadPoolExecutor

        _side = ThreadPoolExecutor(1, thread_name_prefix="rnnlab-direction")
    one = contextvars.copy_context()
    one.run(_threads.set, 1)
    other = contextvars.copy_context()
    other.run(_threads.set, 1)
    with _blas_held(1):
        future = _side.submit(other.run, second)
        try:
            a = one.run(first)
        finally:
            b = future.result()
    return a, b
