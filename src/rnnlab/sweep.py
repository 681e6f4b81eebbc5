"""Sweeps: many runs over a grid of settings, on Ray Tune: ``rnnlab sweep SPEC.toml``.

Shape legend: A grid axes (keys of ``[grid]``), M trials (the product of their lengths).

A sweep spec is a TOML file of two tables::

    [base]              # settings every trial shares
    steps = 200
    time_budget = 0     # 0: no limit, as in a --config file
    [grid]              # one list per setting; the sweep runs their Cartesian product
    hidden = [64, 128]
    lr = [1e-3, 3e-3]

``[base]`` and ``[grid]`` take the keys of ``rnnlab train``'s configuration
(:class:`rnnlab.lmrun.LMConfig`, as in ``--config``), or, when either names a ``task``,
those of a ``--task`` run (:func:`rnnlab.apps.train_task`). Every trial's settings are
checked before the first trial starts.

The sweep folder ``DIR``::

    sweep.json      the spec (kind, base, grid): a rerun with another spec is refused
    results.csv     one row per trial: trial, the grid's columns, metric, score, seconds,
                    status, error; rewritten whole (a temporary file renamed over it) as
                    trials start and finish
    scores.png      the score against each grid axis
    trials/NAME/    each trial's ordinary run folder (``rnnlab eval``, ``sample`` read it);
                    NAME is its number and grid values, e.g. ``003-hidden=128,lr=0.001``
    ray/            Ray Tune's own records of each session

The score of a language model is its final validation loss ``val_nats`` (nats per token,
the whole validation text; lower is better); of a ``--task`` run, its score on the task's
held-out split, ``test_accuracy`` (higher is better) or ``test_rmse`` (lower). A trial
that raises is a row with status ``failed`` and the error's first line; the others go on.
Status ``ok`` marks a finished trial: rerunning the same command on the same ``DIR`` runs
only the others (failed, interrupted, never started), each in a fresh folder.

Trials run on Ray Tune, one CPU each (one thread for the kernels and BLAS): on a local Ray
started in this process by default, or on a running cluster (``address``), whose nodes
must all see ``DIR`` (a shared file system). The transport and the scheduler are Ray's,
nothing of rnnlab's own; Ray is optional (``pip install "rnnlab[cluster]"``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io as _stdio
import itertools
import json
import math
import os
import re
import shutil
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import checks, io

SPEC_FORMAT = "rnnlab-sweep"
SPEC_VERSION = 1
#: the columns of results.csv around the grid's: trial first, then the grid, then these
RESULT_COLUMNS = ("metric", "score", "seconds", "status", "error")
#: a trial's status: finished, raised, started but stopped (Ctrl-C), not started yet
STATUSES = ("ok", "failed", "interrupted", "pending", "running")

#: keys of a ``--task`` run (:func:`rnnlab.apps.train_task`'s settings)
TASK_KEYS = ("task", "cell", "hidden", "layers", "epochs", "batch", "lr", "clip", "seed",
             "patch", "horizon", "noise", "max_train", "max_test")


def ray():
    """The ``ray`` module, or a ModuleNotFoundError of one line naming the extra."""
    try:
        import ray as _ray
        from ray import tune  # noqa: F401  (Tune is a separate part of the ray package)
    except ImportError:
        raise ModuleNotFoundError('sweeps run on Ray Tune: pip install "rnnlab[cluster]"') \
            from None
    return _ray


# ----------------------------------------------------------------------------------------
# the spec


@dataclass
class Spec:
    """A sweep: what each trial runs (``kind``), the shared settings and the grid."""

    kind: str  # "lm" (rnnlab train), "task" (rnnlab train --task) or another runner's name
    base: dict  # settings shared by every trial
    grid: dict  # axis -> list of values, in the spec's order

    def points(self) -> list[dict]:
        """Every trial's grid values (M dicts, the last axis varying fastest)."""
        axes = list(self.grid)
        return [dict(zip(axes, values, strict=True))
                for values in itertools.product(*self.grid.values())]

    def record(self) -> dict:
        return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "kind": self.kind,
                "base": self.base, "grid": self.grid}


