"""Text for language models: read files, map tokens to ids, cut a stream into BPTT windows.

Shape legend: N tokens in the whole stream, B batch (parallel streams), T time steps per
window (``bptt``), V vocabulary size.

The pipeline from a file to the network's inputs and back::

    text = read_text("plays/")                        # str, line endings normalised
    vocab = Vocab.build(text)                         # characters (or tokens="word")
    ids = vocab.encode(text)                          # (N,) int32
    batches = StreamBatcher(ids, batch_size=32, bptt=100)
    for x, y in batches:                              # x, y (B, T) int32; y = next token
        inputs = one_hot(x, len(vocab))               # (B, T, V) float32 for the network
    vocab.decode(ids[:200])                           # back to text

Functions and classes
---------------------
read_text
    A UTF-8 file or a folder of ``.txt`` files as one string, with clear errors.
tokenize_words
    Split text into word, punctuation, space and line-break pieces that join back to it.
Vocab
    Token <-> id maps for characters or words, saved as JSON beside a model.
StreamBatcher
    Stream-aligned windows for truncated BPTT with the hidden state carried across them.
one_hot
    Integer ids to the dense one-hot inputs the recurrent layers take.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rnnlab import checks

__all__ = ["UNK", "StreamBatcher", "Vocab", "one_hot", "read_text", "tokenize_words"]

UNK = "<unk>"
"""The out-of-vocabulary token of a word vocabulary."""

# ---------------------------------------------------------------------------------------
# Reading text


def read_text(path: str | os.PathLike, *, separator: str = "\n\n") -> str:
    """Read a UTF-8 text file, or every ``.txt`` file of a folder, as one string.

    Line endings become ``\\n`` and a leading byte-order mark is dropped, so that text
    written on any system gives the same characters.

    Parameters
    ----------
    path : str or os.PathLike
        A file (of any name), or a folder whose ``*.txt`` files are read in the order of
        their names; sub-folders and hidden files are not read.
    separator : str, optional
        Put between the files of a folder, after each file's own trailing line breaks are
        removed: by default one blank line. The result then ends with one line break.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If the path does not exist, a folder holds no ``.txt`` file, or a file is empty
        (or only whitespace), unreadable, binary (a NUL byte: its offset is named) or not
        UTF-8 (the first bad byte and its offset are named).
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(
            (f for f in p.iterdir() if f.suffix == ".txt" and f.name[0] != "." and f.is_file()),
            key=lambda f: f.name,
        )
        if not files:
            raise ValueError(f"folder {p} holds no .txt files")
        return separator.join(_read_file(f).rstrip("\n") for f in files) + "\n"
    if p.is_file():
        return _read_file(p)
    if p.exists():
        raise ValueError(f"{p} is neither a file nor a folder")
    raise ValueError(f"no such file or folder: {p}")


def _read_file(f: Path) -> str:
    try:
        data = f.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {f}: {e.strerror}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{f} is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError(f"{f} looks binary, not text: NUL byte at offset {nul}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{f} is not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} ({e.reason})"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"{f} is empty" if not text else f"{f} holds only whitespace")
    return text


# ---------------------------------------------------------------------------------------
# Tokens and vocabularies

# Word pieces in the style of GPT-2's pre-tokeniser: a word or a punctuation mark carries
# the one space before it, so joining the pieces gives the text back exactly and sampled
# word sequences detokenise without guessing where spaces go. Every character is matched
# by some branch, which the tests check.
_WORD_PIECES = re.compile(
    r"""
      \n                        # a line break, its own token: lines survive decoding
    | \ ?[^\W_]+(?:'[^\W_]+)*   # a word with its space; inner apostrophes stay (reliev'd)
    | \ ?(?:[^\w\s]|_)          # one punctuation mark with its space
    | [^\S\n]+?(?=\ \S)         # extra spaces before a word: all but the one it carries
    | [^\S\n]+                  # other runs of spaces and tabs (indentation, line ends)
    """,
    re.VERBOSE,
)


