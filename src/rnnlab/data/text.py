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
read_documents
    The same string and where each file (document) of a folder begins in it.
tokenize_words
    Split text into word, punctuation, space and line-break pieces that join back to it.
Vocab
    Token <-> id maps for characters or words, saved as JSON beside a model.
StreamBatcher
    Stream-aligned windows for truncated BPTT with the hidden state carried across them.
one_hot
    Integer ids to the dense one-hot inputs the recurrent layers take.

:func:`read_text` lives here; the tokens and vocabularies are in :mod:`rnnlab.data.vocab`,
the batching in :mod:`rnnlab.data.batching`. Every name above is importable from this
module as well.
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnlab.data.batching import StreamBatcher, one_hot
from rnnlab.data.vocab import UNK, Vocab, tokenize_words

__all__ = ["UNK", "StreamBatcher", "Vocab", "one_hot", "read_documents", "read_text",
           "tokenize_words"]


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
    return read_documents(path, separator=separator)[0]


def read_documents(path: str | os.PathLike, *, separator: str = "\n\n"):
    """:func:`read_text`, and the character offsets where its documents begin.

    Each file of a folder is a document; a single file is one. Returns ``(text, starts)``
    with ``starts`` a tuple of ints, ``starts[0] == 0``. A language model resets its state
    at these offsets (:meth:`rnnlab.data.batching.StreamBatcher.windows`).
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(
            (f for f in p.iterdir() if f.suffix == ".txt" and f.name[0] != "." and f.is_file()),
            key=lambda f: f.name,
        )
        if not files:
            raise ValueError(f"folder {p} holds no .txt files")
        docs = [_read_file(f).rstrip("\n") for f in files]
        starts, at = [], 0
        for d in docs:
            starts.append(at)
            at += len(d) + len(separator)
        return separator.join(docs) + "\n", tuple(starts)
    if p.is_file():
        return _read_file(p), (0,)
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
