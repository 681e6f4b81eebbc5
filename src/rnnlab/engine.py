"""The engine: the one place that sees both the reference loop and the fused kernels.

Shape legend: T time, B batch, D input features, H hidden units, L layers.

Each call here picks a path: the cell's kernel (:mod:`rnnlab.kernels`, when numba is
there, the context asks for it, see :func:`rnnlab.kernels.use_fast`, and the cell declares
one, :attr:`rnnlab.cells.Cell.kernel`) or the plain loop of :mod:`rnnlab.recurrent`,
which is the reference. A cache remembers which path made it (its ``saved`` is a
:class:`rnnlab.kernels.Tape` on the fast path), and backward takes that path. Stacks of
layers and the one streaming :func:`step` are written here, once, for both paths.
"""

from __future__ import annotations

import numpy as np

from . import kernels, recurrent
from .recurrent import LayerCache, layer_params

#: the precision settings of layers, networks, the Trainer and the CLI
PRECISIONS = ("fp32", "bf16", "auto")
#: the note given where bf16 was asked for and cannot run
BF16_ABSENT = ("precision bf16 asked for, but bf16 products cannot run here (this CPU has "
               "no AVX512_BF16 instructions, or the fast kernels are off): computing in fp32")
_noted = set()


def resolved_precision(precision: str, dtype=np.float32, *, warn: bool = True) -> str:
    """What ``precision`` computes in here and now: ``"fp32"`` or ``"bf16"``.

    ``"fp32"`` is float32 (and float64 arrays stay float64). ``"bf16"``: the matrix
    products in bfloat16 with float32 sums, everything else float32; where bf16 cannot
    run (no BF16 instructions, numba absent, the plain loop asked for), float32, with a
    one-line warning (:data:`BF16_ABSENT`) the first time unless ``warn`` is False.
    ``"auto"``: bf16 where the CPU has BF16 matrix instructions
    (:func:`rnnlab.kernels.bf16_native`), else fp32. bf16 applies to float32 arrays;
    float64, the exactness reference, is always computed as float64.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    if precision == "fp32" or np.dtype(dtype) != np.float32:
        return "fp32"
    if precision == "auto":
        return "bf16" if kernels.bf16_native() and kernels.bf16_available() else "fp32"
    if kernels.bf16_available():
        return "bf16"
    if warn and "bf16" not in _noted:
        import warnings

        warnings.warn(BF16_ABSENT, RuntimeWarning, stacklevel=3)
    _noted.add("bf16")
    return "fp32"


def precision_record(precision: str, dtype=np.float32) -> dict:
    """What a run records of its precision: the setting, what it computes in here and the
    BF16 instructions found (``{"asked", "computes_in", "bf16_instructions"}``). Asking
    counts as the note: the library's warning is not given again in this process."""
    return {"asked": precision, "computes_in": resolved_precision(precision, dtype, warn=False),
            "bf16_instructions": kernels.bf16_native()}


def kernel_of(cell, fast: bool | None = None) -> str | None:
    """The id of the kernel that runs ``cell`` now, or None for the plain loop.

    Only a kernel the cell's own class declares counts (:attr:`rnnlab.cells.Cell.own_kernel`):
    a subclass, whose ``step`` may differ, inherits none.
    """
    kernel = cell.own_kernel
    return kernel if kernel is not None and kernels.active(kernel, fast) else None


def layer_forward(cell, p, x, state0, mask, partial, *, fast=None, keep=True, reset=None,
                  bf16=False, drop=None, zone=None):
    """:func:`rnnlab.recurrent.layer_forward` on the path ``fast`` (None: the context's).

    ``keep=False`` (inference): no cache, and the kernels then store no per-step gates
    (but see :data:`rnnlab.kernels.layers.INPUT_BEFORE_LOOP_MAX_BYTES` at batch 1).
    ``bf16``: the kernel's products in bf16 (:func:`resolved_precision` decided it could
    run); the plain loop, which has none, computes in the arrays' own dtype.
    Recurrent dropout's ``drop`` and zoneout's ``zone`` masks (train-time only) run the
    reference loop: the kernels take no masks.
    """
    kernel = kernel_of(cell, fast)
    if kernel is None or drop is not None or zone is not None:
        return recurrent.layer_forward(cell, p, x, state0, mask, partial, keep=keep,
                                       reset=reset, drop=drop, zone=zone)
    x = np.ascontiguousarray(x)
    y, final, hs, tape = kernels.fast_layers().layer_forward(
        kernel, p, x, state0, mask, keep, *cell.kernel_args, reset=reset, bf16=bf16)
    return y, final, (LayerCache(x, hs, tape, mask, partial, reset) if keep else None)


def layer_backward(cell, p, cache, dy, dstate, *, need_dx=True):
    """:func:`rnnlab.recurrent.layer_backward` on the path that made ``cache``."""
    if not isinstance(cache.saved, kernels.Tape):
        return recurrent.layer_backward(cell, p, cache, dy, dstate, need_dx=need_dx)
    return kernels.fast_layers().layer_backward(
        p, cache.x, cache.hs, cache.saved, cache.mask, dy, dstate, need_dx,
        *cell.kernel_args, reset=cache.reset)


