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

    Layer k of a cell with G gates, input size d (D for the first layer, H after, 2H
    after a bidirectional one) and a recurrent bias or not:
    ``(d + H + 1 + recurrent_bias) * G * H``, twice when bidirectional; a network's head
    adds ``(H' + 1) * K`` with H' the features it reads (H or 2H). An LSTM with a
    projection reads P instead of H (``W_h`` (P, G*H)) and adds ``W_hr`` (H, P); peepholes
    add 3H.
    """
    cell = config.get("cell", "lstm" if kind == "network" else None)
    sizes = [config.get(k, 1 if k == "num_layers" else None)
             for k in ("input_size", "hidden_size", "num_layers")]
    if kind == "network":
        sizes.append(config.get("output_size"))
    if (not isinstance(cell, str) or cell not in LAYERS
            or not all(type(n) is int and n > 0 for n in sizes)):
        return None
    D, H, L = sizes[:3]
    dirs = 2 if config.get("bidirectional") is True else 1
    facts = LAYERS[cell].Cell
    G, rb = facts.n_gates, int(facts.recurrent_bias)
    P = config.get("proj_size") or H
    if type(P) is not int or P <= 0:
        return None
    # an LSTM's projection: W_h (P, G*H), W_hr (H, P), layers above read P; peepholes 3H
    own = (H * P if P != H else 0) + (3 * H if config.get("peepholes") is True else 0)
    total = dirs * ((D + P + 1 + rb) * G * H + own
                    + (L - 1) * ((dirs * P + P + 1 + rb) * G * H + own))
    return total + (dirs * P + 1) * sizes[3] if kind == "network" else total
