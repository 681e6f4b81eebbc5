"""TensorBoard event files: written by the Trainer and rnnlab.lm, read back and compared
with what the runs logged to their JSON-lines files.

The event files are parsed here as TensorBoard reads them: TFRecord framing (length, its
masked CRC-32C, the record, its masked CRC-32C) around ``Event`` protocol buffers, with
tensorboardX's own protobuf classes.
"""

import json
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboardX", reason="the TensorBoard tests need rnnlab[tensorboard]")

from tensorboardX.proto.event_pb2 import Event  # noqa: E402
from tensorboardX.record_writer import masked_crc32c  # noqa: E402

import rnnlab  # noqa: E402
import runfolders  # noqa: E402
from rnnlab.schedules import cosine  # noqa: E402


def read_events(logdir) -> list:
    """Every Event of every event file under ``logdir``, CRCs checked."""
    events = []
    for f in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data, at = f.read_bytes(), 0
        while at < len(data):
            header = data[at:at + 8]
            (n,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
            body = data[at + 12:at + 12 + n]
            assert struct.unpack("<I", data[at + 12 + n:at + 16 + n])[0] == masked_crc32c(body)
            events.append(Event.FromString(body))
            at += 16 + n
    return events


def scalars(events) -> dict:
    """tag -> {step: value}."""
    out = defaultdict(dict)
    for e in events:
        for v in e.summary.value:
            if v.WhichOneof("value") == "simple_value":
                out[v.tag][e.step] = v.simple_value
    return out


def histograms(events) -> dict:
    """tag -> {step: HistogramProto}."""
    out = defaultdict(dict)
    for e in events:
        for v in e.summary.value:
            if v.WhichOneof("value") == "histo":
                out[v.tag][e.step] = v.histo
    return out


def f32(v) -> float:
    return float(np.float32(v))  # TensorBoard keeps a scalar as a float32


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("tb-fit")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 7, 3))
    Y = rng.integers(0, 2, size=24)
    net = rnnlab.Network(3, 5, 2, cell="gru", readout="last", seed=0, dtype=np.float64)
    trainer = rnnlab.Trainer(net, "adam", lr=1e-2, clip_norm=0.05, batch_size=4, seed=0,
                             log=d / "metrics.jsonl", log_every=2, diagnostics_every=3,
                             tensorboard_dir=d / "tb", progress=False,
                             schedule=cosine(1e-2, 12))
    history = trainer.fit(X, Y, epochs=2, validation=(X[:8], Y[:8]))
    lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    return net, history, lines, read_events(d / "tb")


def test_the_logged_updates_are_the_scalars(fitted):
    _, _, lines, events = fitted
    s = scalars(events)
    steps = [r for r in lines if "loss" in r and "epoch" in r]
    assert [r["step"] for r in steps] == list(range(2, 13, 2))
    for tag, key in (("train/loss", "loss"), ("train/grad_norm", "grad_norm"),
                     ("train/learning_rate", "lr")):
        assert s[tag] == {r["step"]: f32(r[key]) for r in steps}, tag
    assert s["train/clipped"] == {r["step"]: float(r["clipped"]) for r in steps}
    assert 1.0 in s["train/clipped"].values()  # clip_norm 0.05 clips


def test_each_epoch_is_a_scalar_at_its_last_update(fitted):
    _, history, lines, events = fitted
    s = scalars(events)
    epochs = [r for r in lines if "train_loss" in r]
    assert len(epochs) == 2
    for tag, key in (("epoch/train_loss", "train_loss"), ("epoch/val_loss", "val_loss"),
                     ("epoch/clip_rate", "clip_rate"), ("epoch/grad_norm", "grad_norm")):
        assert s[tag] == {6 * (i + 1): f32(r[key]) for i, r in enumerate(epochs)}, tag
    assert list(s["epoch/val_loss"].values()) == [f32(v) for v in history.val_loss]


