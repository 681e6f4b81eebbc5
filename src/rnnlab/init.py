"""Parameter initialisation, always from an explicit random generator.

Shapes: D input features, H hidden units, G gates per cell (1 Elman, 4 LSTM, 3 GRU).
Weights are stored as ``W_x (D, G*H)`` and ``W_h (H, G*H)`` so a step is ``x @ W_x + h @ W_h``,
the notes' ``x_t W_x + s_{t-1} W_s``.
"""

from __future__ import annotations

import numpy as np

#: recurrent-weight schemes; input weights and biases are PyTorch-like uniform in all but "identity"
SCHEMES = ("uniform", "orthogonal", "identity")


def rng_from(seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, a Generator (used as is), or None (fresh)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return np.random.default_rng(seed)
    raise ValueError(f"seed must be an int, a numpy Generator or None, got {seed!r}")


def uniform(rng: np.random.Generator, shape, bound: float) -> np.ndarray:
    """Samples from U(-bound, bound), float64 (cast by the caller)."""
    return rng.uniform(-bound, bound, size=shape)


def orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random (n, n) orthogonal matrix, Haar-distributed (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def recurrent_params(
    rng: np.random.Generator,
    input_size: int,
    hidden_size: int,
    n_gates: int,
    *,
    scheme: str,
    recurrent_bias: bool,
) -> dict[str, np.ndarray]:
    """Initial ``W_x``, ``W_h``, ``b`` (and ``b_h`` for a recurrent bias) of one layer.

    ``"uniform"``: every entry from U(-1/sqrt(H), 1/sqrt(H)), as PyTorch's ``nn.RNN/LSTM/GRU``.
    ``"orthogonal"``: as uniform, but each gate's (H, H) block of ``W_h`` is a random orthogonal
    matrix (Saxe et al. 2014). ``"identity"``: the IRNN of Le, Jaitly & Hinton (2015) for a ReLU
    Elman layer: ``W_h = I``, biases 0, ``W_x`` from N(0, 0.001^2).
    """
    D, H, G = input_size, hidden_size, n_gates
    k = 1.0 / np.sqrt(H)
    if scheme == "identity":
        if G != 1:
            raise ValueError("init 'identity' (IRNN) is defined for the Elman cell only")
        p = {
            "W_x": rng.normal(0.0, 1e-3, size=(D, H)),
            "W_h": np.eye(H),
            "b": np.zeros(H),
        }
        if recurrent_bias:
            p["b_h"] = np.zeros(H)
        return p
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init {scheme!r}; expected one of {list(SCHEMES)}")
    p = {
        "W_x": uniform(rng, (D, G * H), k),
        "W_h": uniform(rng, (H, G * H), k),
        "b": uniform(rng, (G * H,), k),
    }
    if recurrent_bias:
        p["b_h"] = uniform(rng, (G * H,), k)
    if scheme == "orthogonal":
        p["W_h"] = np.concatenate([orthogonal(rng, H) for _ in range(G)], axis=1)
    return p
