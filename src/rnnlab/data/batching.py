"""Batches for truncated BPTT: stream-aligned windows of token ids, and one-hot inputs.

Shape legend: N tokens in the whole stream, B batch (parallel streams), T time steps per
window (``bptt``), L steps per stream, V vocabulary size.

Functions and classes
---------------------
StreamBatcher
    Stream-aligned windows for truncated BPTT with the hidden state carried across them.
one_hot
    Integer ids to the dense one-hot inputs the recurrent layers take.

The pipeline from a file to the network's inputs is in :mod:`rnnlab.data.text`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rnnlab import checks

__all__ = ["StreamBatcher", "one_hot"]


class StreamBatcher:
    """Cut a token stream into B parallel streams and walk them in windows of T steps.

    The stream of N ids is cut into B contiguous pieces of L = (N - 1) // B steps each
    (one id more is needed for the last target). Window k holds steps ``[kT, (k+1)T)`` of
    every piece, so row b of window k+1 continues row b of window k: a hidden state carried
    from one window to the next keeps reading each piece in order (char-rnn style). Reset
    the state at the start of every epoch, when the pieces start over.

    Parameters
    ----------
    ids : array_like of int, shape (N,)
        The token stream, e.g. from :meth:`rnnlab.data.vocab.Vocab.encode`. It is not
        copied; do not change it while batching.
    batch_size : int
        B, the number of parallel streams.
    bptt : int
        T, the number of time steps per window (the truncation length of BPTT).
    seed : int, optional
        None (the default) starts every epoch at step 0 of each piece. An integer starts
        epoch e at an offset drawn from ``default_rng([seed, e])`` in ``[0, L - W*T]``, so
        that window boundaries, and the dropped tail, move between epochs; the number of
        windows per epoch does not change.
    starts : array_like of int, optional
        Positions in the stream where a document begins (e.g. each file of a folder):
        :meth:`windows` marks them, so that a model resets its state there instead of
        carrying one document's memory into the next.

    Attributes
    ----------
    stream_length : int
        L, the steps in each of the B pieces.
    epoch : int
        The epoch the next window belongs to (from 0).
    window : int
        The index, within that epoch, of the next window.

    Notes
    -----
    An epoch has W = L // T windows, ``len(self)``. The tail of every piece beyond W*T
    steps (fewer than T steps, counting the offset) and the last (N - 1) % B ids of the
    stream are not used in that epoch, so every window has the full shape (B, T).

    Iterating (``for x, y in batcher``) yields the rest of the current epoch, from the
    current position, and moves the position as it yields: after the last window of an
    epoch the position is window 0 of the next. :meth:`state_dict` saved after training on
    a window therefore resumes at the window after it. :meth:`windows` does the same and
    adds each window's document starts.
    """

    def __init__(self, ids, batch_size: int, bptt: int, *, seed: int | None = None,
                 starts=None):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError(
                f"ids must be a 1-D array of integers, got shape {ids.shape} dtype {ids.dtype}"
            )
        self.batch_size = checks.positive_int(batch_size, "batch_size")
        self.bptt = checks.positive_int(bptt, "bptt")
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        n = len(ids)
        if n < self.batch_size * self.bptt + 1:
            raise ValueError(
                f"a stream of {n} tokens is too short for batch_size {self.batch_size} and "
                f"bptt {self.bptt}: it needs at least batch_size * bptt + 1 = "
                f"{self.batch_size * self.bptt + 1} tokens"
            )
        self.stream_length = (n - 1) // self.batch_size
        used = self.batch_size * self.stream_length
        # Row b of the inputs is piece b; the targets are the same rows shifted by one id,
        # whose last entry is the first id of the next piece (or the id after the last).
        self._x = ids[:used].reshape(self.batch_size, self.stream_length)  # (B, L)
        self._y = ids[1 : used + 1].reshape(self.batch_size, self.stream_length)  # (B, L)
        self._num_tokens = n
        self._starts = None  # (B, L) True where a document begins, or None
        if starts is not None:
            at = np.asarray(starts)
            if at.ndim != 1 or (at.size and at.dtype.kind not in "iu"):
                raise ValueError(f"starts must be a 1-D array of token positions, got shape "
                                 f"{at.shape} dtype {at.dtype}")
            if at.size and (at.min() < 0 or at.max() >= n):
                raise ValueError(f"starts must be positions in [0, {n}), got {int(at.min())} "
                                 f"to {int(at.max())}")
            begins = np.zeros(n, bool)
            begins[at] = True
            begins[0] = False  # nothing comes before the stream's first token
            if begins.any():
                self._starts = begins[:used].reshape(self.batch_size, self.stream_length)
        self.epoch = 0
        self.window = 0

    def __len__(self) -> int:
        return self.stream_length // self.bptt

    def offset(self, epoch: int) -> int:
        """The step at which every piece starts in `epoch` (0 without a seed)."""
        slack = self.stream_length - len(self) * self.bptt
        if self.seed is None or slack == 0:
            return 0
        return int(np.random.default_rng([self.seed, epoch]).integers(0, slack + 1))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y, _ in self.windows():
            yield x, y

    def windows(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """As iterating, with a third array per window: ``reset`` (B, T) of bool, True
        where a document begins at ``x[b, t]`` (see ``starts``), or None when none does
        in that window. Pass it to the model as ``reset=`` (:meth:`rnnlab.Network.forward`).
        """
        epoch, start = self.epoch, self.window
        offset = self.offset(epoch)
        num_windows = len(self)
        for k in range(start, num_windows):
            t0 = offset + k * self.bptt
            x = self._x[:, t0 : t0 + self.bptt].copy()  # (B, T)
            y = self._y[:, t0 : t0 + self.bptt].copy()  # (B, T)
            reset = None
            if self._starts is not None:
                reset = self._starts[:, t0 : t0 + self.bptt]
                reset = reset.copy() if reset.any() else None
            if k + 1 == num_windows:
                self.epoch, self.window = epoch + 1, 0
            else:
                self.window = k + 1
            yield x, y, reset

    def state_dict(self) -> dict:
        """The position in the data, and the settings it is valid for, as plain ints.

        Returns
        -------
        dict
            ``epoch``, ``window``, ``num_tokens``, ``batch_size``, ``bptt``, ``seed``; JSON
            serialisable, to store in a checkpoint.
        """
        return {
            "epoch": self.epoch,
            "window": self.window,
            "num_tokens": self._num_tokens,
            "batch_size": self.batch_size,
            "bptt": self.bptt,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume at the position saved by :meth:`state_dict`.

        Parameters
        ----------
        state : dict

        Raises
        ------
        ValueError
            If a key is missing, the state was saved for a different stream length,
            batch size, bptt or seed, or the position is out of range.
        """
        keys = ("epoch", "window", "num_tokens", "batch_size", "bptt", "seed")
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"batcher state lacks {missing}")
        current = self.state_dict()
        for k in ("num_tokens", "batch_size", "bptt", "seed"):
            if state[k] != current[k]:
                raise ValueError(
                    f"batcher state was saved with {k}={state[k]!r}, "
                    f"but this batcher has {k}={current[k]!r}"
                )
        epoch, window = state["epoch"], state["window"]
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"batcher state epoch must be a non-negative integer, got {epoch!r}")
        if not _is_int(window) or not 0 <= window < len(self):
            raise ValueError(
                f"batcher state window must be an integer in [0, {len(self)}), got {window!r}"
            )
        self.epoch, self.window = int(epoch), int(window)


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def one_hot(ids, vocab_size: int, dtype=np.float32) -> np.ndarray:
    """One-hot vectors of integer ids: the dense input of the recurrent layers.

    Parameters
    ----------
    ids : array_like of int, shape (B, T) or any shape S
    vocab_size : int
        V, the length of each vector.
    dtype : {np.float32, np.float64}, optional

    Returns
    -------
    ndarray, shape (B, T, V) (in general S + (V,))

    Raises
    ------
    ValueError
        If `ids` are not integers in ``[0, V)`` or the dtype is not float32/float64.

    Notes
    -----
    The layers take dense inputs (B, T, D), and also the ids themselves, an integer
    array (B, T): the same as their one-hot vectors, computed as the row gather
    ``W_x[ids]`` instead of the product ``one_hot(ids) @ W_x``, with the rows of the
    gradient added up per id on the way back (see :meth:`rnnlab.LSTM.forward`). The
    language model passes ids; this function serves the step-by-step paths and users.
    """
    vocab_size = checks.positive_int(vocab_size, "vocab_size")
    dtype = checks.float_dtype(dtype)
    a = np.asarray(ids)
    if a.size and a.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {a.dtype}")
    bad = (a < 0) | (a >= vocab_size)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"ids must be in [0, {vocab_size}), got {int(a[at])} at index {at}")
    out = np.zeros(a.shape + (vocab_size,), dtype=dtype)  # (B, T, V)
    np.put_along_axis(out, a[..., None].astype(np.intp), 1, axis=-1)
    return out
