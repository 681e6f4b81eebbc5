"""Recurrent cells: one module per cell, each step's forward and backward side by side, and
the one registry of them.

Every other module that needs a cell's facts (gate order, state arrays, PyTorch's layout,
kernel) reads them from the cell class through :data:`LAYERS`, never from a literal of
its own: a new cell is one module here and one line below.
"""

from .base import RecurrentLayer
from .cell import Cell
from .elman import Elman, ElmanCell
from .ffnn import FFNN, FFNNCell
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell

#: cell name -> its layer class; ``LAYERS[name].Cell`` is the cell class with its facts
LAYERS: dict[str, type[RecurrentLayer]] = {
    layer.Cell.name: layer for layer in (Elman, LSTM, GRU, FFNN)}


def layer_class(name) -> type[RecurrentLayer]:
    """The layer class of the cell ``name``; a ValueError naming the known cells otherwise."""
    if name not in LAYERS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(LAYERS)}")
    return LAYERS[name]


def layer_from_config(config: dict) -> RecurrentLayer:
    """Build a layer (with fresh weights) from a :attr:`RecurrentLayer.config` dict."""
    config = dict(config)
    return layer_class(config.pop("cell", None))(**config)


#: the recurrent cells alone (what the engine runs, benchmarks time and PyTorch mirrors)
RECURRENT: tuple = tuple(name for name, layer in LAYERS.items() if layer.recurrent)

__all__ = ["FFNN", "GRU", "LAYERS", "LSTM", "RECURRENT", "Cell", "Elman", "ElmanCell",
           "FFNNCell", "GRUCell", "LSTMCell",
           "RecurrentLayer", "layer_class", "layer_from_config"]
