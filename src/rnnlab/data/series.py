"""Time series that install offline: UCR/UEA classification sets and the yearly sunspot numbers.

Shape legend: N sequences, T steps (the longest, others zero-padded), D features per step,
K forecast horizon.

Every loader here and in :mod:`rnnlab.data.images` and :mod:`rnnlab.data.speech` returns a
:class:`Dataset`: batch-first float32 inputs ``(N, T, D)``, int64 class labels ``(N,)`` (or
float32 targets ``(N, K)`` for forecasting), lengths when sequences vary, and a JSON-ready
``meta`` dict with the split and the preprocessing statistics that inference needs.

Sources are data files that Python packages ship, read directly (never through a loader that
might download):

* UCR/UEA sets (GunPoint, JapaneseVowels, ArrowHead, ...) in ``.ts`` format, bundled with
  ``sktime`` or ``aeon`` under ``<package>/datasets/data/<name>/``;
* sunspots, yearly 1700-2008, bundled with ``statsmodels``.

A missing source raises ``ValueError`` with one line saying how to install it.

Functions
---------
ucr
    A UCR/UEA classification set with its standard train/test split: bundled by name, or
    from a folder holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``.
ucr_names
    The classification sets bundled with the installed sktime or aeon.
gunpoint
    The GunPoint set (UCR): 50 train / 150 test series of 150 steps, 2 classes.
read_ts
    Parse a ``.ts`` file into variable-length sequences and labels.
patches
    Read P consecutive steps as one: (N, T, D) -> (N, ceil(T / P), P * D).
sunspot_numbers
    The raw yearly series (years, values).
sunspots
    Forecasting windows over the sunspot series, the last 40 years held out.
unscale
    Map standardised forecasts back to sunspot numbers.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_EXTRA",
    "Dataset",
    "gunpoint",
    "patches",
    "read_ts",
    "sunspot_numbers",
    "sunspots",
    "ucr",
    "ucr_names",
    "unscale",
]

DATA_EXTRA = "pip install 'rnnlab[data]'"
"""The one install line every missing-source message names."""

# sktime first: aeon pins numba<0.64, which holds NumPy below 2.4; both ship the same files.
_TS_PACKAGES = ("sktime", "aeon")
_PIP_NAMES = {"sklearn": "scikit-learn"}  # import name -> distribution name


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A fixed train/test split of sequences, batch-first, ready for :class:`rnnlab.Network`.

    Attributes
    ----------
    X_train : ndarray (N, T, D) float32
        Inputs after the preprocessing recorded in ``meta``; steps at or past a sequence's
        length are zeros.
    y_train : ndarray
        Classification: int64 labels (N,) in ``[0, len(meta["classes"]))``.
        Forecasting: float32 targets (N, K) in the same scaled units as the inputs.
    X_test, y_test : ndarray
        The held-out split, as above (T may differ from the training split's only where
        stated by the loader).
    lengths_train, lengths_test : ndarray (N,) int64 or None
        Real steps per sequence; None when every sequence of both splits has T steps.
    meta : dict
        JSON-serialisable (str, int, float, lists): ``name``, ``task`` ("classification" or
        "forecasting"), ``classes`` (class names, in label order) or the horizon, ``split``
        (how the split was made) and ``preprocessing`` (what was applied, with the statistics
        computed on the training split, so new data can be prepared the same way).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    lengths_train: np.ndarray | None = None
    lengths_test: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        """D, features per step."""
        return int(self.X_train.shape[2])

    @property
    def output_size(self) -> int:
        """K: classes for classification, forecast steps for forecasting."""
        if self.y_train.ndim == 1:
            return len(self.meta["classes"])
        return int(self.y_train.shape[1])

    def head(self, n_train: int, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` training and ``n_test`` test sequences (a small slice for
        smoke tests); ``meta`` is shared, so the preprocessing is still the full split's."""

        def cut(a, n):
            return None if a is None else a[:n]

        n_test = n_train if n_test is None else n_test
        return Dataset(self.X_train[:n_train], self.y_train[:n_train], self.X_test[:n_test],
                       self.y_test[:n_test], cut(self.lengths_train, n_train),
                       cut(self.lengths_test, n_test), self.meta)

    def __repr__(self) -> str:
        def shape(a):
            return None if a is None else tuple(a.shape)

        return (f"Dataset({self.meta.get('name', '?')!r}, X_train={shape(self.X_train)}, "
                f"X_test={shape(self.X_test)}, y_train={shape(self.y_train)}, "
                f"lengths={'yes' if self.lengths_train is not None else 'fixed'})")