def _between(masks, k: int, x):
    """Layer ``k``'s input after dropout between layers, and the mask (or None)."""
    if masks is None or masks.between is None or k == 0:
        return x, None
    m = masks.between[k - 1]  # (T, B, F) scaled
    return x * m, m


def stack_forward(cell, params, num_layers, x, states, mask, partial, *, fast=None,
                  keep=True, reset=None, bf16=False, masks=None):
    """Run ``num_layers`` layers; ``x`` (T, B, D), ``states`` a list of per-layer tuples;
    ``reset`` (T, B, 1) or None resets every layer's state at the same steps; ``masks`` a
    :class:`rnnlab.dropout.Masks` (time-major) or None: train-time dropout between the
    layers (on the inputs of layers 1 ..), recurrent dropout and zoneout.

    Returns ``(y (T, B, H) of the top layer, per-layer final states, per-layer caches)``;
    with ``keep=False`` the caches are None (see :func:`layer_forward`).
    """
    caches, finals = [], []
    for k in range(num_layers):
        x, inp = _between(masks, k, x)
        drop, zone = (None, None) if masks is None else masks.layer(k)
        x, state, cache = layer_forward(cell, layer_params(params, k), x, states[k], mask,
                                        partial, fast=fast, keep=keep, reset=reset, bf16=bf16,
                                        drop=drop, zone=zone)
        caches.append(cache if inp is None or cache is None else cache._replace(inp=inp))
        finals.append(state)
    return x, finals, caches


def stack_backward(cell, params, num_layers, caches, dy, dstates, *, need_dx=True):
    """Backward through a stack; returns ``(grads with l{k}. names, dx, per-layer dstate0)``,
    ``dx`` None without ``need_dx`` (the bottom layer then skips that product)."""
    grads, d0 = {}, [None] * num_layers
    for k in range(num_layers - 1, -1, -1):
        g, dy, d0[k] = layer_backward(cell, layer_params(params, k), caches[k], dy, dstates[k],
                                      need_dx=need_dx or k > 0)
        if caches[k].inp is not None:  # dropout between layers k - 1 and k
            dy = dy * caches[k].inp
        grads.update({f"l{k}.{name}": v for name, v in g.items()})
    return grads, dy, d0


def bi_stack_forward(cell, params, num_layers, x, states, mask, partial, lengths, *,
                     fast=None, keep=True, reset=None, bf16=False, masks=None):
    """:func:`stack_forward` for bidirectional layers.

    Layer ``k`` runs its forward direction (parameters ``l{k}.*``) on its input and its
    reverse direction (``l{k}r.*``) on the same input read backwards within each
    sequence's length (:func:`rnnlab.recurrent.reversal`), so padding stays padding; the
    two outputs, the reverse one put back in time, are joined to (T, B, 2H), the next
    layer's input. ``states`` and the returned finals are lists over ``2 * num_layers``
    (layer k forward at 2k, reverse at 2k+1: PyTorch's order); each cache is a pair.
    ``masks`` as in :func:`stack_forward`, its per-direction rows in the same order.
    """
    T, B = x.shape[:2]
    index = recurrent.reversal(lengths, T, B)
    back_reset = recurrent.reversed_resets(reset, index)
    caches, finals = [], []
    for k in range(num_layers):
        p_f, p_r = layer_params(params, k), layer_params(params, f"{k}r")
        x, inp = _between(masks, k, x)
        x_r = recurrent.reversed_in_time(x, index)
        (d_f, z_f), (d_r, z_r) = ((None, None), (None, None)) if masks is None else (
            masks.layer(2 * k), masks.layer(2 * k + 1))

        def ahead(p=p_f, x=x, s=states[2 * k], d=d_f, z=z_f):
            return layer_forward(cell, p, x, s, mask, partial, fast=fast, keep=keep,
                                 reset=reset, bf16=bf16, drop=d, zone=z)

        def back(p=p_r, x=x_r, s=states[2 * k + 1], d=d_r, z=z_r):
            return layer_forward(cell, p, x, s, mask, partial, fast=fast, keep=keep,
                                 reset=back_reset, bf16=bf16, drop=d, zone=z)

        masked = masks is not None and (masks.recurrent is not None
                                        or masks.zoneout is not None)
        (y_f, s_f, c_f), (y_r, s_r, c_r) = _both(cell, False if masked else fast, p_f, T * B,
                                                 ahead, back)
        if inp is not None and keep:
            c_f = c_f._replace(inp=inp)
        x = np.concatenate([y_f, recurrent.reversed_in_time(y_r, index)], axis=2)
        caches.append((c_f, c_r, index) if keep else None)
        finals += [s_f, s_r]
    return x, finals, caches


