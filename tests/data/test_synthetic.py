"""Tests of rnnlab.data.synthetic: adding problem, temporal order, copy task."""

import numpy as np
import pytest

from rnnlab.data.synthetic import (
    TEMPORAL_ORDER_SYMBOLS,
    adding_accuracy,
    adding_problem,
    copy_task,
    temporal_order,
)

# --- adding problem -----------------------------------------------------------


@pytest.mark.parametrize("length", [2, 3, 50, 101])
def test_adding_shapes_dtypes_and_targets(length):
    n = 300
    X, Y = adding_problem(n, length, seed=0)
    assert X.shape == (n, length, 2) and X.dtype == np.float32
    assert Y.shape == (n, 1) and Y.dtype == np.float32
    values, markers = X[:, :, 0], X[:, :, 1]
    assert values.min() >= 0.0 and values.max() < 1.0
    # Exactly two markers, all 0/1, one in each half.
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = length // 2
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), 1.0)
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), 1.0)
    # Target is the sum of the two marked values (float32 addition, exact).
    first = markers[:, :half].argmax(axis=1)
    second = half + markers[:, half:].argmax(axis=1)
    rows = np.arange(n)
    np.testing.assert_array_equal(Y[:, 0], values[rows, first] + values[rows, second])


def test_adding_marker_positions_cover_both_halves():
    X, _ = adding_problem(4000, 20, seed=1)
    positions = np.nonzero(X[:, :, 1])[1]
    # Every position of the sequence is used by some marker.
    assert set(positions.tolist()) == set(range(20))


def test_adding_values_spread_over_unit_interval():
    X, Y = adding_problem(2000, 30, seed=2)
    assert X[:, :, 0].mean() == pytest.approx(0.5, abs=0.01)
    assert X[:, :, 0].min() < 0.01 and X[:, :, 0].max() > 0.99
    assert Y.mean() == pytest.approx(1.0, abs=0.03)