def tokenize_words(text: str) -> list[str]:
    """Split `text` into the pieces a word vocabulary counts.

    Pieces are words (letters and digits, with inner apostrophes as in ``o'er``), single
    punctuation marks, line breaks, and runs of other whitespace. A word or punctuation
    mark keeps the single space before it (``" the"``), so ``"".join(pieces) == text``.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
    """
    return _WORD_PIECES.findall(text)


_KINDS = ("char", "word")
# Ids reserved at the front of every vocabulary for what it does not know. A character
# vocabulary decodes its unknown id as U+FFFD, the Unicode replacement character, so one
# character stays one character; a word vocabulary keeps apart an unknown word that had
# a space before it, so decoding puts the space back.
_RESERVED = {"char": ("\ufffd",), "word": (UNK, " " + UNK)}
_JSON_FORMAT = "rnnlab-vocab"
_JSON_VERSION = 1


class Vocab:
    """Maps between tokens (characters or word pieces) and integer ids.

    Build one from training text with :meth:`build`; save it beside a model with
    :meth:`to_json` and read it back with :meth:`from_json`.

    Parameters
    ----------
    itos : sequence of str
        The token of each id, reserved tokens first (see Notes).
    tokens : {"char", "word"}
        What a token is: one character, or a piece from :func:`tokenize_words`.

    Attributes
    ----------
    itos : tuple of str
        The token of each id.
    tokens : str
        ``"char"`` or ``"word"``.
    unk_id : int
        The id that unknown tokens map to when encoding with ``unk=True``: 0.

    Notes
    -----
    Id 0 is reserved for unknown tokens, and a word vocabulary also reserves id 1:

    * characters: id 0 decodes to ``"\\ufffd"`` (the replacement character; the character
      itself, if it occurs in text, maps to id 0 too);
    * words: id 0 is ``"<unk>"`` and id 1 is ``" <unk>"``, the unknown word that had a space
      before it.

    The reserved ids never occur in the training text (unless a cut-off maps rare tokens
    there), so a model learns to give them low probability; evaluating on other text with
    ``encode(text, unk=True)`` then charges unknown tokens that low probability, honestly.

    Characters are stored in code-point order; word pieces by falling frequency, ties in
    code-point order, so both are the same for the same text on any machine.
    """

    unk_id = 0

    def __init__(self, itos: Sequence[str], *, tokens: str = "char"):
        self.tokens = checks.choice(tokens, "tokens", _KINDS)
        self.itos = tuple(itos)
        self._stoi = {s: i for i, s in enumerate(self.itos)}
        if self.tokens == "char":
            # Code point -> id lookup table: encoding millions of characters is then one
            # vectorised gather instead of a Python loop.
            self._codes = np.array([ord(c) for c in self.itos], dtype=np.uint32)
            self._table = np.full(int(self._codes.max()) + 1, -1, dtype=np.int32)
            self._table[self._codes] = np.arange(len(self.itos), dtype=np.int32)

    @classmethod
    def build(
        cls,
        text: str,
        *,
        tokens: str = "char",
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Build the vocabulary of `text`.

        Parameters
        ----------
        text : str
            Training text.
        tokens : {"char", "word"}, optional
            Characters (the default) or word pieces from :func:`tokenize_words`.
        min_count : int, optional
            Keep only tokens seen at least this often; the rest map to the unknown id, so
            with a cut-off (here or `max_size`) the training text itself is encoded with
            ``encode(text, unk=True)``.
        max_size : int, optional
            Keep at most this many ids in all, the reserved ones included: the most frequent
            tokens win. With words, a cap of some thousands keeps the softmax affordable on
            a CPU. None keeps every token that passes `min_count`.

        Returns
        -------
        Vocab

        Raises
        ------
        ValueError
            If `text` is empty, `tokens` is unknown, or a limit is not a positive integer
            (`max_size` must also leave room for one token beyond the reserved ones).
        """
        tokens = checks.choice(tokens, "tokens", _KINDS)
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str, got {text!r:.40}")
        min_count = checks.positive_int(min_count, "min_count")
        reserved = _RESERVED[tokens]
        if max_size is not None:
            max_size = checks.positive_int(max_size, "max_size")
            if max_size <= len(reserved):
                raise ValueError(
                    f"max_size must exceed the {len(reserved)} reserved id(s) of a {tokens} "
                    f"vocabulary, got {max_size}"
                )
        if tokens == "char":
            # Counting code points with bincount (at most 0x110000 bins) takes milliseconds
            # where Counter(text) takes most of a second on a few million characters.
            n = np.bincount(np.frombuffer(text.encode("utf-32-le"), dtype="<u4"))
            counts = {chr(c): int(n[c]) for c in np.flatnonzero(n)}
        else:
            counts = Counter(tokenize_words(text))
        for r in reserved:
            counts.pop(r, None)
        kept = sorted(
            (t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max_size - len(reserved)]
        if tokens == "char":
            kept.sort()
        return cls(reserved + tuple(kept), tokens=tokens)

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self.tokens == other.tokens and self.itos == other.itos

    def __hash__(self) -> int:
        return hash((self.tokens, self.itos))

    def __repr__(self) -> str:
        return f"Vocab(tokens={self.tokens!r}, size={len(self)})"

    def encode(self, text: str, *, unk: bool = False) -> np.ndarray:
        """Token ids of `text`.

        Parameters
        ----------
        text : str
        unk : bool, optional
            False (the default) refuses text with tokens outside the vocabulary, as a prime
            text for sampling must be refused. True maps them to the reserved unknown id
            (see the class Notes), for evaluating on other text.

        Returns
        -------
        ndarray of int32, shape (N,)

        Raises
        ------
        ValueError
            If `unk` is False and `text` holds unknown tokens: the first few are named with
            their character positions in `text`.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        if self.tokens == "char":
            codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
            ids = np.full(codes.shape, -1, dtype=np.int32)
            inside = codes < len(self._table)
            ids[inside] = self._table[codes[inside]]
            unknown = np.flatnonzero(ids < 0)
            if unknown.size and not unk:
                found = [text[i] for i in unknown.tolist()]
                raise ValueError(_unknown_message(found, unknown.tolist(), "character"))
            ids[unknown] = self.unk_id
            return ids
        pieces = tokenize_words(text)
        ids = np.fromiter((self._stoi.get(p, -1) for p in pieces), np.int32, len(pieces))
        unknown = np.flatnonzero(ids < 0)
        if unknown.size and not unk:
            # The pieces join back to the text, so a piece's offset is the sum of the lengths
            # of the pieces before it.
            starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])[unknown].tolist()
            found = [pieces[i] for i in unknown.tolist()]
            raise ValueError(_unknown_message(found, starts, "token"))
        for i in unknown:
            ids[i] = self.unk_id + pieces[i].startswith(" ")
        return ids

    def decode(self, ids) -> str:
        """The text of a sequence of ids.

        Parameters
        ----------
        ids : array_like of int, shape (N,)

        Returns
        -------
        str

        Raises
        ------
        ValueError
            If `ids` is not a 1-D sequence of integers in ``[0, len(self))``.
        """
        a = np.asarray(ids)
        if a.size == 0:
            return ""
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(
                f"ids must be a 1-D sequence of integers, got shape {a.shape} dtype {a.dtype}"
            )
        bad = (a < 0) | (a >= len(self))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"ids must be in [0, {len(self)}), the vocabulary size; got {int(a[i])} "
                f"at index {i}"
            )
        if self.tokens == "char":
            return self._codes[a].astype("<u4").tobytes().decode("utf-32-le")
        itos = self.itos
        return "".join([itos[i] for i in a.tolist()])

    def to_json(self) -> str:
        """The vocabulary as a JSON document, to save beside a model (no pickle).

        Returns
        -------
        str
            An object with ``format``, ``version``, ``tokens`` and ``itos`` (the token of each
            id, reserved ones included). Non-ASCII characters are escaped, so the text is
            ASCII and any file encoding reads it.
        """
        return json.dumps(
            {
                "format": _JSON_FORMAT,
                "version": _JSON_VERSION,
                "tokens": self.tokens,
                "itos": list(self.itos),
            }
        )

    @classmethod
    def from_json(cls, document: str) -> Vocab:
        """Read a vocabulary written by :meth:`to_json`.

        Parameters
        ----------
        document : str

        Returns
        -------
        Vocab

        Raises
        ------
        ValueError
            If the document is not valid JSON, not an rnnlab vocabulary, from an unknown
            version, or inconsistent (reserved tokens missing, duplicates, a character
            vocabulary with multi-character entries).
        """
        try:
            d = json.loads(document)
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"vocabulary is not valid JSON: {e}") from None
        if not isinstance(d, dict) or d.get("format") != _JSON_FORMAT:
            raise ValueError(f"not an rnnlab vocabulary: expected format {_JSON_FORMAT!r}")
        if d.get("version") != _JSON_VERSION:
            raise ValueError(
                f"vocabulary version {d.get('version')!r} is not supported; "
                f"this rnnlab reads version {_JSON_VERSION}"
            )
        tokens = d.get("tokens")
        if tokens not in _KINDS:
            raise ValueError(f"vocabulary has unknown tokens {tokens!r}; expected one of {_KINDS}")
        itos = d.get("itos")
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError("vocabulary itos must be a list of strings")
        reserved = _RESERVED[tokens]
        if tuple(itos[: len(reserved)]) != reserved or len(itos) == len(reserved):
            raise ValueError(
                f"vocabulary itos must start with the reserved {list(reserved)} "
                "and hold at least one more token"
            )
        if len(set(itos)) != len(itos):
            dup = next(t for i, t in enumerate(itos) if t in itos[:i])
            raise ValueError(f"vocabulary itos repeats the token {dup!r}")
        if tokens == "char" and any(len(t) != 1 for t in itos):
            bad = next(t for t in itos if len(t) != 1)
            raise ValueError(f"character vocabulary holds {bad!r}, which is not one character")
        return cls(itos, tokens=tokens)


