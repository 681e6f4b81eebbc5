import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from rnnlab import losses


def test_log_softmax_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    lp = losses.log_softmax(z)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(lp[0], [0.0, -1000.0, -2000.0])
    np.testing.assert_allclose(lp[1], np.log(1 / 3))
    loss, d = losses.softmax_cross_entropy(z, np.array([2, 0]))
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest.approx((2000.0 + np.log(3)) / 2)


@pytest.mark.parametrize("fn", ["ce", "se"])
def test_loss_gradients_match_finite_differences(fn):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4))
    w = np.array([1, 1, 0, 1, 0, 1.0])
    if fn == "ce":
        t = rng.integers(0, 4, size=6)
        f = losses.softmax_cross_entropy
    else:
        t = rng.normal(size=(6, 4))
        f = losses.squared_error
    _, d = f(z, t, w)
    assert rel_error(d, numerical_grad(lambda: f(z, t, w)[0], z)) < 1e-8
    assert np.all(d[[2, 4]] == 0)


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z = rng.normal(size=(7, 5))
    t = rng.integers(0, 5, size=7)
    ref = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(t)).item()
    assert losses.softmax_cross_entropy(z, t)[0] == pytest.approx(ref, abs=1e-14)
    v = rng.normal(size=(7, 5))
    ref = torch.nn.functional.mse_loss(torch.tensor(z), torch.tensor(v)).item()
    assert losses.squared_error(z, v)[0] == pytest.approx(ref, abs=1e-14)
