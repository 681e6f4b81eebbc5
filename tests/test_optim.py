"""Tests of rnnlab.optim: optimisers against torch.optim, state round-trips, schedules."""

import importlib.util
import itertools
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnlab.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    RMSProp,
    constant,
    cosine,
    make_optimizer,
    step_decay,
    warmup,
)

# (name, kwargs): the kwargs are valid for both our optimiser and the torch one.
CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.02, "betas": (0.85, 0.995), "weight_decay": 0.3}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.9}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    (
        "rmsprop",
        {
            "lr": 0.01,
            "alpha": 0.9,
            "eps": 1e-6,
            "momentum": 0.5,
            "centered": True,
            "weight_decay": 0.05,
        },
    ),
    ("adagrad", {"lr": 0.1}),
    (
        "adagrad",
        {
            "lr": 0.1,
            "lr_decay": 0.01,
            "weight_decay": 0.05,
            "initial_accumulator_value": 0.1,
            "eps": 1e-8,
        },
    ),
]
CONFIG_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]

TORCH_CLASSES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
}

N_STEPS = 10


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((4, 3)).astype(dtype),
        "lstm.b": rng.standard_normal(3).astype(dtype),
        "U": rng.standard_normal((2, 3, 2)).astype(dtype),
    }


def make_grad_sequence(params, n_steps, seed=1):
    rng = np.random.default_rng(seed)
    seq = []
    for _ in range(n_steps):
        seq.append({k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()})
    # Exact zeros exercise the eps paths (0 / (0 + eps)).
    seq[0]["lstm.b"][1] = 0.0
    return seq


def lr_at(step):
    """A non-trivial per-step learning-rate sequence for the override tests."""
    return 0.02 * (1 + step % 3)


def run_torch(name, kwargs, params, grad_seq, *, override):
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    opt = getattr(torch.optim, TORCH_CLASSES[name])(list(tensors.values()), **kwargs)
    history = []
    for i, grads in enumerate(grad_seq):
        if override:
            for group in opt.param_groups:
                group["lr"] = lr_at(i)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k].copy())
        opt.step()
        history.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return history


def run_ours(name, kwargs, params, grad_seq, *, override):
    params = {k: v.copy() for k, v in params.items()}
    opt = make_optimizer(name, **kwargs)
    history = []
    for i, grads in enumerate(grad_seq):
        opt.step(params, grads, lr=lr_at(i) if override else None)
        history.append({k: v.copy() for k, v in params.items()})
    return history


