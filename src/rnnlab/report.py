"""A run's report as one web page: ``rnnlab report RUN`` writes ``RUN/report.html``.

Shape legend: B sequences of a probe, T steps, N points of a curve, K classes.

The page stands on its own: figures are inline SVG (:mod:`rnnlab.svg`), the PNGs of the
folder are embedded as ``data:`` URIs, and its Content-Security-Policy lets the browser
fetch nothing at all, so it opens from disk anywhere and cannot call out. A small inline
script adds a log-axis toggle to the line charts, a readout of the value under the pointer
and sortable tables; without it the page reads the same (tooltips on every point come from
SVG ``<title>`` elements).

What a folder holds decides what the page shows (each piece that is missing is a short
note in its section, never a failure):

``rnnlab train`` (language model, ``run.json`` format ``rnnlab-run``)
    settings and environment, loss against step and wall time, gradient norm and
    clipping rate, gradient flow against lag before and after training, saturation,
    samples.
``rnnlab train --task`` (``rnnlab-task-run``)
    the same but samples, and the confusion matrix or the forecast plot.
``rnnlab demo memory`` (``memory.json``)
    the conditions, success and gradient flow against lag.
``rnnlab sweep`` (``results.csv``)
    the results table, whatever its columns.

The flow "before training" is that of a network built again from the run's configuration
and seed, which is how training started; "after" is the saved model's. Both are exact
(:func:`rnnlab.diagnostics.gradient_flow`) on a probe of a few held-out sequences.
"""

from __future__ import annotations

import base64
import csv
import datetime
import json
import math
import tomllib
from pathlib import Path

import numpy as np

from . import io, svg
from .environment import environment
from .svg import esc, fmt

REPORT_FILE = "report.html"
#: the page may fetch nothing: styles and the one script are inline, images data: URIs
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
PROBE_SEQUENCES, PROBE_STEPS = 4, 100  # the gradient-flow probe: a few held-out sequences


