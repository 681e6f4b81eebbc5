r"""The notes' claims, measured: ``rnnlab demo memory``.

The notes say a simple (Elman) RNN "practically cannot" capture dependencies more than 8 or
10 steps back, because the gradient's contribution decays geometrically with the lag, and
that the LSTM fixes this. :func:`memory` puts that to a test: it trains Elman and LSTM
networks on long-range tasks at a range of lags with :class:`rnnlab.Trainer`, and writes one
figure and one table: success against lag for each cell, and the gradient flow
:math:`\|\partial h_T / \partial h_{T-\text{lag}}\|_F / \|I\|_F` (from the answer back to the
step that holds the information) at the start and at the end of training.

Shape legend: N sequences, T = lag + 1 time steps, D input features, K outputs.

The answer depends on more than the lag (see DESIGN.md, "The notes' 8–10-step claim"): on
the task, the optimiser, the training budget and the initialisation. So every one of them is
a stated, recorded setting, written into the figure, the table and the JSON, and the
defaults were chosen before the first run, never tuned to tell a story.

Tasks (``lag`` steps between the information and the answer, read at the last step):

``"recall"``
    Delayed recall. Step 0 holds one of 4 class symbols; steps 1 .. lag hold distractors
    drawn uniformly from 4 other symbols (one-hot, D = 8). Classify the first symbol at step
    lag + 1 (softmax over 4). Success: test accuracy; chance 0.25. Nothing has to be
    computed, only kept, and the distractors are orthogonal to the classes.
``"adding"``
    The adding problem (:func:`rnnlab.data.synthetic.adding_problem`) with T = lag + 1:
    two channels, numbers in [0, 1) and a marker at one step of each half; output the sum of
    the two marked numbers (linear). The first marker lies between lag/2 and lag steps
    before the answer. Success: the fraction of test sequences with absolute error below
    0.04 (Hochreiter & Schmidhuber 1997); chance is the rate of always answering the mean
    of the training targets, about 0.08. The net must integrate values, not just keep one.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checks, io
from .cells import LAYERS, RECURRENT

TASKS = ("recall", "adding")
CELLS = RECURRENT  # the demo times recurrences
OPTIMIZERS = ("adam", "sgd")
#: learning rate when none is given; SGD runs with momentum 0.9 (as DESIGN.md's measurement)
DEFAULT_LR = {"adam": 1e-2, "sgd": 0.1}
SGD_MOMENTUM = 0.9
#: the notes' limit, shaded in the figure
NOTES_LIMIT = (8, 10)
_RECALL_CLASSES, _RECALL_DISTRACTORS = 4, 4
_CELL_NAMES = {name: layer.__name__ for name, layer in LAYERS.items()}  # "LSTM"


def _has_forget_bias(cells) -> bool:
    return any("forget_bias" in LAYERS[c].options for c in cells)


_COLORS = {"elman": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}


# ------------------------------------------------------------------------------------------
# tasks
# ------------------------------------------------------------------------------------------
def delayed_recall(n: int, lag: int, *, seed) -> tuple[np.ndarray, np.ndarray]:
    """The ``"recall"`` task: a class symbol at step 0, ``lag`` distractors, answer at the end.

    Returns
    -------
    X : float32 (n, lag + 1, 8)
        One-hot: channels 0-3 the class symbols, 4-7 the distractors.
    Y : int64 (n,)
        The class, 0-3.
    """
    n, lag = checks.positive_int(n, "n"), checks.positive_int(lag, "lag")
    rng = np.random.default_rng(seed)
    Y = rng.integers(0, _RECALL_CLASSES, size=n)
    symbols = rng.integers(_RECALL_CLASSES, _RECALL_CLASSES + _RECALL_DISTRACTORS,
                           size=(n, lag + 1))
    symbols[:, 0] = Y
    X = np.eye(_RECALL_CLASSES + _RECALL_DISTRACTORS, dtype=np.float32)[symbols]
    return X, Y.astype(np.int64)


def _task_data(task: str, n: int, lag: int, rng):
    from .data.synthetic import adding_problem

    if task == "recall":
        return delayed_recall(n, lag, seed=rng)
    return adding_problem(n, lag + 1, seed=rng)


def _success(task: str, net, X, Y) -> float:
    from .data.synthetic import adding_accuracy

    pred = net.predict(X)
    if task == "recall":
        return float(np.mean(np.argmax(pred, axis=1) == Y))
    return adding_accuracy(pred, Y)


def _chance(task: str, Ytrain, Ytest) -> float:
    from .data.synthetic import adding_accuracy

    if task == "recall":
        return 1.0 / _RECALL_CLASSES
    return adding_accuracy(np.full(Ytest.shape, float(np.mean(Ytrain))), Ytest)


# ------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------
@dataclass
class MemoryConfig:
    """Every condition of a memory demonstration; all of it is written next to the results."""

    tasks: tuple = TASKS  # "recall" and/or "adding" (module docstring)
    cells: tuple = ("elman", "lstm")
    lags: tuple = (2, 5, 10, 20, 50, 100, 200)  # steps from the information to the answer
    optimizer: str = "adam"  # "adam" or "sgd" (with momentum 0.9)
    lr: float | None = None  # None: 1e-2 for Adam, 0.1 for SGD
    clip_norm: float = 1.0  # global gradient-norm clipping
    epochs: int = 60  # passes over the training set: the budget
    train: int = 2000  # training sequences per run (fixed, drawn once per run)
    test: int = 1000  # fresh test sequences per run, for the success rate
    batch: int = 32
    hidden: int = 32  # H, units of the single recurrent layer
    init: str = "uniform"  # recurrent weights: "uniform" (PyTorch's), "orthogonal", ...
    forget_bias: float = 1.0  # LSTM forget-gate bias at initialisation
    seeds: tuple = (0, 1, 2)  # one run per seed: weights, data and shuffling
    probe: int = 8  # test sequences the gradient flow is averaged over
    records: int = 10  # gradient-flow recordings during training (the Trainer's hook)
    dtype: str = "float32"

    @classmethod
    def quick(cls, **overrides) -> MemoryConfig:
        """A seconds-long version (tiny nets, few sequences): a smoke test, not a result."""
        base = {"lags": (2, 5, 10), "epochs": 2, "train": 128, "test": 100, "hidden": 8,
                "seeds": (0,), "probe": 4, "records": 2}
        return cls.from_dict({**base, **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> MemoryConfig:
        checks.known_keys(d, [f.name for f in dataclasses.fields(cls)], "memory-demo setting")
        cfg = cls(**d)
        cfg.check()
        return cfg

    def check(self) -> None:
        for name, options in (("tasks", TASKS), ("cells", CELLS)):
            values = tuple(getattr(self, name))
            if not values:
                raise ValueError(f"{name} must name at least one of {list(options)}, got none")
            for v in values:
                checks.choice(v, name[:-1], options)
            setattr(self, name, tuple(dict.fromkeys(values)))
        if not tuple(self.lags):
            raise ValueError("lags must hold at least one lag, got none")
        self.lags = tuple(sorted({checks.positive_int(v, "lag") for v in self.lags}))
        if not tuple(self.seeds):
            raise ValueError("seeds must hold at least one seed, got none")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"seeds must be non-negative integers, got {s!r}")
        self.seeds = tuple(dict.fromkeys(self.seeds))
        checks.choice(self.optimizer, "optimizer", OPTIMIZERS)
        for name in ("epochs", "train", "test", "batch", "hidden", "probe", "records"):
            checks.positive_int(getattr(self, name), name)
        checks.optional(checks.positive_number, self.lr, "lr")
        checks.optional(checks.positive_number, self.clip_norm, "clip_norm")
        checks.number(self.forget_bias, "forget_bias")
        checks.choice(self.init, "init", ("uniform", "orthogonal"))
        checks.float_dtype(self.dtype)

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    @property
    def updates(self) -> int:
        """Updates per run: the budget in optimiser steps."""
        return self.epochs * -(-self.train // self.batch)

    def conditions(self) -> dict:
        """The settings in words, for the figure, the table and the JSON."""
        opt = (f"Adam, lr {self.learning_rate:g}" if self.optimizer == "adam"
               else f"SGD, lr {self.learning_rate:g}, momentum {SGD_MOMENTUM:g}")
        init = {"uniform": "uniform U(±1/√H) (PyTorch's default)",
                "orthogonal": "orthogonal recurrent weights, uniform U(±1/√H) input weights"}
        return {
            "tasks": ", ".join(self.tasks),
            "optimiser": opt + f"; gradient clipped at global norm {self.clip_norm:g}",
            "budget": f"{self.train:,} training sequences x {self.epochs} epochs, batch "
                      f"{self.batch} = {self.updates:,} updates per run; no early stopping",
            "initialisation": init[self.init] + (
                f"; LSTM forget-gate bias {self.forget_bias:g}"
                if _has_forget_bias(self.cells) else ""),
            "network": f"1 layer, H={self.hidden}, readout at the last step, {self.dtype}",
            "seeds": ", ".join(map(str, self.seeds)) + " (weights, data and shuffling)",
            "success": f"on {self.test:,} fresh test sequences: accuracy (recall), fraction "
                       "with |error| < 0.04 (adding)",
            "flow": f"|dh_T/dh_(T-lag)|_F / |I|_F of the trained layer, mean over "
                    f"{self.probe} test sequences; median over seeds",
        }


# ------------------------------------------------------------------------------------------
# one run: a task, a cell, a lag, a seed
# ------------------------------------------------------------------------------------------
def run_one(cfg: MemoryConfig, task: str, cell: str, lag: int, seed: int) -> dict:
    """Train one network with :class:`rnnlab.Trainer` and measure it; returns a JSON record."""
    from . import diagnostics
    from .kernels import threads
    from .network import Network
    from .train import NonFiniteError, Trainer

    t0 = time.perf_counter()
    # the data of a (task, lag, seed) is the same for every cell: a fair comparison
    stream = np.random.SeedSequence([seed, lag, TASKS.index(task)])
    train_rng, test_rng = (np.random.default_rng(s) for s in stream.spawn(2))
    X, Y = _task_data(task, cfg.train, lag, train_rng)
    Xt, Yt = _task_data(task, cfg.test, lag, test_rng)
    dtype = checks.float_dtype(cfg.dtype)
    X, Xt = X.astype(dtype), Xt.astype(dtype)
    recall = task == "recall"
    net = Network(X.shape[2], cfg.hidden, _RECALL_CLASSES if recall else 1, cell=cell,
                  output="softmax" if recall else "linear", readout="last", init=cfg.init,
                  forget_bias=cfg.forget_bias if _has_forget_bias([cell]) else None, seed=seed,
                  dtype=dtype)
    probe = Xt[: cfg.probe]
    options = {"momentum": SGD_MOMENTUM} if cfg.optimizer == "sgd" else {}
    trainer = Trainer(net, cfg.optimizer, cfg.learning_rate, clip_norm=cfg.clip_norm,
                      batch_size=cfg.batch, seed=seed, progress=False,
                      diagnostics_every=max(1, cfg.updates // cfg.records),
                      diagnostics_probe=probe, **options)
    diverged = False
    # one BLAS thread per run: a step's products are small, and --jobs runs several at once
    with threads(1):
        try:
            history = trainer.fit(X, Y, epochs=cfg.epochs)
            recorded = history.flow
        except NonFiniteError:  # the last good parameters are kept and measured
            diverged, recorded = True, []
        success = _success(task, net, Xt, Yt)
        start = (recorded[0][1] if recorded else None)
        end = diagnostics.gradient_flow(net, probe, relative=True).tolist()
    if start is None:  # a run that diverged before the first recording was kept
        fresh = Network(**{**net.config, "dtype": dtype}, seed=seed)
        start = diagnostics.gradient_flow(fresh, probe, relative=True).tolist()
    return {
        "task": task, "cell": cell, "lag": lag, "seed": seed,
        "success": success, "chance": _chance(task, Y, Yt), "diverged": diverged,
        "updates": trainer.step_count,
        "flow_at_lag": {"start": start[lag], "end": end[lag]},
        "memory_length": {"start": diagnostics.memory_length(start, 0.01),
                          "end": diagnostics.memory_length(end, 0.01)},
        "flow_at_lag_during_training": [(s, f[lag]) for s, f in recorded],
        "flow": {"start": _rounded(start), "end": _rounded(end)},
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _rounded(flow) -> list:
    return [None if v is None else float(f"{v:.4g}") for v in flow]


def _run_star(args):
    return run_one(*args)


# ------------------------------------------------------------------------------------------
# the whole demonstration
# ------------------------------------------------------------------------------------------
@dataclass
class MemoryResult:
    """What :func:`memory` measured and wrote."""

    config: MemoryConfig
    runs: list  # one record per (task, cell, lag, seed), as run_one returns
    table: list  # one row per (task, lag): per cell, success and flow summarised over seeds
    paths: dict = field(default_factory=dict)  # "figure", "table", "json" -> Path
    seconds: float = 0.0

    @classmethod
    def from_json(cls, path) -> MemoryResult:
        """Read back a ``memory.json`` (to redraw the figure or the table)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            cfg = MemoryConfig.from_dict(d["config"])
            return cls(cfg, d["runs"], d["table"], {"json": path}, d["seconds"])
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise ValueError(f"{path} is not a memory.json written by rnnlab demo memory") \
                from None