def read_spec(path) -> Spec:
    """Read and check a sweep spec file (module docstring); one-line ValueErrors."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ValueError(f"sweep spec {path} {what}")
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read sweep spec {path} ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"sweep spec {path} is not valid TOML: {e}") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"sweep spec {path} is not valid TOML: {str(e)[:120]}") from None
    try:
        return spec_from_dict(d)
    except ValueError as e:
        raise ValueError(f"sweep spec {path}: {e}") from None


def spec_from_dict(d: dict) -> Spec:
    """A :class:`Spec` of a language model or a ``--task`` run from ``{"base", "grid"}``,
    every trial's settings checked."""
    if not isinstance(d, dict):
        raise ValueError(f"expected tables [base] and [grid], got {type(d).__name__}")
    checks.known_keys(d, ("base", "grid"), "table")
    base, grid = d.get("base", {}), d.get("grid")
    if grid is None:
        raise ValueError("no [grid] table: give at least one setting as a list of values")
    for name, table in (("base", base), ("grid", grid)):
        if not isinstance(table, dict):
            raise ValueError(f"[{name}] must be a table of settings, got {table!r:.40}")
    kind = "task" if "task" in base or "task" in grid else "lm"
    if kind == "lm":
        from .lmrun import LMConfig

        known = [f.name for f in dataclasses.fields(LMConfig)]
    else:
        known = TASK_KEYS
    what = "language-model setting" if kind == "lm" else "--task run setting"
    checks.known_keys(base, known, what)
    checks.known_keys(grid, known, what)
    spec = Spec(kind, dict(base), check_grid(grid))
    both = sorted(set(base) & set(grid))
    if both:
        raise ValueError(f"{both} given in both [base] and [grid]; give each setting once")
    for point in spec.points():
        (lm_settings if kind == "lm" else task_settings)({**base, **point})
    return spec


def check_grid(grid: dict) -> dict:
    """``grid`` if every axis is a non-empty list of distinct values (at least one axis)."""
    if not grid:
        raise ValueError("the [grid] table is empty: give at least one setting as a list "
                         "of values")
    for k, values in grid.items():
        if not isinstance(values, list):
            raise ValueError(f"grid value of {k!r} must be a list of values, got "
                             f"{values!r:.40}")
        if not values:
            raise ValueError(f"grid value of {k!r} is an empty list: give at least one value")
        seen = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(seen)) != len(seen):
            raise ValueError(f"grid value of {k!r} repeats a value: {values!r:.60}")
    return {k: list(v) for k, v in grid.items()}


def lm_settings(settings: dict):
    """The :class:`~rnnlab.lmrun.LMConfig` of one language-model trial (checked)."""
    from .lmrun import LMConfig

    return LMConfig.from_dict(settings)


def task_settings(settings: dict) -> dict:
    """The keyword arguments of :func:`rnnlab.apps.train_task` for one ``--task`` trial,
    checked as ``train_task`` checks them (before its data is loaded)."""
    from .apps import TASKS
    from .cells import LAYERS

    s = dict(settings)
    if "task" not in s:
        raise ValueError("a --task sweep needs task in [base] or [grid]")
    checks.choice(s["task"], "task", tuple(TASKS))
    if s.get("cell") is not None:
        checks.choice(s["cell"], "cell", tuple(LAYERS))
    for k in ("hidden", "layers", "epochs", "batch", "horizon", "max_train", "max_test"):
        checks.optional(checks.positive_int, s.get(k), k)
    checks.optional(checks.positive_number, s.get("lr"), "lr")
    checks.optional(checks.number, s.get("clip"), "clip", low=0)
    checks.optional(checks.number, s.get("noise"), "noise", low=0)
    checks.integer(s.get("seed", 0), "seed", minimum=0)
    if s.get("patch") is not None:
        s["patch"] = _patch(s["patch"])
    return s


def _patch(value) -> tuple[int, int]:
    """A patch given as ``"4x4"``, ``4`` or ``[4, 4]`` -> (4, 4)."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        value = [int(p) for p in parts if p.isdigit()] if all(p.isdigit() for p in parts) \
            else []
    elif isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, list) and len(value) == 1:
        value = value * 2
    if not (isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"patch must be HEIGHTxWIDTH in pixels, e.g. \"4x4\" or [4, 4], "
                         f"got {value!r:.40}")
    return tuple(value)


# ----------------------------------------------------------------------------------------
# what one trial runs: (settings, folder) -> (metric, score)


def _silent(*args, **kwargs) -> None:
    """Where a trial's own messages go: its run folder and results.csv tell its outcome."""


def train_lm_trial(settings: dict, folder: Path) -> tuple[str, float]:
    """One language-model trial: :func:`rnnlab.lm.train` into ``folder``; its final
    validation loss (nats per token, the whole validation text)."""
    from . import lm

    lm.train(lm_settings(settings), out=folder, progress=False, echo=_silent, comm=False)
    info = io.read_run_info(folder, lm.RUN_FORMAT, lm.RUN_VERSION)
    return "val_nats", float(info["val_nats"])


