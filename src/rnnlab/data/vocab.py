"""Tokens and vocabularies: split text into word pieces, map tokens to integer ids and back.

Shape legend: N tokens.

Functions and classes
---------------------
tokenize_words
    Split text into word, punctuation, space and line-break pieces that join back to it.
Vocab
    Token <-> id maps for characters or words, saved as JSON beside a model.
UNK
    The out-of-vocabulary token of a word vocabulary.

The pipeline from a file to the network's inputs is in :mod:`rnnlab.data.text`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rnnlab import checks

__all__ = ["UNK", "Vocab", "tokenize_words"]

UNK = "<unk>"
"""The out-of-vocabulary token of a word vocabulary."""


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
        if not isinstance(document, str):
            raise ValueError(f"vocabulary must be a JSON str, got {type(document).__name__}")
        try:
            d = json.loads(document)
        except RecursionError:
            raise ValueError("vocabulary is not valid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError, or a number of too many digits
            raise ValueError(f"vocabulary is not valid JSON: {str(e)[:120]}") from None
        if not isinstance(d, dict) or d.get("format") != _JSON_FORMAT:
            raise ValueError(f"not an rnnlab vocabulary: expected format {_JSON_FORMAT!r}")
        if type(d.get("version")) is not int or d["version"] != _JSON_VERSION:
            raise ValueError(
                f"vocabulary version {d.get('version')!r:.40} is not supported; "
                f"this rnnlab reads version {_JSON_VERSION}"
            )
        tokens = d.get("tokens")
        if not isinstance(tokens, str) or tokens not in _KINDS:
            raise ValueError(
                f"vocabulary has unknown tokens {tokens!r:.40}; expected one of {_KINDS}")
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
            seen: set = set()  # one pass: a scan of itos[:i] per token is quadratic
            dup = next(t for t in itos if t in seen or seen.add(t))
            raise ValueError(f"vocabulary itos repeats the token {dup!r:.40}")
        if tokens == "char" and any(len(t) != 1 for t in itos):
            bad = next(t for t in itos if len(t) != 1)
            raise ValueError(
                f"character vocabulary holds {bad!r:.40}, which is not one character")
        if tokens == "char" and any("\ud800" <= t <= "\udfff" for t in itos):
            raise ValueError("character vocabulary holds a lone surrogate, not a character")
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
