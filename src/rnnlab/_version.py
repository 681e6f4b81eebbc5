"""The rnnlab version: one place, read by the package root, model files and run folders."""

__version__ = "0.1.0"