def bi_stack_backward(cell, params, num_layers, caches, dy, dstates, *, need_dx=True):
    """:func:`stack_backward` for :func:`bi_stack_forward`'s caches; ``dy`` (T, B, 2H) or
    None, ``dstates`` and the returned initial-state gradients over ``2 * num_layers``."""
    grads, d0 = {}, [None] * (2 * num_layers)
    H = dstates[0][0].shape[1]
    for k in range(num_layers - 1, -1, -1):
        c_f, c_r, index = caches[k]
        dy_f = None if dy is None else dy[:, :, :H]
        dy_r = None if dy is None else recurrent.reversed_in_time(dy[:, :, H:], index)
        need = need_dx or k > 0
        p_f, p_r = layer_params(params, k), layer_params(params, f"{k}r")
        T, B = c_f.x.shape[:2]
        (g_f, dx_f, d0[2 * k]), (g_r, dx_r, d0[2 * k + 1]) = _both(
            cell, isinstance(c_f.saved, kernels.Tape), p_f, 2 * T * B,
            lambda p=p_f, c=c_f, d=dy_f, s=dstates[2 * k], n=need: layer_backward(
                cell, p, c, d, s, need_dx=n),
            lambda p=p_r, c=c_r, d=dy_r, s=dstates[2 * k + 1], n=need: layer_backward(
                cell, p, c, d, s, need_dx=n))
        dy = None if dx_f is None else dx_f + recurrent.reversed_in_time(dx_r, index)
        if c_f.inp is not None:  # dropout between layers k - 1 and k
            dy = dy * c_f.inp
        grads.update({f"l{k}.{name}": v for name, v in g_f.items()})
        grads.update({f"l{k}r.{name}": v for name, v in g_r.items()})
    return grads, dy, d0


def _both(cell, fast, p, rows, first, second):
    """The two directions' calls, side by side on the kernels' path (each direction's
    loop on a thread of its own), else one after the other; ``rows`` steps times rows of
    work per direction, each a product with ``W_x`` and ``W_h``."""
    if kernel_of(cell, fast) is None:
        return first(), second()
    work = rows * (p["W_x"].shape[0] + p["W_h"].shape[0]) * p["W_h"].shape[1]
    return kernels.side_by_side(work, first, second)


def step(cell, layer_ps, x_t, states, out=None, *, prepared=False, fast=None):
    """One streaming step through a stack: the one entry of every streaming path.

    Parameters
    ----------
    cell : the stack's cell
    layer_ps : list over layers of parameter dicts (see :func:`rnnlab.recurrent.layer_params`)
    x_t : ndarray (B, D)
    states : list over layers of tuples of (B, H)
    out : list over layers of tuples of C-contiguous (B, H) arrays that receive the new
        states (not aliasing ``states``), or None for fresh arrays
    prepared : the caller guarantees that ``x_t``, every parameter and every state are
        C-contiguous arrays of one dtype, so the kernels skip their conversions (which
        cost about as much as a small step)
    fast : bool or None, as in :func:`layer_forward`

    Returns
    -------
    h_top : ndarray (B, H), the top layer's new ``h`` (the same array as its new state)
    new : list over layers of tuples of (B, H)
    finite : bool, whether ``x_t`` and every state held only finite values; when False
        the step stopped at the first layer where they did not (checked inside the kernel,
        where it costs nothing)
    """
    kernel = cell.own_kernel
    if not kernels.active(kernel, fast):
        return _plain_step(cell, layer_ps, x_t, states, out)
    step_one, args = kernels.fast_layers().step_one, cell.kernel_args
    if prepared and len(layer_ps) == 1:
        # one layer, arrays ready: the usual stream, straight to its kernel (at batch 1
        # the general loop's bookkeeping below is a tenth of the step)
        state = states[0]
        dest = out[0] if out is not None else _fresh(state)
        if step_one(kernel, layer_ps[0], x_t, state, dest, *args):
            return dest[0], [dest], True
        return x_t, [], False
    new = []
    for k, p in enumerate(layer_ps):
        state = states[k]
        if not prepared:
            p = {name: np.ascontiguousarray(v, dtype=x_t.dtype) for name, v in p.items()}
            x_t = np.ascontiguousarray(x_t)
            state = tuple(np.ascontiguousarray(s, dtype=x_t.dtype) for s in state)
        dest = out[k] if out is not None else _fresh(state)
        if not step_one(kernel, p, x_t, state, dest, *args):
            return x_t, new, False
        new.append(dest)
        x_t = dest[0]
    return x_t, new, True


def _fresh(state: tuple) -> tuple:
    """New arrays like ``state``'s, written out for one and two (a generator costs more)."""
    if len(state) == 1:
        return (np.empty_like(state[0]),)
    return (np.empty_like(state[0]), np.empty_like(state[1]))


def _plain_step(cell, layer_ps, x_t, states, out):
    """:func:`step` on the reference path (:func:`rnnlab.recurrent.step`)."""
    new = []
    for k, p in enumerate(layer_ps):
        state = states[k]
        if not (np.isfinite(x_t).all() and all(np.isfinite(a).all() for a in state)):
            return x_t, new, False
        dest = recurrent.step(cell, p, x_t, state)
        if out is not None:
            for d, s in zip(out[k], dest, strict=True):
                d[...] = s
            dest = out[k]
        new.append(dest)
        x_t = dest[0]
    return x_t, new, True