def test_weights_and_gradients_are_histograms(fitted):
    net, _, _, events = fitted
    h = histograms(events)
    for name, p in net.params.items():
        w, g = h[f"weights/{name}"], h[f"gradients/{name}"]
        assert sorted(w) == sorted(g) == list(range(2, 13, 2))
        last = w[12]  # after the last update: the final parameters
        assert last.num == p.size
        assert last.min == pytest.approx(p.min()) and last.max == pytest.approx(p.max())
        assert last.sum == pytest.approx(p.sum(), abs=1e-9)
        assert sum(last.bucket) == p.size
        assert all(x.num == p.size for x in g.values())


def test_the_gradient_flow_curves_are_the_recorded_ones(fitted):
    _, history, _, events = fitted
    s = scalars(events)
    assert [st for st, _ in history.flow] == [0, 3, 6, 9, 12]
    for st, flow in history.flow:
        curve = s[f"gradient_flow/update_{st}"]
        assert curve == {k: f32(v) for k, v in enumerate(flow) if v is not None and v > 0}
    assert s["gradient_flow/memory_length"] == {st: float(m) for st, m in
                                                history.memory_length}


def test_a_language_model_writes_its_logged_values(tmp_path):
    from rnnlab import lm

    text = tmp_path / "text.txt"
    text.write_text(runfolders.TEXT)
    cfg = lm.LMConfig.from_dict({"data": str(text), "hidden": 8, "bptt": 8, "batch": 2,
                                 "steps": 20, "time_budget": 0, "eval_every": 10,
                                 "eval_tokens": 200, "sample_every": 0})
    run = lm.train(cfg, out=tmp_path / "run", progress=False, echo=lambda *a: None,
                   tensorboard=tmp_path / "tb")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    s = scalars(read_events(tmp_path / "tb"))
    assert s["train/loss"] == {r["step"]: f32(r["loss"]) for r in lines if "loss" in r}
    assert s["validation/loss"] == {r["step"]: f32(r["val_nats"]) for r in lines
                                    if "val_nats" in r}
    # the rate as logged: full at update 10, decayed over the last 30 % of the 20 updates
    assert s["train/learning_rate"] == {r["step"]: f32(r["lr"]) for r in lines if "lr" in r}
    assert s["train/learning_rate"][10] == f32(cfg.lr)
    assert s["train/learning_rate"][20] == f32(cfg.lr * (1 - 19 / 20) / 0.3)
    assert {"gradient_flow/update_0", "gradient_flow/update_10",
            "gradient_flow/update_20"} <= set(s)
    assert s["gradient_flow/update_0"][0] == 1.0  # relative: lag 0 is the identity
    assert {"weights/head.W_y", "gradients/head.W_y"} <= set(histograms(
        read_events(tmp_path / "tb")))


def test_without_tensorboardx_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    net = rnnlab.Network(2, 3, 2, readout="last", seed=0)
    with pytest.raises(ModuleNotFoundError, match=r"rnnlab\[tensorboard\]"):
        rnnlab.Trainer(net, tensorboard_dir=tmp_path / "tb", progress=False)
    assert not (tmp_path / "tb").exists()


def test_a_file_is_no_log_folder(tmp_path):
    (tmp_path / "f").write_text("")
    net = rnnlab.Network(2, 3, 2, readout="last", seed=0)
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        rnnlab.Trainer(net, tensorboard_dir=tmp_path / "f")


def test_the_cli_without_tensorboardx_says_one_line(tmp_path):
    code = ("import sys; sys.modules['tensorboardX'] = None; from rnnlab.cli import main; "
            f"sys.exit(main(['train', '--data', {str(tmp_path / 't.txt')!r}, '--steps', '2', "
            f"'--hidden', '4', '--out', {str(tmp_path / 'run')!r}, '--tensorboard', "
            f"{str(tmp_path / 'tb')!r}]))")
    (tmp_path / "t.txt").write_text(runfolders.TEXT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "pip install 'rnnlab[tensorboard]'" in r.stderr
    assert not (tmp_path / "run" / "run.json").exists()  # refused before the run began
