"""Pictures of the diagnostics and of training, each written to a PNG file.

Shape legend: T time steps (or lags), N points of a curve.

matplotlib is imported on first use, so ``import rnnlab`` works without it (install it with
``pip install 'rnnlab[plots]'``). Figures are drawn with matplotlib's object API on an Agg
canvas, never through ``pyplot``: that works headless, needs no global backend switch, and
leaves an interactive session's own backend and open figures alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

_DPI = 120


def figure(size=(7.0, 4.2)):
    """A matplotlib Figure of ``size`` inches on an Agg canvas, with fixed margins."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("rnnlab.plots needs matplotlib: pip install 'rnnlab[plots]' "
                          "(or pip install matplotlib)") from None
    fig = Figure(figsize=size)
    # fixed margins that fit log-scale tick labels: the automatic layouts draw the figure
    # twice and double the time of a plot
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    FigureCanvasAgg(fig)
    return fig


def png_path(path) -> Path:
    """``path`` as a Path, if it names a ``.png`` file; else a ValueError."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file, got {str(path)!r}")
    return p


def save_figure(fig, path, *, dpi: int = _DPI) -> Path:
    """Write ``fig`` to ``path`` as a PNG, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _named(curves, what: str) -> list[tuple[str, object]]:
    """A mapping label -> data, a list of (label, data) pairs, or one unlabelled array."""
    if isinstance(curves, Mapping):
        items = list(curves.items())
    elif isinstance(curves, np.ndarray) or (
            isinstance(curves, (list, tuple)) and curves
            and not all(isinstance(c, (list, tuple)) and len(c) == 2
                        and isinstance(c[0], str) for c in curves)):
        items = [("", curves)]
    else:
        items = list(curves)
    if not items:
        raise ValueError(f"{what} is empty: nothing to plot")
    return [(str(k), v) for k, v in items]


def _nan_for_none(v):
    if v is None:
        return np.nan
    if isinstance(v, (list, tuple)):
        return [np.nan if u is None else u for u in v]
    return v


