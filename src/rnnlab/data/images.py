"""Images read as sequences: row by row, or patch by patch in raster order.

Shape legend: N images, H x W pixels, p x q patch, T = (H/p)(W/q) steps of D = p*q pixels.

An image becomes a sequence by cutting it into p x q patches, visited left to right and top to
bottom (raster order), each flattened row-major into one step's features. Rows are the patch
``(1, W)``: 28 steps of 28 pixels for Fashion-MNIST; ``patch=(4, 4)`` gives 49 steps of 16.

Pixels are first scaled as ``(raw / divide_by - mean) / std``: to [0, 1] with mean 0 and
std 1 (``scale="unit"``), or standardised with the training split's pixel mean and standard
deviation (``scale="standard"``). The numbers are saved in ``meta["preprocessing"]`` and
:func:`to_sequences` applies them to new images exactly as the loader did.

Functions
---------
fashion_mnist
    Fashion-MNIST from Debian's ``dataset-fashion-mnist``: 60,000 train / 10,000 test.
digits
    scikit-learn's 8x8 handwritten digits: 1,797 images, a fixed stratified split.
to_sequences
    Raw images (N, H, W) to sequences (N, T, D) with a loader's preprocessing.
patches
    Cut scaled images into raster-order patch sequences.
read_idx
    Read an IDX file (the MNIST format), gzipped or not.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .series import Dataset, package_file

__all__ = [
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "digits",
    "fashion_mnist",
    "patches",
    "read_idx",
    "to_sequences",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` puts the four IDX files."""

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_CLASSES = tuple(str(d) for d in range(10))

_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_SCALES = ("unit", "standard")


def read_idx(path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format; gzip is detected from the magic bytes).

    Returns
    -------
    ndarray of uint8 with the file's shape: (N, H, W) for images, (N,) for labels.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    if len(data) - start != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, but the file holds "
                         f"{len(data) - start} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def patches(images: np.ndarray, patch=None) -> np.ndarray:
    """Cut images (N, H, W) into sequences (N, T, D) of p x q patches in raster order.

    Parameters
    ----------
    images : ndarray (N, H, W)
    patch : int, (int, int) or None
        Patch height and width (an int is square); None reads rows, ``(1, W)``. Both must
        divide the image's size.

    Returns
    -------
    ndarray (N, (H/p)(W/q), p*q), the input's dtype.
    """
    N, H, W = images.shape
    p, q = _patch_size(patch, H, W)
    x = images.reshape(N, H // p, p, W // q, q)
    return x.transpose(0, 1, 3, 2, 4).reshape(N, (H // p) * (W // q), p * q)  # (N, T, D)


def to_sequences(images, meta: dict) -> np.ndarray:
    """Raw images (N, H, W) (uint8 0-255 for Fashion-MNIST, 0-16 for digits) to float32
    sequences (N, T, D), scaled and cut as the loader that returned ``meta`` did."""
    prep = meta["preprocessing"]
    x = np.asarray(images, dtype=np.float32) / np.float32(prep["divide_by"])
    x = (x - np.float32(prep["mean"])) / np.float32(prep["std"])
    return patches(x, prep["patch"])


def fashion_mnist(*, patch=None, scale: str = "unit", root=FASHION_MNIST_DIR) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul and Vollgraf 2017), images read as sequences.

    Installed by Debian's ``dataset-fashion-mnist`` (``scripts/install-data.sh``), which puts
    the original gzipped IDX files in ``/usr/share/datasets/fashion-mnist``.

    Parameters
    ----------
    patch : int, (int, int) or None
        None reads the 28 rows (28 steps of 28 pixels); ``(4, 4)`` gives 49 steps of 16,
        ``(7, 7)`` 16 steps of 49, ``(2, 2)`` 196 steps of 4.
    scale : {"unit", "standard"}
        Pixels to [0, 1]; or standardised with the training pixels' mean and std.
    root : path
        Directory holding the four IDX files (gzipped or not).

    Returns
    -------
    Dataset
        The original split: ``X_train`` (60000, T, D) and ``X_test`` (10000, T, D) float32,
        ``y_*`` int64 in [0, 10) naming ``meta["classes"]``; no lengths (every sequence
        has T steps).
    """
    scale = _scale(scale)
    root = Path(root)
    found = []
    for name in _FASHION_FILES:
        options = [root / (name + ".gz"), root / name]
        path = next((p for p in options if p.is_file()), None)
        if path is None:
            raise ValueError(f"Fashion-MNIST is not in {root}: install it with "
                             f"'apt-get install dataset-fashion-mnist' (scripts/install-data.sh)")
        found.append(path)
    X_tr, y_tr, X_te, y_te = (read_idx(p) for p in found)
    return _image_dataset("fashion-mnist", X_tr, y_tr, X_te, y_te, 255.0, patch, scale,
                          FASHION_MNIST_CLASSES,
                          "the original split: 60,000 train / 10,000 test", str(root))


def digits(*, patch=None, scale: str = "unit", test_fraction: float = 0.25,
           seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (UCI optdigits test set), read as sequences.

    Parameters
    ----------
    patch : int, (int, int) or None
        None reads the 8 rows (8 steps of 8 pixels); ``(2, 2)`` gives 16 steps of 4.
    scale : {"unit", "standard"}
        Pixels (0-16) to [0, 1]; or standardised with the training pixels' mean and std.
    test_fraction : float
        Share of each class held out for testing.
    seed : int
        Seed of the split. The split is stratified: within each digit, the images are
        permuted with ``numpy.random.default_rng(seed)`` (classes in order 0-9, one
        generator) and the first ``round(test_fraction * n_class)`` go to the test split.
        Both splits keep the data set's order. The defaults give 1,347 train / 450 test.

    Returns
    -------
    Dataset
        ``X_*`` (N, T, D) float32 (T = D = 8 for rows), ``y_*`` int64 in [0, 10); no lengths.
    """
    scale = _scale(scale)
    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float)
            or not 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    path = package_file(("sklearn",), "datasets/data/digits.csv.gz", "The 8x8 digits set")
    # The same file sklearn.datasets.load_digits reads: 64 pixels then the label per row.
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)
    labels = table[:, 64].astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        test[members[:round(test_fraction * len(members))]] = True
    split = (f"stratified: round({test_fraction} x class size) of each digit held out, "
             f"chosen with numpy.random.default_rng({seed}); {(~test).sum()} train / "
             f"{test.sum()} test")
    return _image_dataset("digits", images[~test], labels[~test], images[test], labels[test],
                          16.0, patch, scale, DIGITS_CLASSES, split, str(path))


