"""One writer per run folder: a folder in use is refused with one line, and a holder killed
with SIGKILL leaves no stale lock (rnnlab.runlock)."""

import json
import os
import subprocess
import sys
import time

import pytest

from rnnlab import apps, cli, lm, runlock
from test_lm import config as lm_config

pytestmark = pytest.mark.skipif(runlock.fcntl is None, reason="no fcntl: no run-folder lock")

def config(tmp_path, steps):
    return lm_config(tmp_path, steps, checkpoint_every=5)


def held_by_a_training_process(run):
    """``rnnlab train --resume run`` in a child process, once it holds the folder's lock."""
    p = subprocess.Popen([sys.executable, "-m", "rnnlab", "train", "--resume", str(run),
                          "--steps", str(10**9), "--no-progress"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while (run / runlock.LOCK_FILE).read_text().strip() != str(p.pid):
        assert p.poll() is None and time.monotonic() < deadline, "the child never took the lock"
        time.sleep(0.02)
    return p


def test_a_second_writer_is_refused_until_the_first_is_killed(tmp_path, capsys):
    run = tmp_path / "run"
    lm.train(config(tmp_path, 10), out=run, progress=False, echo=lambda *a: None)
    p = held_by_a_training_process(run)
    try:
        line = f"{run} is in use by another rnnlab process (pid {p.pid})"
        capsys.readouterr()
        assert cli.main(["train", "--resume", str(run), "--steps", "20", "--no-progress"]) == 1
        assert capsys.readouterr().err == f"rnnlab: error: {line}\n"
        assert cli.main(["train", "--data", str(tmp_path / "tiny.txt"), "--steps", "20",
                         "--out", str(run), "--no-progress"]) == 1  # not "is not empty"
        assert capsys.readouterr().err == f"rnnlab: error: {line}\n"
        with pytest.raises(ValueError, match=r"in use by another rnnlab process \(pid"):
            lm.train(config(tmp_path, 20), resume=run, progress=False)
        with pytest.raises(ValueError, match=r"in use by another rnnlab process \(pid"):
            apps.train_task("digits", out=run, progress=False)  # before loading any data
    finally:
        p.kill()  # SIGKILL: the kernel drops the lock, the file stays
        p.wait()
    assert (run / runlock.LOCK_FILE).exists()
    assert cli.main(["train", "--resume", str(run), "--steps", "20", "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["steps"] >= 20


def test_one_process_cannot_hold_a_folder_twice(tmp_path):
    with runlock.hold(tmp_path) as folder:
        assert folder == tmp_path
        with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
            with runlock.hold(tmp_path):
                pass
    with runlock.hold(tmp_path):  # released at the end of the block
        pass


def test_a_refused_or_failed_run_leaves_no_folder_it_made(tmp_path):
    fresh = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with runlock.hold(fresh):
            raise RuntimeError("the job failed before writing anything")
    assert not fresh.exists() and (tmp_path / "a").exists()
    with pytest.raises(RuntimeError):
        with runlock.hold(tmp_path):  # a folder that was there stays
            raise RuntimeError
    assert tmp_path.is_dir()
    with pytest.raises(ValueError, match="no such file"):
        lm.train(lm.LMConfig(data=str(tmp_path / "missing.txt"), steps=1),
                 out=tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


def test_a_folder_holding_only_a_lock_takes_a_new_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runlock.LOCK_FILE).write_text("12345\n")  # left by a holder killed at once
    lm.train(config(tmp_path, 5), out=run, progress=False, echo=lambda *a: None)
    assert (run / "run.json").exists()


def test_without_fcntl_nothing_is_locked(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "fcntl", None)
    with runlock.hold(tmp_path / "run"), runlock.hold(tmp_path / "run"):
        pass
    assert not (tmp_path / "run" / runlock.LOCK_FILE).exists()
