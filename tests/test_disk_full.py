"""Disk full and read-only: a write that fails leaves the previous file byte-identical, no
temporary file behind, and ``rnnlab train`` stops with one line (exit 1), not a traceback.

ENOSPC and EACCES are simulated (the tests run as root in CI, where a read-only folder is
writable); a real read-only folder is tried when not root.
"""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab import cli, io, lm

TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)
WRITTEN = ("checkpoint.ckpt", "model.rnnlab", "run.json", "metrics.jsonl", "config.toml",
           "vocab.json")


@pytest.fixture
def run(tmp_path):
    """A finished run of 20 updates (checkpoints every 5), its files' bytes by name."""
    data = tmp_path / "tiny.txt"
    data.write_text(TEXT, encoding="utf-8")
    cfg = lm.LMConfig(data=str(data), hidden=8, bptt=8, batch=4, steps=20, time_budget=None,
                      eval_every=10, sample_every=0, checkpoint_every=5, eval_tokens=50)
    folder = lm.train(cfg, out=tmp_path / "run", progress=False, echo=lambda *a: None)
    return folder, {name: (folder / name).read_bytes() for name in WRITTEN}


def resume(run, capsys, steps=40):
    """``rnnlab train --resume run --steps 40``: the exit code and what it wrote to stderr."""
    capsys.readouterr()
    code = cli.main(["train", "--resume", str(run), "--steps", str(steps), "--no-progress"])
    return code, capsys.readouterr().err


def one_line(err, *words):
    assert err.startswith("rnnlab: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err


def temporaries(run):
    return sorted(p.name for p in Path(run).iterdir() if p.name.endswith(".tmp"))


def disk_full(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *args)


def savez_until_full(target):
    """np.savez that writes half of ``target``'s archive, then finds the disk full."""
    savez = np.savez

    def write(f, **arrays):
        if ("optim/" in " ".join(arrays)) != (target == "checkpoint.ckpt"):
            return savez(f, **arrays)
        import io as _io

        whole = _io.BytesIO()
        savez(whole, **arrays)
        f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        disk_full()
    return write


@pytest.mark.parametrize("target", ["checkpoint.ckpt", "model.rnnlab"])
@pytest.mark.parametrize("fault", ["ENOSPC mid-write", "EACCES creating", "EACCES renaming"])
def test_a_failed_archive_write_keeps_the_previous_file(run, capsys, monkeypatch, target,
                                                        fault):
    folder, before = run
    if fault == "ENOSPC mid-write":
        monkeypatch.setattr(io.np, "savez", savez_until_full(target))
    elif fault == "EACCES creating":  # what a read-only folder does
        mkstemp = io.tempfile.mkstemp

        def refuse(*, prefix, **kw):
            if prefix.startswith(f".{target}."):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES),
                                      str(folder / f"{prefix}xyz.tmp"))
            return mkstemp(prefix=prefix, **kw)
        monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    else:
        replace = os.replace

        def refuse(src, dst):
            if Path(dst).name == target:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src, dst)
            return replace(src, dst)
        monkeypatch.setattr(io.os, "replace", refuse)
    code, err = resume(folder, capsys)
    assert code == 1
    one_line(err, os.strerror(errno.ENOSPC if fault.startswith("ENOSPC") else errno.EACCES))
    assert (folder / target).read_bytes() == before[target]
    assert temporaries(folder) == []
    monkeypatch.undo()
    assert resume(folder, capsys)[0] == 0  # the space back, the run goes on


def test_a_full_disk_while_logging_keeps_the_lines_before(run, capsys, monkeypatch):
    folder, before = run
    write, calls = lm._Job._write, []

    def write_until_full(self, record):
        calls.append(record)
        if len(calls) == 2:
            self.metrics.write(json.dumps(record)[:10])  # a line cut short, then no space
            self.metrics.flush()
            disk_full()
        write(self, record)
    monkeypatch.setattr(lm._Job, "_write", write_until_full)
    code, err = resume(folder, capsys)
    assert code == 1
    one_line(err, os.strerror(errno.ENOSPC))
    assert (folder / "metrics.jsonl").read_bytes().startswith(before["metrics.jsonl"])
    monkeypatch.undo()
    assert resume(folder, capsys)[0] == 0
    steps = [json.loads(line).get("step") for line in
             (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    # from the checkpoint of update 25: the line cut short and the one before it are gone
    assert steps == [10, 10, 20, 20, 20, 30, 30, 40, 40, 40]  # loss, estimate (, final)


def test_a_failed_run_json_write_keeps_the_previous_one(run, capsys, monkeypatch):
    folder, before = run
    write_text = Path.write_text

    def write_until_full(self, text, *args, **kw):
        if self.name == ".run.json.tmp":
            write_text(self, text[: len(text) // 2], *args, **kw)
            disk_full(str(self))
        return write_text(self, text, *args, **kw)
    monkeypatch.setattr(Path, "write_text", write_until_full)
    code, err = resume(folder, capsys)  # trains to 40, then writes run.json
    assert code == 1
    one_line(err, os.strerror(errno.ENOSPC))
    assert (folder / "run.json").read_bytes() == before["run.json"]
    monkeypatch.undo()
    assert resume(folder, capsys)[0] == 0
    assert json.loads((folder / "run.json").read_text())["steps"] == 40


def test_a_failed_run_json_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    io.write_json(tmp_path / "run.json", {"format": "x"})
    write_text = Path.write_text

    def write_until_full(self, text, *args, **kw):
        write_text(self, text[:3], *args, **kw)
        disk_full(str(self))
    monkeypatch.setattr(Path, "write_text", write_until_full)
    with pytest.raises(OSError):
        io.write_json(tmp_path / "run.json", {"format": "y"})
    assert temporaries(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes in a read-only folder")
def test_a_read_only_run_folder(run, capsys):
    folder, before = run
    folder.chmod(0o555)
    try:
        code, err = resume(folder, capsys)
    finally:
        folder.chmod(0o755)
    assert code == 1
    one_line(err, os.strerror(errno.EACCES))
    assert {name: (folder / name).read_bytes() for name in WRITTEN} == before
    assert temporaries(folder) == []
