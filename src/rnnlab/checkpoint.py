"""Training checkpoints: parameters, optimiser state and where the run stands, in one file.

A checkpoint is an ``.npz`` archive (:mod:`rnnlab.io`: no pickle, written atomically)::

    meta              JSON header: format "rnnlab-checkpoint", version, the network's and
                      the trainer's settings, update count, position, history, extra record,
                      and the state of the generator of the train-time masks (the numpy
                      bit generator's state as JSON, ``masks_rng``)
    param/<name>      the parameters
    optim/<key>       the optimiser's state (``Optimizer.state_dict``)
    state/<i>/<j>     array j of carried recurrent state i (one array, or h and c: LSTM)
    best/<name>       the parameters of the best validation epoch, if any

Reading refuses a checkpoint of another model shape or other training settings before it
changes anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import io

FORMAT = "rnnlab-checkpoint"
VERSION = 1


def start() -> dict:
    """The position of a run that has not begun: epoch 0, batch 0, window 0."""
    return {"epoch": 0, "batch": 0, "window": 0}


@dataclass
class Checkpoint:
    """Where a training run stands, besides its parameters and optimiser state."""

    step: int = 0  # updates made
    skipped: int = 0  # updates skipped for NaN/Inf
    position: dict = field(default_factory=start)  # the next epoch, batch and window
    states: list = field(default_factory=list)  # carried recurrent states
    history: dict = field(default_factory=dict)  # the trainer's History, as a dict
    best: tuple | None = None  # (validation loss, epoch, parameters) of the best epoch
    extra: dict = field(default_factory=dict)  # any JSON record of the caller's
    # the bit-generator state (numpy's ``bit_generator.state``, a JSON mapping) from which
    # the next train-time masks are drawn (rnnlab.dropout); None in older checkpoints
    masks_rng: dict | None = None


def state_arrays(state) -> list:
    """A recurrent state (an array, or a tuple of arrays for the LSTM) as a list of arrays."""
    return list(state) if isinstance(state, tuple) else [state]


def state_from_arrays(arrays, n_state: int):
    """The inverse of :func:`state_arrays` for a layer of ``n_state`` state arrays."""
    return tuple(arrays) if n_state > 1 else arrays[0]


def write(path, net, optimizer, settings: dict, ckpt: Checkpoint) -> None:
    """Write ``net``'s parameters, the optimiser's state and ``ckpt`` to ``path``.

    Does nothing when a parameter holds NaN or Inf: a broken model never replaces a good
    checkpoint.
    """
    if not all(np.isfinite(v).all() for v in net.params.values()):
        return
    best = ckpt.best
    meta = {"format": FORMAT, "version": VERSION, "network": net.config,
            "trainer": settings, "position": ckpt.position, "step": ckpt.step,
            "skipped": ckpt.skipped, "history": ckpt.history, "n_states": len(ckpt.states),
            "best": None if best is None else best[:2], "extra": ckpt.extra,
            "masks_rng": ckpt.masks_rng}
    arrays = {f"param/{k}": v for k, v in net.params.items()}
    for k, v in optimizer.state_dict().items():
        arrays[f"optim/{k}"] = np.asarray(v)
    for i, state in enumerate(ckpt.states):
        for j, a in enumerate(state_arrays(state)):
            arrays[f"state/{i}/{j}"] = a
    if best is not None:
        arrays.update({f"best/{k}": v for k, v in best[2].items()})
    arrays["meta"] = io.meta_array(meta)
    io.atomic_write_npz(path, arrays)


def read(path, net, optimizer, settings: dict, history: dict | None = None) -> Checkpoint:
    """Restore ``net``'s parameters and the optimiser's state from ``path``; the rest.

    ``settings`` are the trainer's (:meth:`Trainer.settings`); a checkpoint written with
    others, or for another model shape, is refused with the differences named. ``history``
    is an empty History's dict, the keys and types the stored one must have. Every field
    of the header and every array is checked before anything changes: a checkpoint that
    is refused (always a ValueError of one line) leaves the network and optimiser as they
    were.
    """
    arrays = io.read_npz(path, "rnnlab checkpoint")
    meta = io.read_meta(arrays, path, FORMAT, VERSION, "rnnlab checkpoint")
    bad = _Refuse(path)
    for key in ("network", "trainer", "position", "history"):
        if not isinstance(meta.get(key), dict):
            bad(f"{key} must be a mapping, got {_type(meta.get(key))}")
    _same(net.config, meta["network"], path, "is a checkpoint of another model shape "
          "(checkpoint vs this model")
    bptt = meta["trainer"].get("bptt")
    theirs = {**meta["trainer"], "bptt": tuple(bptt) if isinstance(bptt, list) else bptt}
    _same(settings, theirs, path, "was written with other training settings "
          "(checkpoint vs now")
    step, skipped = (_count(meta.get(k), k, bad) for k in ("step", "skipped"))
    position = _position(meta["position"], bad)
    history = _history(meta["history"], history, bad)
    states = _states(meta.get("n_states"), arrays, net.rnn, bad)
    best = _best(meta.get("best"), arrays, net.params, path, bad)
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        bad(f"extra must be a mapping, got {_type(extra)}")
    masks_rng = _generator_state(meta.get("masks_rng"), bad)
    io.check_params(net.params, arrays, path)
    # load_state_dict checks everything before it changes anything, and so did the above
    optimizer.load_state_dict({k[6:]: (v.item() if v.ndim == 0 else v)
                               for k, v in arrays.items() if k.startswith("optim/")})
    io.load_params(net.params, arrays, path)
    return Checkpoint(step, skipped, position, states, history, best, extra, masks_rng)


def _generator_state(value, bad) -> dict | None:
    """A numpy bit generator's ``state`` as stored (JSON), checked by building that bit
    generator with it; None when absent."""
    if value is None:
        return None
    name = value.get("bit_generator") if isinstance(value, dict) else None
    if not isinstance(name, str) or name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox",
                                                 "SFC64"):
        bad(f"masks_rng must be a numpy bit generator's state, got "
            f"{io.shorten(repr(value), 60)}")
    try:
        getattr(np.random, name)().state = value
    except (TypeError, ValueError, KeyError) as e:
        bad(f"masks_rng is not a valid {name} state ({io.shorten(str(e), 60)})")
    return value


class _Refuse:
    """``bad(what)`` raises the ValueError of a checkpoint whose header is wrong."""

    def __init__(self, path):
        self.path = path

    def __call__(self, what: str):
        raise ValueError(f"{self.path} is a corrupt rnnlab checkpoint: {what}")


def _type(value) -> str:
    return "null" if value is None else type(value).__name__


def _count(value, name: str, bad) -> int:
    if type(value) is not int or value < 0:
        bad(f"{name} must be a non-negative integer, got {io.shorten(repr(value), 40)}")
    return value


def _position(pos: dict, bad) -> dict:
    if sorted(pos) != sorted(start()):
        bad(f"position must have the keys {sorted(start())}, got {io.shorten(sorted(pos))}")
    return {k: _count(pos[k], f"position {k}", bad) for k in start()}


def _history(history: dict, template: dict | None, bad) -> dict:
    """The trainer's History as a dict: the keys of ``template`` (an empty History's dict),
    each value of the type of its value there (None there: None or an integer)."""
    if template is None:
        return history
    unknown = sorted(set(history) - set(template))
    if unknown:
        bad(f"history has unknown keys {io.shorten(unknown)}")
    for k, v in history.items():
        empty = template[k]
        ok = (v is None or type(v) is int) if empty is None else type(v) is type(empty)
        if not ok:
            bad(f"history {k} has the wrong type ({_type(v)})")
    return history


def _states(n, arrays: dict, layer, bad) -> list:
    """The carried states: ``n`` of them, each the layer's ``n_state`` arrays of shape
    (L, B, H) in its dtype, B the same for all."""
    present = {k for k in arrays if k.startswith("state/")}
    if type(n) is not int or not 0 <= n <= len(present):
        bad(f"n_states must be an integer from 0 to the {len(present)} state arrays, "
            f"got {io.shorten(repr(n), 40)}")
    want = {f"state/{i}/{j}" for i in range(n) for j in range(layer.n_state)}
    if want != present:
        bad(f"state arrays {io.shorten(sorted(present))} do not match n_states {n} of "
            f"{layer.n_state} arrays each")
    states = []
    for i in range(n):
        parts = [arrays[f"state/{i}/{j}"] for j in range(layer.n_state)]
        # the layer's own shapes: (L, B, H) for a recurrent layer's arrays
        for a, (lead, _, last) in zip(parts, layer.state_shapes(1), strict=True):
            if (a.ndim != 3 or a.shape[0] != lead or a.shape[2] != last
                    or a.shape[1] != parts[0].shape[1] or a.shape[1] == 0
                    or a.dtype != layer.dtype or not np.isfinite(a).all()):
                bad(f"state {i} has shape {a.shape} {a.dtype}; expected finite "
                    f"({lead}, B, {last}) {layer.dtype}")
        states.append(state_from_arrays(parts, layer.n_state))
    return states


def _best(best, arrays: dict, params: dict, path, bad):
    """(validation loss, epoch, parameters) of the best epoch, or None."""
    stored = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}
    if best is None:
        if stored:
            bad("best/ arrays without a best epoch")
        return None
    if (not isinstance(best, list) or len(best) != 2 or type(best[0]) not in (int, float)
            or not math.isfinite(best[0])
            or type(best[1]) is not int or best[1] < 0):
        bad(f"best must be null or [validation loss, epoch], got {io.shorten(repr(best))}")
    io.check_params(params, arrays, path, prefix="best/")
    return (float(best[0]), best[1], stored)


def _same(mine: dict, theirs: dict, path, what: str) -> None:
    if theirs != mine:
        diff = {k: (v, mine.get(k)) for k, v in theirs.items() if mine.get(k) != v}
        diff.update({k: (None, v) for k, v in mine.items() if k not in theirs})
        raise ValueError(f"{path} {what}: {io.shorten(diff, 300)})")
