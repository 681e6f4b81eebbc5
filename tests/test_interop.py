"""rnnlab.interop: conversions to and from PyTorch, their refusals, and import without torch.

The numerical agreement of every cell with PyTorch's autograd is in test_torch_parity.py;
here the conversions themselves are checked: exact round trips, both directions computing
the same function, and each documented refusal.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnnlab
from rnnlab import interop

#: test id -> (rnnlab layer class, its options)
LAYERS = {
    "elman-tanh": (rnnlab.Elman, {"activation": "tanh"}),
    "elman-relu": (rnnlab.Elman, {"activation": "relu"}),
    "lstm": (rnnlab.LSTM, {}),
    "gru": (rnnlab.GRU, {}),
}


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """PyTorch single-threaded here (restored afterwards): the tensors are tiny, and on a
    loaded 2-core machine oneDNN's float32 LSTM took ~0.5 s a call with 2 threads."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def torch_output(module, x):
    """A module's (y, final state parts) for a batch-first NumPy ``x``, as NumPy arrays."""
    import torch

    xt = torch.from_numpy(x)
    with torch.no_grad():
        y, state = module(xt if module.batch_first else xt.transpose(0, 1))
    y = y if module.batch_first else y.transpose(0, 1)
    parts = state if isinstance(state, tuple) else (state,)
    return y.numpy(), [s.numpy() for s in parts]


def rnnlab_output(layer, x):
    y, state, _ = layer.forward(x)
    return y, list(state) if isinstance(state, tuple) else [state]


def assert_same_function(layer, module, x, atol):
    y, state = rnnlab_output(layer, x)
    ty, tstate = torch_output(module, x)
    np.testing.assert_allclose(y, ty, rtol=0, atol=atol)
    for a, b in zip(state, tstate, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


# --- importing without torch ------------------------------------------------------------

def test_interop_does_not_import_torch_at_import_time():
    result = run_script("""
        import sys
        import rnnlab, rnnlab.interop
        from rnnlab import interop
        assert "torch" not in sys.modules, "importing rnnlab.interop imported torch"
    """)
    assert result.returncode == 0, result.stderr


def test_rnnlab_works_without_torch_and_conversion_says_why():
    # sys.modules[name] = None makes every `import torch` fail, as if it were not installed
    result = run_script("""
        import sys
        sys.modules["torch"] = None
        import rnnlab
        from rnnlab import interop
        layer = rnnlab.LSTM(3, 4, seed=0)
        for call in (lambda: interop.to_torch(layer), lambda: interop.from_torch(object())):
            try:
                call()
            except ImportError as e:
                assert "needs PyTorch" in str(e), e
            else:
                raise AssertionError("no ImportError without torch")
    """)
    assert result.returncode == 0, result.stderr


# --- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_rnnlab_torch_rnnlab_round_trip_is_exact(torch, name, num_layers, dtype):
    cls, opts = LAYERS[name]
    layer = cls(3, 5, num_layers, seed=num_layers, dtype=dtype, init="orthogonal", **opts)
    module = interop.to_torch(layer)
    assert module.batch_first and module.num_layers == num_layers
    assert module.weight_ih_l0.dtype == {np.float32: torch.float32,
                                         np.float64: torch.float64}[dtype]
    back = interop.from_torch(module)
    assert type(back) is cls and back.dtype == layer.dtype
    assert back.config.get("activation") == layer.config.get("activation")
    assert back.params.keys() == layer.params.keys()
    for key, value in layer.params.items():
        assert back.params[key].dtype == value.dtype
        np.testing.assert_array_equal(back.params[key], value, err_msg=key)
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(dtype)
    assert_same_function(layer, module, x, atol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_from_torch_computes_what_the_module_computes(torch, name, batch_first):
    torch.manual_seed(0)
    kwargs = {"nonlinearity": name.split("-")[1]} if name.startswith("elman") else {}
    cls = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name.split("-")[0]]
    module = cls(3, 4, 2, batch_first=batch_first, **kwargs).double()
    layer = interop.from_torch(module)
    assert type(layer) is LAYERS[name][0] and layer.dtype == np.float64
    x = np.random.default_rng(1).normal(size=(3, 5, 3))
    assert_same_function(layer, module, x, atol=1e-12)
    # and back: bias_ih and bias_hh are not kept apart (except the GRU's), the function is
    again = interop.to_torch(layer)
    assert_same_function(layer, again, x, atol=1e-12)
    if name == "gru":
        np.testing.assert_array_equal(again.bias_hh_l1.detach(), module.bias_hh_l1.detach())


def test_from_torch_keeps_the_module_dtype_unless_told(torch):
    module = torch.nn.LSTM(2, 3)
    assert interop.from_torch(module).dtype == np.float32
    wide = interop.from_torch(module, dtype=np.float64)
    assert wide.dtype == np.float64
    # float32 -> float64 is exact
    np.testing.assert_array_equal(wide.params["l0.W_h"], module.weight_hh_l0.detach().numpy().T)
    half = torch.nn.GRU(2, 3).half()
    with pytest.raises(ValueError, match="torch.float16"):
        interop.from_torch(half)
    assert interop.from_torch(half, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="int32"):
        interop.from_torch(module, dtype="int32")


@pytest.mark.parametrize("name", ["elman-tanh", "lstm", "gru"])
def test_bias_false_module_becomes_zero_biases(torch, name):
    cls = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name.split("-")[0]]
    module = cls(3, 4, 2, bias=False, batch_first=True).double()
    layer = interop.from_torch(module)
    biases = [k for k in layer.params if k.split(".")[1] in ("b", "b_h")]
    assert biases and all(not layer.params[k].any() for k in biases)
    x = np.random.default_rng(2).normal(size=(2, 6, 3))
    assert_same_function(layer, module, x, atol=1e-12)
    # its gradients map back too, without bias entries
    y, _ = module(torch.from_numpy(x))
    y.sum().backward()
    grads = interop.grads_from_torch(module)
    assert set(grads) == set(layer.params) - set(biases)


