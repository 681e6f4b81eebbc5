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
    assert (arrow.cell, arrow.hidden, arrow.patch, arrow.pool, arrow.batch) == (
        "gru", 64, 7, 1, 9)  # 36 patches of 7 steps
    assert arrow.readout == "last" and not arrow.augment and not arrow.val_split
    assert arrow.epochs == 300  # 4 updates per epoch: 1500 updates capped at 300 epochs
    big = apps.ucr_task(1000, 24)
    assert (big.patch, big.batch, big.epochs, big.readout) == (1, 16, 30, "last")
    basic = apps.ucr_task(40, 100, 6)  # BasicMotions: batch 10, 4 updates per epoch
    assert (basic.batch, basic.epochs, basic.patch) == (10, 300, 3)
    assert apps.ucr_task(50, 64).patch == 2 and apps.ucr_task(50, 63).patch == 1
    with pytest.raises(ValueError, match="channels must be"):
        apps.ucr_task(50, 64, 0)


def test_rule_patches_the_data(tmp_path):
    folder = make_set(tmp_path / "Long", "Long", D=1, lengths=[70, 64], seed=0)
    data, options = apps.load_task_data(f"ucr:{folder}")
    assert options["patch"] == 2 and data.X_train.shape == (8, 35, 2)
    assert data.lengths_train.tolist()[:2] == [35, 32]


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
    if "GunPoint" in ucr_names():
        from rnnlab.data.series import gunpoint
        g = gunpoint(patch=8)
        assert g.X_train.shape == (50, 19, 8) and g.meta["preprocessing"]["patch"] == 8


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


def test_validation_cut_is_stratified_and_seeded():
    y = np.array([0] * 10 + [1] * 5 + [2] * 1)
    keep, held = apps.validation_cut(y, 0.2, [4, 3])
    assert np.bincount(y[held], minlength=3).tolist() == [2, 1, 0]  # a class of one stays
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(16))
    again, _ = apps.validation_cut(y, 0.2, [4, 3])
    other = [apps.validation_cut(y, 0.2, [s, 3])[1].tolist() for s in range(5)]
    assert np.array_equal(keep, again) and len({tuple(o) for o in other}) > 1
    with pytest.raises(ValueError, match="val_split must be"):
        apps.validation_cut(y, 1.0, 0)


def test_early_stopping_keeps_the_best_epoch(tmp_path, capsys):
    # labels that are noise: the network learns the training cut by heart, and the
    # validation loss turns up after a few epochs
    rng = np.random.default_rng(0)
    folder = tmp_path / "Noise"
    folder.mkdir()
    for part, n in (("TRAIN", 16), ("TEST", 6)):
        labels = [("a", "b")[i % 2] for i in range(n)]
        write_ts(folder / f"Noise_{part}.ts", "Noise", [rng.standard_normal((12, 1))
                                                         for _ in labels], labels, ["a", "b"])
    out = tmp_path / "run"
    assert cli.main(["train", "--task", f"ucr:{folder}", "--epochs", "30", "--hidden", "16",
                     "--lr", "0.05", "--no-progress", "--val-split", "0.25", "--patience", "4",
                     "--augment", "jitter,scale", "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] == "jitter,scale" and config["patience"] == 4
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in epochs if "val_loss" in r]
    best = int(np.argmin(val)) + 1
    assert info["results"]["best_epoch"] == [best] and info["results"]["n_val"] == 4
    assert len(val) == best + 4 < 30  # stopped 4 epochs after the best
    # the saved model is the best epoch's: its validation loss is the smallest one logged
    data = ucr(folder)
    _, held = apps.validation_cut(data.y_train, 0.25, [0, 3])
    net = apps.load(out / "model.rnnlab")
    net.precision = info["precision"]["asked"]  # as trained (bf16 where the CPU has it)
    assert net.loss(data.X_train[held], data.y_train[held]) == pytest.approx(min(val), rel=1e-5)
    assert info["results"]["val_accuracy"] == np.mean(
        net.predict(data.X_train[held]).argmax(1) == data.y_train[held])


def test_ensemble_averages_its_members(tmp_path, capsys):
    folder = make_set(tmp_path / "Toy", "Toy", D=2, lengths=[10, 6], seed=5)
    out = tmp_path / "run"
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--ensemble", "3",
                     "--seed", "2", "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["options"]["members"] == ["model.rnnlab", "model-1.rnnlab", "model-2.rnnlab"]
    assert json.loads((out / "config.json").read_text())["seeds"] == [2, 3, 4]
    assert (out / "metrics-2.jsonl").is_file()
    data = ucr(folder, standardize_features=True)
    probs = [apps.load(out / m).predict(data.X_test, lengths=data.lengths_test)
             for m in info["options"]["members"]]
    assert not np.allclose(probs[0], probs[1])  # members differ
    expected = np.mean(np.mean(probs, axis=0).argmax(1) == data.y_test)
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["accuracy"] == pytest.approx(expected) == info["results"]["accuracy"]
    assert r["member_accuracy"] == [np.mean(p.argmax(1) == data.y_test) for p in probs]


def test_recipe_options_refused_where_they_do_not_fit(tmp_path, capsys):
    folder = make_set(tmp_path / "Toy", "Toy", D=1, lengths=[8], seed=0)
    task = ["train", "--task", f"ucr:{folder}", *SMALL]
    assert cli.main([*task, "--patience", "3", "--out", str(tmp_path / "a")]) == 1
    assert "patience needs a validation cut" in capsys.readouterr().err
    assert cli.main([*task, "--augment", "jitter,wobble", "--out", str(tmp_path / "b")]) == 1
    assert "unknown augmentation 'wobble'" in capsys.readouterr().err
    assert cli.main(["train", "--ensemble", "2", "--steps", "1"]) == 1
    assert "--ensemble applies to --task runs only" in capsys.readouterr().err


def test_augment_none_and_a_run_saved_before_patches(tmp_path, capsys):
    folder = make_set(tmp_path / "Long", "Long", D=1, lengths=[70], seed=6)
    out = tmp_path / "run"
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--augment", "none",
                     "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["augment"] is None
    # a run written before patches existed: options without a patch, steps one by one
    old = tmp_path / "old"
    assert cli.main(["train", "--task", f"ucr:{folder}", *SMALL, "--patch", "1",
                     "--out", str(old)]) == 0
    info = json.loads((old / "run.json").read_text())
    info["options"]["patch"] = None
    (old / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert cli.main(["eval", str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == info["results"]["accuracy"]
