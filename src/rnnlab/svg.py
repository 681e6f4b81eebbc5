"""Small figures as inline SVG text, for pages that must stand on their own.

Shape legend: N points of a curve, R x C cells of a heat map.

A web page that opens from disk with no network (:mod:`rnnlab.report`) cannot load a
plotting library, so its figures are drawn here as SVG markup: line charts and heat maps,
nothing more. Every point and cell carries a ``<title>``, which browsers show as a tooltip
on hover without any script. A line chart is drawn twice, once on a linear and once on a
log y axis, in two groups of which one is shown (``data-scale`` on the ``<svg>``); a page's
script may swap them (the report's log-axis toggle), and without a script the chosen one
stays readable. Non-finite values (and, on a log axis, values not above 0) are gaps.
"""

from __future__ import annotations

import html
import math

import numpy as np

WIDTH, HEIGHT = 640, 300
_MARGIN = {"left": 64, "right": 16, "top": 28, "bottom": 44}
#: colours of successive curves (matplotlib's tab10, which the PNG figures use)
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
_MAX_MARKERS = 400  # hover points per curve; longer curves get every n-th point marked


def esc(text) -> str:
    """``text`` escaped for SVG or HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def fmt(v: float) -> str:
    """A number in few characters: 4 significant digits, exponent form when far from 1."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.3e}"
    return f"{v:.4g}"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten within [lo, hi] (log10 values), thinned to at most 7."""
    a, b = math.floor(lo), math.ceil(hi)
    ticks = [float(k) for k in range(a, b + 1) if lo - 1e-9 <= k <= hi + 1e-9]
    if not ticks:
        ticks = [lo, hi]
    if len(ticks) < 3:  # a decade or two: 2 and 5 times each power of ten as well
        ticks = sorted(k + math.log10(m) for k in range(a - 1, b + 1) for m in (1, 2, 5)
                       if lo - 1e-9 <= k + math.log10(m) <= hi + 1e-9)
    every = max(1, math.ceil(len(ticks) / 7))
    return ticks[::every]


class _Frame:
    """The mapping of data to pixels of one panel, with its axes drawn as markup."""

    def __init__(self, xlim, ylim, logx: bool, logy: bool):
        self.logx, self.logy = logx, logy
        self.x0, self.x1 = xlim
        self.y0, self.y1 = ylim
        m = _MARGIN
        self.left, self.right = m["left"], WIDTH - m["right"]
        self.top, self.bottom = m["top"], HEIGHT - m["bottom"]

    def px(self, x: float) -> float:
        x = math.log10(x) if self.logx else x
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.right - self.left)

    def py(self, y: float) -> float:
        y = math.log10(y) if self.logy else y
        span = (self.y1 - self.y0) or 1.0
        return self.bottom - (y - self.y0) / span * (self.bottom - self.top)

    def axes(self, xlabel: str, ylabel: str) -> list[str]:
        out = [f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
               f'height="{self.bottom - self.top}" fill="none" stroke="#999"/>']
        xt = _log_ticks(self.x0, self.x1) if self.logx else _nice_ticks(self.x0, self.x1)
        for t in xt:
            v = 10 ** t if self.logx else t
            x = self.px(v)
            out.append(f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{self.bottom}" '
                       f'stroke="#e6e6e6"/><text x="{x:.1f}" y="{self.bottom + 16}" '
                       f'text-anchor="middle">{esc(fmt(v))}</text>')
        yt = _log_ticks(self.y0, self.y1) if self.logy else _nice_ticks(self.y0, self.y1)
        for t in yt:
            v = 10 ** t if self.logy else t
            y = self.py(v)
            label = f"1e{round(t)}" if self.logy and abs(t - round(t)) < 1e-9 and (
                t < -2 or t > 4) else fmt(v)
            out.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                       f'stroke="#e6e6e6"/><text x="{self.left - 6}" y="{y + 4:.1f}" '
                       f'text-anchor="end">{esc(label)}</text>')
        mid_x, mid_y = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        out.append(f'<text x="{mid_x:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
                   f'{esc(xlabel)}</text>')
        out.append(f'<text transform="translate(14 {mid_y:.0f}) rotate(-90)" '
                   f'text-anchor="middle">{esc(ylabel)}</text>')
        return out


def _limits(values: list[np.ndarray], log: bool) -> tuple[float, float] | None:
    v = np.concatenate(values) if values else np.array([])
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
        return (lo - 0.05, hi + 0.05) if hi > lo else (lo - 0.5, hi + 0.5)
    pad = 0.04 * (hi - lo) if hi > lo else (abs(lo) * 0.1 or 1.0)
    return lo - pad, hi + pad


def _panel(series, xlim, logx, logy, xlabel, ylabel, hlines, ylim=None) -> list[str] | None:
    ys = [y for _, _, y in series] + [np.array([v for v, _ in hlines], dtype=float)]
    if ylim is None or logy:
        ylim = _limits(ys, logy)
    if ylim is None:
        return None
    f = _Frame(xlim, ylim, logx, logy)
    out = f.axes(xlabel, ylabel)
    for value, label in hlines:
        if logy and not value > 0:
            continue
        y = f.py(value)
        out.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.right}" y2="{y:.1f}" '
                   f'stroke="#555" stroke-dasharray="3 3"><title>{esc(label)}: '
                   f'{esc(fmt(value))}</title></line>')
    for i, (label, x, y) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if logy else True) & (
            (x > 0) if logx else True)
        pieces, run = [], []
        for xi, yi, good in zip(x, y, ok, strict=True):
            if good:
                run.append(f"{f.px(xi):.1f},{f.py(yi):.1f}")
            elif run:
                pieces.append(run)
                run = []
        if run:
            pieces.append(run)
        for p in pieces:
            if len(p) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                           f'points="{" ".join(p)}"/>')
        idx = np.flatnonzero(ok)
        every = max(1, math.ceil(idx.size / _MAX_MARKERS))
        r = 3 if idx.size <= 60 else 2
        for j in list(idx[::every]) + ([idx[-1]] if idx.size and (idx.size - 1) % every else []):
            tip = f"{label + ': ' if label else ''}{fmt(x[j])}, {fmt(y[j])}"
            out.append(f'<circle class="pt" cx="{f.px(x[j]):.1f}" cy="{f.py(y[j]):.1f}" '
                       f'r="{r}" fill="{color}"><title>{esc(tip)}</title></circle>')
    return out


def line_chart(series, *, xlabel: str, ylabel: str, title: str = "", logy: bool = False,
               logx: bool = False, hlines=(), ylim=None, chart_id: str = "") -> str:
    """A line chart as an ``<svg>`` element (a string).

    Parameters
    ----------
    series : list of (label, x (N,), y (N,))
        One curve each; NaN, Inf and None are gaps.
    xlabel, ylabel, title : str
    logy : bool
        Which y axis is shown first; both are drawn (see the module docstring).
    logx : bool
        A log x axis (for lags spanning decades).
    hlines : list of (value, label)
        Dashed horizontal reference lines (chance, a threshold).
    ylim : (low, high), optional
        Fixed limits of the linear y axis (a fraction: (0, 1)); default the data's.
    chart_id : str
        The ``id`` of the ``<svg>``.

    Returns
    -------
    str
        ``<svg class="chart">`` markup, or a ``<p class="note">`` when no value can be drawn.
    """
    clean = []
    for label, x, y in series:
        x = np.array([np.nan if v is None else v for v in x], dtype=np.float64)
        y = np.array([np.nan if v is None else v for v in y], dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"curve {label!r}: x and y must be 1-D of one length, got shapes "
                             f"{x.shape} and {y.shape}")
        clean.append((str(label), x, y))
    xlim = _limits([x for _, x, _ in clean], logx)
    if xlim is None:
        return '<p class="note">no values to draw</p>'
    groups = {}
    for scale in ("linear", "log"):
        body = _panel(clean, xlim, logx, scale == "log", xlabel, ylabel, list(hlines),
                      ylim)
        if body is not None:
            groups[scale] = body
    if not groups:
        return '<p class="note">no finite values to draw</p>'
    shown = "log" if (logy and "log" in groups) or "linear" not in groups else "linear"
    legend = []  # above the plot, four names at most; every point's tooltip names its curve
    for i, (label, _, _) in enumerate(clean[:4]):
        if label:
            legend.append(f'<g transform="translate({_MARGIN["left"] + 8 + 140 * i} 14)">'
                          f'<rect width="12" height="4" y="-4" fill="{COLORS[i]}"/>'
                          f'<text x="16" y="0">{esc(label[:20])}</text></g>')
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" '
             f'{_id(chart_id)}'
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'role="img" aria-label="{esc(title)}" data-scale="{shown}" '
             f'data-scales="{" ".join(groups)}" font-family="sans-serif" font-size="11">']
    if title:
        parts.append(f"<title>{esc(title)}</title>")
    for scale, body in groups.items():
        hidden = "" if scale == shown else ' style="display:none"'
        parts.append(f'<g class="scale-{scale}"{hidden}>' + "".join(body) + "</g>")
    parts.extend(legend)
    parts.append("</svg>")
    return "".join(parts)


def _id(chart_id: str) -> str:
    return f'id="{esc(chart_id)}" ' if chart_id else ""


def _blend(t: float) -> str:
    """White to dark blue for t in [0, 1] (as matplotlib's Blues, roughly)."""
    t = min(max(t, 0.0), 1.0)
    a, b = np.array([247, 251, 255]), np.array([8, 48, 107])
    r, g, bl = (a + (b - a) * t).round().astype(int)
    return f"#{r:02x}{g:02x}{bl:02x}"


def heatmap(values, row_labels, col_labels, *, xlabel: str, ylabel: str, title: str = "",
            colour=None, counts: bool = True, chart_id: str = "") -> str:
    """A heat map of ``values`` (R, C) as an ``<svg>`` element, one tooltip per cell.

    ``colour`` (R, C) in [0, 1] sets each cell's shade (default ``values`` scaled by their
    maximum); with ``counts`` the values are written in the cells when they fit.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape != (len(row_labels), len(col_labels)) or v.size == 0:
        raise ValueError(f"values must be (R, C) = ({len(row_labels)}, {len(col_labels)}), "
                         f"got shape {v.shape}")
    if colour is None:
        top = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
        colour = np.abs(v) / (top or 1.0)
    colour = np.asarray(colour, dtype=np.float64)
    R, C = v.shape
    side = max(10, min(40, 420 // max(R, C)))
    left, top = 70, 30
    width, height = left + C * side + 20, top + R * side + 50
    out = [f'<svg class="chart heatmap" xmlns="http://www.w3.org/2000/svg" '
           f'{_id(chart_id)}viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{esc(title)}" '
           f'font-family="sans-serif" font-size="11">']
    if title:
        out.append(f"<title>{esc(title)}</title>")
    for i in range(R):
        for j in range(C):
            c = colour[i, j]
            fill = "#d9d9d9" if not np.isfinite(c) else _blend(c)
            x, y = left + j * side, top + i * side
            out.append(f'<rect class="cell" x="{x}" y="{y}" width="{side}" height="{side}" '
                       f'fill="{fill}"><title>{esc(f"{ylabel} {row_labels[i]}, {xlabel} ")}'
                       f'{esc(f"{col_labels[j]}: {fmt(v[i, j])}")}</title></rect>')
            if counts and side >= 18 and np.isfinite(v[i, j]) and v[i, j]:
                ink = "#fff" if np.isfinite(c) and c > 0.5 else "#000"
                out.append(f'<text x="{x + side / 2}" y="{y + side / 2 + 4}" fill="{ink}" '
                           f'text-anchor="middle" pointer-events="none">'
                           f'{esc(fmt(v[i, j]))}</text>')
    every = max(1, math.ceil(max(R, C) / 20))
    for j in range(0, C, every):
        out.append(f'<text x="{left + j * side + side / 2}" y="{top + R * side + 14}" '
                   f'text-anchor="middle">{esc(str(col_labels[j])[:6])}</text>')
    for i in range(0, R, every):
        out.append(f'<text x="{left - 6}" y="{top + i * side + side / 2 + 4}" '
                   f'text-anchor="end">{esc(str(row_labels[i])[:10])}</text>')
    out.append(f'<text x="{left + C * side / 2}" y="{height - 10}" text-anchor="middle">'
               f'{esc(xlabel)}</text>')
    out.append(f'<text transform="translate(14 {top + R * side / 2}) rotate(-90)" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    out.append("</svg>")
    return "".join(out)
