"""rnnlab train --task ucr:NAME / ucr:PATH and rnnlab eval on UCR/UEA sets, tiny settings."""

import json

import numpy as np
import pytest

from rnnlab import apps, cli
from rnnlab.data.series import ucr, ucr_names

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--epochs", "1", "--hidden", "4", "--no-progress"]


def write_ts(path, name, cases, labels, classes):
    """A .ts file in the archive's format: one line per case, dimensions split by ':'."""
    D = cases[0].shape[1]
    equal = len({len(c) for c in cases}) == 1
    head = [f"@problemName {name}", "@timeStamps false", "@missing false",
            f"@univariate {'true' if D == 1 else 'false'}", f"@dimensions {D}",
            f"@equalLength {'true' if equal else 'false'}",
            f"@classLabel true {' '.join(classes)}", "@data"]
    rows = [":".join(",".join(f"{v:.6g}" for v in c[:, d]) for d in range(D)) + f":{y}"
            for c, y in zip(cases, labels, strict=True)]
    path.write_text("\n".join(head + rows) + "\n", encoding="utf-8")


def make_set(folder, name, *, D, lengths, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("TRAIN", 8), ("TEST", 6)):
        labels = [("a", "b")[i % 2] for i in range(n)]
        cases = [rng.standard_normal((lengths[i % len(lengths)], D)) + (y == "b")
                 for i, y in enumerate(labels)]
        write_ts(folder / f"{name}_{part}.ts", name, cases, labels, ["a", "b"])
    return folder