def memory(config: MemoryConfig | None = None, *, out="memory-demo", jobs: int = 1,
           sweep: bool = False, address: str | None = None, max_concurrent: int | None = None,
           echo=print, **overrides) -> MemoryResult:
    """Train Elman and LSTM across lags and write one figure and one table.

    Parameters
    ----------
    config : MemoryConfig, optional
        The conditions (default: :class:`MemoryConfig`'s, or ``MemoryConfig.quick()``).
    out : path
        Folder for ``memory.png`` (the figure), ``memory.md`` (the table with every
        condition) and ``memory.json`` (conditions, the environment, the table and every
        run's record).
    jobs : int
        Runs trained at once, each in its own process on one BLAS thread. The results do
        not depend on it.
    sweep : bool
        Run the grid (task x lag x cell x seed) on Ray Tune with :func:`rnnlab.sweep.run_grid`
        instead: each run's record in ``out/trials/NAME/run.json``, ``out/results.csv`` and
        ``out/scores.png`` besides the figure and the table; a rerun with the same settings
        resumes. ``address`` and ``max_concurrent`` as :func:`rnnlab.sweep.run`'s.
    echo : callable
        Where one line per finished run goes (``print``; None for silence).
    **overrides
        Settings of :class:`MemoryConfig` replacing those of ``config``.

    Returns
    -------
    MemoryResult
    """
    cfg = config if config is not None else MemoryConfig()
    cfg = MemoryConfig.from_dict({**dataclasses.asdict(cfg), **overrides})
    jobs = checks.positive_int(jobs, "jobs")
    if not sweep and (address is not None or max_concurrent is not None):
        raise ValueError("address and max_concurrent apply to sweep=True only")
    echo = echo or (lambda *a, **k: None)
    out = io.check_folder(out)  # before hours of training, not after
    t0 = time.perf_counter()
    specs = [(cfg, task, cell, lag, seed) for task in cfg.tasks for lag in cfg.lags
             for cell in cfg.cells for seed in cfg.seeds]
    specs.sort(key=lambda s: -s[3])  # the longest first, so parallel workers finish together
    echo(f"rnnlab demo memory: {len(specs)} runs ({', '.join(cfg.tasks)}; "
         f"{', '.join(cfg.cells)}; lags {', '.join(map(str, cfg.lags))}; "
         f"{len(cfg.seeds)} seed{'s' if len(cfg.seeds) > 1 else ''}), "
         + ("on Ray Tune" if sweep else f"{jobs} at a time"))
    for k, v in cfg.conditions().items():
        echo(f"  {k}: {v}")
    runs = []

    def done(r):
        runs.append(r)
        echo(f"[{len(runs)}/{len(specs)}] {r['task']} lag {r['lag']} {r['cell']} seed "
             f"{r['seed']}: success {r['success']:.3f} (chance {r['chance']:.2f}), flow at "
             f"lag {r['flow_at_lag']['start']:.2g} -> {r['flow_at_lag']['end']:.2g}"
             + (" DIVERGED" if r["diverged"] else "") + f", {r['seconds']:.0f} s")

    if sweep:
        runs = _swept(cfg, out, address, max_concurrent, echo)
    elif jobs == 1:
        for s in specs:
            done(run_one(*s))
    else:
        # spawn: a fresh interpreter per worker, no forked BLAS or numba thread state
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            for f in as_completed([pool.submit(_run_star, s) for s in specs]):
                done(f.result())
    key = {(t, c, lag, s): i for i, (_, t, c, lag, s) in enumerate(
        sorted(specs, key=lambda s: (TASKS.index(s[1]), s[3], CELLS.index(s[2]), s[4])))}
    runs.sort(key=lambda r: key[(r["task"], r["cell"], r["lag"], r["seed"])])
    table = summarise(cfg, runs)
    result = MemoryResult(cfg, runs, table, seconds=time.perf_counter() - t0)
    out.mkdir(parents=True, exist_ok=True)
    result.paths["figure"] = plot_memory(result, out / "memory.png")
    result.paths["table"] = out / "memory.md"
    result.paths["table"].write_text(markdown(result), encoding="utf-8")
    result.paths["json"] = out / "memory.json"
    from .environment import environment

    result.paths["json"].write_text(json.dumps({
        "config": dataclasses.asdict(cfg), "conditions": cfg.conditions(),
        "environment": environment(), "seconds": result.seconds, "table": table,
        "runs": runs}, indent=1), encoding="utf-8")
    echo(f"wrote {result.paths['figure']}, {result.paths['table']} and "
         f"{result.paths['json']} in {result.seconds:.0f} s")
    return result