def train_task_trial(settings: dict, folder: Path) -> tuple[str, float]:
    """One ``--task`` trial: :func:`rnnlab.apps.train_task` into ``folder``; its test
    accuracy (classification) or RMSE (forecasting)."""
    from . import apps

    s = task_settings(settings)
    apps.train_task(s.pop("task"), out=folder, progress=False, echo=_silent, **s)
    results = apps.open_task_run(folder)["results"]
    if "accuracy" in results:
        return "test_accuracy", float(results["accuracy"])
    return "test_rmse", float(results["rmse"])


RUNNERS: dict[str, Callable] = {"lm": train_lm_trial, "task": train_task_trial}
#: metrics for which a higher score is better (the rest: lower is better)
HIGHER_IS_BETTER = {"test_accuracy", "success"}


# ----------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    """What :func:`run` or :func:`run_grid` did: a row per trial (as in results.csv)."""

    spec: Spec
    rows: list  # dicts: "trial", the grid's keys, "metric", "score", "seconds", ...
    out: Path
    paths: dict = field(default_factory=dict)  # "results", "plot", "spec" -> Path

    @property
    def complete(self) -> bool:
        """Whether every trial has finished (status ``ok``)."""
        return all(r["status"] == "ok" for r in self.rows)


def run(spec, out, *, address: str | None = None, max_concurrent: int | None = None,
        echo=print) -> SweepResult:
    """Run a sweep spec (a path to its TOML file, a ``{"base", "grid"}`` dict or a
    :class:`Spec`) into the folder ``out``: ``rnnlab sweep SPEC --out DIR``.

    Parameters
    ----------
    spec : path, dict or Spec
    out : path of the sweep folder (module docstring); the same folder and spec resume
    address : a Ray cluster to run on (``ray.init(address=...)``, e.g. ``"auto"`` or
        ``"10.0.0.1:6379"``); None: the Ray already started in this process, else a local
        one started here with every core, stopped at the end
    max_concurrent : at most this many trials at once (None: one per free CPU)
    echo : where one line per finished trial goes (``print``; None for silence)

    Returns
    -------
    SweepResult

    Ctrl-C stops the running trials, writes ``results.csv`` and raises
    ``KeyboardInterrupt``; rerunning resumes.
    """
    if isinstance(spec, Spec):
        spec = spec_from_dict({"base": spec.base, "grid": spec.grid})
    elif isinstance(spec, dict):
        spec = spec_from_dict(spec)
    else:
        spec = read_spec(spec)
    base = dict(spec.base)
    if spec.kind == "lm" and isinstance(base.get("data"), str):
        # each trial runs in a worker with its own working directory: a path from here
        base["data"] = str(Path(base["data"]).resolve())
    return run_grid(spec.kind, base, spec.grid, RUNNERS[spec.kind], out, address=address,
                    max_concurrent=max_concurrent, echo=echo, record=spec.record())


def run_grid(kind: str, base: dict, grid: dict, trial: Callable, out, *,
             address: str | None = None, max_concurrent: int | None = None, echo=print,
             record: dict | None = None) -> SweepResult:
    """Run ``trial({**base, **point}, folder)`` for every point of ``grid`` on Ray Tune.

    The runner under :func:`run` and ``rnnlab demo memory --sweep``. ``trial`` is a
    module-level function (Ray sends it to the workers by name) that writes its results
    into ``folder`` (``out/trials/NAME``, which it creates) and returns ``(metric,
    score)``; ``kind`` names it in ``sweep.json``, with ``base`` and ``grid`` (JSON
    values), so that a rerun with other settings is refused. Other arguments as
    :func:`run`'s.
    """
    spec = Spec(kind, dict(base), check_grid(grid))
    record = record or spec.record()
    checks.optional(checks.positive_int, max_concurrent, "max_concurrent")
    echo = echo or _silent
    out = io.check_folder(out).resolve()
    rows = _open_folder(out, spec, record)
    todo = [r["trial"] for r in rows if r["status"] != "ok"]
    points = {r["trial"]: p for r, p in zip(rows, spec.points(), strict=True)}
    paths = {"spec": out / "sweep.json", "results": out / "results.csv",
             "plot": out / "scores.png"}
    result = SweepResult(spec, rows, out, paths)
    _write_results(result)
    done = len(rows) - len(todo)
    if todo:
        for name in todo:  # a trial that did not finish starts again from nothing
            shutil.rmtree(out / "trials" / name, ignore_errors=True)
        (out / "trials").mkdir(exist_ok=True)
        with _ray_session(address) as where:
            echo(f"rnnlab sweep: {len(rows)} trials" + (f" ({done} done before)" if done
                                                         else "")
                 + f", {len(todo)} to run on {where}, one CPU each"
                 + (f", at most {max_concurrent} at once" if max_concurrent else "")
                 + f"; results in {paths['results']}")
            _tune(result, todo, {n: {**spec.base, **points[n]} for n in todo}, trial,
                  max_concurrent, echo)
    _write_results(result)
    if any(r["score"] is not None for r in rows):
        from .plots import plot_scores

        plot_scores(rows, list(spec.grid), paths["plot"], higher=HIGHER_IS_BETTER)
    unfinished = [r for r in rows if r["status"] in ("pending", "running", "interrupted")]
    for r in unfinished:
        r["status"] = "pending" if r["status"] == "pending" else "interrupted"
    if unfinished:
        _write_results(result)
        echo(f"rnnlab sweep: stopped with {len(unfinished)} of {len(rows)} trials "
             f"unfinished; run the same command again to resume")
        raise KeyboardInterrupt
    failed = sum(r["status"] == "failed" for r in rows)
    echo(f"rnnlab sweep: {len(rows) - failed} of {len(rows)} trials ok"
         + (f", {failed} failed (see the error column)" if failed else "")
         + f"; wrote {paths['results']} and {paths['plot'].name}")
    return result