def run_and_eval(tmp_path, task, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--task", task, *SMALL, "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["task"] == task and info["meta"]["classes"] == ["a", "b"]
    config = json.loads((out / "config.json").read_text())
    assert config["cell"] == "gru" and config["hidden"] == 4 and "pool" in config
    assert config["readout"] == "last"  # short series: the shape rule keeps the last state
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed
    accuracy = float(printed.split("test accuracy")[1].split()[0])
    assert accuracy == pytest.approx(info["results"]["accuracy"])
    assert (out / "confusion.png").read_bytes()[:8] == PNG
    return info


def test_ucr_path_univariate_equal(tmp_path, capsys):
    folder = make_set(tmp_path / "Toy", "Toy", D=1, lengths=[12], seed=0)
    info = run_and_eval(tmp_path, f"ucr:{folder}", capsys)
    assert info["meta"]["name"] == "Toy" and info["results"]["n_test"] == 6


def test_ucr_path_multivariate_unequal(tmp_path, capsys):
    folder = make_set(tmp_path / "Multi", "Multi", D=3, lengths=[7, 10, 5], seed=1)
    data = ucr(folder, standardize_features=True)
    assert data.X_train.shape == (8, 10, 3) and data.lengths_train.tolist()[:3] == [7, 10, 5]
    # padded steps stay zero after standardising
    assert not data.X_train[0, 7:].any()
    info = run_and_eval(tmp_path, f"ucr:{folder}", capsys)
    assert info["meta"]["preprocessing"]["standardize"] is True  # D > 1: the stated rule


def test_ucr_path_needs_one_pair(tmp_path):
    make_set(tmp_path / "Two", "A", D=1, lengths=[5], seed=0)
    make_set(tmp_path / "Two", "B", D=1, lengths=[5], seed=0)
    with pytest.raises(ValueError, match="one pair NAME_TRAIN.ts and NAME_TEST.ts, found 2"):
        ucr(tmp_path / "Two")


def test_bundled_names_are_classification_sets():
    names = ucr_names()
    if not names:
        pytest.skip("sktime (or aeon) is not installed")
    assert {"ArrowHead", "BasicMotions", "GunPoint", "JapaneseVowels"} <= set(names)
    assert "Covid3Month" not in names and "Tecator" not in names  # regression sets


def test_wrong_name_lists_the_choices(tmp_path, capsys):
    if not ucr_names():
        pytest.skip("sktime (or aeon) is not installed")
    assert cli.main(["train", "--task", "ucr:NoSuchSet", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'NoSuchSet'" in err[0] and "ArrowHead" in err[0], err


def test_bundled_set_trains(tmp_path, capsys):
    if "ItalyPowerDemand" not in ucr_names():
        pytest.skip("sktime (or aeon) is not installed")
    out = tmp_path / "ipd"
    assert cli.main(["train", "--task", "ucr:ItalyPowerDemand", *SMALL, "--max-train", "20",
                     "--max-test", "30", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n_test"] == 30 and 0 <= r["accuracy"] <= 1


def test_shape_rule():
    arrow = apps.ucr_task(36, 251)  # ArrowHead
    assert (arrow.cell, arrow.hidden, arrow.pool, arrow.batch) == ("gru", 64, 2, 9)
    assert arrow.readout == "mean"  # 125 steps after averaging by 2
    assert arrow.epochs == 300  # 4 updates per epoch: 1500 updates capped at 300 epochs
    big = apps.ucr_task(1000, 24)
    assert (big.pool, big.batch, big.epochs, big.readout) == (1, 16, 30, "last")
    basic = apps.ucr_task(40, 100)  # BasicMotions: batch 10, 4 updates per epoch
    assert (basic.batch, basic.epochs, basic.pool) == (10, 300, 1)


def test_readout_option(tmp_path, capsys):
    folder = make_set(tmp_path / "Toy", "Toy", D=1, lengths=[9, 6], seed=2)
    out = tmp_path / "run"
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--readout", "max",
                     "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["readout"] == "max"
    assert cli.main(["eval", str(out), "--json"]) == 0
    assert apps.load(out / "model.rnnlab").readout == "max"


def test_readout_needs_a_task(capsys):
    assert cli.main(["train", "--readout", "mean", "--steps", "1"]) == 1
    assert "--readout applies to --task runs only" in capsys.readouterr().err


def test_patches_shape_lengths_and_order(tmp_path):
    from rnnlab.data.series import patches

    X = np.arange(2 * 5 * 2, dtype=np.float32).reshape(2, 5, 2)
    X[1, 3:] = 0  # the second series has 3 real steps
    Z, lengths = patches(X, np.array([5, 3]), 2)
    assert Z.shape == (2, 3, 4) and Z.dtype == np.float32
    assert lengths.tolist() == [3, 2]  # ceil(5 / 2), ceil(3 / 2)
    # step t holds steps 2t and 2t + 1, each one's features together; the tail zero padded
    np.testing.assert_array_equal(Z[0, 1], np.concatenate([X[0, 2], X[0, 3]]))
    np.testing.assert_array_equal(Z[0, 2], np.concatenate([X[0, 4], [0, 0]]))
    assert patches(X, None, 1)[1] is None and np.array_equal(patches(X, None, 1)[0], X)
    with pytest.raises(ValueError, match="patch must be a positive integer.*got 0"):
        patches(X, None, 0)
    folder = make_set(tmp_path / "P", "P", D=3, lengths=[7, 10, 5], seed=1)
    plain, patched = ucr(folder), ucr(folder, patch=4)
    assert patched.X_train.shape == (8, 3, 12) and patched.lengths_train.tolist()[:3] == [2, 3, 2]
    assert patched.meta["preprocessing"]["patch"] == 4
    np.testing.assert_array_equal(patched.X_test[1, 0], plain.X_test[1, :4].ravel())


def test_patch_option_is_saved_and_rebuilt(tmp_path, capsys):
    folder = make_set(tmp_path / "Toy", "Toy", D=2, lengths=[12, 9], seed=3)
    out = tmp_path / "run"
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--patch", "4",
                     "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["options"]["patch"] == 4 and info["options"]["pool"] == 1
    assert info["meta"]["preprocessing"]["patch"] == 4
    assert apps.load(out / "model.rnnlab").rnn.input_size == 8  # 4 steps of 2 features
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == info["results"]["accuracy"]
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--patch", "4x4",
                     "--out", str(tmp_path / "r2")]) == 1
    assert "positive number of steps, e.g. 8, got '4x4'" in capsys.readouterr().err
