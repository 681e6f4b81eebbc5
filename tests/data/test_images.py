"""Tests of rnnlab.data.images: patch sequences, IDX files, Fashion-MNIST and digits."""

import gzip
import json

import numpy as np
import pytest

from rnnlab.data import images
from rnnlab.data.images import FASHION_MNIST_DIR, digits, fashion_mnist, patches, read_idx
from rnnlab.data.series import package_dir

HAVE_SKLEARN = package_dir("sklearn") is not None
HAVE_FASHION = (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file()


def _write_idx(path, array, compress=True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture
def fake_fashion(tmp_path):
    """A Fashion-MNIST folder of 6 train and 4 test random 28x28 images."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(6) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28)),
        "t10k-labels-idx1-ubyte": np.array([9, 0, 3, 3]),
    }
    for i, (name, a) in enumerate(arrays.items()):
        compress = i != 1  # the reader takes plain and gzipped files alike
        _write_idx(tmp_path / (name + (".gz" if compress else "")), a, compress)
    return tmp_path, arrays


def test_patches_visit_the_image_in_raster_order():
    img = np.arange(16).reshape(1, 4, 4)
    seq = patches(img, (2, 2))
    assert seq.shape == (1, 4, 4)
    np.testing.assert_array_equal(seq[0], [[0, 1, 4, 5], [2, 3, 6, 7],
                                           [8, 9, 12, 13], [10, 11, 14, 15]])
    np.testing.assert_array_equal(patches(img), img)  # rows: (1, W) patches
    np.testing.assert_array_equal(patches(img, (4, 1))[0], img[0].T)  # columns
    assert patches(np.zeros((3, 28, 28)), 4).shape == (3, 49, 16)
    assert patches(np.zeros((3, 28, 28)), (7, 4)).shape == (3, 28, 28)


@pytest.mark.parametrize("patch", [3, (2, 3), (0, 4), "4x4", (4,), 2.0, (True, 2)])
def test_patches_reject_sizes_that_do_not_tile_the_image(patch):
    with pytest.raises(ValueError, match="patch must"):
        patches(np.zeros((1, 8, 8)), patch)


def test_read_idx_round_trip_and_rejects_other_files(tmp_path):
    a = np.arange(24).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    (tmp_path / "junk").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "junk")
    _write_idx(tmp_path / "short", a, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_loader_rows_patches_and_scaling(fake_fashion):
    root, raw = fake_fashion
    d = fashion_mnist(root=root)
    assert d.X_train.shape == (6, 28, 28) and d.X_test.shape == (4, 28, 28)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_allclose(d.X_test[1], raw["t10k-images-idx3-ubyte"][1] / 255, rtol=1e-6)
    assert d.y_test.tolist() == [9, 0, 3, 3] and d.meta["classes"][9] == "Ankle boot"
    assert d.lengths_train is None and d.output_size == 10

    p = fashion_mnist(root=root, patch=(4, 4), scale="standard")
    assert p.X_train.shape == (6, 49, 16)
    unit = raw["train-images-idx3-ubyte"] / 255
    prep = p.meta["preprocessing"]
    np.testing.assert_allclose([prep["mean"], prep["std"]], [unit.mean(), unit.std()])
    # the same preprocessing, applied to raw images at inference time
    again = images.to_sequences(raw["t10k-images-idx3-ubyte"], p.meta)
    np.testing.assert_array_equal(again, p.X_test)
    json.dumps(p.meta)


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist") as info:
        fashion_mnist(root=tmp_path)
    assert "\n" not in str(info.value)


def test_unknown_scale_is_rejected(fake_fashion):
    with pytest.raises(ValueError, match="unknown scale 'minmax'"):
        fashion_mnist(root=fake_fashion[0], scale="minmax")


@pytest.mark.skipif(not HAVE_FASHION, reason="Debian package dataset-fashion-mnist not installed")
def test_installed_fashion_mnist_files_have_the_published_sizes():
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10
    with gzip.open(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz") as f:
        header = f.read(16)
    assert [int.from_bytes(header[i:i + 4], "big") for i in (4, 8, 12)] == [60000, 28, 28]


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn not installed (rnnlab[data])")
def test_digits_split_is_fixed_stratified_and_complete():
    d = digits()
    assert d.X_train.shape == (1347, 8, 8) and d.X_test.shape == (450, 8, 8)
    assert d.X_train.dtype == np.float32 and 0 <= d.X_train.min() and d.X_train.max() <= 1
    n_class = np.bincount(d.y_train) + np.bincount(d.y_test)
    np.testing.assert_array_equal(np.bincount(d.y_test), np.round(0.25 * n_class))
    again, other = digits(), digits(seed=1)
    np.testing.assert_array_equal(again.X_test, d.X_test)
    assert not np.array_equal(other.X_test, d.X_test)
    assert digits(patch=2).X_train.shape == (1347, 16, 4)

    from sklearn.datasets import load_digits

    ref = load_digits()
    together = np.concatenate([d.X_train, d.X_test]).reshape(-1, 64) * 16
    rows = sorted(map(tuple, together.round().astype(int)))
    assert rows == sorted(map(tuple, ref.data.astype(int)))


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn not installed (rnnlab[data])")
@pytest.mark.parametrize("fraction", [0, 1, 1.5, True, "0.2"])
def test_digits_rejects_bad_test_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        digits(test_fraction=fraction)
