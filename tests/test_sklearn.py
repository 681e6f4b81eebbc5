"""rnnlab.sklearn: RNNClassifier and RNNRegressor as scikit-learn estimators."""

import importlib
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import rnnlab
from rnnlab import sklearn as rsk
from rnnlab.sklearn import RNNClassifier, RNNRegressor

#: small and quick, yet enough to pass scikit-learn's training checks with a margin
#: (R^2 0.83-0.91 against their 0.5 over 8 seeds, accuracy about 0.95 against 0.83)
SMALL = {"hidden_size": 8, "epochs": 60, "lr": 3e-2}


def bump_task(n, seed, T=12):
    """Two classes of sequences (N, T, 2): class "up" has a positive mean in feature 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, T, 2))
    X[:, :, 0] += np.where(y == 1, 0.7, -0.7)[:, None]
    return X, np.array(["down", "up"])[y]


def sum_task(n, seed, T=8):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, T))  # (N, T): a table, one value per step
    return X, X.sum(axis=1)


def last_sign_task(n, seed):
    """Sequences of 3 to 12 steps of one feature; the label is the sign of the last real
    step, so a network that read the zero padding instead would be at chance."""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(t), 1)) for t in rng.integers(3, 13, size=n)]
    return X, np.array([int(x[-1, 0] > 0) for x in X])


# the module ----------------------------------------------------------------------------------
def test_the_module_imports_scikit_learn_itself_not_its_own_name():
    import sklearn

    assert rsk.BaseEstimator.__module__ == "sklearn.base"
    here = Path(rsk.__file__).resolve().parent
    assert here not in Path(sklearn.__file__).resolve().parents
    assert rnnlab.sklearn is rsk and rsk.__name__ == "rnnlab.sklearn"
    assert sys.modules["sklearn"] is sklearn


def test_the_module_never_passes_for_scikit_learn():
    # with rnnlab's own folder on sys.path (a script run from inside it), "import sklearn"
    # would find this module: it refuses in one line instead of failing somewhere deeper
    code = f"import sys; sys.path.insert(0, {str(Path(rsk.__file__).parent)!r}); import sklearn"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and "was imported as scikit-learn" in last


def test_without_scikit_learn_the_import_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it now fails
    monkeypatch.delitem(sys.modules, "rnnlab.sklearn")
    with pytest.raises(ImportError) as e:
        importlib.import_module("rnnlab.sklearn")
    assert 'pip install "rnnlab[sklearn]"' in str(e.value)
    assert "\n" not in str(e.value)


# learning ------------------------------------------------------------------------------------
def test_the_classifier_learns_two_sequence_classes():
    X, y = bump_task(300, seed=0)
    Xt, yt = bump_task(200, seed=1)
    clf = RNNClassifier(hidden_size=8, epochs=10, random_state=0).fit(X, y)
    assert clf.score(Xt, yt) > 0.9
    assert list(clf.classes_) == ["down", "up"]
    assert clf.n_features_in_ == 2 and clf.n_iter_ == 10
    assert clf.history_.train_loss[-1] < clf.history_.train_loss[0]


def test_the_regressor_learns_a_sum():
    X, y = sum_task(400, seed=0)
    Xt, yt = sum_task(200, seed=1)
    reg = RNNRegressor(hidden_size=8, epochs=20, random_state=0).fit(X, y)
    assert reg.score(Xt, yt) > 0.9
    assert reg.predict(Xt).shape == (200,)
    assert reg.n_features_in_ == 8 and reg.n_outputs_ == 1


def test_the_regressor_predicts_several_outputs_in_the_units_of_y():
    X, s = sum_task(300, seed=0)
    y = np.stack([s, 100 - 10 * s], axis=1)  # (N, 2), the second on another scale
    reg = RNNRegressor(hidden_size=8, epochs=20, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (300, 2) and pred.dtype == np.float64
    assert reg.score(X, y) > 0.9
    np.testing.assert_allclose(reg.target_mean_, y.mean(axis=0))


def test_variable_length_lists_use_each_sequence_s_own_last_step():
    X, y = last_sign_task(300, seed=0)
    Xt, yt = last_sign_task(200, seed=1)
    clf = RNNClassifier(hidden_size=8, epochs=15, random_state=0).fit(X, y)
    assert clf.score(Xt, yt) > 0.9
    # the padding of a batch changes nothing: a sequence alone predicts as in the batch
    alone = np.concatenate([clf.predict_proba([x]) for x in Xt[:5]])
    np.testing.assert_allclose(alone, clf.predict_proba(Xt)[:5], rtol=1e-5, atol=1e-6)


def test_labels_come_back_as_given():
    X, y = bump_task(60, seed=0)
    up = y == "up"
    for labels in (np.where(up, "b", "a"), up, np.where(up, 7, -3), np.where(up, 1.0, 0.0)):
        clf = RNNClassifier(hidden_size=4, epochs=2, random_state=0).fit(X, labels)
        np.testing.assert_array_equal(clf.classes_, np.unique(labels))
        pred = clf.predict(X)
        assert pred.dtype == clf.classes_.dtype and set(pred) <= set(labels)
        proba = clf.predict_proba(X)
        assert proba.shape == (60, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)


def test_three_classes_from_a_list_of_labels():
    X, _ = bump_task(90, seed=0)
    y = ["cat", "dog", "emu"] * 30
    clf = RNNClassifier(hidden_size=4, epochs=2, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.predict_proba(X).shape == (90, 3)


def test_a_table_is_read_as_one_feature_per_step():
    X, y = sum_task(100, seed=0)  # (N, T)
    a = RNNRegressor(hidden_size=4, epochs=2, random_state=0).fit(X, y)
    b = RNNRegressor(hidden_size=4, epochs=2, random_state=0).fit(X[:, :, None], y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X[:, :, None]))
    assert (a.n_features_in_, b.n_features_in_) == (8, 1)
    assert a.network_.rnn.input_size == b.network_.rnn.input_size == 1
    # sequences of another length go as sequences; a table keeps its columns
    assert a.predict(X[:, :5, None]).shape == (100,)
    assert b.predict(X[:, :5]).shape == (100,)
    with pytest.raises(ValueError, match="X has 5 features, but RNNRegressor is expecting 8"):
        a.predict(X[:, :5])


def test_a_dataframe_is_a_table_with_named_steps():
    pd = pytest.importorskip("pandas")
    X, y = sum_task(50, seed=0)
    frame = pd.DataFrame(X, columns=[f"t{i}" for i in range(8)])
    reg = RNNRegressor(hidden_size=4, epochs=1, random_state=0).fit(frame, y)
    assert list(reg.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(reg.predict(frame), reg.predict(X))
    with pytest.raises(ValueError, match="feature names should match"):
        reg.predict(frame.rename(columns={"t0": "s0"}))
    reg.fit(X[:, :, None], y)  # sequences have no column names
    assert not hasattr(reg, "feature_names_in_") and reg.n_features_in_ == 1


def test_a_fixed_random_state_makes_fit_reproducible():
    X, y = bump_task(80, seed=0)

    def proba(seed):
        return RNNClassifier(hidden_size=4, epochs=3, random_state=seed).fit(X, y).predict_proba(X)

    np.testing.assert_array_equal(proba(5), proba(5))
    assert not np.allclose(proba(5), proba(6))


def test_early_stopping_holds_data_out_and_stops():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 6, 2)), rng.integers(0, 2, size=100)  # labels of pure noise:
    clf = RNNClassifier(hidden_size=8, epochs=100, early_stopping=True, n_iter_no_change=3,
                        validation_fraction=0.2, random_state=0).fit(X, y)  # soon overfitted
    h = clf.history_
    assert h.stopped_early and clf.n_iter_ == len(h.epoch) < 100
    assert None not in h.val_loss and h.val_loss[h.best_epoch - 1] == min(h.val_loss)
    assert clf.n_iter_ - h.best_epoch == 3


# scikit-learn's machinery ----------------------------------------------------------------------
def test_get_params_clone_and_set_params_round_trip():
    est = RNNClassifier(cell="gru", hidden_size=5, lr=1, dtype="float64",
                        random_state=np.random.RandomState(0))
    params = est.get_params()
    assert params["lr"] == 1 and params["dtype"] == "float64"  # stored unchanged
    twin = clone(est)
    assert twin is not est and type(twin) is RNNClassifier
    assert {k: v for k, v in twin.get_params().items() if k != "random_state"} == {
        k: v for k, v in params.items() if k != "random_state"}
    twin.set_params(hidden_size=7, cell="elman")
    assert (twin.hidden_size, twin.cell, est.hidden_size) == (7, "elman", 5)
    assert RNNRegressor().get_params() == RNNClassifier().get_params()


def test_a_fitted_estimator_pickles_and_clones_unfitted():
    X, y = bump_task(40, seed=0)
    clf = RNNClassifier(hidden_size=4, epochs=2, random_state=0).fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert not hasattr(clone(clf), "network_")


def test_cross_val_score_and_a_pipeline():
    X, y = bump_task(120, seed=0)
    scores = cross_val_score(RNNClassifier(hidden_size=8, epochs=8, random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    Xs, ys = sum_task(200, seed=0)
    pipe = make_pipeline(StandardScaler(), RNNRegressor(hidden_size=8, epochs=20,
                                                        random_state=0))
    assert pipe.fit(Xs, ys).score(Xs, ys) > 0.9


def test_grid_search_over_the_hidden_size():
    X, y = bump_task(90, seed=0)
    search = GridSearchCV(RNNClassifier(epochs=8, random_state=0),
                          {"hidden_size": [1, 8]}, cv=3).fit(X, y)
    assert search.best_params_ == {"hidden_size": 8}
    assert search.best_estimator_.network_.rnn.hidden_size == 8
    means = search.cv_results_["mean_test_score"]
    assert means[1] > 0.85 and means[1] > means[0]


# errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    ({"hidden_size": 0}, "hidden_size must be a positive integer, got 0"),
    ({"cell": "rnn"}, "unknown cell 'rnn'; expected one of"),
    ({"lr": -1.0}, "lr must be a positive number, got -1.0"),
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be a number in \(0, 1\)"),
    ({"dtype": "float16"}, "dtype must be float32 or float64"),
    ({"verbose": -1}, "verbose must be a non-negative integer, got -1"),
    ({"bidirectional": "yes"}, "bidirectional must be True or False"),
    ({"bptt": 0}, "bptt must be a positive integer, got 0"),
    ({"bptt": 4, "bidirectional": True}, "bptt=4 truncates the gradient.*use bptt=None"),
    ({"readout": "all"}, "unknown readout 'all'; expected one of"),
    ({"bptt": 4, "readout": "mean"}, "readout='mean' pools every step: use bptt=None"),
])
def test_bad_parameters_are_named_at_fit(params, match):
    X, y = bump_task(10, seed=0)
    est = RNNClassifier(**params)  # the constructor only stores them
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_truncated_bptt_reaches_back_bptt_steps():
    X, y = last_sign_task(200, seed=0)
    Xt, yt = last_sign_task(200, seed=1)
    full = RNNClassifier(hidden_size=8, epochs=4, random_state=0).fit(X, y)
    # a reach beyond the longest sequence (12 steps) is full BPTT, bit for bit
    reach = RNNClassifier(hidden_size=8, epochs=4, bptt=12, random_state=0).fit(X, y)
    np.testing.assert_array_equal(reach.predict_proba(Xt), full.predict_proba(Xt))
    # two steps are enough for the sign of the last one, and give another model
    short = RNNClassifier(hidden_size=8, epochs=15, bptt=2, random_state=0).fit(X, y)
    assert short.score(Xt, yt) > 0.9
    assert not np.allclose(short.predict_proba(Xt),
                           RNNClassifier(hidden_size=8, epochs=15, random_state=0)
                           .fit(X, y).predict_proba(Xt), atol=1e-3)


@pytest.mark.parametrize("readout", ["mean", "attention"])
def test_a_pooled_readout_reads_every_real_step(readout):
    # the sign of the mean over the real steps: every step counts, the padding none
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(t), 1)) + rng.choice([-0.8, 0.8]) for t in
         rng.integers(3, 13, size=300)]
    y = np.array([int(x.mean() > 0) for x in X])
    clf = RNNClassifier(hidden_size=8, epochs=10, readout=readout, random_state=0).fit(X[:200],
                                                                                    y[:200])
    assert clf.network_.readout == readout
    assert clf.score(X[200:], y[200:]) > 0.9
    alone = np.concatenate([clf.predict_proba([x]) for x in X[200:205]])
    np.testing.assert_allclose(alone, clf.predict_proba(X[200:])[:5], rtol=1e-5, atol=1e-6)


def test_a_bidirectional_classifier_reads_the_sequence_both_ways():
    X, y = bump_task(40, seed=0)
    clf = RNNClassifier(hidden_size=4, epochs=2, bidirectional=True, random_state=0).fit(X, y)
    assert clf.network_.rnn.bidirectional
    assert clf.network_.params["head.W_y"].shape[0] == 8
    assert clf.predict_proba(X).shape == (40, len(clf.classes_))


def test_bad_inputs_are_named():
    X, y = bump_task(10, seed=0)
    clf = RNNClassifier(hidden_size=2, epochs=1)
    bad = X.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(bad, y)
    with pytest.raises(ValueError, match=r"X\[1\] contains NaN or Inf"):
        clf.fit([X[0], bad[3]], y[:2])
    for wrong in (X[..., None], X[:, 0, 0], list(X[:, 0, 0])):
        with pytest.raises(ValueError, match=r"X must be sequences \(N, T, D\), a table \(N, T\)"
                                             " .* got shape " + re.escape(str(np.shape(wrong)))):
            clf.fit(wrong, y)
    with pytest.raises(ValueError, match=r"list of 1-D sequences of different lengths \(4 to "
                                         r"12 steps\): give each as an array \(T_i, 1\)"):
        clf.fit([x[:, 0] for x in X[:9]] + [X[9, :4, 0]], y)
    with pytest.raises(ValueError, match="X holds 10 sequences but y holds 9 labels"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"X\[1\] must have shape \(\?, 2\), got \(12, 3\)"):
        clf.fit([X[0], np.ones((12, 3))], y[:2])
    with pytest.raises(ValueError, match=r"got X\[1\] of shape \(0, 2\)"):
        clf.fit([X[0], np.ones((0, 2))], y[:2])
    with pytest.raises(ValueError, match="needs at least two classes to learn, got one class"):
        clf.fit(X, ["up"] * 10)
    with pytest.raises(ValueError, match=r"y contains NaN or Inf \(first at index 2\)"):
        clf.fit(X, [0.0, 1.0, np.nan] + [1.0] * 7)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clf.fit(X, np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        clf.fit(X, None)
    with pytest.raises(ValueError, match="Found array with dim 3"):
        RNNRegressor().fit(X, np.ones((10, 2, 2)))


def test_predict_checks_what_fit_saw():
    X, y = bump_task(10, seed=0)
    clf = RNNClassifier(hidden_size=2, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features per step, but RNNClassifier is "
                                         "expecting 2 features per step"):
        clf.predict(np.ones((4, 12, 3)))
    with pytest.raises(ValueError, match="a 2-D X has 1 feature per step, but RNNClassifier "
                                         "is expecting 2"):
        clf.predict(np.ones((4, 12)))
    with pytest.raises(ValueError, match="X has 1 feature per step, but RNNClassifier"):
        clf.predict([np.ones((5, 1))])
    with pytest.raises(NotFittedError):
        RNNRegressor().predict(X)


# scikit-learn's estimator checks ---------------------------------------------------------------
@parametrize_with_checks([RNNClassifier(**SMALL), RNNRegressor(**SMALL)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("options", [
    {"cell": "lstm", "proj_size": 4}, {"cell": "lstm", "peepholes": True},
    {"cell": "gru", "layer_norm": True}, {"cell": "lstm", "num_layers": 2, "dropout": 0.2},
    {"cell": "gru", "recurrent_dropout": 0.2}, {"cell": "elman", "zoneout": 0.1},
    {"cell": "lstm", "zoneout": (0.1, 0.05)},
])
def test_cell_variants_reach_the_network(options):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6, 2)).astype(np.float32)
    y = (X[:, -1, 0] > 0).astype(int)
    clf = RNNClassifier(hidden_size=8, epochs=2, random_state=0, **options).fit(X, y)
    net = clf.network_
    for name, value in options.items():
        if name == "cell":
            assert net.cell == value
        elif name == "num_layers":
            assert net.rnn.num_layers == value
        elif name in ("dropout",):
            assert net.dropout == value
        else:
            got = getattr(net.rnn, name)
            assert got == value or tuple(np.atleast_1d(got)) == tuple(np.atleast_1d(value)), name
    assert clf.predict(X).shape == (24,)
    assert clone(clf).get_params() == clf.get_params()


def test_a_variant_the_cell_lacks_is_refused_at_fit_in_one_line():
    X = np.zeros((8, 3, 1), np.float32)
    with pytest.raises(ValueError, match="peepholes applies to the lstm cell only"):
        RNNClassifier(cell="gru", peepholes=True, epochs=1).fit(X, np.arange(8) % 2)