# ----------------------------------------------------------------------------------------
# locating the files that packages ship
# ----------------------------------------------------------------------------------------


def package_dir(package: str) -> Path | None:
    """The installed directory of ``package``, found without importing it (or None)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(packages: tuple[str, ...], relative: str, what: str) -> Path:
    """The first existing ``<package>/<relative>`` among ``packages``; else a one-line
    ValueError saying how to install the data."""
    for name in packages:
        root = package_dir(name)
        if root is not None and (root / relative).is_file():
            return root / relative
    names = " or ".join(_PIP_NAMES.get(p, p) for p in packages)
    raise ValueError(f"{what} is bundled with {names}, which is not installed here: "
                     f"{DATA_EXTRA} (or pip install {_PIP_NAMES.get(packages[0], packages[0])})")


# ----------------------------------------------------------------------------------------
# UCR/UEA .ts files
# ----------------------------------------------------------------------------------------


def read_ts(path) -> tuple[list[np.ndarray], list[str], dict]:
    """Parse a UCR/UEA ``.ts`` file (sktime format, no timestamps, one class label per case).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    series : list of ndarray (T_i, D) float64
        One per case; T_i may vary between cases.
    labels : list of str
        The class label of each case, as written in the file.
    header : dict
        The ``@`` header (``problemname``, ``classlabel`` as a list of the declared class
        names, ``dimensions``, ...), keys lower-cased.
    """
    series, labels, header = [], [], {}
    in_data = False
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                elif key == "classlabel":
                    flag, *names = value.split()
                    header[key] = names if flag.lower() == "true" else []
                elif key == "timestamps" and value.strip().lower() == "true":
                    raise ValueError(f"{path}: .ts files with timestamps are not supported")
                else:
                    header[key] = value.strip()
                continue
            *dims, label = line.split(":")
            if "?" in line:
                raise ValueError(f"{path}, line {number}: missing values are not supported")
            try:
                case = [np.array(d.split(","), dtype=np.float64) for d in dims]
            except ValueError:
                raise ValueError(f"{path}, line {number}: expected comma-separated numbers "
                                 f"in every dimension") from None
            if len({len(c) for c in case}) != 1:
                raise ValueError(f"{path}, line {number}: dimensions of unequal length")
            if not all(np.isfinite(c).all() for c in case):
                raise ValueError(f"{path}, line {number}: missing values are not supported")
            series.append(np.stack(case, axis=1))  # (T_i, D)
            labels.append(label.strip())
    if not series:
        raise ValueError(f"{path}: no cases after @data")
    return series, labels, header


def pad(series: list[np.ndarray], steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length ``(T_i, D)`` arrays into zero-padded ``(N, T, D)`` float32 and
    int64 lengths ``(N,)``; ``T`` is ``steps`` or the longest."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    T = int(lengths.max()) if steps is None else steps
    X = np.zeros((len(series), T, series[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(series):
        X[i, :len(s)] = s
    return X, lengths


def masked_stats(X: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (D,) over the real steps of ``X`` (N, T, D),
    in float64; a constant feature gets std 1 so standardising leaves it at zero."""
    if lengths is None:
        flat = X.reshape(-1, X.shape[2]).astype(np.float64)
    else:
        real = np.arange(X.shape[1])[None, :] < lengths[:, None]  # (N, T)
        flat = X[real].astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def standardize(X, lengths, mean, std) -> np.ndarray:
    """``(X - mean) / std`` on real steps, padding kept at zero; float32 (N, T, D)."""
    Z = ((X - mean) / std).astype(np.float32)
    if lengths is not None:
        Z[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return Z


def patches(X: np.ndarray, lengths: np.ndarray | None, P: int
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``P`` consecutive steps as one step of ``P * D`` features.

    Parameters
    ----------
    X : ndarray (N, T, D)
        Steps at or past a sequence's length are zeros.
    lengths : ndarray (N,) int or None
    P : int, at least 1

    Returns
    -------
    X : ndarray (N, ceil(T / P), P * D) float32
        Step ``t`` holds the original steps ``t * P`` to ``t * P + P - 1`` in order, each
        one's D features together (feature ``p * D + d`` is step ``t * P + p``'s feature
        ``d``); steps past ``T`` are zeros.
    lengths : ndarray (N,) int64 or None
        ``ceil(length / P)``: a patch holding at least one real step is real.
    """
    if isinstance(P, bool) or not isinstance(P, int | np.integer) or P < 1:
        raise ValueError(f"patch must be a positive integer (steps per patch), got {P!r}")
    P = int(P)
    N, T, D = X.shape
    steps = -(-T // P)
    Z = np.zeros((N, steps * P, D), dtype=np.float32)
    Z[:, :T] = X
    Z = Z.reshape(N, steps, P * D)  # (N, T/P, P*D): step-major inside a patch
    if lengths is None:
        return Z, None
    return Z, -(-np.asarray(lengths, dtype=np.int64) // P)


def _has_class_labels(path: Path) -> bool:
    """Whether the ``.ts`` file's header declares class labels (``@classLabel true ...``);
    regression sets declare ``@targetLabel`` instead."""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip().lower()
            if line.startswith("@data"):
                return False
            if line.startswith("@classlabel"):
                return line.split()[1:2] == ["true"]
    return False


def ucr_names() -> list[str]:
    """The UCR/UEA classification sets bundled with the installed sktime (or aeon), sorted.

    A set is a folder ``<package>/datasets/data/<name>/`` with ``<name>_TRAIN.ts`` and
    ``<name>_TEST.ts`` whose header declares class labels; regression and forecasting data
    in the same folder are left out. Empty when neither package is installed.
    """
    for package in _TS_PACKAGES:
        root = package_dir(package)
        if root is None or not (root / "datasets" / "data").is_dir():
            continue
        names = [d.name for d in (root / "datasets" / "data").iterdir()
                 if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file()
                 and _has_class_labels(d / f"{d.name}_TRAIN.ts")]
        if names:
            return sorted(names)
    return []


def _ucr_paths(name: str) -> tuple[str, list[Path]]:
    """The set's name and its (TRAIN, TEST) files: a bundled set by name, or a folder."""
    folder = Path(name)
    if folder.is_dir():
        trains = sorted(folder.glob("*_TRAIN.ts"))
        tests = {p.name[:-len("_TEST.ts")] for p in folder.glob("*_TEST.ts")}
        pairs = [p for p in trains if p.name[:-len("_TRAIN.ts")] in tests]
        if len(pairs) != 1:
            raise ValueError(f"{name} must hold one pair NAME_TRAIN.ts and NAME_TEST.ts, "
                             f"found {len(pairs)}")
        set_name = pairs[0].name[:-len("_TRAIN.ts")]
        return set_name, [pairs[0], folder / f"{set_name}_TEST.ts"]
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a folder holding NAME_TRAIN.ts and NAME_TEST.ts")
    names = ucr_names()
    if names and name not in names:
        raise ValueError(f"unknown UCR/UEA set {name!r}; the bundled classification sets are "
                         f"{', '.join(names)} (or give a folder holding NAME_TRAIN.ts and "
                         f"NAME_TEST.ts)")
    return name, [package_file(_TS_PACKAGES, f"datasets/data/{name}/{name}_{part}.ts",
                               f"The UCR/UEA set {name!r}")
                  for part in ("TRAIN", "TEST")]


def ucr(name: str, *, standardize_features: bool = False, patch: int | None = None
        ) -> Dataset:
    """A UCR/UEA classification set, standard split: bundled with sktime or aeon, or read
    from a folder in the archive's format.

    Parameters
    ----------
    name : str or Path
        A bundled set's directory name (:func:`ucr_names`: ``"GunPoint"``,
        ``"JapaneseVowels"``, ``"ArrowHead"``, ``"BasicMotions"``, ...), or a folder holding
        exactly one pair ``NAME_TRAIN.ts`` / ``NAME_TEST.ts`` as the archive distributes them
        (univariate or multivariate, equal or unequal length).
    standardize_features : bool
        Subtract each feature's mean and divide by its standard deviation, both taken over
        the real steps of the training split (saved in ``meta["preprocessing"]``). UCR
        univariate series are already z-normalised one by one, so the default is off.
    patch : int or None
        Read ``patch`` consecutive steps as one step (:func:`patches`, after standardising):
        ``(N, T, D)`` becomes ``(N, ceil(T / patch), patch * D)``, lengths ``ceil(length /
        patch)``, the last patch zero padded; recorded as ``meta["preprocessing"]["patch"]``.

    Returns
    -------
    Dataset
        ``X_*`` (N, T, D) float32, ``y_*`` (N,) int64 indexing ``meta["classes"]`` (the
        labels declared in the file's header, in that order); lengths when the set's series
        vary in length (padded to the longest of both splits), else None. The split is the
        archive's ``<name>_TRAIN.ts`` / ``<name>_TEST.ts``.
    """
    name, paths = _ucr_paths(str(name))
    (s_tr, l_tr, header), (s_te, l_te, _) = read_ts(paths[0]), read_ts(paths[1])
    if {s.shape[1] for s in s_tr + s_te} != {s_tr[0].shape[1]}:
        raise ValueError(f"{name}: cases have different numbers of dimensions")
    classes = header.get("classlabel") or sorted(set(l_tr))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(l_tr + l_te) - set(index))
    if unknown:
        raise ValueError(f"{name}: labels {unknown} are not declared in the @classLabel header")
    steps = max(len(s) for s in s_tr + s_te)
    X_tr, len_tr = pad(s_tr, steps)
    X_te, len_te = pad(s_te, steps)
    varying = bool((len_tr != steps).any() or (len_te != steps).any())
    if not varying:
        len_tr = len_te = None
    prep: dict = {"standardize": standardize_features}
    if standardize_features:
        mean, std = masked_stats(X_tr, len_tr)
        X_tr, X_te = standardize(X_tr, len_tr, mean, std), standardize(X_te, len_te, mean, std)
        prep.update(mean=mean.tolist(), std=std.tolist())
    if patch is not None:
        X_tr, len_tr = patches(X_tr, len_tr, patch)
        X_te, len_te = patches(X_te, len_te, patch)
        prep["patch"] = int(patch)
    meta = {
        "name": name, "task": "classification", "classes": list(classes),
        "split": f"UCR/UEA archive split: {name}_TRAIN.ts ({len(s_tr)}) / "
                 f"{name}_TEST.ts ({len(s_te)})",
        "source": str(paths[0].parent), "preprocessing": prep,
    }
    label = np.array([index[c] for c in l_tr], dtype=np.int64)
    label_te = np.array([index[c] for c in l_te], dtype=np.int64)
    return Dataset(X_tr, label, X_te, label_te, len_tr, len_te, meta)