@pytest.mark.parametrize("override", [False, True], ids=["stored-lr", "lr-override"])
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_float64(name, kwargs, override):
    params = make_params()
    grad_seq = make_grad_sequence(params, N_STEPS)
    expected = run_torch(name, kwargs, params, grad_seq, override=override)
    got = run_ours(name, kwargs, params, grad_seq, override=override)
    for step, (e, g) in enumerate(zip(expected, got, strict=True)):
        for k in e:
            assert g[k].dtype == np.float64
            diff = np.max(np.abs(g[k] - e[k]))
            assert diff < 1e-12, f"step {step}, {k}: max abs diff {diff}"
    # Guard against a vacuous pass: the parameters must actually have moved.
    assert max(np.max(np.abs(got[-1][k] - params[k])) for k in params) > 1e-3


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_float32_and_keeps_dtype(name, kwargs):
    params = make_params(np.float32)
    grad_seq = make_grad_sequence(params, 5)
    expected = run_torch(name, kwargs, params, grad_seq, override=False)
    got = run_ours(name, kwargs, params, grad_seq, override=False)
    for e, g in zip(expected, got, strict=True):
        for k in e:
            assert g[k].dtype == np.float32
            np.testing.assert_allclose(g[k], e[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_state_is_kept_in_parameter_dtype(name, kwargs):
    params = make_params(np.float32)
    opt = make_optimizer(name, **kwargs)
    opt.step(params, make_grad_sequence(params, 1)[0])
    for key, value in opt.state_dict().items():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32, key


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_state_dict_npz_round_trip_is_bit_identical(name, kwargs, tmp_path):
    params = make_params()
    grad_seq = make_grad_sequence(params, 8)

    # Uninterrupted run.
    ref_params = {k: v.copy() for k, v in params.items()}
    ref = make_optimizer(name, **kwargs)
    for grads in grad_seq:
        ref.step(ref_params, grads)

    # Interrupted run: save after 4 steps, restore into an optimiser built with
    # different (default) hyper-parameters, continue.
    run_params = {k: v.copy() for k, v in params.items()}
    first = make_optimizer(name, **kwargs)
    for grads in grad_seq[:4]:
        first.step(run_params, grads)
    state = first.state_dict()
    path = tmp_path / "opt.npz"
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    second = make_optimizer(name, params=run_params)
    second.load_state_dict(loaded)
    # load_state_dict must copy: scribbling on the source afterwards is harmless.
    for value in loaded.values():
        value[...] = 7
    assert second.n_steps == 4
    assert second.hyperparameters == first.hyperparameters
    for grads in grad_seq[4:]:
        second.step(run_params, grads)

    for k in params:
        assert run_params[k].tobytes() == ref_params[k].tobytes(), k
    assert second.state_dict().keys() == ref.state_dict().keys()


# The state-dict format that checkpoints written before the optimisers became specs
# (commit 10a3769) hold as optim/<key> arrays: hyper-parameter names per optimiser, and the
# buffers each of CONFIGS keeps per parameter.
OLD_HYPER = {
    "sgd": "lr momentum weight_decay nesterov",
    "adam": "lr beta1 beta2 eps weight_decay",
    "adamw": "lr beta1 beta2 eps weight_decay",
    "rmsprop": "lr alpha eps weight_decay momentum centered",
    "adagrad": "lr lr_decay weight_decay initial_accumulator_value eps",
}
OLD_BUFFERS = ["", "", "momentum_buffer", "momentum_buffer", "m v", "m v", "m v", "m v",
               "square_avg", "square_avg momentum_buffer", "square_avg grad_avg",
               "square_avg grad_avg momentum_buffer", "sum", "sum"]
OLD_COMMIT = "10a3769d7d07aa40177b778a4e32322df5682f7d"


def old_keys(i):
    name = CONFIGS[i][0]
    return ({"step"} | {f"{name}.{h}" for h in OLD_HYPER[name].split()}
            | {f"{name}.{b}.{p}" for b in OLD_BUFFERS[i].split() for p in make_params()})


def through_checkpoint(state, tmp_path):
    """`state` written and read back as rnnlab.train does with its checkpoints."""
    path = tmp_path / "ckpt.npz"
    np.savez(path, **{f"optim/{k}": np.asarray(v) for k, v in state.items()})
    with np.load(path, allow_pickle=False) as f:
        return {k[6:]: (f[k].item() if f[k].ndim == 0 else f[k]) for k in f.files}


@pytest.mark.parametrize("i", range(len(CONFIGS)), ids=CONFIG_IDS)
def test_state_dict_keeps_the_checkpoint_format(i):
    name, kwargs = CONFIGS[i]
    params = make_params()
    opt = make_optimizer(name, **kwargs)
    opt.step(params, make_grad_sequence(params, 1)[0])
    state = opt.state_dict()
    assert set(state) == old_keys(i)
    assert type(state["step"]) is int
    assert all(type(state[f"{name}.{h}"]) in (int, float) for h in OLD_HYPER[name].split())


@pytest.fixture(scope="module")
def old_optim(tmp_path_factory):
    """The optim module as it was at OLD_COMMIT, from git (skipped where history is absent)."""
    root = Path(__file__).resolve().parents[1]
    try:
        text = subprocess.run(["git", "-C", str(root), "show", f"{OLD_COMMIT}:src/rnnlab/optim.py"],
                              capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with commit {OLD_COMMIT} is not available")
    path = tmp_path_factory.mktemp("old") / "old_optim.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("old_optim", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("i", range(len(CONFIGS)), ids=CONFIG_IDS)
def test_old_state_dict_loads_and_continues_identically(i, old_optim, tmp_path):
    name, kwargs = CONFIGS[i]
    params = make_params()
    grad_seq = make_grad_sequence(params, 8)
    ref = {k: v.copy() for k, v in params.items()}
    old = old_optim.make_optimizer(name, **kwargs)
    for grads in grad_seq:
        old.step(ref, grads)

    run = {k: v.copy() for k, v in params.items()}
    old = old_optim.make_optimizer(name, **kwargs)
    for grads in grad_seq[:4]:
        old.step(run, grads)
    state = old.state_dict()
    assert set(state) == old_keys(i)
    new = make_optimizer(name, params=run)
    new.load_state_dict(through_checkpoint(state, tmp_path))
    for grads in grad_seq[4:]:
        new.step(run, grads)
    for k in params:
        assert run[k].tobytes() == ref[k].tobytes(), k
    assert set(new.state_dict()) == old_keys(i)
    assert repr(new) == repr(old)


def test_state_dict_is_a_copy():
    params = make_params()
    opt = Adam(lr=0.1)
    opt.step(params, make_grad_sequence(params, 1)[0])
    state = opt.state_dict()
    snapshot = {k: np.copy(v) for k, v in state.items()}
    opt.step(params, make_grad_sequence(params, 1, seed=5)[0])
    for k, v in state.items():
        np.testing.assert_array_equal(v, snapshot[k])


def test_state_dict_keys():
    params = make_params()
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    state = opt.state_dict()
    assert set(state) == {
        "step",
        "sgd.lr",
        "sgd.momentum",
        "sgd.weight_decay",
        "sgd.nesterov",
        "sgd.momentum_buffer.W",
        "sgd.momentum_buffer.lstm.b",
        "sgd.momentum_buffer.U",
    }
    assert state["sgd.nesterov"] == 1 and isinstance(state["sgd.nesterov"], int)
    adam = Adam(params).state_dict()
    assert {"adam.m.W", "adam.v.lstm.b", "step"} <= set(adam)


def test_load_into_unbound_optimizer_then_step():
    params = make_params()
    grads = make_grad_sequence(params, 2)
    a = RMSProp(lr=0.01, centered=True, momentum=0.5)
    pa = {k: v.copy() for k, v in params.items()}
    a.step(pa, grads[0])
    b = RMSProp()  # unbound, different hyper-parameters
    b.load_state_dict(a.state_dict())
    pb = {k: v.copy() for k, v in pa.items()}
    a.step(pa, grads[1])
    b.step(pb, grads[1])
    for k in params:
        assert pa[k].tobytes() == pb[k].tobytes()
    # It is now bound to the loaded shapes.
    with pytest.raises(ValueError, match="shape"):
        b.step({**pb, "W": np.zeros((5, 3))}, {**grads[1], "W": np.zeros((5, 3))})


def test_load_state_dict_rejects_mismatched_names():
    params = make_params()
    opt = Adam(params, lr=0.1)
    opt.step(params, make_grad_sequence(params, 1)[0])
    state = opt.state_dict()
    other = Adam({"W": params["W"], "V": params["U"]})
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict(state)


def test_load_state_dict_rejects_mismatched_shapes():
    params = make_params()
    opt = Adagrad(params)
    opt.step(params, make_grad_sequence(params, 1)[0])
    state = opt.state_dict()
    other = Adagrad({**params, "W": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(state)


def test_load_state_dict_rejects_other_optimizer_state():
    params = make_params()
    sgd = SGD(params, momentum=0.9)
    with pytest.raises(ValueError, match="missing keys"):
        Adam(params).load_state_dict(sgd.state_dict())
    # Same class but an extra buffer it does not expect.
    state = SGD(params, momentum=0.9).state_dict()
    state["sgd.momentum"] = 0.0
    with pytest.raises(ValueError, match="unexpected keys"):
        SGD(params).load_state_dict(state)


def test_load_state_dict_rejects_missing_buffer_and_bad_hyper():
    params = make_params()
    opt = Adam(params)
    opt.step(params, make_grad_sequence(params, 1)[0])
    state = opt.state_dict()
    broken = dict(state)
    del broken["adam.v.W"]
    with pytest.raises(ValueError, match="adam.v.W"):
        Adam(params).load_state_dict(broken)
    bad = dict(state)
    bad["adam.lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        Adam(params).load_state_dict(bad)


def test_failed_load_leaves_optimizer_unchanged():
    params = make_params()
    opt = Adam(params, lr=0.1)
    opt.step(params, make_grad_sequence(params, 1)[0])
    before = opt.state_dict()
    bad = dict(before)
    bad["adam.m.W"] = np.zeros((9, 9))
    bad["adam.lr"] = 0.5
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_step_rejects_mismatched_grads_and_leaves_params():
    params = make_params()
    grads = make_grad_sequence(params, 1)[0]
    opt = SGD(lr=0.1)
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(ValueError, match="keys"):
        opt.step(params, {k: v for k, v in grads.items() if k != "W"})
    with pytest.raises(ValueError, match="shape"):
        opt.step(params, {**grads, "W": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="lr"):
        opt.step(params, grads, lr=-0.1)
    with pytest.raises(ValueError, match="floating-point"):
        opt.step(params, {**grads, "W": [[0.0] * 3] * 4})
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    assert opt.n_steps == 0


def test_step_rejects_params_that_differ_from_bound_ones():
    params = make_params()
    opt = Adam(params)
    renamed = {"X" if k == "W" else k: v for k, v in params.items()}
    grads = {k: np.zeros_like(v) for k, v in renamed.items()}
    with pytest.raises(ValueError, match="missing"):
        opt.step(renamed, grads)
    as32 = {k: v.astype(np.float32) for k, v in params.items()}
    with pytest.raises(ValueError, match="dtype"):
        opt.step(as32, {k: np.zeros_like(v) for k, v in as32.items()})


def test_lr_override_applies_to_one_step_only():
    params = {"w": np.array([1.0])}
    opt = SGD(lr=0.1)
    opt.step(params, {"w": np.array([1.0])}, lr=0.5)
    assert params["w"][0] == pytest.approx(0.5)
    opt.step(params, {"w": np.array([1.0])})
    assert params["w"][0] == pytest.approx(0.4)
    assert opt.lr == 0.1


def test_grads_not_modified():
    params = make_params()
    grads = make_grad_sequence(params, 1)[0]
    before = {k: v.copy() for k, v in grads.items()}
    for name, kwargs in CONFIGS:
        make_optimizer(name, **kwargs).step({k: v.copy() for k, v in params.items()}, grads)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_make_optimizer_classes_and_unknown_name():
    assert type(make_optimizer("sgd")) is SGD
    assert type(make_optimizer("Adam", lr=0.5)) is Adam
    assert type(make_optimizer("adamw")) is AdamW
    assert type(make_optimizer("rmsprop")) is RMSProp
    assert type(make_optimizer("adagrad")) is Adagrad
    assert make_optimizer("adam", lr=0.5).lr == 0.5
    assert make_optimizer("adamw").weight_decay == 0.01  # PyTorch's default
    with pytest.raises(ValueError, match="adagrad.*adam.*adamw.*rmsprop.*sgd"):
        make_optimizer("lbfgs")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("sgd", {"lr": -1}, "lr must be a non-negative"),
        ("sgd", {"lr": float("nan")}, "lr"),
        ("sgd", {"lr": True}, "lr"),
        ("sgd", {"momentum": 1.0}, "momentum"),
        ("sgd", {"momentum": -0.1}, "momentum"),
        ("sgd", {"nesterov": True}, "nesterov"),
        ("sgd", {"momentum": 0.9, "nesterov": 1}, "nesterov must be True or False"),
        ("sgd", {"weight_decay": -1e-4}, "weight_decay"),
        ("adam", {"betas": (0.9, 1.0)}, r"betas\[1\]"),
        ("adam", {"betas": (-0.1, 0.9)}, r"betas\[0\]"),
        ("adam", {"betas": 0.9}, "betas"),
        ("adam", {"eps": 0.0}, "eps"),
        ("adamw", {"weight_decay": -0.01}, "weight_decay"),
        ("rmsprop", {"alpha": 1.5}, "alpha"),
        ("rmsprop", {"centered": "yes"}, "centered"),
        ("adagrad", {"lr_decay": -1.0}, "lr_decay"),
        ("adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
        ("adagrad", {"eps": -1e-10}, "eps"),
    ],
)
def test_bad_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, **kwargs)


def test_rmsprop_centered_does_not_produce_nan_for_constant_gradient():
    # s - a**2 is a variance that rounds below zero for a constant float32
    # gradient; torch.optim.RMSprop turns an entry nan here after ~1200 steps.
    rng = np.random.default_rng(0)
    params = {"w": np.zeros(10_000, dtype=np.float32)}
    g = {"w": rng.uniform(0.1, 3.0, 10_000).astype(np.float32)}
    opt = RMSProp(lr=1e-3, centered=True)
    for _ in range(1500):
        opt.step(params, g)
    assert np.all(np.isfinite(params["w"]))


# --- schedules ---------------------------------------------------------------


def test_constant_schedule():
    s = constant(0.1)
    assert s(0) == 0.1 and s(12345) == 0.1


def test_step_decay_schedule():
    s = step_decay(1.0, 10, 0.5)
    assert [s(0), s(9), s(10), s(19), s(20), s(35)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_cosine_schedule():
    s = cosine(1.0, 100, min_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)
    assert s(25) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert s(100) == pytest.approx(0.1)
    assert s(1000) == pytest.approx(0.1)
    assert cosine(2.0, 10)(10) == pytest.approx(0.0, abs=1e-15)
    values = [s(i) for i in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_warmup_schedule():
    s = warmup(constant(1.0), 4)
    assert [s(0), s(1), s(2), s(3), s(4), s(100)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    inner = step_decay(1.0, 2, 0.5)
    w = warmup(inner, 4)
    assert w(1) == pytest.approx(inner(1) * 2 / 4)
    assert w(3) == inner(3) == 0.5
    assert w(6) == inner(6)
    assert warmup(constant(0.3), 0)(0) == 0.3


def test_schedule_drives_optimizer_like_torch_lambda():
    # A warmed-up cosine schedule passed through step(lr=...) equals the torch
    # run with the same per-step lr (ties the schedule to the optimiser API).
    torch = pytest.importorskip("torch")
    sched = warmup(cosine(0.05, 8), 3)
    params = make_params()
    grad_seq = make_grad_sequence(params, 8)
    ours = {k: v.copy() for k, v in params.items()}
    opt = Adam()
    tensors = [torch.tensor(params[k].copy()) for k in params]
    topt = torch.optim.Adam(tensors, lr=0.05)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda i: sched(i) / 0.05)
    for i, grads in enumerate(grad_seq):
        opt.step(ours, grads, lr=sched(i))
        for t, k in zip(tensors, params, strict=True):
            t.grad = torch.tensor(grads[k].copy())
        topt.step()
        tsched.step()
    for t, k in zip(tensors, params, strict=True):
        assert np.max(np.abs(ours[k] - t.numpy())) < 1e-12


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: constant(-1), "lr"),
        (lambda: step_decay(1.0, 0, 0.5), "step_size"),
        (lambda: step_decay(1.0, 2.5, 0.5), "step_size"),
        (lambda: step_decay(1.0, 10, 0.0), "gamma"),
        (lambda: step_decay(1.0, 10, 1.5), "gamma"),
        (lambda: cosine(1.0, 0), "total_steps"),
        (lambda: cosine(1.0, 10, min_lr=2.0), "min_lr"),
        (lambda: cosine(1.0, 10, min_lr=-0.1), "min_lr"),
        (lambda: warmup(0.1, 5), "schedule"),
        (lambda: warmup(constant(1.0), -1), "warmup_steps"),
    ],
)
def test_bad_schedule_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("step", [-1, 1.5, "3", None])
def test_schedule_rejects_bad_step(step):
    for s in (constant(1.0), step_decay(1.0, 2, 0.5), cosine(1.0, 5), warmup(constant(1.0), 2)):
        with pytest.raises(ValueError, match="step"):
            s(step)
