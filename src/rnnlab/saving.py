"""``rnnlab.save`` and ``rnnlab.load``: networks and layers to model files and back.

:mod:`rnnlab.io` writes and reads the records; this module knows which classes they hold
and rebuilds them from the record's ``kind`` and ``config``.
"""

from __future__ import annotations

from . import io
from .cells import RecurrentLayer, layer_from_config
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
    if record.kind not in _BUILD:
        raise ValueError(f"{path} has an invalid configuration: unknown kind {record.kind!r}")
    try:
        obj = _BUILD[record.kind](record.config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} has an invalid configuration: {e}") from None
    io.load_params(obj.params, record.arrays, path)
    return obj
