"""``rnnlab demo memory`` in seconds: its files, its table, its numbers, its conditions."""

import json
import re

import numpy as np
import pytest

from rnnlab import cli, demo

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "memory"
    assert cli.main(["demo", "memory", "--quick", "--lags", "2", "5", "--out", str(out)]) == 0
    return out


def test_quick_demo_writes_one_figure_one_table_and_the_json(quick, capsys):
    assert {p.name for p in quick.iterdir()} == {"memory.png", "memory.md", "memory.json"}
    png = (quick / "memory.png").read_bytes()
    assert png.startswith(PNG) and 20_000 < len(png) < 500_000


def test_table_has_a_row_per_task_and_lag_and_states_every_condition(quick):
    md = (quick / "memory.md").read_text()
    rows = [line for line in md.splitlines() if re.match(r"\| (recall|adding) \|", line)]
    assert [r.split("|")[1:3] for r in rows] == [
        [" recall ", " 2 "], [" recall ", " 5 "], [" adding ", " 2 "], [" adding ", " 5 "]]
    for row in rows:
        cols = [c.strip() for c in row.strip("|").split("|")]
        assert len(cols) == 7  # task, lag, chance, 2 x success, 2 x flow
        for success in cols[3:5]:
            assert 0 <= float(success) <= 1
        for flow in cols[5:7]:
            start, end = (float(v) for v in flow.split(" → "))
            assert 0 < start <= 1.5 and 0 < end
    for words in ("Adam, lr 0.01", "global norm 1", "128 training sequences x 2 epochs",
                  "batch 32 = 8 updates per run", "U(±1/√H)", "forget-gate bias 1", "H=8",
                  "seeds**: 0", "100 fresh test sequences", "|error| < 0.04"):
        assert words in md, words


def test_json_holds_the_conditions_and_every_run(quick):
    d = json.loads((quick / "memory.json").read_text())
    assert d["config"]["lags"] == [2, 5] and d["config"]["optimizer"] == "adam"
    assert set(d["conditions"]) >= {"optimiser", "budget", "initialisation", "network",
                                    "seeds", "tasks", "success", "flow"}
    runs = d["runs"]
    assert len(runs) == 2 * 2 * 2  # tasks x lags x cells, one seed
    for r in runs:
        T = r["lag"] + 1
        assert 0 <= r["success"] <= 1 and 0 < r["chance"] < 0.5
        assert r["updates"] == 8 and not r["diverged"]
        for when in ("start", "end"):
            flow = r["flow"][when]
            assert len(flow) == T and flow[0] == pytest.approx(1.0)
            assert r["flow_at_lag"][when] == pytest.approx(flow[-1], rel=1e-3)
            assert 1 <= r["memory_length"][when] <= T
        during = r["flow_at_lag_during_training"]
        assert during[0] == [0, pytest.approx(r["flow_at_lag"]["start"])]
        assert [s for s, _ in during] == [0, 4, 8]  # the Trainer's recordings
    assert len(d["table"]) == 4


def test_delayed_recall_task():
    X, Y = demo.delayed_recall(50, 7, seed=0)
    assert X.shape == (50, 8, 8) and X.dtype == np.float32 and Y.shape == (50,)
    symbols = X.argmax(axis=2)
    assert (X.sum(axis=2) == 1).all()
    assert (symbols[:, 0] == Y).all() and set(Y) <= {0, 1, 2, 3}
    assert ((symbols[:, 1:] >= 4) & (symbols[:, 1:] <= 7)).all()  # distractors only
    X2, Y2 = demo.delayed_recall(50, 7, seed=0)
    assert (X2 == X).all() and (Y2 == Y).all()


def test_a_short_lag_is_learned_and_measured_consistently():
    cfg = demo.MemoryConfig.from_dict({"tasks": ("recall",), "cells": ("elman",),
                                       "lags": (2,), "hidden": 16, "train": 512, "test": 200,
                                       "epochs": 10, "seeds": (0,), "records": 4})
    r = demo.run_one(cfg, "recall", "elman", 2, 0)
    assert r["success"] > 0.95  # three steps back: no trouble at all
    assert r["updates"] == 10 * 16
    assert [s for s, _ in r["flow_at_lag_during_training"]] == [0, 40, 80, 120, 160]


def test_results_do_not_depend_on_parallel_jobs(tmp_path):
    kw = {"tasks": ("adding",), "cells": ("elman", "lstm"), "lags": (3,), "echo": None}
    one = demo.memory(demo.MemoryConfig.quick(), out=tmp_path / "a", jobs=1, **kw)
    two = demo.memory(demo.MemoryConfig.quick(), out=tmp_path / "b", jobs=2, **kw)
    for a, b in zip(one.runs, two.runs, strict=True):
        assert (a["cell"], a["success"], a["flow"]) == (b["cell"], b["success"], b["flow"])


@pytest.mark.parametrize("override,expected", [
    ({"lags": (0, 5)}, "lag must be a positive integer, got 0"),
    ({"tasks": ("copy",)}, "unknown task 'copy'"),
    ({"cells": ()}, "cells must name at least one"),
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ({"lr": -1.0}, "lr must be a positive number, got -1.0"),
    ({"seeds": (-1,)}, "seeds must be non-negative integers, got -1"),
    ({"hiden": 3}, "unknown memory-demo setting(s) ['hiden']"),
])
def test_bad_settings_are_refused_by_name(override, expected, tmp_path):
    with pytest.raises(ValueError) as e:
        demo.memory(demo.MemoryConfig.quick(), out=tmp_path, echo=None, **override)
    assert expected in str(e.value)
    assert not (tmp_path / "memory.png").exists()


def test_bad_options_on_the_command_line_are_one_line(tmp_path, capsys):
    assert cli.main(["demo", "memory", "--quick", "--lags", "0", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnlab: error: lag must be a positive integer, got 0"]
    assert cli.main(["demo", "memory", "--quick", "--epochs", "0"]) == 1
    assert "epochs must be a positive integer, got 0" in capsys.readouterr().err


def test_the_json_reads_back_and_redraws_the_same_table(quick, tmp_path):
    r = demo.MemoryResult.from_json(quick / "memory.json")
    assert demo.markdown(r) == (quick / "memory.md").read_text()
    assert demo.plot_memory(r, tmp_path / "again.png").read_bytes().startswith(PNG)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a memory.json"):
        demo.MemoryResult.from_json(tmp_path / "bad.json")


def test_out_that_is_a_file_is_refused_before_any_training(tmp_path):
    afile = tmp_path / "memory.txt"
    afile.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        demo.memory(demo.MemoryConfig.quick(), out=afile)
