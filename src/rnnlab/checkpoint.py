"""Training checkpoints: parameters, optimiser state and where the run stands, in one file.

A checkpoint is an ``.npz`` archive (:mod:`rnnlab.io`: no pickle, written atomically)::

    meta              JSON header: format "rnnlab-checkpoint", version, the network's and
                      the trainer's settings, update count, position, history, extra record
    param/<name>      the parameters
    optim/<key>       the optimiser's state (``Optimizer.state_dict``)
    state/<i>/<j>     array j of carried recurrent state i (one array, or h and c: LSTM)
    best/<name>       the parameters of the best validation epoch, if any

Reading refuses a checkpoint of another model shape or other training settings before it
changes anything.
"""

from __future__ import annotations

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
            "best": None if best is None else best[:2], "extra": ckpt.extra}
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


def read(path, net, optimizer, settings: dict) -> Checkpoint:
    """Restore ``net``'s parameters and the optimiser's state from ``path``; the rest.

    ``settings`` are the trainer's (:meth:`Trainer.settings`); a checkpoint written with
    others, or for another model shape, is refused with the differences named.
    """
    arrays = io.read_npz(path, "rnnlab checkpoint")
    meta = io.read_meta(arrays, path, FORMAT, VERSION, "rnnlab checkpoint")
    _same(net.config, meta["network"], path, "is a checkpoint of another model shape "
          "(checkpoint vs this model")
    theirs = {**meta["trainer"], "bptt": None if meta["trainer"]["bptt"] is None
              else tuple(meta["trainer"]["bptt"])}
    _same(settings, theirs, path, "was written with other training settings "
          "(checkpoint vs now")
    io.load_params(net.params, arrays, path)
    optimizer.load_state_dict({k[6:]: (v.item() if v.ndim == 0 else v)
                               for k, v in arrays.items() if k.startswith("optim/")})
    states = []
    for i in range(meta["n_states"]):
        parts, j = [], 0
        while f"state/{i}/{j}" in arrays:
            parts.append(arrays[f"state/{i}/{j}"])
            j += 1
        states.append(state_from_arrays(parts, net.rnn.n_state))
    best = None
    if meta["best"] is not None:
        best = (*meta["best"], {k[5:]: v for k, v in arrays.items() if k.startswith("best/")})
    return Checkpoint(meta["step"], meta["skipped"], meta["position"], states,
                      meta["history"], best, meta.get("extra", {}))


def _same(mine: dict, theirs: dict, path, what: str) -> None:
    if theirs != mine:
        diff = {k: (v, mine.get(k)) for k, v in theirs.items() if mine.get(k) != v}
        raise ValueError(f"{path} {what}: {diff})")
