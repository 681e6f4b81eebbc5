"""Elementwise activations and their derivatives written in terms of the output.

Writing each derivative from the activation's *output* lets backward reuse what forward
already stored instead of keeping the pre-activation too.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic function, computed as ``0.5 * tanh(a / 2) + 0.5`` so it never overflows."""
    return 0.5 * np.tanh(0.5 * a) + 0.5


def sigmoid_grad(y: np.ndarray) -> np.ndarray:
    """Derivative of the sigmoid at the point whose output is ``y``."""
    return y * (1 - y)


def tanh(a: np.ndarray) -> np.ndarray:
    return np.tanh(a)


def tanh_grad(y: np.ndarray) -> np.ndarray:
    """Derivative of tanh at the point whose output is ``y``."""
    return 1 - y * y


def relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


def relu_grad(y: np.ndarray) -> np.ndarray:
    """Derivative of ReLU at the point whose output is ``y`` (0 at the kink, as PyTorch)."""
    return (y > 0).astype(y.dtype)


#: name -> (function, derivative from output)
ACTIVATIONS = {
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
}


def get(name: str):
    """Return ``(f, f_grad_from_output)`` for an activation name."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None
