"""rnnlab report: the page of each kind of run folder, its sections, figures and notes.

The page is read as text here; tests/test_report_browser.py renders it in Chromium.
"""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import runfolders
from rnnlab import report, svg
from rnnlab.report import write_report

#: the sections and figures each kind of folder must show
EXPECTED = {
    "lm": (["settings", "loss", "gradients", "flow", "saturation", "samples", "pictures"],
           ["loss-step", "loss-time", "grad-norm", "clip-rate", "flow", "saturation",
            "png-loss.png"]),
    "task": (["settings", "loss", "gradients", "flow", "saturation", "evaluation", "pictures"],
             ["loss-step", "loss-time", "grad-norm", "clip-rate", "flow", "saturation",
              "confusion", "png-loss.png"]),
    "memory": (["settings", "memory", "pictures"],
               ["memory-success-recall", "memory-flow-recall", "png-memory.png"]),
    "sweep": (["settings", "sweep", "pictures"], []),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return runfolders.runs(tmp_path_factory)


def page(run) -> str:
    return (run / "report.html").read_text(encoding="utf-8")


def ids(html: str, attr: str) -> list:
    return re.findall(rf'{attr}="([^"]+)"', html)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_kind_shows_its_sections_and_figures(runs, kind):
    html = page(runs[kind])
    sections, figures = EXPECTED[kind]
    assert f'data-kind="{kind}"' in html
    assert ids(html, "data-section") == sections
    assert set(figures) <= set(ids(html, "data-figure"))
    # every figure holds a drawing (inline SVG with points or cells, or an embedded PNG)
    for fig in re.findall(r'<figure class="fig".*?</figure>', html):
        assert ("<svg" in fig and ('class="pt"' in fig or 'class="cell"' in fig)) or \
            'src="data:image/png;base64,' in fig, fig[:200]


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_page_fetches_nothing(runs, kind):
    html = page(runs[kind])
    assert f'content="{svg.esc(report.CSP)}"' in html
    assert "default-src 'none'" in report.CSP
    for url in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert url.startswith(("data:", "#")), url
    # the one http: text is SVG's namespace name, which is never fetched
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_the_environment_is_recorded_at_training(runs):
    info = json.loads((runs["lm"] / "run.json").read_text())
    env = info["environment"]
    assert {"rnnlab", "numpy", "cpu", "threads"} <= set(env)
    html = page(runs["lm"])
    row = re.search(r"<td>cpu</td><td>([^<]*)</td><td>([^<]*)</td>", html)
    assert row.group(1) == svg.esc(env["cpu"])
    assert "not recorded" not in html


def test_a_language_model_report_holds_samples_and_the_loss_values(runs):
    html = page(runs["lm"])
    assert html.count('<pre class="sample">') == 2
    lines = [json.loads(x) for x in (runs["lm"] / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in lines if "loss" in r]
    fig = re.search(r'id="fig-loss-step".*?</figure>', html).group(0)
    tips = re.findall(r"<title>training: ([^<]*)</title>", fig)
    shown = {t for t in tips}
    for r in losses:  # every logged loss is a point with its value (each scale draws it)
        assert f"{svg.fmt(r['step'])}, {svg.fmt(r['loss'])}" in shown


def test_the_fresh_network_is_the_one_training_started_from(runs):
    # the flow "before training" rebuilds the network from its config and seed: it must
    # be the network rnnlab.lm builds at the start of a run
    from rnnlab import Network, lm

    r = lm.open_run(runs["lm"])
    V = len(r.vocab)
    start = Network(V, r.config.hidden, V, cell=r.config.cell, num_layers=r.config.layers,
                    output="softmax", readout="all", seed=r.config.seed)
    rebuilt = Network(**r.net.config, seed=r.config.seed)
    for k, v in start.params.items():
        np.testing.assert_array_equal(rebuilt.params[k], v)
    assert any(not np.array_equal(r.net.params[k], v) for k, v in start.params.items())


def test_the_confusion_matrix_counts_every_test_sequence(runs):
    html = page(runs["task"])
    fig = re.search(r'id="fig-confusion".*?</figure>', html).group(0)
    cells = re.findall(r"<title>true (\w+), predicted (\w+): (\d+)</title>", fig)
    assert len(cells) == 10 * 10
    assert sum(int(n) for *_, n in cells) == 100  # max_test
    info = json.loads((runs["task"] / "run.json").read_text())
    correct = sum(int(n) for t, p, n in cells if t == p)
    assert correct / 100 == pytest.approx(info["results"]["accuracy"])


def test_a_sweep_table_shows_whatever_columns_it_has(runs):
    html = page(runs["sweep"])
    table = re.search(r'<table class="sortable">.*?</table>', html).group(0)
    assert re.findall(r"<th>([^<]*)</th>", table) == ["trial", "cell", "hidden", "lr",
                                                       "val_loss", "note"]
    assert table.count("<tr>") == 4
    assert "first, with a comma" in table and "ünïcode" in table


def test_missing_pieces_are_notes_not_failures(runs, tmp_path):
    run = tmp_path / "damaged"
    shutil.copytree(runs["lm"], run)
    (run / "model.rnnlab").unlink()
    (run / "loss.png").unlink()
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 50, "loss": 1.2')  # cut short by a kill
    html = report.render(run)
    assert ids(html, "data-section") == EXPECTED["lm"][0]  # every section, still
    notes = re.findall(r'<p class="note">([^<]*)</p>', html)
    assert any("cannot be read" in n for n in notes)
    assert any("no PNG files" in n for n in notes)
    (run / "metrics.jsonl").unlink()
    assert "metrics.jsonl holds no loss yet" in report.render(run)


def test_an_empty_sweep_and_a_folder_of_nothing(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "results.csv").write_text("a,b\n")
    assert "results.csv holds no trial yet" in report.render(tmp_path / "s")
    with pytest.raises(ValueError, match="nothing to report on"):
        write_report(tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        write_report(tmp_path / "absent")


def test_the_cli_writes_the_report_and_fails_in_one_line(runs, tmp_path):
    out = tmp_path / "page.html"
    ok = subprocess.run([sys.executable, "-m", "rnnlab", "report", str(runs["sweep"]),
                         "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    bad = subprocess.run([sys.executable, "-m", "rnnlab", "report", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "nothing to report on" in bad.stderr


def test_eval_report_flag_writes_the_page(runs, tmp_path):
    run = tmp_path / "task"
    shutil.copytree(runs["task"], run)
    (run / "report.html").unlink()
    from rnnlab.cli import main

    assert main(["eval", str(run), "--report"]) == 0
    assert (run / "report.html").is_file()
    assert "png-confusion.png" in page(run)  # eval's own PNG, embedded


def test_a_log_chart_leaves_out_what_a_log_axis_cannot_show():
    s = svg.line_chart([("a", [0, 1, 2, 3], [1.0, 0.0, -1.0, np.nan])], xlabel="x",
                       ylabel="y", logy=True)
    log = re.search(r'<g class="scale-log".*?</g>', s).group(0)
    lin = re.search(r'<g class="scale-linear".*?</g>', s).group(0)
    assert log.count('class="pt"') == 1 and lin.count('class="pt"') == 3
    assert 'data-scale="log"' in s
    assert "no finite values" in svg.line_chart([("a", [1], [np.nan])], xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="1-D of one length"):
        svg.line_chart([("a", [1, 2], [1])], xlabel="x", ylabel="y")


def test_flow_recordings_in_the_log_become_a_heat_map(runs, tmp_path):
    run = tmp_path / "recorded"
    shutil.copytree(runs["lm"], run)
    with (run / "metrics.jsonl").open("a") as f:  # as Trainer(diagnostics_every=N) logs them
        for step, flow in ((0, [1.0, 0.5, 0.25]), (20, [1.0, 0.1, None]), (40, [1.0, 0.01])):
            f.write(json.dumps({"step": step, "flow": flow, "memory_length": 2}) + "\n")
    html = report.render(run)
    fig = re.search(r'id="fig-flow-heatmap".*?</figure>', html).group(0)
    cells = re.findall(r"<title>update (\d+), lag (\d+): ([^<]*)</title>", fig)
    assert len(cells) == 3 * 3
    assert ("20", "1", "0.1") in cells and ("40", "2", "n/a") in cells


def test_the_memory_demo_records_its_environment(runs):
    d = json.loads((runs["memory"] / "memory.json").read_text())
    assert {"cpu", "numpy", "threads"} <= set(d["environment"])
    assert "not recorded" not in page(runs["memory"])
