"""Every subcommand against bad input: one line on standard error, exit 1 (usage errors 2),
no traceback, and nothing that was there before is changed."""

import shutil

import pytest

from rnnlab import cli

TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)
SMALL = ["--hidden", "8", "--bptt", "8", "--batch", "4", "--no-progress"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A folder with a corpus, a trained run and some things that are not what they seem."""
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.txt").write_text(TEXT, encoding="utf-8")
    assert cli.main(["train", "--data", str(root / "tiny.txt"), "--steps", "4", "--out",
                     str(root / "run"), *SMALL]) == 0
    (root / "binary.txt").write_bytes(b"abc\x00def")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "empty").mkdir()
    (root / "afile").write_text("keep", encoding="utf-8")
    (root / "bad.toml").write_text("hidden = [", encoding="utf-8")
    (root / "unknown.toml").write_text("hiden = 4\n", encoding="utf-8")
    (root / "wrongtype.toml").write_text('hidden = "many"\n', encoding="utf-8")
    for name, damage in (("badvocab", "vocab.json"), ("badmodel", "model.rnnlab"),
                         ("badinfo", "run.json"), ("badconfig", "config.toml")):
        shutil.copytree(root / "run", root / name)
        (root / name / damage).write_bytes(b"\x00garbage{")
    return root


# (arguments with {p} for the folder above, expected exit code, words the line must hold)
TABLE = [
    # train
    (["train", "--data", "{p}/missing.txt", "--steps", "1"], 1, "missing.txt"),
    (["train", "--data", "{p}/binary.txt", "--steps", "1"], 1, "NUL"),
    (["train", "--data", "{p}/latin1.txt", "--steps", "1"], 1, "UTF-8"),
    (["train", "--data", "{p}/empty", "--steps", "1"], 1, ".txt"),
    (["train", "--data", "{p}/tiny.txt", "--hidden", "0", "--steps", "1"], 1, "hidden"),
    (["train", "--data", "{p}/tiny.txt", "--hidden", "many"], 2, "--hidden"),
    (["train", "--data", "{p}/tiny.txt", "--lr", "-1", "--steps", "1"], 1, "lr"),
    (["train", "--data", "{p}/tiny.txt", "--steps", "0"], 1, "steps"),
    (["train", "--data", "{p}/tiny.txt", "--bptt", "0", "--steps", "1"], 1, "bptt"),
    (["train", "--config", "{p}/missing.toml"], 1, "missing.toml"),
    (["train", "--config", "{p}/bad.toml"], 1, "bad.toml"),
    (["train", "--config", "{p}/unknown.toml"], 1, "hiden"),
    (["train", "--config", "{p}/wrongtype.toml"], 1, "hidden"),
    (["train", "--resume", "{p}/missing", "--steps", "1"], 1, "missing"),
    (["train", "--resume", "{p}/afile", "--steps", "1"], 1, "afile"),
    (["train", "--resume", "{p}/badconfig", "--steps", "9"], 1, "config.toml"),
    (["train", "--data", "{p}/tiny.txt", "--out", "{p}/afile", "--steps", "1"], 1, "afile"),
    (["train", "--data", "{p}/tiny.txt", "--out", "{p}/run", "--steps", "1"], 1, "not empty"),
    (["train", "--task", "nonsense"], 2, "--task"),
    (["train", "--data", "{p}/tiny.txt", "--steps", "1", "--out", "{p}/tb-run",
      "--tensorboard", "{p}/afile"], 1, "afile"),
    (["train", "--task", "digits", "--epochs", "1", "--out", "{p}/tb-task",
      "--tensorboard", "{p}/afile"], 1, "afile"),
    # sample
    (["sample", "{p}/missing"], 1, "missing"),
    (["sample", "{p}/afile"], 1, "afile"),
    (["sample", "{p}/run", "--length", "0"], 1, "length"),
    (["sample", "{p}/run", "--temperature", "0"], 1, "temperature"),
    (["sample", "{p}/run", "--top-k", "0"], 1, "top_k"),
    (["sample", "{p}/run", "--prime", "zebra\u20ac"], 1, "outside the vocabulary"),
    (["sample", "{p}/badvocab"], 1, "vocab"),
    (["sample", "{p}/badmodel"], 1, "model.rnnlab"),
    (["sample", "{p}/badinfo"], 1, "run.json"),
    # eval
    (["eval", "{p}/missing"], 1, "missing"),
    (["eval", "{p}/run", "--data", "{p}/missing.txt"], 1, "missing.txt"),
    (["eval", "{p}/run", "--data", "{p}/binary.txt"], 1, "NUL"),
    # diagnose
    (["diagnose", "{p}/missing"], 1, "missing"),
    (["diagnose", "--cell", "elman", "--hidden", "0"], 1, "hidden"),
    (["diagnose", "--cell", "elman", "--steps", "0"], 1, "steps"),
    (["diagnose", "--cell", "banana"], 2, "--cell"),
    # export
    (["export", "{p}/missing", "--onnx", "{p}/m.onnx"], 1, "no such run folder or model file"),
    (["export", "{p}/afile", "--onnx", "{p}/m.onnx"], 1, "afile"),
    (["export", "{p}/empty", "--onnx", "{p}/m.onnx"], 1, "run.json"),
    (["export", "{p}/badmodel", "--onnx", "{p}/m.onnx"], 1, "model.rnnlab"),
    (["export", "{p}/badinfo", "--onnx", "{p}/m.onnx"], 1, "run.json"),
    (["export", "{p}/run", "--onnx", "{p}/nowhere/m.onnx"], 1, "does not exist"),
    (["export", "{p}/run", "--onnx", "{p}/empty"], 1, "is a folder"),
    (["export", "{p}/run", "--onnx", "{p}/m.onnx", "--opset", "3"], 1, "opset"),
    (["export", "{p}/run", "--onnx", "{p}/m.onnx", "--opset", "many"], 2, "--opset"),
    (["export", "{p}/run"], 2, "--onnx"),
    # report
    (["report", "{p}/missing"], 1, "no such folder"),
    (["report", "{p}/empty"], 1, "nothing to report on"),
    (["report", "{p}/afile"], 1, "is a file, not a run folder"),
    (["report", "{p}/badinfo"], 1, "run.json"),
    (["report", "{p}/run", "--out", "{p}/nowhere/r.html"], 1, "nowhere"),
    # demo and bench
    (["demo", "memory", "--quick", "--lags", "0", "--out", "{p}/demo"], 1, "lag"),
    (["demo", "memory", "--quick", "--out", "{p}/afile"], 1, "afile"),
    (["bench", "--shape", "0", "1", "1", "1", "--no-torch", "--out", "{p}/b"], 1, "shape B"),
    (["bench", "--cells", "banana", "--no-torch", "--out", "{p}/b"], 1, "banana"),
    (["bench", "--repeats", "0", "--no-torch", "--out", "{p}/b"], 1, "repeats"),
]


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, code, words", TABLE, ids=[" ".join(r[0][:3]) + f" #{i}"
                                                         for i, r in enumerate(TABLE)])
def test_bad_input_is_one_line(place, capsys, args, code, words):
    before = _snapshot(place)
    argv = [a.replace("{p}", str(place)) for a in args]
    if code == 2:
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("rnnlab") and words in err[-1], err
    else:
        assert cli.main(argv) == 1
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
        assert words in err[0], err[0]
        assert "Traceback" not in captured.err
    assert _snapshot(place) == before, "a failed command changed files"
