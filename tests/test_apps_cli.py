"""rnnlab train --task / rnnlab eval on the application data sets, on small slices."""

import json
import math

import pytest

from rnnlab import apps, cli

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--epochs", "1", "--hidden", "8", "--no-progress"]


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    return err[0]


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("apps") / "digits"
    assert cli.main(["train", "--task", "digits", *SMALL, "--max-train", "200",
                     "--max-test", "100", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sunspots_run(tmp_path_factory):
    pytest.importorskip("statsmodels")
    out = tmp_path_factory.mktemp("apps") / "sunspots"
    assert cli.main(["train", "--task", "sunspots", *SMALL, "--out", str(out)]) == 0
    return out


def test_digits_run_folder(digits_run):
    names = {p.name for p in digits_run.iterdir()}
    assert {"model.rnnlab", "run.json", "config.json", "metrics.jsonl", "loss.png"} <= names
    info = json.loads((digits_run / "run.json").read_text())
    assert info["format"] == "rnnlab-task-run" and info["version"] == 1
    assert info["task"] == "digits" and info["meta"]["preprocessing"]["patch"] == [1, 8]
    assert 0 <= info["results"]["accuracy"] <= 1 and info["results"]["n_test"] == 100
    config = json.loads((digits_run / "config.json").read_text())
    assert config["hidden"] == 8 and config["epochs"] == 1 and config["max_train"] == 200
    assert is_png(digits_run / "loss.png")
    lines = (digits_run / "metrics.jsonl").read_text().splitlines()
    assert any("epoch" in json.loads(line) and "train_loss" in json.loads(line)
               for line in lines)


def test_digits_eval(digits_run, capsys):
    assert cli.main(["eval", str(digits_run), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert 0 <= r["accuracy"] <= 1 and r["n_test"] == 100
    assert is_png(digits_run / "confusion.png")
    saved = json.loads((digits_run / "run.json").read_text())["results"]["accuracy"]
    assert r["accuracy"] == pytest.approx(saved)
    assert cli.main(["eval", str(digits_run)]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_digits_patches(tmp_path):
    pytest.importorskip("sklearn")
    out = apps.train_task("digits", epochs=1, hidden=4, patch=(4, 4), max_train=50,
                          max_test=20, out=tmp_path / "p", progress=False, echo=lambda s: None)
    info = apps.open_task_run(out)
    assert info["meta"]["preprocessing"]["patch"] == [4, 4]
    r = apps.evaluate_task(out)
    assert 0 <= r["accuracy"] <= 1


def test_sunspots_train_and_eval(sunspots_run, capsys):
    info = json.loads((sunspots_run / "run.json").read_text())
    assert info["meta"]["task"] == "forecasting" and info["options"]["horizon"] == 1
    assert cli.main(["eval", str(sunspots_run), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert math.isfinite(r["rmse"]) and math.isfinite(r["persistence_rmse"])
    assert r["n_test"] == 40 and r["units"] == "sunspot number"
    assert is_png(sunspots_run / "forecast.png") and is_png(sunspots_run / "loss.png")


def test_sunspots_horizon(tmp_path):
    pytest.importorskip("statsmodels")
    out = apps.train_task("sunspots", epochs=1, hidden=4, horizon=3, out=tmp_path / "h",
                          progress=False, echo=lambda s: None)
    r = apps.evaluate_task(out)
    assert r["horizon"] == 3 and r["n_test"] == 38 and math.isfinite(r["rmse"])


@pytest.mark.parametrize("value", ["4y4", "x", "0x4", "-2x2", "4x4x4"])
def test_bad_patch_is_one_line(value, capsys):
    assert cli.main(["train", "--task", "digits", f"--patch={value}"]) == 1
    assert "--patch" in error_line(capsys)


def test_patch_not_dividing_the_image(capsys):
    pytest.importorskip("sklearn")
    assert cli.main(["train", "--task", "digits", "--patch", "3x3"]) == 1
    assert "patch" in error_line(capsys)


def test_unknown_task_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--task", "mnist"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown task 'mnist'" in err and "ucr:NAME" in err


@pytest.mark.parametrize("argv", [["--bptt", "8"], ["--tokens", "word"], ["--steps", "3"],
                                  ["--data", "x.txt"]])
def test_language_model_options_refused_with_task(argv, capsys):
    assert cli.main(["train", "--task", "digits", *argv]) == 1
    assert "--task" in error_line(capsys)


def test_task_options_refused_without_task(capsys):
    assert cli.main(["train", "--epochs", "2"]) == 1
    assert "--task" in error_line(capsys)


def test_options_that_do_not_fit_the_task(capsys):
    assert cli.main(["train", "--task", "sunspots", "--patch", "2x2"]) == 1
    assert "image tasks" in error_line(capsys)
    assert cli.main(["train", "--task", "digits", "--horizon", "2"]) == 1
    assert "forecasting" in error_line(capsys)


def test_eval_of_task_run_refuses_data(digits_run, capsys):
    assert cli.main(["eval", str(digits_run), "--data", "x.txt"]) == 1
    assert "--data" in error_line(capsys)


def test_eval_without_data_of_a_language_model_run(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat.\n" * 100, encoding="utf-8")
    out = tmp_path / "lm"
    assert cli.main(["train", "--data", str(text), "--steps", "2", "--hidden", "8",
                     "--bptt", "8", "--batch", "2", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) == 1
    assert "--data" in error_line(capsys)
    assert cli.main(["eval", str(tmp_path)]) == 1
    assert "not a run folder" in error_line(capsys)


def test_missing_source_is_one_line(monkeypatch, capsys, tmp_path):
    from rnnlab.data import series

    monkeypatch.setattr(series, "package_dir", lambda name: None)
    assert cli.main(["train", "--task", "sunspots", "--out", str(tmp_path / "x")]) == 1
    line = error_line(capsys)
    assert "statsmodels" in line and "pip install" in line
    assert not (tmp_path / "x").exists()


def test_plots_check_their_input(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError):
        apps.plot_confusion([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "c.png")
    with pytest.raises(ValueError):
        apps.plot_forecast([1, 2], [1.0], [1.0, 2.0], tmp_path / "f.png")
    assert is_png(apps.plot_forecast([2000, 2001], [1.0, 2.0], [1.5, 2.5], tmp_path / "f.png"))


def test_noise_option_is_recorded_and_checked(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "noisy"
    assert cli.main(["train", "--task", "digits", *SMALL, "--max-train", "60", "--max-test",
                     "30", "--noise", "0.3", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["input_noise"] == 0.3
    bad = tmp_path / "bad"
    assert cli.main(["train", "--task", "digits", "--noise", "-1", "--out", str(bad)]) == 1
    assert "noise must be a non-negative number, got -1.0" in error_line(capsys)
    assert not bad.exists()  # refused before anything is written
    assert cli.main(["train", "--noise", "0.3"]) == 1  # a task option without --task
    assert "--task" in error_line(capsys)