def _series(values, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as (x, y): a 1-D array (x = 1 .. N), or N pairs (x, y); None -> NaN."""
    try:
        a = np.asarray([_nan_for_none(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must hold numbers: {e}") from None
    if a.ndim == 1:
        x, y = np.arange(1, a.size + 1, dtype=np.float64), a
    elif a.ndim == 2 and a.shape[1] == 2:
        x, y = a[:, 0], a[:, 1]
    else:
        raise ValueError(f"{name} must be a 1-D array of values or a list of (step, value) "
                         f"pairs, got shape {a.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty: nothing to plot")
    return x, y


def _flow_array(flow, name: str, relative: bool) -> np.ndarray:
    f = np.asarray(flow, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"flow {name!r} must be a non-empty 1-D array (T,), got shape {f.shape}")
    if relative:
        if not (np.isfinite(f[0]) and f[0] > 0):
            raise ValueError(f"flow {name!r} has lag-0 value {f[0]}; expected the identity's "
                             "norm, a positive number")
        f = f / f[0]
    # a log axis cannot show 0 (underflow) or Inf (overflow): leave those points out
    return np.where(np.isfinite(f) & (f > 0), f, np.nan)


def plot_flow(flows, path, *, relative: bool = True, fraction: float | None = None,
              title: str | None = None) -> Path:
    r"""Gradient flow against lag on a log scale, one curve per model.

    Parameters
    ----------
    flows : mapping label -> array (T,), list of (label, flow) pairs, or one array
        Flows from :func:`rnnlab.diagnostics.gradient_flow`; curves may differ in length.
    path : str or Path
        A ``.png`` file; its folder is created if needed.
    relative : bool
        Divide each curve by its lag-0 value so every curve starts at 1.
    fraction : float, optional
        Draw a dotted line at this fraction of lag 0 (the memory-length threshold).
    title : str, optional

    Returns
    -------
    Path
        ``path``.
    """
    path = png_path(path)
    items = _named(flows, "flows")
    fig = figure()
    ax = fig.add_subplot()
    for label, flow in items:
        f = _flow_array(flow, label, relative)
        ax.plot(np.arange(f.size), f, label=label or None, lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("lag k (steps back from the last output)")
    ax.set_ylabel(r"$\|\partial h_T / \partial h_{T-k}\|$" + (" / lag 0" if relative else ""))
    if fraction is not None:
        level = fraction if relative else fraction * float(np.asarray(items[0][1])[0])
        ax.axhline(level, color="0.4", ls=":", lw=1, label=f"{fraction:g} of lag 0")
    ax.grid(True, which="major", alpha=0.3)
    if any(label for label, _ in items) or fraction is not None:
        ax.legend()
    ax.set_title(title or "Gradient flow through time")
    return save_figure(fig, path)


def plot_flow_heatmap(checkpoints, path, *, relative: bool = True,
                      title: str | None = None) -> Path:
    """Gradient flow against lag (x) across training checkpoints (y), colour on a log scale.

    Parameters
    ----------
    checkpoints : sequence of (step, flow) pairs
        ``step`` the training update at which ``flow`` (T,) was measured; shown bottom to top
        in increasing step, one row each (rows are evenly spaced whatever the steps).
        Flows of different lengths are padded with blanks.
    path : str or Path
        A ``.png`` file.
    relative : bool
        Divide each flow by its lag-0 value.
    title : str, optional

    Returns
    -------
    Path
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    path = png_path(path)
    rows = list(checkpoints)
    if not rows:
        raise ValueError("checkpoints is empty: nothing to plot")
    for i, r in enumerate(rows):
        if not (isinstance(r, (tuple, list)) and len(r) == 2):
            raise ValueError(f"checkpoints must be (step, flow) pairs, got {type(r).__name__} "
                             f"at position {i}")
    rows.sort(key=lambda r: r[0])
    flows = [_flow_array(f, f"step {s}", relative) for s, f in rows]
    T = max(f.size for f in flows)
    img = np.full((len(rows), T), np.nan)  # (checkpoints, T)
    for i, f in enumerate(flows):
        img[i, : f.size] = f
    shown = img[np.isfinite(img)]
    if shown.size == 0:
        raise ValueError("no flow value is positive and finite: nothing to show on a log scale")
    fig = figure((7.0, 4.6))
    ax = fig.add_subplot()
    mesh = ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest",
                     extent=(-0.5, T - 0.5, -0.5, len(rows) - 0.5),
                     norm=LogNorm(vmin=shown.min(), vmax=max(shown.max(), shown.min() * 10)),
                     cmap=colormaps["viridis"].with_extremes(bad="0.85"))  # blanks in grey
    every = max(1, int(np.ceil(len(rows) / 12)))
    ticks = list(range(0, len(rows), every))
    ax.set_yticks(ticks, [f"{rows[i][0]:g}" for i in ticks])
    ax.set_xlabel("lag k (steps back from the last output)")
    ax.set_ylabel("training step")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(r"$\|\partial h_T / \partial h_{T-k}\|$" + (" / lag 0" if relative else ""))
    ax.set_title(title or "Gradient flow during training")
    return save_figure(fig, path)


def plot_saturation(saturation, path, *, title: str | None = None) -> Path:
    """Fraction of saturated units at each time step, one curve per nonlinearity.

    Parameters
    ----------
    saturation : mapping name -> array (T,)
        As returned by :func:`rnnlab.diagnostics.saturation`; ``"all"`` is drawn in black.
    path : str or Path
        A ``.png`` file.
    title : str, optional

    Returns
    -------
    Path
    """
    path = png_path(path)
    items = _named(saturation, "saturation")
    fig = figure()
    ax = fig.add_subplot()
    for name, v in items:
        _, y = _series(v, f"saturation {name!r}")
        style = {"color": "k", "lw": 2.2} if name == "all" else {"lw": 1.3}
        ax.plot(np.arange(1, y.size + 1), y, label=name or None, **style)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time step t")
    ax.set_ylabel("fraction of units saturated")
    ax.grid(True, alpha=0.3)
    if any(name for name, _ in items):
        ax.legend(ncols=2)
    ax.set_title(title or "Saturation over time")
    return save_figure(fig, path)


def plot_loss(curves, path, *, xlabel: str = "step", ylabel: str = "loss",
              logy: bool = False, title: str | None = None) -> Path:
    """Loss curves (e.g. training and validation) against step or epoch.

    Parameters
    ----------
    curves : mapping label -> values, list of (label, values) pairs, or one series
        Each ``values`` is a 1-D sequence (plotted against 1, 2, ...; ``None`` entries are
        gaps, as in a history without validation) or a list of (step, value) pairs.
        A curve with a single point is drawn as a marker.
    path : str or Path
        A ``.png`` file.
    xlabel, ylabel : str
    logy : bool
        Log-scale y axis (losses spanning decades).
    title : str, optional

    Returns
    -------
    Path
    """
    path = png_path(path)
    items = _named(curves, "curves")
    fig = figure()
    ax = fig.add_subplot()
    drawn = 0
    for label, v in items:
        x, y = _series(v, f"curve {label!r}" if label else "curve")
        # missing points (None) are skipped and the rest joined: a validation loss measured
        # every few epochs is still one line
        keep = ~np.isnan(y)
        if not keep.any():
            continue  # e.g. the validation loss of a run without validation data
        x, y = x[keep], y[keep]
        ax.plot(x, y, label=label or None, lw=1.6, marker="o" if y.size < 30 else None, ms=3)
        drawn += 1
    if drawn == 0:
        raise ValueError("every curve is empty or all None: nothing to plot")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if any(label for label, _ in items):
        ax.legend()
    ax.set_title(title or "Training")
    return save_figure(fig, path)