def trial_name(index: int, point: dict, width: int) -> str:
    """A trial's folder name: its number and grid values, e.g. ``003-cell=gru,lr=0.001``
    (characters other than letters, digits and ``.+-_=,`` become ``_``)."""
    text = ",".join(f"{k}={_text(v)}" for k, v in point.items())
    return f"{index:0{width}d}-" + re.sub(r"[^A-Za-z0-9.+\-_=,]", "_", text)[:120]


def _text(value) -> str:
    """A grid value as results.csv and folder names show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))  # a patch [4, 4] -> 4x4
    return json.dumps(value, sort_keys=True)


def _open_folder(out: Path, spec: Spec, record: dict) -> list:
    """The rows of the sweep in ``out``: from results.csv when ``out`` holds this spec's
    sweep (finished trials kept, the others pending), all pending for a new one."""
    points = spec.points()
    width = len(str(len(points) - 1))
    names = [trial_name(i, p, width) for i, p in enumerate(points)]
    rows = [{"trial": n, **{k: _text(v) for k, v in p.items()}, "metric": "", "score": None,
             "seconds": None, "status": "pending", "error": ""}
            for n, p in zip(names, points, strict=True)]
    spec_file = out / "sweep.json"
    if spec_file.exists():
        saved = _read_spec_record(spec_file)
        mine = json.loads(json.dumps(record))  # as JSON gives it back
        if {k: saved.get(k) for k in ("kind", "base", "grid")} != \
                {k: mine[k] for k in ("kind", "base", "grid")}:
            changed = [k for k in ("kind", "base", "grid") if saved.get(k) != mine[k]]
            raise ValueError(f"{out} holds a sweep of another spec ({', '.join(changed)} "
                             f"differ); give another --out, or the spec saved in "
                             f"{spec_file}")
        before = {r.get("trial"): r for r in _read_results(out / "results.csv")}
        for r in rows:
            old = before.get(r["trial"])
            if old is not None and old.get("status") == "ok":
                r.update(metric=old["metric"], score=float(old["score"]),
                         seconds=float(old["seconds"]), status="ok")
        return rows
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and holds no sweep (no sweep.json); give another "
                         f"--out")
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(spec_file, record)
    return rows


def _read_spec_record(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path} ({str(e)[:80]})") from None
    if not isinstance(d, dict) or d.get("format") != SPEC_FORMAT:
        raise ValueError(f"{path} is not a sweep spec written by rnnlab sweep")
    if d.get("version") != SPEC_VERSION:
        raise ValueError(f"{path} is sweep format version {d.get('version')!r}; this "
                         f"rnnlab reads version {SPEC_VERSION}")
    return d


def _read_results(path: Path) -> list:
    """The rows of an earlier results.csv (none when it is missing or unreadable: then
    every trial runs again)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    good = []
    for r in rows:
        try:
            if r.get("status") == "ok" and math.isfinite(float(r["score"])):
                float(r["seconds"])
                good.append(r)
        except (TypeError, ValueError, KeyError):
            continue
    return good