def _unknown_message(found: list[str], positions: list[int], what: str) -> str:
    """One line naming the first three distinct unknown tokens and where each first occurs."""
    first: dict[str, int] = {}
    for token, pos in zip(found, positions, strict=True):
        first.setdefault(token, pos)
    named = ", ".join(f"{t!r} at position {pos}" for t, pos in list(first.items())[:3])
    more = f" (and {len(first) - 3} more distinct)" if len(first) > 3 else ""
    plural = "" if len(found) == 1 else "s"
    return f"text has {len(found)} {what}{plural} outside the vocabulary: {named}{more}"


# ---------------------------------------------------------------------------------------
# Batching for truncated BPTT


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
        The token stream, e.g. from :meth:`Vocab.encode`. It is not copied; do not change
        it while batching.
    batch_size : int
        B, the number of parallel streams.
    bptt : int
        T, the number of time steps per window (the truncation length of BPTT).
    seed : int, optional
        None (the default) starts every epoch at step 0 of each piece. An integer starts
        epoch e at an offset drawn from ``default_rng([seed, e])`` in ``[0, L - W*T]``, so
        that window boundaries, and the dropped tail, move between epochs; the number of
        windows per epoch does not change.

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
    a window therefore resumes at the window after it.
    """

    def __init__(self, ids, batch_size: int, bptt: int, *, seed: int | None = None):
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
        epoch, start = self.epoch, self.window
        offset = self.offset(epoch)
        num_windows = len(self)
        for k in range(start, num_windows):
            t0 = offset + k * self.bptt
            x = self._x[:, t0 : t0 + self.bptt].copy()  # (B, T)
            y = self._y[:, t0 : t0 + self.bptt].copy()  # (B, T)
            if k + 1 == num_windows:
                self.epoch, self.window = epoch + 1, 0
            else:
                self.window = k + 1
            yield x, y

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
    The layers take dense inputs (B, T, D) and have no embedding table, so one-hot
    vectors are how tokens enter. Their input projection ``one_hot(ids) @ W_x`` equals the
    row gather ``W_x[ids]``: a future fast path can skip both the (B, T, V) array and the
    GEMM, and add rows of ``dx`` into ``dW_x`` by id (``np.add.at``) on the way back.
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