def gunpoint(*, patch: int | None = None) -> Dataset:
    """GunPoint (UCR): the hand's x-coordinate while an actor draws a gun or points a finger.

    ``patch`` reads that many consecutive steps as one (as :func:`ucr`).

    Returns
    -------
    Dataset
        50 train / 150 test series (the archive's split), (N, 150, 1) float32, each already
        z-normalised by the archive; labels (N,) int64: 0 = class "1" (gun), 1 = class "2"
        (point). Published 1-NN error rates on this split (UCR archive, Dau et al. 2018):
        Euclidean 0.087, DTW with learned window 0.087, full DTW 0.093.
    """
    return ucr("GunPoint", patch=patch)


# ----------------------------------------------------------------------------------------
# sunspots
# ----------------------------------------------------------------------------------------


def sunspot_numbers() -> tuple[np.ndarray, np.ndarray]:
    """The yearly mean sunspot numbers shipped with statsmodels (``datasets.sunspots``).

    Returns
    -------
    years : ndarray (309,) int64
        1700 to 2008.
    values : ndarray (309,) float64
    """
    path = package_file(("statsmodels",), "datasets/sunspots/sunspots.csv",
                        "The sunspot series")
    table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1))  # YEAR, SUNACTIVITY
    return table[:, 0].astype(np.int64), table[:, 1]


