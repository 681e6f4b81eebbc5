"""``rnnlab diagnose``: a fresh model or a trained run, its summary, its PNGs, its errors."""

import json
import re

import numpy as np
import pytest

import rnnlab
from rnnlab import cli, diagnostics

TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 60)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("diagnose")
    data = d / "tiny.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = d / "run"
    assert cli.main(["train", "--data", str(data), "--steps", "3", "--hidden", "16", "--bptt",
                     "8", "--batch", "4", "--no-progress", "--out", str(out)]) == 0
    return out


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    return err[0]


def pngs(folder):
    found = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    assert all(b.startswith(PNG) and len(b) > 5000 for b in found.values())
    return set(found)


def test_fresh_model_summary_matches_the_library(tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(["diagnose", "--cell", "elman", "--hidden", "32", "--steps", "60",
                     "--batch", "4", "--seed", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Elman(tanh), 1 layer, H=32; 4 sequences of 60 steps" in text
    assert "N(0, 1) input, 8 features" in text
    # the same model and input through the library give the same memory length
    layer = rnnlab.Elman(8, 32, seed=3)
    x = np.random.default_rng(3).normal(size=(4, 60, 8))
    mem = diagnostics.memory_length(diagnostics.gradient_flow(layer, x))
    assert re.search(rf"memory length \(flow below 0.01 of lag 0\): {mem} steps", text)
    assert pngs(out) == {"flow.png", "saturation.png"}


@pytest.mark.parametrize("options,model", [
    (["--cell", "lstm", "--hidden", "12", "--layers", "2"], "LSTM, 2 layers, H=12"),
    (["--cell", "gru", "--hidden", "8", "--input-size", "3", "--norm", "spectral"], "GRU"),
    (["--cell", "elman", "--hidden", "8", "--activation", "relu", "--init", "identity"],
     "Elman(relu)"),
])
def test_fresh_model_options(tmp_path, capsys, options, model):
    out = tmp_path / "d"
    assert cli.main(["diagnose", *options, "--steps", "20", "--batch", "2", "--out",
                     str(out)]) == 0
    text = capsys.readouterr().out
    assert model in text and "20 steps" in text
    assert ("spectral norm" in text) == ("spectral" in options)
    assert pngs(out) == {"flow.png", "saturation.png"}


def test_default_output_folder_is_diagnostics(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["diagnose", "--cell", "gru", "--hidden", "8", "--steps", "10"]) == 0
    assert pngs(tmp_path / "diagnostics") == {"flow.png", "saturation.png"}
    assert "to diagnostics" in capsys.readouterr().out


def test_trained_run_on_its_validation_text(run, capsys):
    assert cli.main(["diagnose", str(run), "--steps", "40", "--batch", "3"]) == 0
    text = capsys.readouterr().out
    assert "3 validation windows of 40 tokens" in text
    assert "LSTM, 1 layer, H=16; 3 sequences of 40 steps" in text
    assert re.search(r"loss \d+\.\d+", text)  # next-token targets give a loss
    assert pngs(run / "diagnostics") == {"flow.png", "saturation.png", "loss_gradients.png"}


def test_short_validation_text_gives_fewer_windows(run, tmp_path, capsys):
    # the tiny corpus holds out about 270 characters: 8 windows of 100 do not fit
    assert cli.main(["diagnose", str(run), "--out", str(tmp_path / "o")]) == 0
    m = re.search(r"(\d+) validation windows of (\d+) tokens", capsys.readouterr().out)
    B, T = int(m[1]), int(m[2])
    assert 1 <= B < 8 and T == 100


def test_gradient_flow_records_in_the_run_log_give_a_heat_map(run, tmp_path, capsys):
    log = run / "metrics.jsonl"
    before = log.read_text()
    with log.open("a") as f:
        for step, rho in ((0, 0.5), (10, 0.7), (20, 0.9)):
            flow = [rho ** k for k in range(30)]
            f.write(json.dumps({"step": step, "flow": flow, "memory_length": 5}) + "\n")
    try:
        out = tmp_path / "o"
        assert cli.main(["diagnose", str(run), "--steps", "20", "--out", str(out)]) == 0
        assert "flow_heatmap.png" in pngs(out)
    finally:
        log.write_text(before)


def test_missing_or_corrupt_runs_are_one_line(run, tmp_path, capsys):
    assert cli.main(["diagnose", str(tmp_path / "nothing")]) == 1
    assert "not a run folder" in error_line(capsys)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    assert cli.main(["diagnose", str(broken)]) == 1
    assert "corrupt" in error_line(capsys)
    # a copy of the run with its model file cut short
    cut = tmp_path / "cut"
    cut.mkdir()
    for p in run.iterdir():
        if p.is_file():
            (cut / p.name).write_bytes(p.read_bytes())
    (cut / "model.rnnlab").write_bytes((run / "model.rnnlab").read_bytes()[:300])
    assert cli.main(["diagnose", str(cut)]) == 1
    assert "not a readable" in error_line(capsys)


def test_a_run_with_nan_weights_is_refused(run, tmp_path, capsys):
    bad = tmp_path / "nan"
    bad.mkdir()
    for p in run.iterdir():
        if p.is_file():
            (bad / p.name).write_bytes(p.read_bytes())
    net = rnnlab.load(bad / "model.rnnlab")
    net.params["rnn.l0.W_h"][0, 0] = np.nan
    net.save(bad / "model.rnnlab")
    assert cli.main(["diagnose", str(bad)]) == 1
    assert "rnn.l0.W_h contains NaN" in error_line(capsys)


@pytest.mark.parametrize("argv,expected", [
    ([], "give a run folder"),
    (["--cell", "elman", "--hidden", "0"], "hidden must be a positive integer, got 0"),
    (["--cell", "elman", "--steps", "0"], "steps must be a positive integer, got 0"),
    (["--cell", "elman", "--batch", "-2"], "batch must be a positive integer, got -2"),
    (["--cell", "lstm", "--activation", "relu"], "elman cell only, got 'relu'"),
    (["--cell", "lstm", "--init", "identity"], "identity"),
    (["--cell", "elman", "--seed", "-1"], "seed must be a non-negative integer, got -1"),
])
def test_bad_options_are_one_line(argv, expected, capsys):
    assert cli.main(["diagnose", *argv]) == 1
    assert expected in error_line(capsys)


def test_fresh_model_options_cannot_go_with_a_run(run, capsys):
    assert cli.main(["diagnose", str(run), "--cell", "elman"]) == 1
    assert "--cell describes a fresh model" in error_line(capsys)