#: the format of a run's record in a sweep's trial folder
RUN_RECORD = "rnnlab-memory-run"
_GRID = ("tasks", "lags", "cells", "seeds")


def _swept(cfg: MemoryConfig, out: Path, address, max_concurrent, echo) -> list:
    """The runs of ``cfg`` as a sweep on Ray Tune (:func:`rnnlab.sweep.run_grid`)."""
    from . import sweep

    base = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _GRID}
    # the longest lags first, so that the last trials to start are short
    grid = {"lag": sorted(cfg.lags, reverse=True), "task": list(cfg.tasks),
            "cell": list(cfg.cells), "seed": list(cfg.seeds)}
    result = sweep.run_grid("memory", base, grid, sweep_trial, out, address=address,
                            max_concurrent=max_concurrent, echo=echo)
    failed = [r["trial"] for r in result.rows if r["status"] != "ok"]
    if failed:
        raise ValueError(f"{len(failed)} of {len(result.rows)} runs failed (their errors are "
                         f"in {result.paths['results']}); run the same command again to "
                         f"retry them")
    runs = []
    for r in result.rows:
        record = json.loads((out / "trials" / r["trial"] / "run.json").read_text("utf-8"))
        runs.append({k: v for k, v in record.items() if k not in ("format", "version")})
    return runs