def sunspots(*, window: int = 20, horizon: int = 1, test_years: int = 40) -> Dataset:
    """Sliding forecasting windows over the yearly sunspot numbers, last years held out.

    Values are standardised with the mean and standard deviation of the training years only
    (``meta["preprocessing"]``; :func:`unscale` maps forecasts back).

    Parameters
    ----------
    window : int
        Years of history per input sequence (T).
    horizon : int
        Years forecast from each window (K): targets are the next ``horizon`` values.
    test_years : int
        The last ``test_years`` years (default 40: 1969-2008) are held out.

    Returns
    -------
    Dataset
        ``X_*`` (N, window, 1) float32, ``y_*`` (N, horizon) float32, both standardised;
        no lengths. Training windows have every target in the training years (N = 309 -
        test_years - window - horizon + 1); test windows have every target in the held-out
        years (N = test_years - horizon + 1, one per year for horizon 1), their inputs
        reaching back into the training years as a forecaster's would.
        ``meta["target_years_test"]`` lists the first target year of each test window.
    """
    years, values = sunspot_numbers()
    n = len(years)
    n_train = n - _count(test_years, "test_years", n - 2)
    window = _count(window, "window", n_train - 1)
    horizon = _count(horizon, "horizon", n - n_train)
    if window + horizon > n_train:
        raise ValueError(f"window + horizon must fit in the {n_train} training years, "
                         f"got {window} + {horizon}")
    mean, std = float(values[:n_train].mean()), float(values[:n_train].std())
    z = ((values - mean) / std).astype(np.float32)

    def windows(first_targets):
        X = np.stack([z[t - window:t] for t in first_targets])[:, :, None]  # (N, T, 1)
        y = np.stack([z[t:t + horizon] for t in first_targets])  # (N, K)
        return X, y

    train_t = range(window, n_train - horizon + 1)
    test_t = range(n_train, n - horizon + 1)
    X_tr, y_tr = windows(train_t)
    X_te, y_te = windows(test_t)
    meta = {
        "name": "sunspots", "task": "forecasting", "window": window, "horizon": horizon,
        "split": f"training years {years[0]}-{years[n_train - 1]} (targets from "
                 f"{years[window]}), test targets {years[n_train]}-{years[-1]} "
                 f"(the last {n - n_train} years)",
        "target_years_test": [int(years[t]) for t in test_t],
        "preprocessing": {"mean": mean, "std": std},
    }
    return Dataset(X_tr, y_tr, X_te, y_te, None, None, meta)


def unscale(values, meta: dict) -> np.ndarray:
    """Standardised values back to the original units: ``values * std + mean`` (float64)."""
    prep = meta["preprocessing"]
    return np.asarray(values, dtype=np.float64) * prep["std"] + prep["mean"]


def _count(value, name: str, maximum: int) -> int:
    if (isinstance(value, bool) or not isinstance(value, int | np.integer)
            or not 1 <= value <= maximum):
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, got {value!r}")
    return int(value)