# ----------------------------------------------------------------------------------------


def _image_dataset(name, X_tr, y_tr, X_te, y_te, divide_by, patch, scale, classes, split,
                   source) -> Dataset:
    p, q = _patch_size(patch, *X_tr.shape[1:])
    prep = {"divide_by": divide_by, "mean": 0.0, "std": 1.0, "patch": [p, q], "scale": scale}
    if scale == "standard":
        # pixel statistics in float64 over the training images only
        unit = X_tr.astype(np.float64) / divide_by
        prep["mean"], prep["std"] = float(unit.mean()), float(unit.std())
        del unit
    meta = {"name": name, "task": "classification", "classes": list(classes),
            "image_shape": list(X_tr.shape[1:]), "split": split, "source": source,
            "preprocessing": prep}
    return Dataset(to_sequences(X_tr, meta), y_tr.astype(np.int64), to_sequences(X_te, meta),
                   y_te.astype(np.int64), None, None, meta)


def _patch_size(patch, H: int, W: int) -> tuple[int, int]:
    if patch is None:
        return 1, W
    if isinstance(patch, int | np.integer):
        pq = (patch, patch)
    else:
        pq = tuple(patch) if isinstance(patch, tuple | list) else ()
    if (len(pq) != 2 or any(isinstance(v, bool) or not isinstance(v, int | np.integer)
                            or v < 1 for v in pq)
            or H % pq[0] or W % pq[1]):
        raise ValueError(f"patch must be a positive int or (height, width) dividing the "
                         f"image size ({H}, {W}), got {patch!r}")
    return int(pq[0]), int(pq[1])


def _scale(scale):
    if scale not in _SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {list(_SCALES)}")
    return scale