def sweep_trial(settings: dict, folder: Path) -> tuple[str, float]:
    """One run of a swept demonstration: :func:`run_one` on the grid point's task, cell,
    lag and seed, its record written to ``folder/run.json``; ``("success", rate)``."""
    s = dict(settings)
    task, cell, lag, seed = (s.pop(k) for k in ("task", "cell", "lag", "seed"))
    cfg = MemoryConfig.from_dict({**s, "tasks": (task,), "cells": (cell,), "lags": (lag,),
                                  "seeds": (seed,)})
    record = run_one(cfg, task, cell, lag, seed)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_json(folder / "run.json", {"format": RUN_RECORD, "version": 1, **record})
    return "success", record["success"]


def summarise(cfg: MemoryConfig, runs: list) -> list:
    """One row per (task, lag): for each cell, success (mean, min, max over seeds) and the
    flow at the lag at the start and end of training (median over seeds)."""
    rows = []
    for task in cfg.tasks:
        for lag in cfg.lags:
            row = {"task": task, "lag": lag}
            for cell in cfg.cells:
                rs = [r for r in runs if (r["task"], r["lag"], r["cell"]) == (task, lag, cell)]
                if not rs:
                    continue
                s = [r["success"] for r in rs]
                row["chance"] = rs[0]["chance"]
                row[cell] = {
                    "success": float(np.mean(s)), "min": float(min(s)), "max": float(max(s)),
                    "flow_start": float(np.median([r["flow_at_lag"]["start"] for r in rs])),
                    "flow_end": float(np.median([r["flow_at_lag"]["end"] for r in rs])),
                    "diverged": sum(r["diverged"] for r in rs),
                }
            rows.append(row)
    return rows