def _write_results(result: SweepResult) -> None:
    """results.csv, whole: a temporary file renamed over the old one."""
    columns = ["trial", *result.spec.grid, *RESULT_COLUMNS]
    buf = _stdio.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow({k: ("" if r[k] is None else
                        f"{r[k]:.6g}" if k == "seconds" else r[k]) for k in columns})
    io.replace_text(result.paths["results"], buf.getvalue())


@contextlib.contextmanager
def _ray_session(address):
    """Ray for the sweep: the one this process started already, a cluster at ``address``,
    or a local one started (and stopped) here. Yields its description."""
    r = ray()
    if r.is_initialized() and address is None:
        yield f"Ray ({int(r.cluster_resources().get('CPU', 0))} CPUs)"
        return
    if r.is_initialized():
        raise ValueError("Ray is already started in this process; give no address")
    try:
        # "local": a Ray of this process's own, not one that happens to run on the machine
        r.init(address=address or "local", include_dashboard=False, log_to_driver=False,
               logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ValueError(f"cannot start or reach Ray at {address or 'this machine'}: "
                         f"{str(e).splitlines()[0][:160]}") from None
    try:
        cpus = int(r.cluster_resources().get("CPU", 0))
        yield (f"the Ray cluster at {address} ({cpus} CPUs)" if address else
               f"a local Ray ({cpus} CPUs)")
    finally:
        r.shutdown()


def _tune(sweep: SweepResult, todo: list, settings: dict, trial, max_concurrent, echo):
    """Run the trials ``todo`` (names) on Ray Tune, updating ``sweep.rows`` and
    results.csv from Tune's callbacks, in this process, as trials start and finish."""
    from ray import tune

    rows = {r["trial"]: r for r in sweep.rows}
    finished = [sum(r["status"] == "ok" for r in sweep.rows)]

    class Rows(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            rows[trial.config["trial"]]["status"] = "running"
            _write_results(sweep)

        def on_trial_result(self, iteration, trials, trial, result: dict, **info):
            r = rows[trial.config["trial"]]
            r.update({k: result[k] for k in ("metric", "score", "seconds", "status", "error")})
            _write_results(sweep)
            finished[0] += 1
            outcome = (f"{r['metric']} {r['score']:.4g}" if r["status"] == "ok"
                       else f"FAILED: {r['error']}")
            echo(f"[{finished[0]}/{len(rows)}] {r['trial']}: {outcome}, {r['seconds']:.0f} s")

        def on_trial_error(self, iteration, trials, trial, **info):
            # the trial's process itself failed (killed, out of memory): Tune's error file
            r = rows[trial.config["trial"]]
            r.update(status="failed", error=f"the trial's process failed; Ray's record: "
                                            f"{trial.error_file or 'none'}")
            _write_results(sweep)
            finished[0] += 1
            echo(f"[{finished[0]}/{len(rows)}] {r['trial']}: FAILED ({r['error']})")

    trainable = tune.with_resources(
        tune.with_parameters(_trainable, trial=trial, settings=settings,
                             trials_dir=str(sweep.out / "trials")), {"cpu": 1})
    tuner = tune.Tuner(
        trainable, param_space={"trial": tune.grid_search(todo)},
        # a worker process serves trial after trial: the start-up (Python, rnnlab, the
        # compiled kernels) is paid once per CPU, not once per trial; a trial keeps nothing
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or 0,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(sweep.out / "ray"),
                                  name=time.strftime("%Y%m%d-%H%M%S"), verbose=0,
                                  callbacks=[Rows()]))
    with _quiet_tune():
        tuner.fit()


@contextlib.contextmanager
def _quiet_tune():
    """Tune's own tables off while it runs (one line per trial is rnnlab's): its older
    console output, which verbosity 0 silences, rather than the newer, which it does not."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def _trainable(config: dict, *, trial, settings: dict, trials_dir: str) -> None:
    """One trial, in a Ray worker: ``trial`` on one thread, its outcome reported to Tune
    (an exception becomes a failed row, not a failed sweep)."""
    from ray import tune

    from .kernels import threads

    name = config["trial"]
    t0 = time.perf_counter()
    try:
        with threads(1):  # one CPU per trial
            metric, score = trial(settings[name], Path(trials_dir) / name)
        report = {"metric": metric, "score": float(score), "status": "ok", "error": ""}
    except Exception as e:  # noqa: BLE001  (any failure of one trial is that trial's row)
        first = (str(e).splitlines() or [""])[0][:300]
        report = {"metric": "", "score": None, "status": "failed",
                  "error": f"{type(e).__name__}: {first}" if first else type(e).__name__}
    tune.report({**report, "seconds": time.perf_counter() - t0})
