"""``rnnlab sweep`` on Ray Tune: the grid's trials as run folders, results.csv, the plot,
resuming, a changed spec, a failed trial, Ctrl-C, a --task sweep and the swept memory
demo. One Ray of 2 CPUs for the module (started in this process: a few seconds); every
trial trains for about a second."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlab import cli, demo, lm, sweep

ray = pytest.importorskip("ray")  # installed by the test extra (rnnlab[cluster])
pytest.importorskip("ray.tune")

PNG = b"\x89PNG\r\n\x1a\n"
BASE = """
[base]
data = "{data}"
steps = {steps}
time_budget = 0
batch = 4
bptt = 16
eval_every = 10
eval_tokens = 400
sample_every = 0
checkpoint_every = 10
"""


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = np.array(["the", "cat", "sat", "on", "a", "mat", "dog", "ran"])
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(" ".join(rng.choice(words, size=2500)), encoding="utf-8")
    return path


def write_spec(path, text, grid, steps=20):
    path.write_text(BASE.format(data=text, steps=steps) + "[grid]\n" + grid, encoding="utf-8")
    return path


def rows(out):
    with (out / "results.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def done(tmp_path_factory, text):
    """A finished sweep of 2 x 2 language models."""
    folder = tmp_path_factory.mktemp("sweep")
    spec = write_spec(folder / "spec.toml", text, 'hidden = [8, 16]\ncell = ["gru", "lstm"]\n')
    lines = []
    result = sweep.run(spec, folder / "out", echo=lines.append)
    return spec, folder / "out", result, lines


def test_every_trial_is_a_run_folder_with_its_row(done):
    spec, out, result, lines = done
    assert result.complete and len(result.rows) == 4
    table = rows(out)
    assert list(table[0]) == ["trial", "hidden", "cell", "metric", "score", "seconds",
                              "status", "error"]
    assert [(r["hidden"], r["cell"]) for r in table] == [
        ("8", "gru"), ("8", "lstm"), ("16", "gru"), ("16", "lstm")]
    assert [r["trial"] for r in table] == ["0-hidden=8,cell=gru", "1-hidden=8,cell=lstm",
                                           "2-hidden=16,cell=gru", "3-hidden=16,cell=lstm"]
    for r in table:
        run = lm.open_run(out / "trials" / r["trial"])  # an ordinary run folder
        assert (run.config.hidden, run.config.cell, run.config.steps) == (
            int(r["hidden"]), r["cell"], 20)
        assert run.info["steps"] == 20
        assert r["status"] == "ok" and r["error"] == "" and r["metric"] == "val_nats"
        assert float(r["score"]) == pytest.approx(run.info["val_nats"], rel=1e-12)
        assert 0 < float(r["seconds"]) < 120
    assert sum(line.startswith("[") for line in lines) == 4  # one line per trial
    png = (out / "scores.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 10_000
    assert json.loads((out / "sweep.json").read_text())["grid"] == {
        "hidden": [8, 16], "cell": ["gru", "lstm"]}


def test_a_trial_scores_what_the_same_run_in_one_process_scores(done, text, tmp_path):
    spec, out, _, _ = done
    cfg = sweep.read_spec(spec)
    settings = {**cfg.base, **cfg.points()[3]}
    mine = lm.train(lm.LMConfig.from_dict(settings), out=tmp_path / "one", progress=False,
                    echo=lambda *a: None, comm=False)
    want = json.loads((mine / "run.json").read_text())["val_nats"]
    got = float(rows(out)[3]["score"])
    # the trial ran its kernels on one thread, this process on its default: last bits
    assert got == pytest.approx(want, rel=1e-5)


def test_rerunning_a_finished_sweep_runs_nothing(done):
    spec, out, _, _ = done
    before = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/run.json")}
    lines = []
    result = sweep.run(spec, out, echo=lines.append)
    assert result.complete
    assert {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/run.json")} == before
    assert not any(line.startswith("[") for line in lines)


def test_a_partial_sweep_resumes_only_its_unfinished_trials(text, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", text, "lr = [1e-3, 3e-3]\n")
    out = tmp_path / "out"
    sweep.run(spec, out, echo=None)
    table = rows(out)
    # as a Ctrl-C leaves it: one trial stopped half-way, its folder half-written
    table[1].update(metric="", score="", seconds="", status="interrupted")
    with (out / "results.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    (out / "trials" / table[1]["trial"] / "run.json").unlink()
    kept = (out / "trials" / table[0]["trial"] / "run.json").stat().st_mtime_ns
    lines = []
    sweep.run(spec, out, echo=lines.append)
    assert "(1 done before), 1 to run" in lines[0]
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == [
        f"[2/2] {table[1]['trial']}"]
    assert (out / "trials" / table[0]["trial"] / "run.json").stat().st_mtime_ns == kept
    assert [r["status"] for r in rows(out)] == ["ok"] * 2
    for r in rows(out):
        lm.open_run(out / "trials" / r["trial"])


def test_another_spec_for_the_same_folder_is_refused(done, text, tmp_path, capsys):
    _, out, _, _ = done
    other = write_spec(tmp_path / "other.toml", text, "hidden = [8, 32]\ncell = [\"gru\"]\n")
    assert cli.main(["sweep", str(other), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a sweep of another spec (grid differ)" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert cli.main(["sweep", str(other), "--out", str(tmp_path / "full")]) == 1
    assert "holds no sweep" in capsys.readouterr().err


def test_a_failed_trial_is_its_row_and_the_others_finish(text, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(BASE.format(data=text, steps=10).replace(f'data = "{text}"\n', "")
                    + f'[grid]\ndata = ["{text}", "{tmp_path / "missing.txt"}"]\n',
                    encoding="utf-8")
    lines = []
    result = sweep.run(spec, tmp_path / "out", echo=lines.append)
    assert not result.complete
    ok, failed = rows(tmp_path / "out")
    assert ok["status"] == "ok" and float(ok["score"]) > 0
    assert failed["status"] == "failed" and failed["score"] == "" and failed["metric"] == ""
    assert failed["error"].startswith("ValueError:") and "missing.txt" in failed["error"]
    assert any("FAILED" in line for line in lines)
    assert "1 failed" in lines[-1]


@pytest.mark.parametrize("grid, expected", [
    ("hiden = [8]\n", "unknown language-model setting(s) ['hiden']"),
    ("", "the [grid] table is empty"),
    ("hidden = 8\n", "grid value of 'hidden' must be a list of values, got 8"),
    ("hidden = []\n", "grid value of 'hidden' is an empty list"),
    ("hidden = [8, 8]\n", "grid value of 'hidden' repeats a value"),
    ("hidden = [8, 0]\n", "hidden must be a positive integer, got 0"),
    ("steps = [5]\n", "['steps'] given in both [base] and [grid]"),
    ("task = [\"nope\"]\n", "unknown --task run setting(s)"),
])
def test_a_bad_spec_is_one_line_before_any_trial(text, tmp_path, capsys, grid, expected):
    spec = write_spec(tmp_path / "spec.toml", text, grid)
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_spec_tables_and_values_are_checked():
    with pytest.raises(ValueError, match=r"unknown table\(s\) \['grids'\]"):
        sweep.spec_from_dict({"grids": {"hidden": [8]}})
    with pytest.raises(ValueError, match="no \\[grid\\] table"):
        sweep.spec_from_dict({"base": {"steps": 5}})
    with pytest.raises(ValueError, match="expected one of"):
        sweep.spec_from_dict({"grid": {"task": ["digits", "nope"]}})
    with pytest.raises(ValueError, match="patch must be HEIGHTxWIDTH"):
        sweep.spec_from_dict({"base": {"task": "digits"}, "grid": {"patch": ["4x", [4]]}})
    s = sweep.spec_from_dict({"base": {"task": "digits"}, "grid": {"patch": ["4x4", [2, 4]],
                                                                   "seed": [0, 1]}})
    assert s.kind == "task" and len(s.points()) == 4
    assert sweep.trial_name(7, {"patch": [2, 4], "cell": "a b/c"}, 3) == \
        "007-patch=2x4,cell=a_b_c"


def test_without_ray_the_error_names_the_extra(text, tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path / "spec.toml", text, "hidden = [8]\n")
    monkeypatch.setitem(sys.modules, "ray", None)
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == 'rnnlab: error: sweeps run on Ray Tune: pip install "rnnlab[cluster]"'


def test_a_task_sweep_scores_each_task_run(tmp_path):
    pytest.importorskip("sklearn")
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\ntask = "digits"\nepochs = 1\nhidden = 8\nmax_train = 200\n'
                    'max_test = 100\n[grid]\ncell = ["gru", "elman"]\n', encoding="utf-8")
    result = sweep.run(spec, tmp_path / "out", max_concurrent=1, echo=None)
    assert result.complete
    from rnnlab import apps

    for r in rows(tmp_path / "out"):
        info = apps.open_task_run(tmp_path / "out" / "trials" / r["trial"])
        assert r["metric"] == "test_accuracy"
        assert float(r["score"]) == pytest.approx(info["results"]["accuracy"], rel=1e-12)
        assert json.loads((tmp_path / "out" / "trials" / r["trial"] / "config.json")
                          .read_text())["cell"] == r["cell"]


def test_the_swept_memory_demo_measures_what_the_plain_one_measures(tmp_path):
    settings = dict(lags=(2, 3), tasks=("recall",), epochs=1, train=64, test=50)
    plain = demo.memory(demo.MemoryConfig.quick(**settings), out=tmp_path / "plain",
                        echo=None)
    swept = demo.memory(demo.MemoryConfig.quick(**settings), out=tmp_path / "swept",
                        sweep=True, echo=None)

    def same(runs):  # as memory.json holds them (pairs as lists)
        return json.loads(json.dumps([{k: v for k, v in r.items() if k != "seconds"}
                                      for r in runs]))

    assert same(swept.runs) == same(plain.runs)
    assert swept.table == plain.table
    assert len(rows(tmp_path / "swept")) == 4 and (tmp_path / "swept" / "memory.png").exists()
    assert {r["metric"] for r in rows(tmp_path / "swept")} == {"success"}


def test_ctrl_c_stops_the_sweep_and_the_same_command_resumes(text, tmp_path):
    """Through the command line, in a process group of its own, interrupted as a terminal
    does (SIGINT to the group) once the first trials are done."""
    spec = write_spec(tmp_path / "spec.toml", text, "lr = [1e-3, 2e-3, 3e-3]\n",
                      steps=100)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rnnlab", "sweep", str(spec), "--out", str(out),
               "--max-concurrent", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(sweep.__file__).parents[1])}
    p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (
            (out / "results.csv").exists() and "ok" in {r["status"] for r in rows(out)}):
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "rnnlab: interrupted"
    assert "run the same command again to resume" in stdout
    status = [r["status"] for r in rows(out)]
    assert "ok" in status and set(status) - {"ok"} <= {"interrupted", "pending"} \
        and set(status) != {"ok"}
    finished = {r["trial"] for r in rows(out) if r["status"] == "ok"}
    kept = {t: (out / "trials" / t / "run.json").stat().st_mtime_ns for t in finished}
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"({len(finished)} done before)" in again.stdout
    assert [r["status"] for r in rows(out)] == ["ok"] * 3
    assert {t: (out / "trials" / t / "run.json").stat().st_mtime_ns for t in finished} == kept


def test_sweep_report_writes_the_results_table(done, capsys):
    spec, out, _, _ = done
    assert cli.main(["sweep", str(spec), "--out", str(out), "--report"]) == 0  # runs nothing
    page = (out / "report.html").read_text(encoding="utf-8")
    for r in rows(out):
        assert r["trial"] in page
