"""Recurrent cells: one module per cell, each step's forward and backward side by side."""

from .base import RecurrentLayer
from .elman import Elman
from .gru import GRU
from .lstm import LSTM

LAYERS = {"elman": Elman, "lstm": LSTM, "gru": GRU}


def layer_from_config(config: dict) -> RecurrentLayer:
    """Build a layer (with fresh weights) from a :attr:`RecurrentLayer.config` dict."""
    config = dict(config)
    name = config.pop("cell", None)
    if name not in LAYERS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(LAYERS)}")
    return LAYERS[name](**config)


__all__ = ["GRU", "LSTM", "LAYERS", "Elman", "RecurrentLayer", "layer_from_config"]
