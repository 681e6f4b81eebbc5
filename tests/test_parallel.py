"""Data-parallel training over MPI: N = 1, 2 and 4 ranks (more ranks than cores is fine)
give the parameters one process gets with the same global batches: float64 to 1e-12 after
21 updates (3 batches of 8, 8, 6 rows a pass, the last split unevenly and, at 4 ranks,
one rank with as few as 1 row), float32 to 1e-5; full and truncated BPTT."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab import parallel

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
import train_ranks  # noqa: E402

SCRIPT = Path(__file__).parent / "mpi" / "train_ranks.py"
MPIEXEC = shutil.which("mpiexec")
pytest.importorskip("mpi4py")  # installed by the test extra; absent only in a bare install


def single(dtype, bptt):
    net, trainer, x, y, lengths = train_ranks.problem(dtype, bptt)
    assert trainer.parallel is None  # not launched by mpiexec
    trainer.fit(x, y, lengths=lengths, epochs=7 if bptt is None else 3)
    return trainer.step_count, dict(net.params)


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (the mpich wheel provides it)")
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("bptt", ["none", "3,5"])
@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_ranks_train_what_one_process_trains(tmp_path, ranks, bptt, dtype, tol):
    out = tmp_path / "params.npz"
    done = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(SCRIPT), str(out),
                           dtype, bptt], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    steps, want = single(np.dtype(dtype), None if bptt == "none" else (3, 5))
    got = np.load(out)
    assert int(got["steps"]) == steps and steps >= 21
    for name, v in want.items():
        scale = max(1.0, float(np.abs(v).max()))
        assert float(np.abs(got[name] - v).max()) <= tol * scale, name


def test_shares_cover_the_batch_in_order():
    class Fake:
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

        def Get_rank(self):
            return self.rank

        def Get_size(self):
            return self.size

        def Iallreduce(self, *a, **k):
            raise AssertionError

    for n in (1, 3, 8, 22):
        for size in (2, 3, 4):
            rows = [parallel.DataParallel(Fake(r, size)).share(n) for r in range(size)]
            assert [i for s in rows for i in range(n)[s]] == list(range(n))
    assert parallel.DataParallel.of(Fake(0, 1)) is None  # a world of one: no parallelism


def test_bad_communicators_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="comm must be an mpi4py communicator, None or "
                                         "False, got str"):
        parallel.DataParallel.of("world")
    monkeypatch.setenv("PMI_SIZE", "1")
    assert parallel.DataParallel.of(None) is None
    assert parallel.DataParallel.of(False) is None


TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)
LM_SCRIPT = Path(__file__).parent / "mpi" / "lm_ranks.py"


def mpirun(ranks, *args):
    done = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rnnlab: error" not in done.stderr  # a run that ends well: no witness's line
    return done


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (the mpich wheel provides it)")
def test_the_language_model_trains_on_ranks_and_resumes_on_another_count(tmp_path):
    """2 ranks train the streams of one process's batch: the same parameters (float32,
    1e-5), rank 0 alone writing the folder, run.json saying 2 ranks; a run stopped on 2
    ranks and resumed on 1 ends as a straight one."""
    import json

    import lm_ranks

    from rnnlab import lm

    text = tmp_path / "tiny.txt"
    text.write_text(TEXT, encoding="utf-8")
    quiet = dict(progress=False, echo=lambda *a: None)
    straight = lm.open_run(lm.train(lm_ranks.config(text, 12), out=tmp_path / "one", **quiet))
    mpirun(2, LM_SCRIPT, text, tmp_path / "two", 12)
    two = lm.open_run(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "run.json").read_text())["ranks"] == 2
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
    mpirun(2, LM_SCRIPT, text, tmp_path / "half", 7)  # stops with a checkpoint at step 7
    lm.train(lm_ranks.config(text, 12), resume=tmp_path / "half", **quiet)
    resumed = lm.open_run(tmp_path / "half")
    for name, v in straight.net.params.items():
        np.testing.assert_allclose(two.net.params[name], v, rtol=0, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(resumed.net.params[name], v, rtol=0, atol=1e-5,
                                   err_msg=name)


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (the mpich wheel provides it)")
def test_a_rank_that_dies_ends_the_run_and_leaves_a_checkpoint_that_loads(tmp_path):
    import time

    import die_ranks

    ckpt = tmp_path / "run.ckpt"
    start = time.monotonic()
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable,
                           str(Path(__file__).parent / "mpi" / "die_ranks.py"), str(ckpt)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and time.monotonic() - start < 60
    assert die_ranks.trainer().load_checkpoint(ckpt).step == 3


TASK = ["--task", "digits", "--max-train", "50", "--max-test", "30", "--epochs", "2",
        "--hidden", "8", "--batch", "9", "--noise", "0.5", "--seed", "3",
        # fp32: in bf16 the ranks' float32 sums tip weights near a bf16 tie either way,
        # and the runs part by more than 1e-5 within a few updates
        "--precision", "fp32"]


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (the mpich wheel provides it)")
@pytest.mark.parametrize("ranks", [2, 4])
def test_a_task_run_trains_on_ranks_what_one_process_trains(tmp_path, ranks):
    """``mpiexec -n N rnnlab train --task``: batches of 9 sequences (split unevenly), noise
    on the training batches, a cosine schedule: the parameters of one process (float32,
    1e-5), the same log, rank 0 alone writing, run.json saying N ranks."""
    import json

    pytest.importorskip("sklearn")
    from rnnlab import apps, cli, load

    assert cli.main(["train", *TASK, "--out", str(tmp_path / "one")]) == 0
    mpirun(ranks, "-m", "rnnlab", "train", *TASK, "--out", tmp_path / "many")
    one, many = load(tmp_path / "one" / "model.rnnlab"), load(tmp_path / "many" / "model.rnnlab")
    for name, v in one.params.items():
        np.testing.assert_allclose(many.params[name], v, rtol=0, atol=1e-5, err_msg=name)
    info = apps.open_task_run(tmp_path / "many")
    assert info["ranks"] == ranks and apps.open_task_run(tmp_path / "one")["ranks"] == 1
    assert info["results"]["accuracy"] == pytest.approx(
        apps.open_task_run(tmp_path / "one")["results"]["accuracy"], abs=1 / 30 + 1e-9)
    logs = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").open()]
            for d in ("one", "many")]
    assert [r.get("step") for r in logs[0]] == [r.get("step") for r in logs[1]]
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())


LOST = {
    # MPICH's default: every rank killed at once; rank 0's witness process says so
    "default": "rnnlab: error: the run on 2 ranks ended before it finished: a rank died (or "
               "was killed) and the launcher stopped the others",
    # a launcher that signals the survivors: rank 0 itself says so
    "-disable-auto-cleanup": "rnnlab: error: rank 0 of 2 stopped: another rank has failed "
                             "(SIGUSR1)",
}


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (the mpich wheel provides it)")
@pytest.mark.parametrize("launcher", list(LOST))
def test_a_lost_rank_stops_the_run_with_one_line_and_the_checkpoint_resumes(tmp_path,
                                                                            launcher):
    """``rnnlab train`` on 2 ranks, rank 1 dying at update 4 (checkpoints every 3): the run
    ends within seconds with exactly one line of rnnlab's naming the resume command, no
    traceback, and the checkpoint of update 3 resumes to the end."""
    import time

    from rnnlab import lm

    text = tmp_path / "tiny.txt"
    text.write_text(TEXT, encoding="utf-8")
    config = tmp_path / "run.toml"
    config.write_text(f'data = "{text}"\nsteps = 12\ntime_budget = 0\nhidden = 8\n'
                      f'bptt = 8\nbatch = 4\neval_every = 100\nsample_every = 0\n'
                      f'checkpoint_every = 3\neval_tokens = 50\n', encoding="utf-8")
    run = tmp_path / "run"
    flags = [] if launcher == "default" else [launcher]
    start = time.monotonic()
    done = subprocess.run([MPIEXEC, *flags, "-n", "2", sys.executable,
                           str(Path(__file__).parent / "mpi" / "die_lm.py"), str(config),
                           str(run)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and time.monotonic() - start < 60
    ours = [line for line in done.stderr.splitlines() if line.startswith("rnnlab: error")]
    assert ours == [f"{LOST[launcher]}; the last checkpoint resumes: rnnlab train --resume "
                    f"{run}"], done.stderr
    assert "Traceback" not in done.stderr
    lm.train(lm.LMConfig(steps=12, time_budget=None), resume=run, progress=False,
             echo=lambda *a: None)
    assert lm.open_run(run).info["steps"] == 12