def markdown(result: MemoryResult) -> str:
    """The table, with every condition stated above it."""
    cfg = result.config
    lines = ["# Memory against lag: " + " vs ".join(_CELL_NAMES[c] for c in cfg.cells), ""]
    lines += [f"- **{k}**: {v}" for k, v in cfg.conditions().items()]
    lines += [f"- **wall time**: {result.seconds:.0f} s", ""]
    head = ["task", "lag", "chance"]
    head += [f"{_CELL_NAMES[c]} success" for c in cfg.cells]
    head += [f"{_CELL_NAMES[c]} flow at lag, start → end" for c in cfg.cells]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result.table:
        cells = [row["task"], str(row["lag"]), f"{row['chance']:.2f}"]
        for c in cfg.cells:
            r = row[c]
            spread = "" if len(cfg.seeds) == 1 else f" ({r['min']:.2f}–{r['max']:.2f})"
            cells.append(f"{r['success']:.2f}{spread}"
                         + (f", {r['diverged']} diverged" if r["diverged"] else ""))
        for c in cfg.cells:
            r = row[c]
            cells.append(f"{_g(r['flow_start'])} → {_g(r['flow_end'])}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Success is the mean over seeds (min–max in brackets). Flow at lag is "
              "‖∂h_T/∂h_(T−lag)‖_F / ‖I‖_F, the exact Jacobian from the answer back to the "
              "step after the information, median over seeds.", ""]
    return "\n".join(lines)