class Section:
    """One ``<section>`` of the page: a heading and its pieces of markup."""

    def __init__(self, key: str, heading: str):
        self.key, self.heading, self.parts = key, heading, []

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{esc(text)}</p>')

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{esc(text)}</p>")

    def figure(self, key: str, markup: str, caption: str) -> None:
        """A figure: SVG markup (or an ``<img>``) and its caption."""
        self.parts.append(f'<figure class="fig" id="fig-{esc(key)}" data-figure="{esc(key)}">'
                          f'{markup}<figcaption>{esc(caption)}'
                          f'<span class="readout"></span></figcaption></figure>')

    def table(self, rows, header=None, *, sortable: bool = False) -> None:
        head = ("" if header is None else
                "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
        body = "".join("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in r) + "</tr>"
                       for r in rows)
        cls = ' class="sortable"' if sortable else ""
        self.parts.append(f"<table{cls}>{head}<tbody>{body}</tbody></table>")

    def html(self) -> str:
        return (f'<section id="{esc(self.key)}" data-section="{esc(self.key)}">'
                f"<h2>{esc(self.heading)}</h2>" + "".join(self.parts) + "</section>")


def _cell(v) -> str:
    if isinstance(v, float):
        return fmt(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


# ----------------------------------------------------------------------------------------
# reading a folder


def run_kind(run) -> str:
    """``"lm"``, ``"task"``, ``"memory"`` or ``"sweep"``: what kind of folder ``run`` is."""
    from .apps import TASK_FORMAT
    from .lmrun import RUN_FORMAT

    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"{run} is a file, not a run folder" if run.exists()
                         else f"{run}: no such folder")
    if (run / "run.json").is_file():
        try:
            fmt_ = json.loads((run / "run.json").read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            fmt_ = None
        if fmt_ == RUN_FORMAT:
            return "lm"
        if fmt_ == TASK_FORMAT:
            return "task"
        raise ValueError(f"{run}/run.json is not a run.json written by rnnlab train")
    if (run / "memory.json").is_file():
        return "memory"
    if (run / "results.csv").is_file():
        return "sweep"
    raise ValueError(f"{run} holds no run.json (rnnlab train), memory.json (rnnlab demo "
                     f"memory) or results.csv (rnnlab sweep): nothing to report on")


def read_metrics(path) -> list[dict]:
    """The records of a JSON-lines log; lines cut short by a killed run are skipped."""
    path = Path(path)
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict):
                rows.append(r)
    return rows


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


# ----------------------------------------------------------------------------------------
# the sections


def _settings(run: Path, kind: str, info: dict | None) -> Section:
    s = Section("settings", "Settings and environment")
    rows = []
    first = len(s.parts)
    if kind == "lm" and (run / "config.toml").is_file():
        try:
            rows = list(tomllib.loads((run / "config.toml").read_text("utf-8")).items())
        except (OSError, ValueError) as e:
            s.note(f"config.toml cannot be read: {e}")
    elif kind == "task" and (run / "config.json").is_file():
        try:
            rows = list(json.loads((run / "config.json").read_text("utf-8")).items())
        except (OSError, ValueError) as e:
            s.note(f"config.json cannot be read: {e}")
    elif kind == "memory":
        rows = list(_memory_record(run).get("conditions", {}).items())
    if rows:
        s.table(rows, ["setting", "value"])
    elif kind != "sweep":
        s.note("no settings file in this folder")
    if info:
        keep = {k: v for k, v in info.items()
                if k not in ("environment", "meta", "options", "results", "format", "version")
                and not isinstance(v, (dict, list))}
        if keep:
            s.table(keep.items(), ["run.json", "value"])
    recorded = (info or {}).get("environment")
    if recorded is None and kind == "memory":
        recorded = _memory_record(run).get("environment")
    now = environment()
    keys = list(dict.fromkeys([*(recorded or {}), *now]))
    s.table([(k, (recorded or {}).get(k, "not recorded"), now.get(k, "")) for k in keys],
            ["environment", "when the run was made", "of this report"])
    tables = [p for p in s.parts[first:] if p.startswith("<table")]  # side by side
    tables.sort(key=lambda p: "<th>run.json</th>" in p)  # the wide one last
    s.parts = [p for p in s.parts if p not in tables] + [
        '<div class="tables">' + "".join(tables) + "</div>"]
    if recorded is None:
        s.note("the run did not record its environment (written by an earlier rnnlab); "
               "the last column is that of the machine writing this report")
    return s


def _loss(kind: str, metrics: list[dict], unit: str) -> Section:
    s = Section("loss", "Loss against step and wall time")
    if kind == "lm":
        train = [r for r in metrics if "loss" in r and "step" in r]
        val = [r for r in metrics if "val_nats" in r and "step" in r]
        if not train and not val:
            s.note("metrics.jsonl holds no loss yet")
            return s
        curves = [("training", [r["step"] for r in train], [_num(r["loss"]) for r in train]),
                  ("validation", [r["step"] for r in val], [_num(r["val_nats"]) for r in val])]
        s.figure("loss-step", svg.line_chart(curves, xlabel="update", ylabel=f"nats per {unit}",
                                             title="loss against step", chart_id="c-loss-step"),
                 "Training loss (mean of each 10 updates) and validation loss (estimates, the "
                 "last on the whole validation text) against the update.")
        timed = [(n, [_num(r.get("seconds")) for r in rs], y) for (n, _, y), rs in
                 zip(curves, (train, val), strict=True)]
        s.figure("loss-time", svg.line_chart(timed, xlabel="wall time, s",
                                             ylabel=f"nats per {unit}",
                                             title="loss against wall time",
                                             chart_id="c-loss-time"),
                 "The same against seconds since the run began (start-up included).")
        return s
    steps = [r for r in metrics if "loss" in r and "step" in r]
    epochs = [r for r in metrics if "train_loss" in r and "epoch" in r]
    if not steps and not epochs:
        s.note("metrics.jsonl holds no loss yet")
        return s
    if steps:
        s.figure("loss-step", svg.line_chart(
            [("training", [r["step"] for r in steps], [_num(r["loss"]) for r in steps])],
            xlabel="update", ylabel="loss", title="loss against step", chart_id="c-loss-step"),
            "Training loss of every logged update (every 10th by default).")
    if epochs:
        t = np.cumsum([_num(r.get("seconds")) for r in epochs])
        curves = [("training, epoch mean", t, [_num(r["train_loss"]) for r in epochs])]
        if any(r.get("val_loss") is not None for r in epochs):
            curves.append(("validation", t, [_num(r.get("val_loss")) for r in epochs]))
        s.figure("loss-time", svg.line_chart(curves, xlabel="wall time of training, s",
                                             ylabel="loss", title="loss against wall time",
                                             chart_id="c-loss-time"),
                 "Mean training loss of each epoch at the wall time the epoch ended (the log "
                 "times epochs, not updates).")
        if not any(r.get("val_loss") is not None for r in epochs):
            s.note("this run trained without a validation split: no validation loss")
    return s


def _gradients(kind: str, metrics: list[dict]) -> Section:
    s = Section("gradients", "Gradient norm and clipping")
    steps = [r for r in metrics if "grad_norm" in r and "step" in r]  # not the epoch lines
    if not steps:
        s.note("metrics.jsonl holds no gradient norms")
        return s
    x = [r["step"] for r in steps]
    s.figure("grad-norm", svg.line_chart([("norm before clipping", x,
                                           [_num(r["grad_norm"]) for r in steps])],
                                         xlabel="update", ylabel="global L2 norm", logy=True,
                                         title="gradient norm", chart_id="c-grad-norm"),
             "Global gradient norm before clipping, at every logged update.")
    epochs = [r for r in metrics if "clip_rate" in r and "epoch" in r]
    if epochs:
        s.figure("clip-rate", svg.line_chart(
            [("clipped", [r["epoch"] for r in epochs], [_num(r["clip_rate"]) for r in epochs])],
            xlabel="epoch", ylabel="fraction of updates clipped", title="clipping rate",
            ylim=(-0.02, 1.02),
            chart_id="c-clip-rate"), "Fraction of each epoch's updates that were clipped.")
        return s
    clipped = np.array([bool(r.get("clipped")) for r in steps], dtype=float)
    w = min(10, clipped.size)
    rate = np.convolve(clipped, np.ones(w) / w, mode="valid")
    s.figure("clip-rate", svg.line_chart([("clipped", x[w - 1:], rate)], xlabel="update",
                                         ylabel="fraction clipped", title="clipping rate",
                                         ylim=(-0.02, 1.02),
                                         chart_id="c-clip-rate"),
             f"Fraction of the last {w} logged updates (every 10th update) that were clipped.")
    return s


def _flow_section(before, after, heat, problem: str | None, what: str) -> Section:
    s = Section("flow", "Gradient flow against lag")
    if problem:
        s.note(problem)
    else:
        lags = np.arange(len(after))
        s.figure("flow", svg.line_chart(
            [("before training", lags, before), ("after training", lags, after)],
            xlabel="lag k (steps back from the last output)",
            ylabel="‖∂h_T/∂h_(T−k)‖ / lag 0", logy=True, hlines=[(0.01, "1 % of lag 0")],
            title="gradient flow", chart_id="c-flow"),
            f"Exact Jacobian norm from the last step back k steps, relative to lag 0, on {what}"
            "; before: the network rebuilt from the configuration and seed.")
    if heat:
        heat = sorted(heat, key=lambda r: r[0])
        T = max(len(f) for _, f in heat)
        m = np.full((len(heat), T), np.nan)
        for i, (_, f) in enumerate(heat):
            m[i, :len(f)] = [np.nan if v is None else v for v in f]
        logm = np.log10(np.where(m > 0, m, np.nan))
        lo = np.nanmin(logm) if np.isfinite(logm).any() else 0.0
        shade = 1 - (logm - lo) / ((np.nanmax(logm) - lo) or 1.0)
        s.figure("flow-heatmap", svg.heatmap(m, [str(st) for st, _ in heat], list(range(T)),
                                             xlabel="lag", ylabel="update", colour=shade,
                                             counts=False, title="flow during training",
                                             chart_id="c-flow-heat"),
                 "Relative flow recorded during training (darker: weaker, on a log scale).")
    return s


def _saturation(sat, problem: str | None) -> Section:
    s = Section("saturation", "Saturation")
    if problem:
        s.note(problem)
        return s
    curves = [(name, np.arange(1, len(v) + 1), v) for name, v in sat.items()]
    curves.sort(key=lambda c: c[0] != "all")
    s.figure("saturation", svg.line_chart(curves, xlabel="time step t",
                                          ylabel="fraction of units saturated",
                                          ylim=(-0.02, 1.02),
                                          title="saturation", chart_id="c-saturation"),
             "Fraction of (sequence, unit) pairs whose activation's slope is below 0.1 of its "
             "maximum, per nonlinearity of the top layer, on the same probe.")
    return s


# ----------------------------------------------------------------------------------------
# kinds of folders


def _measure(net, fresh, x, lengths=None):
    """(flow before, flow after, saturation after) on a probe, or the reason it failed."""
    from . import diagnostics

    before = diagnostics.gradient_flow(fresh, x, lengths=lengths, relative=True)
    after = diagnostics.gradient_flow(net, x, lengths=lengths, relative=True)
    sat = diagnostics.saturation(net, x, lengths=lengths)
    return before, after, sat


def _flow_records(metrics):
    return [(r["step"], r["flow"]) for r in metrics
            if isinstance(r.get("flow"), list) and "step" in r]


def _lm_sections(run: Path, metrics: list[dict]) -> list[Section]:
    from . import lm
    from .data.text import one_hot
    from .network import Network

    unit = "char"
    problem = before = after = sat = what = None
    try:
        r = lm.open_run(run)
        unit = r.config.tokens
        ids = r.vocab.encode(lm.load_corpus(r.config).validation, unk=True)
        steps = min(PROBE_STEPS, len(ids) - 1)
        if steps < 2:
            raise ValueError("the validation text is too short for a probe")
        starts = np.linspace(0, len(ids) - 1 - steps, PROBE_SEQUENCES).astype(int)
        x = one_hot(np.stack([ids[a:a + steps] for a in starts]), len(r.vocab), r.net.dtype)
        fresh = Network(**r.net.config, seed=r.config.seed)
        before, after, sat = _measure(r.net, fresh, x)
        what = f"{len(x)} windows of {steps} validation {unit}s"
    except (ValueError, OSError, ImportError) as e:
        problem = f"the model or its validation text cannot be read: {e}"
        r = None
    out = [_loss("lm", metrics, unit), _gradients("lm", metrics),
           _flow_section(before, after, _flow_records(metrics), problem, what),
           _saturation(sat, problem)]
    s = Section("samples", "Samples")
    if r is None:
        s.note(problem)
    else:
        for seed in (0, 1):  # no prime: from a newline where the vocabulary has one
            text = "".join(lm.generate(r.net, r.vocab, "", 300, temperature=0.8, rng=seed))
            s.parts.append(f'<pre class="sample">{esc(text.strip())}</pre>')
        s.note("300 tokens each, temperature 0.8, seeds 0 and 1, from the start of a line")
    out.append(s)
    return out


def _task_sections(run: Path, metrics: list[dict]) -> list[Section]:
    from . import apps
    from .network import Network

    problem, scored = None, None
    try:
        scored = apps.score_test(run)
        data, net = scored["data"], scored["net"]
        seed = json.loads((run / "config.json").read_text("utf-8")).get("seed", 0)
        b = min(PROBE_SEQUENCES, len(data.X_test))
        lengths = None if data.lengths_test is None else data.lengths_test[:b]
        x = data.X_test[:b].astype(net.dtype)
        before, after, sat = _measure(net, Network(**net.config, seed=seed), x, lengths)
        what = f"the first {b} test sequences"
    except (ValueError, OSError, ImportError) as e:  # ImportError: a data source missing
        problem = f"the model or its test data cannot be read: {e}"
        before = after = sat = what = None
    out = [_loss("task", metrics, ""), _gradients("task", metrics),
           _flow_section(before, after, _flow_records(metrics), problem, what),
           _saturation(sat, problem)]
    s = Section("evaluation", "Test results")
    if scored is None:
        s.note(problem)
    else:
        res, arr = scored["results"], scored["arrays"]
        s.table(res.items(), ["result", "value"])
        if "matrix" in arr:
            m = arr["matrix"]
            labels = [str(c) for c in scored["info"]["meta"]["classes"]]
            rows = m.sum(axis=1, keepdims=True)
            share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
            s.figure("confusion", svg.heatmap(m, labels, labels, xlabel="predicted",
                                              ylabel="true", colour=share,
                                              title="confusion matrix", chart_id="c-confusion"),
                     f"Confusion matrix on {res['n_test']} test sequences (shade: share of "
                     f"the true class), accuracy {res['accuracy']:.4f}.")
        else:
            years = np.asarray(arr["years"], dtype=float)
            s.figure("forecast", svg.line_chart(
                [("observed", years, arr["truth"][:, 0]),
                 ("forecast", years, arr["forecast"][:, 0])],
                xlabel="year", ylabel=res.get("units", "value"), title="forecast",
                chart_id="c-forecast"),
                f"First forecast step against the observed value: RMSE {res['rmse']:.2f}, "
                f"persistence {res['persistence_rmse']:.2f}.")
    out.append(s)
    return out


def _memory_record(run: Path) -> dict:
    try:
        d = json.loads((run / "memory.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _memory_sections(run: Path) -> list[Section]:
    d = _memory_record(run)
    s = Section("memory", "Memory against lag")
    table, cells = d.get("table"), (d.get("config") or {}).get("cells")
    if not isinstance(table, list) or not table or not cells:
        s.note("memory.json holds no table of results")
        return [s]
    for task in dict.fromkeys(r.get("task") for r in table):
        rows = [r for r in table if r.get("task") == task]
        lags = [r["lag"] for r in rows]
        chance = float(np.mean([r.get("chance", math.nan) for r in rows]))
        s.figure(f"memory-success-{task}", svg.line_chart(
            [(c, lags, [r.get(c, {}).get("success") for r in rows]) for c in cells],
            xlabel="lag", ylabel="success on test sequences", logx=True, ylim=(-0.02, 1.02),
            hlines=[(chance, "chance")], title=f"{task}: success",
            chart_id=f"c-mem-success-{task}"),
            f"{task}: success against lag, mean over seeds; dashed: chance ({chance:.2f}).")
        curves = []
        for c in cells:
            for which in ("flow_start", "flow_end"):
                curves.append((f"{c}, {'start' if which == 'flow_start' else 'end'}", lags,
                               [r.get(c, {}).get(which) for r in rows]))
        s.figure(f"memory-flow-{task}", svg.line_chart(
            curves, xlabel="lag", ylabel="‖∂h_T/∂h_(T−lag)‖ / ‖I‖", logx=True, logy=True,
            title=f"{task}: gradient flow", chart_id=f"c-mem-flow-{task}"),
            f"{task}: flow from the answer back to the information, at the start and end of "
            "training, median over seeds.")
        head = ["lag", "chance"] + [f"{c} success" for c in cells]
        s.table([[r["lag"], r.get("chance")] + [r.get(c, {}).get("success") for c in cells]
                 for r in rows], head)
    return [s]


def _sweep_sections(run: Path) -> list[Section]:
    s = Section("sweep", "Results of the sweep")
    try:
        with (run / "results.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        s.note(f"results.csv cannot be read: {e}")
        return [s]
    if not rows or not rows[0]:
        s.note("results.csv is empty")
        return [s]
    header, body = rows[0], [r + [""] * (len(rows[0]) - len(r)) for r in rows[1:]]
    if not body:
        s.note("results.csv holds no trial yet")
    s.table(body, header, sortable=True)
    s.note(f"{len(body)} trials, {len(header)} columns; click a column's heading to sort by "
           "it")
    return [s]


def _pictures(run: Path) -> Section:
    s = Section("pictures", "Pictures in the folder")
    found = sorted(p for p in [*run.glob("*.png"), *run.glob("diagnostics/*.png")]
                   if p.is_file())
    if not found:
        s.note("no PNG files in this folder")
    for p in found:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        name = p.relative_to(run).as_posix()
        s.figure(f"png-{name.replace('/', '-')}",
                 f'<img alt="{esc(name)}" src="data:image/png;base64,{data}">', name)
    return s


# ----------------------------------------------------------------------------------------
# the page


def sections(run) -> tuple[str, list[Section]]:
    """The kind of ``run`` (:func:`run_kind`) and the sections of its report, in order."""
    run = Path(run)
    kind = run_kind(run)
    info = None
    if kind in ("lm", "task"):
        try:
            info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
    metrics = read_metrics(run / "metrics.jsonl")
    out = [_settings(run, kind, info)]
    if kind == "lm":
        out += _lm_sections(run, metrics)
    elif kind == "task":
        out += _task_sections(run, metrics)
    elif kind == "memory":
        out += _memory_sections(run)
    else:
        out += _sweep_sections(run)
    out.append(_pictures(run))
    return kind, out


_TITLES = {"lm": "language model", "task": "task run", "memory": "memory demonstration",
           "sweep": "sweep"}


def render(run) -> str:
    """The report of ``run`` as one HTML document (a string)."""
    run = Path(run)
    kind, parts = sections(run)
    title = f"rnnlab report: {_TITLES[kind]} {run.resolve().name}"
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " · ".join(f'<a href="#{esc(p.key)}">{esc(p.heading)}</a>' for p in parts)
    return (f'<!DOCTYPE html><html lang="en" data-kind="{kind}"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>written {when}</p><nav>{nav}</nav></header>"
            + "".join(p.html() for p in parts) + f"<script>{_SCRIPT}</script></body></html>")


def write_report(run, *, out=None) -> Path:
    """Write the report of a run folder (``rnnlab train``, ``--task``, ``demo memory`` or
    ``sweep``) as one self-contained HTML file; returns its path.

    Parameters
    ----------
    run : path of the folder
    out : path of the file to write (default ``RUN/report.html``); written atomically
    """
    run = Path(run)
    page = render(run)
    path = run / REPORT_FILE if out is None else Path(out)
    io.replace_text(path, page)
    return path


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 1.5em 3em;
color:#222;background:#fff}
header{border-bottom:2px solid #1f77b4;margin-bottom:1em}h1{font-size:1.5em;margin:.6em 0 .2em}
nav a{color:#1f77b4;text-decoration:none}section{margin:1.6em 0}
h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f3f6fa}table.sortable th{cursor:pointer}
.tables{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
figure{display:inline-block;width:640px;margin:.4em 1em .8em 0;vertical-align:top}
figcaption{font-size:.85em;color:#444}
.readout{display:block;font-family:monospace;color:#1f4e79;min-height:1.2em}
.note{color:#8a5a00;background:#fff8e6;padding:.3em .6em;border-left:3px solid #e0a800}
pre.sample{background:#f7f7f7;padding:.6em;white-space:pre-wrap;max-width:900px}
img{max-width:640px;border:1px solid #eee}button.scale{margin:.2em 0;font-size:.8em}
svg .pt:hover{stroke:#000;stroke-width:2}svg .cell:hover{stroke:#000}
"""

# The page's one script: a log/linear toggle on charts drawn both ways, a readout of the
# tooltip under the pointer, sortable tables. It marks the page when it has run.
_SCRIPT = """
(function(){
document.querySelectorAll('svg.chart[data-scales="linear log"]').forEach(function(s){
  var b=document.createElement('button');b.className='scale';b.type='button';
  function label(){b.textContent=s.dataset.scale==='log'?'linear y axis':'log y axis';}
  label();
  b.addEventListener('click',function(){
    var to=s.dataset.scale==='log'?'linear':'log';s.dataset.scale=to;
    s.querySelector('g.scale-log').style.display=to==='log'?'':'none';
    s.querySelector('g.scale-linear').style.display=to==='linear'?'':'none';label();});
  s.parentNode.insertBefore(b,s);});
document.querySelectorAll('figure.fig').forEach(function(f){
  var r=f.querySelector('.readout');
  f.addEventListener('mouseover',function(e){
    var t=e.target.querySelector&&e.target.querySelector('title');
    if(t&&(e.target.classList.contains('pt')||e.target.classList.contains('cell')))
      r.textContent=t.textContent;});});
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      var up=th.dataset.order!=='up';th.dataset.order=up?'up':'down';
      rows.sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent;
        var p=parseFloat(x),q=parseFloat(y);
        var c=(isNaN(p)||isNaN(q))?x.localeCompare(y):p-q;return up?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});});});
document.body.dataset.script='ran';
})();
"""
