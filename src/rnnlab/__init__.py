"""rnnlab: recurrent neural networks with exact, hand-written backpropagation through time."""

__version__ = "0.1.0"