def _g(v: float) -> str:
    return "0" if v == 0 else f"{v:.1e}" if v < 1e-2 or v >= 100 else f"{v:.2f}"


# ------------------------------------------------------------------------------------------
# the figure
# ------------------------------------------------------------------------------------------
def plot_memory(result: MemoryResult, path) -> Path:
    """One figure: per task, success against lag and flow at the lag against lag, per cell."""
    from .plots import figure, save_figure

    cfg, path = result.config, Path(path)
    n = len(cfg.tasks)
    fig = figure((11.0, 3.6 * n + 1.3))
    top = 1 - 1.15 / (3.6 * n + 1.3)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / (3.6 * n + 1.3) + 0.04,
                        top=top, hspace=0.42, wspace=0.22)
    axes = fig.subplots(n, 2, squeeze=False)
    for i, task in enumerate(cfg.tasks):
        ax_s, ax_f = axes[i]
        rows = [r for r in result.table if r["task"] == task]
        lags = np.array([r["lag"] for r in rows], dtype=float)
        for ax in (ax_s, ax_f):
            ax.axvspan(*NOTES_LIMIT, color="0.85", zorder=0,
                       label=f"the notes' limit, {NOTES_LIMIT[0]}–{NOTES_LIMIT[1]} steps")
            ax.set_xscale("log")
            ax.set_xticks(lags, [f"{v:g}" for v in lags])  # the lags themselves, not 10^k
            ax.minorticks_off()
            ax.set_xlabel("lag (steps from the information to the answer)")
            ax.grid(True, which="major", alpha=0.3)
        chance = float(np.mean([r["chance"] for r in rows]))
        ax_s.axhline(chance, color="0.3", ls=":", lw=1, label=f"chance ({chance:.2f})")
        for cell in cfg.cells:
            col = _COLORS[cell]
            ax_s.plot(lags, [r[cell]["success"] for r in rows], "-o", color=col, ms=4,
                      label=_CELL_NAMES[cell])
            per_seed = [r for r in result.runs if (r["task"], r["cell"]) == (task, cell)]
            ax_s.plot([r["lag"] for r in per_seed], [r["success"] for r in per_seed], "o",
                      color=col, ms=3, alpha=0.35, mfc="none")
            for which, style in (("flow_start", "--"), ("flow_end", "-")):
                v = np.array([r[cell][which] for r in rows])
                v = np.where(v > 0, v, np.nan)  # an underflow to 0 cannot go on a log axis
                ax_f.plot(lags, v, style, marker="o", ms=3.5, color=col,
                          label=f"{_CELL_NAMES[cell]}, "
                                f"{'start' if which == 'flow_start' else 'end'} of training")
        ax_s.set_ylim(-0.03, 1.03)
        ax_s.set_ylabel("success on test sequences")
        ax_s.set_title(f"{task}: success against lag", fontsize=11)
        ax_s.legend(fontsize=8, loc="lower left")
        ax_f.set_yscale("log")
        ax_f.set_ylabel(r"$\|\partial h_T/\partial h_{T-\mathrm{lag}}\|_F\,/\,\|I\|_F$")
        ax_f.set_title(f"{task}: gradient flow back to the information", fontsize=11)
        handles, labels = ax_f.get_legend_handles_labels()
        ax_f.legend(handles[1:], labels[1:], fontsize=8, loc="lower left")  # shaded: left
    c = cfg.conditions()
    fig.suptitle("Memory against lag, " + " vs ".join(_CELL_NAMES[x] for x in cfg.cells)
                 + f": {c['optimiser']}\n{c['budget']}\ninit {c['initialisation']}; "
                 f"{c['network']}; seeds {', '.join(map(str, cfg.seeds))} (faint: each seed)",
                 fontsize=9)
    return save_figure(fig, path, dpi=100)