def test_adding_seed_reproducible_and_distinct():
    X1, Y1 = adding_problem(10, 30, seed=7)
    X2, Y2 = adding_problem(10, 30, seed=7)
    X3, _ = adding_problem(10, 30, seed=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(Y1, Y2)
    assert not np.array_equal(X1, X3)
    X4, _ = adding_problem(10, 30, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(X1, X4)


def test_generators_do_not_touch_global_random_state():
    # Reading the legacy global state is the point of this test, hence the noqa.
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    adding_problem(5, 10, seed=0)
    temporal_order(5, 20, seed=0)
    copy_task(5, 3, delay=4, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_adding_accuracy():
    Y = np.array([[0.5], [1.0], [1.5], [0.2]], dtype=np.float32)
    pred = np.array([[0.53], [1.05], [1.5], [0.16]])
    # Errors 0.03 (ok), 0.05 (no), 0 (ok), 0.04 (no: strict inequality).
    assert adding_accuracy(pred, Y) == pytest.approx(0.5)
    assert adding_accuracy(pred[:, 0], Y) == pytest.approx(0.5)
    assert adding_accuracy(pred, Y, tol=0.1) == 1.0
    assert adding_accuracy(np.full((4, 1), np.nan), Y) == 0.0


@pytest.mark.parametrize(
    ("pred", "Y", "tol", "match"),
    [
        (np.zeros((3, 1)), np.zeros((4, 1)), 0.04, "same number"),
        (np.zeros((3, 3)), np.zeros((3, 1)), 0.04, "pred must have shape"),
        (np.zeros((0, 1)), np.zeros((0, 1)), 0.04, "n >= 1"),
        (np.zeros((3, 1)), np.zeros((3, 1)), 0.0, "tol"),
        (np.zeros((3, 1)), np.zeros((3, 1)), -0.1, "tol"),
    ],
)
def test_adding_accuracy_bad_arguments(pred, Y, tol, match):
    with pytest.raises(ValueError, match=match):
        adding_accuracy(pred, Y, tol=tol)


@pytest.mark.parametrize(
    ("n", "length", "seed", "match"),
    [
        (0, 10, 0, "n must be"),
        (2.0, 10, 0, "n must be"),
        (True, 10, 0, "n must be"),
        (5, 1, 0, "length must be"),
        (5, 10, -1, "seed"),
        (5, 10, 1.5, "seed"),
        (5, 10, None, "seed"),
    ],
)
def test_adding_bad_arguments(n, length, seed, match):
    with pytest.raises(ValueError, match=match):
        adding_problem(n, length, seed=seed)


# --- temporal order -----------------------------------------------------------


def decode(X):
    """One-hot -> symbol indices, asserting the encoding is one-hot."""
    np.testing.assert_array_equal(X.sum(axis=-1), 1.0)
    assert set(np.unique(X)) <= {0.0, 1.0}
    return X.argmax(axis=-1)


@pytest.mark.parametrize(
    ("length", "t1_range", "t2_range"),
    [(100, (10, 20), (50, 60)), (200, (20, 40), (100, 120)), (10, (1, 2), (5, 6))],
)
def test_temporal_order_layout(length, t1_range, t2_range):
    n = 2000
    X, Y = temporal_order(n, length, seed=3)
    assert X.shape == (n, length, 8) and X.dtype == np.float32
    assert Y.shape == (n,) and Y.dtype == np.int64
    sym = decode(X)
    B, E, Xs, Ys = (TEMPORAL_ORDER_SYMBOLS.index(s) for s in "BEXY")
    assert np.all(sym[:, 0] == B) and np.all(sym[:, -1] == E)
    inner = sym[:, 1:-1]
    # B and E appear only at the ends.
    assert not np.isin(inner, [B, E]).any()
    # Exactly two relevant symbols, at the (scaled) H&S positions.
    relevant = np.isin(sym, [Xs, Ys])
    np.testing.assert_array_equal(relevant.sum(axis=1), 2)
    rows, cols = np.nonzero(relevant)
    t1, t2 = cols[0::2], cols[1::2]
    np.testing.assert_array_equal(rows[0::2], np.arange(n))
    assert t1.min() == t1_range[0] and t1.max() == t1_range[1]
    assert t2.min() == t2_range[0] and t2.max() == t2_range[1]
    # Distractors a..d fill the rest, all four used.
    distractors = inner[~relevant[:, 1:-1]]
    assert set(np.unique(distractors)) == {0, 1, 2, 3}
    # Class = order of the relevant symbols: XX 0, XY 1, YX 2, YY 3.
    ar = np.arange(n)
    expected = 2 * (sym[ar, t1] == Ys) + (sym[ar, t2] == Ys)
    np.testing.assert_array_equal(Y, expected)


def test_temporal_order_classes_balanced():
    _, Y = temporal_order(4000, 100, seed=4)
    counts = np.bincount(Y, minlength=4)
    assert counts.shape == (4,)
    # Expected 1000 each, standard deviation about 27.
    assert np.all(np.abs(counts - 1000) < 150), counts


def test_temporal_order_seeds():
    a = temporal_order(20, 100, seed=1)
    b = temporal_order(20, 100, seed=1)
    c = temporal_order(20, 100, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("n", "length", "match"),
    [(0, 100, "n must be"), (5, 9, "length must be an integer >= 10"), (5, 100.0, "length")],
)
def test_temporal_order_bad_arguments(n, length, match):
    with pytest.raises(ValueError, match=match):
        temporal_order(n, length, seed=0)


# --- copy task ----------------------------------------------------------------


@pytest.mark.parametrize(("length", "delay", "n_symbols"), [(10, 20, 8), (3, 1, 4), (1, 5, 1)])
def test_copy_task_layout(length, delay, n_symbols):
    n = 500
    X, Y = copy_task(n, length, n_symbols=n_symbols, delay=delay, seed=5)
    total = 2 * length + delay
    assert X.shape == (n, total, n_symbols + 2) and X.dtype == np.float32
    assert Y.shape == (n, total) and Y.dtype == np.int64
    tokens = decode(X)
    data = tokens[:, :length]
    assert data.min() == 1 and data.max() == n_symbols
    # delay - 1 blanks, the delimiter, then length blanks.
    np.testing.assert_array_equal(tokens[:, length : length + delay - 1], 0)
    np.testing.assert_array_equal(tokens[:, length + delay - 1], n_symbols + 1)
    np.testing.assert_array_equal(tokens[:, length + delay :], 0)
    # Targets: blank for length + delay steps, then the symbols in order.
    np.testing.assert_array_equal(Y[:, : length + delay], 0)
    np.testing.assert_array_equal(Y[:, length + delay :], data)


def test_copy_task_uses_all_symbols_and_seeds():
    X1, Y1 = copy_task(200, 10, delay=5, seed=9)
    X2, Y2 = copy_task(200, 10, delay=5, seed=9)
    X3, _ = copy_task(200, 10, delay=5, seed=10)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(Y1, Y2)
    assert not np.array_equal(X1, X3)
    assert set(np.unique(Y1[:, -10:])) == set(range(1, 9))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0, "length": 5, "delay": 3}, "n must be"),
        ({"n": 2, "length": 0, "delay": 3}, "length must be"),
        ({"n": 2, "length": 5, "delay": 0}, "delay must be"),
        ({"n": 2, "length": 5, "delay": 3, "n_symbols": 0}, "n_symbols must be"),
        ({"n": 2, "length": 5, "delay": 2.5}, "delay must be"),
    ],
)
def test_copy_task_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        copy_task(seed=0, **kwargs)
