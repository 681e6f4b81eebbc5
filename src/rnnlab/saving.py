"""``rnnlab.save`` and ``rnnlab.load``: networks and layers to model files and back.

:mod:`rnnlab.io` writes and reads the records; this module knows which classes they hold
and rebuilds them from the record's ``kind`` and ``config``.
"""

from __future__ import annotations

from . import io
from .cells import LAYERS, RecurrentLayer, layer_from_config
from .network import Network

#: a record's kind -> the class it holds, and how a record's config rebuilds one
KINDS = {"network": Network, "layer": RecurrentLayer}
_BUILD = {"network": lambda config: Network(**config, seed=0),
          "layer": lambda config: layer_from_config({**config, "seed": 0})}


def save(obj, path) -> None:
    """Save a :class:`~rnnlab.Network` or a recurrent layer to ``path`` (atomically)."""
    for kind, cls in KINDS.items():
        if isinstance(obj, cls):
            io.write_record(path, kind, obj.config, obj.params)
            return
    raise ValueError(f"can save a Network or a recurrent layer, got {type(obj).__name__}")


def load(path):
    """Load a model file written by :func:`save`: a :class:`~rnnlab.Network` or a layer."""
    record = io.read_record(path)
    if not isinstance(record.kind, str) or record.kind not in _BUILD:
        raise ValueError(f"{path} has an invalid configuration: unknown kind "
                         f"{io.shorten(repr(record.kind))}")
    if not isinstance(record.config, dict):
        raise ValueError(f"{path} has an invalid configuration: expected a mapping, got "
                         f"{type(record.config).__name__}")
    # The configuration decides what is allocated: checked against what the file holds
    # first, so a file cannot make the reader build a model much larger than itself. (One
    # near its size is built, for load_params to name the parameter that does not match.)
    declared = n_params(record.kind, record.config)
    stored = sum(v.size for k, v in record.arrays.items() if k.startswith("param/"))
    if declared is not None and declared > 2 * stored + 4096:
        raise ValueError(f"{path} does not match its configuration: it declares "
                         f"{declared:,} parameters and holds {stored:,}")
    try:
        obj = _BUILD[record.kind](record.config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} has an invalid configuration: {io.shorten(e, 200)}") from None
    io.load_params(obj.params, record.arrays, path)
    return obj


def n_params(kind: str, config: dict) -> int | None:
    """The number of parameters the object of ``config`` has, computed without building
    it; None when the configuration is not plainly valid (building it will say why).

    The layer's own count (:meth:`rnnlab.cells.RecurrentLayer.count_params`); a network's
    head adds ``(H' + 1) * K`` with H' the features it reads (H, or 2H when bidirectional;
    an LSTM with a projection reads P instead of H), and H' more with readout "attention".
    """
    cell = config.get("cell", "lstm" if kind == "network" else None)
    if not isinstance(cell, str) or cell not in LAYERS:
        return None
    total = LAYERS[cell].count_params(config)
    if kind != "network" or total is None:
        return total
    H, K = config.get("hidden_size"), config.get("output_size")
    if not (type(K) is int and K > 0):
        return None
    dirs = 2 if config.get("bidirectional") is True else 1
    P = config.get("proj_size") or H
    if type(P) is not int or P <= 0:
        return None
    attention = dirs * P if config.get("readout") == "attention" else 0
    return total + (dirs * P + 1) * K + attention
