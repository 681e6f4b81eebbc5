"""Smoke tests of every subcommand on a tiny corpus, and their answers to bad input."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from rnnlab import cli, lm

TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 60)
SMALL = ["--hidden", "16", "--bptt", "8", "--batch", "4", "--no-progress"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture
def run(tmp_path, corpus):
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(corpus), "--steps", "6", "--out", str(out),
                     *SMALL]) == 0
    return out


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    return err[0]


def test_train_writes_a_complete_run_folder(run):
    names = {p.name for p in run.iterdir()}
    assert {"run.json", "config.toml", "vocab.json", "model.rnnlab", "checkpoint.ckpt",
            "metrics.jsonl", "loss.png"} <= names
    info = json.loads((run / "run.json").read_text())
    assert info["steps"] == 6 and info["val_bits"] > 0
    cfg = lm.LMConfig.from_toml(run / "config.toml")
    assert (cfg.hidden, cfg.bptt, cfg.batch, cfg.steps, cfg.time_budget) == (16, 8, 4, 6, None)


def test_sample_streams_text_and_refuses_unknown_characters(run, capsys):
    assert cli.main(["sample", str(run), "--prime", "the ", "--length", "40", "--seed",
                     "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the ") and len(out) >= 44
    assert set(out) <= set(TEXT) | {"\n"}
    assert cli.main(["sample", str(run), "--prime", "the zebra"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # the prime is refused before anything is written
    assert captured.err.count("\n") == 1 and "'z'" in captured.err


def test_eval_reports_bits_and_perplexity(run, corpus, capsys):
    assert cli.main(["eval", str(run), "--data", str(corpus), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tokens"] > 100 and r["bits"] == pytest.approx(r["nats"] / 0.6931471805599453)
    assert r["perplexity"] > 1


def test_resume_continues_where_the_run_stopped(run):
    assert cli.main(["train", "--resume", str(run), "--steps", "9", "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["steps"] == 9
    # a resumed run keeps its configuration: only --steps/--time-budget may change
    assert cli.main(["train", "--resume", str(run), "--hidden", "32"]) == 1


def test_ctrl_c_saves_a_checkpoint_that_resume_continues(tmp_path, corpus, monkeypatch):
    from rnnlab.train import Trainer

    apply = Trainer.apply

    def apply_then_interrupt(self, loss, grads):
        info = apply(self, loss, grads)
        if self.step_count == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    monkeypatch.setattr(Trainer, "apply", apply_then_interrupt)
    out = tmp_path / "r"
    assert cli.main(["train", "--data", str(corpus), "--steps", "10", "--out", str(out),
                     *SMALL]) == 130
    assert (out / "checkpoint.ckpt").exists() and (out / "model.rnnlab").exists()
    monkeypatch.setattr(Trainer, "apply", apply)
    assert cli.main(["train", "--resume", str(out), "--steps", "10", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["steps"] == 10


@pytest.mark.parametrize("content,expected", [
    (None, "no such file"),
    (b"", "empty"),
    (b"\x00\x01\x02binary" * 20, "binary"),
    (b"caf\xe9 au lait " * 20, "UTF-8"),
])
def test_bad_data_is_one_clear_line(tmp_path, capsys, content, expected):
    path = tmp_path / "d.txt"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "never"
    assert cli.main(["train", "--data", str(path), "--steps", "2", "--out", str(out),
                     *SMALL]) == 1
    assert expected in error_line(capsys)
    assert not out.exists()


def test_corrupt_or_foreign_run_folders_are_refused(run, tmp_path, capsys):
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "version": 99}))
    assert cli.main(["sample", str(run)]) == 1
    assert "version 99" in error_line(capsys)
    (run / "run.json").write_text(json.dumps(info))
    model = run / "model.rnnlab"
    model.write_bytes(model.read_bytes()[:500])
    assert cli.main(["sample", str(run)]) == 1
    assert "not a readable" in error_line(capsys)
    assert cli.main(["eval", str(tmp_path / "nothing"), "--data", str(run)]) == 1
    assert "not a run folder" in error_line(capsys)


def test_config_file_with_overrides_and_unknown_keys(tmp_path, corpus, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data = "{corpus}"\nhidden = 12\nbptt = 6\nbatch = 3\nsteps = 2\n')
    out = tmp_path / "r"
    assert cli.main(["train", "--config", str(cfg), "--hidden", "10", "--out", str(out),
                     "--no-progress"]) == 0
    saved = lm.LMConfig.from_toml(out / "config.toml")
    assert (saved.hidden, saved.bptt, saved.steps) == (10, 6, 2)
    cfg.write_text("hiden = 12\n")
    assert cli.main(["train", "--config", str(cfg)]) == 1
    assert "unknown config key(s) ['hiden']" in error_line(capsys)
    assert cli.main(["train", "--data", str(corpus), "--hidden", "0"]) == 1
    assert "hidden must be a positive integer, got 0" in error_line(capsys)


@pytest.mark.parametrize("task", [None, "digits"])
def test_out_that_is_a_file_is_one_clear_line(tmp_path, corpus, capsys, task):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me", encoding="utf-8")
    what = ["--task", task, "--epochs", "1"] if task else ["--data", str(corpus), *SMALL]
    for out, words in ((afile, "is a file"), (afile / "run", f"is inside {afile}")):
        assert cli.main(["train", *what, "--out", str(out)]) == 1
        assert f"--out {out} {words}" in error_line(capsys)
    assert afile.read_text(encoding="utf-8") == "keep me"


def test_existing_run_folder_is_not_written_over(run, corpus, capsys):
    before = (run / "model.rnnlab").read_bytes()
    assert cli.main(["train", "--data", str(corpus), "--steps", "2", "--out", str(run),
                     *SMALL]) == 1
    assert "not empty" in error_line(capsys)
    assert (run / "model.rnnlab").read_bytes() == before


def test_help_and_usage_errors():
    for cmd in ([], ["train"], ["sample"], ["eval"]):
        r = subprocess.run([sys.executable, "-m", "rnnlab", *cmd, "--help"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "usage: rnnlab" in r.stdout
    r = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--hidden", "many"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "invalid int value" in r.stderr


def test_bench_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    assert cli.main(["bench", "--cells", "gru", "--shape", "2", "5", "3", "4", "--repeats", "1",
                     "--no-memory", "--no-compile-time", "--no-torch", "--out", str(out)]) == 0
    result = json.loads((out / "bench.json").read_text())
    (row,) = result["rows"]
    assert row["cell"] == "gru" and (out / "bench.md").read_text().count("| gru |") >= 1
    # the machine and the threads it was taken with are on record
    machine = result["machine"]
    assert machine["cores"] >= 1 and "threading_layer" in machine and "cpu_model" in machine
    md = (out / "bench.md").read_text()
    assert f"{machine['cores']} cores" in md and f"numpy {np.__version__}," in md


@pytest.mark.parametrize("system", [False, True])
def test_bench_records_whether_freed_memory_was_kept(tmp_path, system):
    out = tmp_path / "bench"
    args = ["bench", "--cells", "elman", "--shape", "2", "5", "3", "4", "--repeats", "1",
            "--no-memory", "--no-compile-time", "--no-torch", "--out", str(out)]
    r = subprocess.run([sys.executable, "-m", "rnnlab", *args,
                        *(["--system-malloc"] if system else [])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "bench.json").read_text())
    kept = result["machine"]["freed_memory_kept"]
    assert kept is (not system and sys.platform.startswith("linux"))
    assert f"glibc keeps freed memory: {kept};" in (out / "bench.md").read_text()


def test_bench_marks_results_taken_on_a_busy_machine(tmp_path, monkeypatch, capsys):
    from rnnlab import bench

    out = tmp_path / "bench"
    args = ["bench", "--cells", "elman", "--shape", "2", "3", "3", "4", "--repeats", "1",
            "--no-memory", "--no-compile-time", "--no-torch", "--out", str(out)]
    for others, busy in ((1000.0, True), (0.0, False)):
        # CPU seconds of all processes and of this one: the others used `others` seconds
        readings = iter([(0.0, 0.0), (5.0 + others, 5.0)])
        monkeypatch.setattr(bench, "_cpu_seconds", lambda readings=readings: next(readings))
        assert cli.main(args) == 0
        result = json.loads((out / "bench.json").read_text())
        assert result["busy"] is busy
        assert ("busy machine" in (out / "bench.md").read_text()) is busy
        assert ("other processes kept" in capsys.readouterr().err) is busy


def test_bench_times_each_library_in_blocks():
    from rnnlab.bench.timing import median_times

    calls = []
    med, low = median_times({"a": lambda: calls.append("a"),
                              "b": lambda: calls.append("b")}, repeats=5, warmup=1)
    # blocks of at most 3 timed calls after 1 warm-up, passes in alternating order:
    # a, b (1 + 3 each), then b, a (1 + 2 each)
    assert "".join(calls) == "aaaa" + "bbbb" + "bbb" + "aaa"
    calls.clear()
    median_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                 repeats=7, warmup=1, block=2)
    assert "".join(calls) == "aaabbb" + "bbbaaa" + "aaabbb" + "bbaa"
    assert set(med) == set(low) == {"a", "b"}
    assert set(med) == set(low) == {"a", "b"}
