"""What a fast forward keeps for its backward (its own module, so the kernels and the
package's front import it without importing each other)."""

from __future__ import annotations

from typing import NamedTuple


class Tape(NamedTuple):
    """What a fast forward keeps for its backward: the ``saved`` of its LayerCache.

    The plain path's ``saved`` is a list over steps; a ``Tape`` marks a cache made by a
    kernel, so backward takes the path that forward took.
    """

    kernel: str  # the kernel id: "elman", "lstm" or "gru"
    arrays: tuple  # the cell's arrays over time, see rnnlab.kernels.layers
    bf16: bool = False  # the forward's products ran in bf16: so do the backward's