def plot_report(report, directory) -> list[Path]:
    """Every picture of a :class:`rnnlab.diagnostics.Report`, written into ``directory``.

    Writes ``flow.png`` and ``saturation.png``, and ``loss_gradients.png`` when the report
    holds loss gradients. Returns the paths.
    """
    d = Path(directory)
    paths = [
        plot_flow({report.model: report.flow}, d / "flow.png", fraction=report.fraction,
                  title=f"Gradient flow ({'Frobenius' if report.norm == 'fro' else 'spectral'}"
                        " norm)"),
        plot_saturation(report.saturation, d / "saturation.png",
                        title=f"Saturation (slope below {report.threshold:g} of its maximum)"),
    ]
    if report.loss_gradients is not None:
        paths.append(plot_loss({report.model: report.loss_gradients}, d / "loss_gradients.png",
                               xlabel="time step t", ylabel=r"$\|\partial L / \partial h_t\|$",
                               logy=True, title="Gradient of the loss at each step"))
    return paths


def plot_scores(rows, axes, path, *, higher=(), title: str | None = None) -> Path:
    """A sweep's scores against each grid axis: one panel per axis (and per metric).

    Parameters
    ----------
    rows : list of dict
        One per trial, as :mod:`rnnlab.sweep` writes results.csv: each axis's value (as
        text), ``"metric"`` and ``"score"`` (None for a trial without one: not drawn).
    axes : list of str
        The grid's axes, in order.
    path : str or Path
        A ``.png`` file.
    higher : collection of str
        Metrics for which higher is better (the others: lower); the line joins, at each
        value of an axis, the best score over the other axes.
    title : str, optional

    Returns
    -------
    Path
    """
    path = png_path(path)
    scored = [r for r in rows if r.get("score") is not None]
    if not scored:
        raise ValueError("no trial has a score: nothing to plot")
    metrics = list(dict.fromkeys(r["metric"] for r in scored))
    n, m = len(axes), len(metrics)
    fig = figure((max(4.0, 3.6 * n), 3.2 * m + 0.6))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14 / m, top=1 - 0.12 / m,
                        wspace=0.3, hspace=0.5)
    for i, metric in enumerate(metrics):
        mine = [r for r in scored if r["metric"] == metric]
        best = max if metric in higher else min
        for j, axis in enumerate(axes):
            ax = fig.add_subplot(m, n, i * n + j + 1)
            values = list(dict.fromkeys(r[axis] for r in rows))  # the grid's order
            numbers = _numbers(values)
            at = numbers if numbers is not None else list(range(len(values)))
            where = dict(zip(values, at, strict=True))
            ax.plot([where[r[axis]] for r in mine], [r["score"] for r in mine], "o",
                    ms=4, alpha=0.55, color="tab:blue", label="trial")
            tops = [(where[v], best(r["score"] for r in mine if r[axis] == v))
                    for v in values if any(r[axis] == v for r in mine)]
            ax.plot(*zip(*tops, strict=True), "-", lw=1.4, color="tab:orange",
                    label="best" if len(tops) > 1 else None)
            if numbers is None:
                ax.set_xticks(at, values, rotation=30 if max(map(len, values)) > 6 else 0)
            elif min(numbers) > 0 and max(numbers) / min(numbers) >= 20:
                ax.set_xscale("log")
            ax.margins(x=0.12)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
            ax.set_xlabel(axis)
            ax.set_ylabel(f"{metric} ({'higher' if metric in higher else 'lower'} is better)"
                          if j == 0 else metric)
            ax.grid(True, alpha=0.3)
    fig.suptitle(title or f"Sweep: {len(scored)} of {len(rows)} trials scored")
    return save_figure(fig, path)


def _numbers(values) -> list | None:
    """The values of an axis as floats, if every one reads as a number, else None."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None
