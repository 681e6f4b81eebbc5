"""rnnlab.sktime: RNNClassifier as an sktime classifier."""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sktime.datasets import load_italy_power_demand
from sktime.utils.estimator_checks import check_estimator

from rnnlab import sklearn as rsk
from rnnlab import sktime as rst
from rnnlab.sktime import RNNClassifier


def test_sktime_estimator_checks():
    # every test of sktime's conformance suite for classifiers, on both get_test_params
    # settings, with equal-length, multivariate and unequal-length data
    results = check_estimator(RNNClassifier, raise_exceptions=True, verbose=False)
    assert len(results) > 200
    assert any("UnequalLength" in name for name in results)
    assert set(results.values()) == {"PASSED"}


def test_the_tags_say_what_it_takes():
    tags = RNNClassifier.get_class_tags()
    assert tags["X_inner_mtype"] == ["df-list", "numpy3D"]
    assert tags["capability:multivariate"] and tags["capability:unequal_length"]
    assert not tags["capability:missing_values"]


def test_the_parameters_are_those_of_the_scikit_learn_estimator():
    mine = inspect.signature(RNNClassifier).parameters
    theirs = inspect.signature(rsk.RNNClassifier).parameters
    assert list(mine) == list(theirs)
    for name, p in mine.items():
        default = theirs[name].default
        if name == "dtype":  # a name here, for sktime's checks; the same type
            assert np.dtype(p.default) == np.dtype(default)
        else:
            assert p.default == default, name


def test_it_learns_italy_power_demand():
    X, y = load_italy_power_demand(split="train", return_X_y=True)  # 67 series of 24 steps
    Xt, yt = load_italy_power_demand(split="test", return_X_y=True)  # 1029
    clf = RNNClassifier(cell="gru", hidden_size=16, epochs=60, batch_size=8, random_state=0)
    clf.fit(X, y)
    # 0.965 with this seed; FCN's published 0.963, chance about 0.5
    assert clf.score(Xt, yt) > 0.94
    assert list(clf.classes_) == ["1", "2"]
    assert clf.estimator_.network_.rnn.input_size == 1


def test_series_reach_the_network_time_first():
    # numpy3D is (N, C, T): the same fit as the scikit-learn estimator on (N, T, C)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3, 7))  # 3 channels of 7 steps
    y = (X[:, 0].mean(axis=1) > 0).astype(int)
    params = {"hidden_size": 4, "epochs": 2, "random_state": 0}
    clf = RNNClassifier(**params).fit(X, y)
    ref = rsk.RNNClassifier(**params).fit(X.transpose(0, 2, 1), y)
    assert clf.estimator_.network_.rnn.input_size == 3
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X.transpose(0, 2, 1)))


def test_unequal_lengths_are_padded_with_their_lengths():
    rng = np.random.default_rng(1)
    lengths = rng.integers(4, 12, size=30)
    series = [rng.standard_normal((int(t), 2)) for t in lengths]  # (T_i, C)
    y = np.array([int(s[-1, 0] > 0) for s in series])
    nested = pd.DataFrame({f"c{c}": [pd.Series(s[:, c]) for s in series] for c in range(2)})
    clf = RNNClassifier(hidden_size=4, epochs=3, random_state=0).fit(nested, y)
    assert clf.estimator_.network_.rnn.input_size == 2
    batch = clf.predict_proba(nested)
    alone = np.concatenate([clf.predict_proba(nested.iloc[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(alone, batch[:4], rtol=1e-5, atol=1e-6)
    # the scikit-learn estimator on the list of (T_i, C) arrays: the same fit
    ref = rsk.RNNClassifier(hidden_size=4, epochs=3, random_state=0).fit(series, y)
    np.testing.assert_allclose(batch, ref.predict_proba(series), rtol=1e-6)


def test_without_sktime_the_import_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "sktime" or m.startswith("sktime.")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it now fails
    monkeypatch.delitem(sys.modules, "rnnlab.sktime")
    with pytest.raises(ImportError) as e:
        importlib.import_module("rnnlab.sktime")
    assert 'pip install "rnnlab[sktime]"' in str(e.value)
    assert "\n" not in str(e.value)


def test_the_module_never_passes_for_sktime():
    code = f"import sys; sys.path.insert(0, {str(Path(rst.__file__).parent)!r}); import sktime"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and "was imported as sktime" in last


def test_the_extra_is_in_the_test_extra_and_fits_the_installed_sktime():
    import tomllib

    import sktime
    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml")
                            .read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert "rnnlab[sktime]" in extras["test"]
    (pin,) = [Requirement(r) for r in extras["sktime"] if r.startswith("sktime")]
    assert pin.specifier.contains(sktime.__version__)