def test_dropout_is_accepted_with_a_warning(torch):
    module = torch.nn.LSTM(3, 4, 2, dropout=0.5, batch_first=True).double()
    with pytest.warns(UserWarning, match=r"dropout=0\.5"):
        layer = interop.from_torch(module)
    # rnnlab has no dropout: the layer is the module in eval() mode
    module.eval()
    assert_same_function(layer, module, np.random.default_rng(3).normal(size=(2, 5, 3)), 1e-12)


def test_to_torch_leaves_torch_global_generator_alone(torch):
    before = torch.get_rng_state()
    interop.to_torch(rnnlab.GRU(3, 4, 2, seed=0))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradients_of_a_converted_module_map_back(torch, name):
    cls, opts = LAYERS[name]
    layer = cls(3, 4, 2, seed=5, dtype=np.float64, **opts)
    module = interop.to_torch(layer)
    rng = np.random.default_rng(4)
    x, wy = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 4))
    y, _ = module(torch.from_numpy(x))
    (y * torch.from_numpy(wy)).sum().backward()
    _, _, cache = layer.forward(x)
    grads, _, _ = layer.backward(cache, wy)
    theirs = interop.grads_from_torch(module)
    assert theirs.keys() == grads.keys()
    for key, g in grads.items():
        np.testing.assert_allclose(theirs[key], g, rtol=0, atol=1e-10, err_msg=key)


def test_grads_from_torch_before_backward_is_refused(torch):
    with pytest.raises(ValueError, match=r"_l0\.grad is None: run backward"):
        interop.grads_from_torch(torch.nn.GRU(2, 3))


def test_gate_table_is_applied_both_ways(torch, monkeypatch):
    # The orders agree today, so an identity table would hide a conversion that forgot it;
    # with a made-up order, PyTorch's block k must hold rnnlab's block order[k].
    order = (2, 0, 3, 1)
    monkeypatch.setitem(interop.TORCH_GATE_ORDER, "lstm", order)
    layer = rnnlab.LSTM(3, 2, 2, seed=0, dtype=np.float64)
    module = interop.to_torch(layer)
    H = 2
    for k in range(2):
        ours = [layer.params[f"l{k}.W_x"][:, g * H:(g + 1) * H] for g in range(4)]
        theirs = module.state_dict()[f"weight_ih_l{k}"].numpy()
        for j, g in enumerate(order):
            np.testing.assert_array_equal(theirs[j * H:(j + 1) * H].T, ours[g])
    back = interop.from_torch(module)
    for key, value in layer.params.items():
        np.testing.assert_array_equal(back.params[key], value, err_msg=key)


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, named", [
    (lambda nn: "lstm", "str"),
    (lambda nn: np.zeros((4, 4)), "ndarray"),
    (lambda nn: rnnlab.LSTM(3, 4), "LSTM"),
    (lambda nn: nn.Linear(3, 4), "Linear"),
    (lambda nn: nn.LSTMCell(3, 4), "LSTMCell"),
    (lambda nn: nn.GRUCell(3, 4), "GRUCell"),
    (lambda nn: nn.Sequential(nn.LSTM(3, 4)), "Sequential"),
], ids=["str", "array", "rnnlab-layer", "Linear", "LSTMCell", "GRUCell", "Sequential"])
def test_other_objects_are_refused_by_name(torch, make, named):
    for convert in (interop.from_torch, interop.grads_from_torch):
        with pytest.raises(ValueError, match=f"got {named}$"):
            convert(make(torch.nn))


def test_to_torch_refuses_sigmoid_elman_and_non_layers(torch):
    with pytest.raises(ValueError, match="'sigmoid' has no PyTorch equivalent"):
        interop.to_torch(rnnlab.Elman(3, 4, activation="sigmoid"))
    with pytest.raises(ValueError, match="got Linear"):
        interop.to_torch(torch.nn.Linear(3, 4))
