"""Tests of rnnlab.data.series: the .ts reader, UCR sets, sunspot windows, the Dataset record."""

import json

import numpy as np
import pytest

from rnnlab.data import series
from rnnlab.data.series import Dataset, read_ts, sunspots, ucr, unscale


def _have(package, relative):
    root = series.package_dir(package)
    return root is not None and (root / relative).is_file()


HAVE_UCR = any(_have(p, "datasets/data/GunPoint/GunPoint_TRAIN.ts") for p in ("sktime", "aeon"))
HAVE_SUNSPOTS = _have("statsmodels", "datasets/sunspots/sunspots.csv")
needs_ucr = pytest.mark.skipif(not HAVE_UCR, reason="sktime or aeon not installed (rnnlab[data])")
needs_sunspots = pytest.mark.skipif(not HAVE_SUNSPOTS, reason="statsmodels not installed")

TS_TEXT = """# a comment
@problemName Toy
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:10,20,30:up
4,5:40,50:down

6,7,8,9:60,70,80,90:up
"""


def test_read_ts_parses_variable_length_multivariate_cases(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(TS_TEXT)
    seqs, labels, header = read_ts(path)
    assert labels == ["up", "down", "up"]
    assert header["classlabel"] == ["up", "down"] and header["problemname"] == "Toy"
    assert [s.shape for s in seqs] == [(3, 2), (2, 2), (4, 2)]
    np.testing.assert_array_equal(seqs[0], [[1, 10], [2, 20], [3, 30]])  # (T, D)


@pytest.mark.parametrize("bad, message", [
    ("@timeStamps true\n@data\n(0,1):a\n", "timestamps"),
    ("@data\n1,?,3:a\n", "missing"),
    ("@data\n1,2,3:4,5:a\n", "unequal"),
    ("@data\n1,x:a\n", "numbers"),
    ("@data\n", "no cases"),
])
def test_read_ts_rejects_what_it_cannot_read(tmp_path, bad, message):
    path = tmp_path / "bad.ts"
    path.write_text(bad)
    with pytest.raises(ValueError, match=message):
        read_ts(path)


def test_pad_and_masked_standardisation_ignore_padding():
    seqs = [np.array([[1.0], [3.0]]), np.array([[5.0], [7.0], [9.0]])]
    X, lengths = series.pad(seqs)
    assert X.shape == (2, 3, 1) and X.dtype == np.float32 and lengths.tolist() == [2, 3]
    mean, std = series.masked_stats(X, lengths)
    real = np.array([1, 3, 5, 7, 9.0])
    np.testing.assert_allclose([mean[0], std[0]], [real.mean(), real.std()])
    Z = series.standardize(X, lengths, mean, std)
    assert Z[0, 2, 0] == 0.0  # padding stays zero
    np.testing.assert_allclose(Z[1, :, 0], (np.array([5, 7, 9]) - real.mean()) / real.std(),
                               rtol=1e-6)


def test_a_missing_package_gives_one_line_saying_how_to_install(monkeypatch):
    monkeypatch.setattr(series, "_TS_PACKAGES", ("rnnlab_no_such_package",))
    with pytest.raises(ValueError, match=r"^The UCR/UEA set 'GunPoint' is bundled with "
                                         r"rnnlab_no_such_package.*pip install") as info:
        series.gunpoint()
    assert "\n" not in str(info.value)


@needs_ucr
def test_gunpoint_has_the_archive_split():
    d = series.gunpoint()
    assert d.X_train.shape == (50, 150, 1) and d.X_test.shape == (150, 150, 1)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.lengths_train is None and d.lengths_test is None
    assert d.meta["classes"] == ["1", "2"] and d.output_size == 2 and d.input_size == 1
    assert set(np.unique(d.y_test)) == {0, 1}
    # the archive z-normalises each series
    np.testing.assert_allclose(d.X_train[:, :, 0].mean(axis=1), 0, atol=1e-4)
    json.dumps(d.meta)


@needs_ucr
def test_ucr_standardises_with_training_statistics_only():
    raw = ucr("GunPoint")
    d = ucr("GunPoint", standardize_features=True)
    prep = d.meta["preprocessing"]
    np.testing.assert_allclose(prep["mean"], [raw.X_train.mean()], atol=1e-6)
    np.testing.assert_allclose(d.X_test, (raw.X_test - prep["mean"][0]) / prep["std"][0],
                               atol=1e-5)


@needs_sunspots
def test_sunspot_numbers_match_statsmodels_loader():
    years, values = series.sunspot_numbers()
    assert years[0] == 1700 and years[-1] == 2008 and len(values) == 309
    pytest.importorskip("pandas")
    from statsmodels.datasets import sunspots as sm_sunspots

    frame = sm_sunspots.load_pandas().data
    np.testing.assert_array_equal(values, frame["SUNACTIVITY"].to_numpy())


@needs_sunspots
@pytest.mark.parametrize("window, horizon", [(20, 1), (9, 3)])
def test_sunspot_windows_hold_out_the_last_40_years(window, horizon):
    years, values = series.sunspot_numbers()
    d = sunspots(window=window, horizon=horizon)
    n_train = 309 - 40
    assert d.X_train.shape == (n_train - window - horizon + 1, window, 1)
    assert d.y_train.shape == (n_train - window - horizon + 1, horizon)
    assert d.X_test.shape == (40 - horizon + 1, window, 1)
    assert d.X_train.dtype == d.y_train.dtype == np.float32
    assert d.meta["target_years_test"][0] == 1969 and d.output_size == horizon
    prep = d.meta["preprocessing"]
    np.testing.assert_allclose([prep["mean"], prep["std"]],
                               [values[:n_train].mean(), values[:n_train].std()])
    # training targets never reach a held-out year
    np.testing.assert_allclose(unscale(d.y_train[-1], d.meta),
                               values[n_train - horizon:n_train], atol=1e-3)
    # a test window's inputs are the years just before its first target
    k = 5
    t = n_train + k
    np.testing.assert_allclose(unscale(d.X_test[k, :, 0], d.meta), values[t - window:t],
                               atol=1e-3)
    np.testing.assert_allclose(unscale(d.y_test[k], d.meta), values[t:t + horizon], atol=1e-3)
    json.dumps(d.meta)


@needs_sunspots
@pytest.mark.parametrize("kwargs", [{"window": 0}, {"horizon": 41}, {"window": 2.5},
                                    {"test_years": 308}, {"window": 268, "horizon": 2}])
def test_sunspots_rejects_bad_windows(kwargs):
    with pytest.raises(ValueError, match="must"):
        sunspots(**kwargs)


def test_dataset_head_and_repr():
    X = np.zeros((5, 3, 2), np.float32)
    d = Dataset(X, np.arange(5), X, np.arange(5), np.full(5, 3), np.full(5, 3),
                {"name": "toy", "classes": list("abcde")})
    small = d.head(2, 1)
    assert small.X_train.shape == (2, 3, 2) and small.lengths_test.shape == (1,)
    assert small.output_size == 5 and small.input_size == 2
    assert repr(small) == ("Dataset('toy', X_train=(2, 3, 2), X_test=(1, 3, 2), "
                           "y_train=(2,), lengths=yes)")
