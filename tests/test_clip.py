"""Tests of rnnlab.clip: global-norm and by-value gradient clipping."""

import math

import numpy as np
import pytest

from rnnlab.clip import clip_by_global_norm, clip_by_value, global_norm


def make_grads(dtype, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W": (scale * rng.standard_normal((7, 5))).astype(dtype),
        "b": (scale * rng.standard_normal(5)).astype(dtype),
        "U": (scale * rng.standard_normal((3, 4, 2))).astype(dtype),
    }


def reference_norm(grads):
    return math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_norm_matches_reference(dtype):
    grads = make_grads(dtype)
    assert global_norm(grads) == pytest.approx(reference_norm(grads), rel=1e-12)
    assert isinstance(global_norm(grads), float)


def test_global_norm_accumulates_float32_in_float64():
    # 10^6 values of 1e-3: the exact norm is 1. Accumulating squares in float32
    # would be off by far more than 1e-9.
    grads = {"g": np.full(10**6, 1e-3, dtype=np.float32)}
    exact = math.sqrt(10**6 * float(np.float32(1e-3)) ** 2)
    assert global_norm(grads) == pytest.approx(exact, rel=1e-12)


def test_global_norm_empty_is_zero():
    assert global_norm({}) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_norm_below_threshold_is_bitwise_untouched(dtype):
    grads = make_grads(dtype)
    before = {k: v.copy() for k, v in grads.items()}
    norm = reference_norm(grads)
    returned = clip_by_global_norm(grads, norm * 1.5)
    assert returned == pytest.approx(norm, rel=1e-12)
    for k in grads:
        assert grads[k].dtype == dtype
        assert grads[k].tobytes() == before[k].tobytes()


def test_global_norm_exactly_at_threshold_is_untouched():
    grads = make_grads(np.float64)
    before = {k: v.copy() for k, v in grads.items()}
    norm = global_norm(grads)
    assert clip_by_global_norm(grads, norm) == norm
    for k in grads:
        assert np.array_equal(grads[k], before[k])


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_global_norm_above_threshold_scales_to_threshold(dtype, rtol):
    grads = make_grads(dtype, scale=10.0)
    before = {k: v.astype(np.float64) for k, v in grads.items()}
    norm = reference_norm(grads)
    max_norm = 0.5
    returned = clip_by_global_norm(grads, max_norm)
    assert returned == pytest.approx(norm, rel=1e-12)
    assert reference_norm(grads) == pytest.approx(max_norm, rel=rtol)
    # Direction preserved: every array scaled by the same factor, dtype kept.
    for k in grads:
        assert grads[k].dtype == dtype
        np.testing.assert_allclose(grads[k], before[k] * (max_norm / norm), rtol=rtol)


def test_global_norm_clips_in_place_same_objects():
    grads = make_grads(np.float64, scale=10.0)
    ids = {k: id(v) for k, v in grads.items()}
    clip_by_global_norm(grads, 1.0)
    assert {k: id(v) for k, v in grads.items()} == ids


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_global_norm_non_finite_returns_it_and_leaves_grads(bad):
    grads = make_grads(np.float64, scale=10.0)
    grads["b"][2] = bad
    before = {k: v.copy() for k, v in grads.items()}
    norm = clip_by_global_norm(grads, 1.0)
    if np.isnan(bad):
        assert math.isnan(norm)
    else:
        assert norm == math.inf
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


@pytest.mark.parametrize("bad", [0, -1.0, np.inf, np.nan, "1", None, True])
def test_clip_by_global_norm_rejects_bad_max_norm(bad):
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm(make_grads(np.float64), bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_value_clips_elementwise(dtype):
    grads = {
        "a": np.array([-3.0, -0.5, 0.0, 0.25, 2.0], dtype=dtype),
        "b": np.array([[0.1, -0.2], [0.3, 1.5]], dtype=dtype),
    }
    largest = clip_by_value(grads, 1.0)
    assert largest == 3.0
    assert isinstance(largest, float)
    np.testing.assert_array_equal(grads["a"], np.array([-1.0, -0.5, 0.0, 0.25, 1.0], dtype))
    np.testing.assert_array_equal(grads["b"], np.array([[0.1, -0.2], [0.3, 1.0]], dtype))
    assert grads["a"].dtype == dtype


def test_clip_by_value_below_limit_untouched_and_returns_max_abs():
    grads = make_grads(np.float32)
    before = {k: v.copy() for k, v in grads.items()}
    expected = max(float(np.abs(g).max()) for g in grads.values())
    assert clip_by_value(grads, expected + 1.0) == expected
    for k in grads:
        assert grads[k].tobytes() == before[k].tobytes()


def test_clip_by_value_nan_is_reported():
    grads = {"a": np.array([np.nan, 5.0]), "b": np.array([7.0])}
    assert math.isnan(clip_by_value(grads, 1.0))
    assert math.isnan(grads["a"][0]) and grads["a"][1] == 1.0 and grads["b"][0] == 1.0


@pytest.mark.parametrize("bad", [0, -2.0, np.nan, np.inf])
def test_clip_by_value_rejects_bad_limit(bad):
    with pytest.raises(ValueError, match="limit"):
        clip_by_value(make_grads(np.float64), bad)


@pytest.mark.parametrize(
    "grads",
    [[np.ones(3)], {"a": [1.0, 2.0]}, {"a": np.arange(3)}],
    ids=["list", "list-value", "int-array"],
)
def test_bad_grads_rejected(grads):
    with pytest.raises(ValueError, match="grads"):
        global_norm(grads)
    with pytest.raises(ValueError, match="grads"):
        clip_by_global_norm(grads, 1.0)
    with pytest.raises(ValueError, match="grads"):
        clip_by_value(grads, 1.0)
