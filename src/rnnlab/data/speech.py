"""Speech as sequences of frames: the JapaneseVowels utterances, and any folder of WAV files.

Shape legend: N utterances, T frames (the longest; shorter ones zero-padded, see lengths),
D features per frame.

Functions
---------
japanese_vowels
    Nine speakers saying /ae/: 12 LPC cepstra per frame, 270 train / 370 test utterances.
wav_folder
    A folder with one subfolder of WAV files per class, through :class:`~rnnlab.data.audio.
    FrontEnd` (MFCC or log-mel), standardised with training statistics.
prepare_wavs
    New WAV files as sequences, prepared exactly as a :func:`wav_folder` data set was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio import FrontEnd, read_wav
from .series import Dataset, masked_stats, pad, standardize, ucr

__all__ = ["japanese_vowels", "prepare_wavs", "wav_folder"]


def japanese_vowels(*, standardize_features: bool = True) -> Dataset:
    """JapaneseVowels (Kudo, Toyama and Shimbo 1999; UCI, in the UEA archive).

    Nine male speakers each uttered the vowels /ae/; every utterance is 7 to 29 frames of
    12 LPC cepstrum coefficients. The task is to name the speaker. Read from the ``.ts``
    files bundled with sktime or aeon.

    Parameters
    ----------
    standardize_features : bool
        Standardise each of the 12 coefficients with the mean and standard deviation over
        the real frames of the training split (saved in ``meta["preprocessing"]``).

    Returns
    -------
    Dataset
        The standard split, 270 train (30 per speaker) / 370 test (24 to 88 per speaker):
        ``X_*`` (N, 29, 12) float32 zero-padded after each utterance, ``lengths_*`` (N,)
        int64, ``y_*`` (N,) int64 in [0, 9): speaker ``y + 1``.
    """
    return ucr("JapaneseVowels", standardize_features=standardize_features)


def wav_folder(path, *, front_end: FrontEnd | None = None, test_fraction: float = 0.25,
               seed: int = 0, standardize_features: bool = True) -> Dataset:
    """Classify WAV files: one subfolder per class, each file an utterance.

    Layout ``path/<class>/*.wav``; classes are the subfolder names in sorted order. If
    ``path`` holds ``train/`` and ``test/`` folders, each laid out that way, they are the
    split; otherwise the split is stratified: within each class (sorted file names),
    ``round(test_fraction * n_class)`` files chosen with ``numpy.random.default_rng(seed)``
    are held out.

    Parameters
    ----------
    path : str or Path
    front_end : FrontEnd or None
        Feature settings; default ``FrontEnd()`` (16 kHz, 25 ms frames every 10 ms, 40 mel
        bands, 13 MFCC). Files at another sample rate are resampled.
    test_fraction : float
        Share of each class held out when there is no ``train/``/``test/`` split.
    seed : int
    standardize_features : bool
        Standardise each feature with the training split's mean and standard deviation over
        real frames.

    Returns
    -------
    Dataset
        ``X_*`` (N, T, D) float32 zero-padded, ``lengths_*`` (N,) int64 frames per file,
        ``y_*`` (N,) int64 indexing ``meta["classes"]``. ``meta`` also holds the front end's
        settings, the statistics, and ``files_train``/``files_test`` (paths relative to
        ``path``), so new recordings can be prepared identically.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"wav_folder: {str(root)!r} is not a directory")
    front_end = FrontEnd() if front_end is None else front_end
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = sorted(set(_class_dirs(root / "train")) | set(_class_dirs(root / "test")))
        train = _files(root / "train", classes)
        test = _files(root / "test", classes)
        split = "the folder's own train/ and test/"
    else:
        if (isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float)
                or not 0 < test_fraction < 1):
            raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
        classes = _class_dirs(root)
        every = _files(root, classes)
        rng = np.random.default_rng(seed)
        held = set()
        for c in range(len(classes)):
            members = [i for i, (_, y) in enumerate(every) if y == c]
            chosen = rng.permutation(len(members))[:round(test_fraction * len(members))]
            held.update(members[j] for j in chosen)
        train = [f for i, f in enumerate(every) if i not in held]
        test = [f for i, f in enumerate(every) if i in held]
        split = (f"stratified: round({test_fraction} x class size) files of each class held "
                 f"out, chosen with numpy.random.default_rng({seed})")
    if not train or not test:
        raise ValueError(f"wav_folder: {str(root)!r} gives an empty train or test split "
                         f"({len(train)} / {len(test)} files)")

    s_tr = [_features(f, front_end) for f, _ in train]
    s_te = [_features(f, front_end) for f, _ in test]
    steps = max(len(s) for s in s_tr + s_te)
    X_tr, len_tr = pad(s_tr, steps)
    X_te, len_te = pad(s_te, steps)
    prep: dict = {"front_end": front_end.config(), "standardize": standardize_features}
    if standardize_features:
        mean, std = masked_stats(X_tr, len_tr)
        X_tr, X_te = standardize(X_tr, len_tr, mean, std), standardize(X_te, len_te, mean, std)
        prep.update(mean=mean.tolist(), std=std.tolist())
    meta = {
        "name": f"wav:{root.name}", "task": "classification", "classes": classes,
        "split": f"{split}; {len(train)} train / {len(test)} test", "source": str(root),
        "preprocessing": prep,
        "files_train": [str(f.relative_to(root)) for f, _ in train],
        "files_test": [str(f.relative_to(root)) for f, _ in test],
    }
    y_tr = np.array([y for _, y in train], dtype=np.int64)
    y_te = np.array([y for _, y in test], dtype=np.int64)
    return Dataset(X_tr, y_tr, X_te, y_te, len_tr, len_te, meta)


def prepare_wavs(paths, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """WAV files as padded sequences, with the front end and statistics of a
    :func:`wav_folder` data set's ``meta`` (for inference on new recordings).

    Returns
    -------
    X : ndarray (N, T, D) float32
        T is the longest file's frame count here (not the training set's).
    lengths : ndarray (N,) int64
    """
    prep = meta["preprocessing"]
    front_end = FrontEnd(**prep["front_end"])
    X, lengths = pad([_features(Path(p), front_end) for p in paths])
    if prep["standardize"]:
        X = standardize(X, lengths, np.array(prep["mean"]), np.array(prep["std"]))
    return X, lengths


def _features(path: Path, front_end: FrontEnd) -> np.ndarray:
    signal, rate = read_wav(path)
    return front_end(signal, rate)  # (T_i, D)


def _class_dirs(root: Path) -> list[str]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and _wavs(d))
    if not classes:
        raise ValueError(f"wav_folder: no class folders with .wav files in {str(root)!r}")
    return classes


def _wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")


def _files(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) for every WAV in ``root/<class>/``, classes in order, names sorted."""
    return [(f, c) for c, name in enumerate(classes)
            if (root / name).is_dir() for f in _wavs(root / name)]
