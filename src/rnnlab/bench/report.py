"""Reporting for ``rnnlab bench``: the speed targets and the markdown tables.

:func:`targets` marks each row's speed targets met or missed; :func:`markdown` writes the
results as the tables of ``bench.md``; :func:`row_line` is the one-line progress report
printed while the benchmark runs.
"""

from __future__ import annotations


def row_line(row) -> str:
    s = row["shape"]
    parts = [f"{row['cell']:5s} B={s['B']} T={s['T']} D={s['D']} H={s['H']}:"]
    for kind in ("train", "infer", "stream", "stream_lean"):
        e = row[kind]
        ratio = f" (x{e['ratio']:.2f})" if "ratio" in e else ""
        parts.append(f"{kind} {e['rnnlab_ms']:.3f} ms{ratio}")
    return "  ".join(parts)


def targets(rows) -> list:
    """The speed targets, row by row: met (True), missed (False) or not measurable (None)."""
    out = []
    for row in rows:
        s = row["shape"]
        small, large = s["B"] <= 16, s["B"] >= 64 or s["H"] >= 256
        t = {"cell": row["cell"], "shape": s}
        for kind in ("train", "infer"):
            r = row[kind].get("ratio")
            t[f"{kind}_ratio_le_1"] = None if r is None else r <= 1.0
            if "ratio_bf16" in row[kind]:
                t[f"{kind}_bf16_ratio_le_1"] = row[kind]["ratio_bf16"] <= 1.0
            if small:
                t[f"{kind}_ratio_le_0.5"] = None if r is None else r <= 0.5
        for kind in ("stream", "stream_lean"):
            r = row[kind].get("ratio")
            t[f"{kind}_ratio_le_0.2"] = None if r is None else r <= 0.2
        if large:
            t["train_ge_60pct_peak"] = row["train"]["fraction_of_peak"] >= 0.6
        mem = row.get("memory_mb") or {}
        a = (mem.get("rnnlab") or {}).get("rss_growth")
        b = (mem.get("torch") or {}).get("rss_growth")
        t["memory_le_torch"] = None if a is None or b is None else a <= b
        out.append(t)
    return out


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def markdown(result: dict) -> str:
    """The results as markdown tables: one row per cell and shape."""
    cfg, m = result["config"], result["machine"]
    lines = [
        "# rnnlab vs PyTorch, CPU",
        "",
        *(["**Taken on a busy machine: the ratios are not reliable.**", ""]
          if result.get("busy") else []),
        f"{m.get('cpu_model') or m.get('cpu')}, {m.get('cores')} cores"
        f" ({' '.join(m.get('cpu_features') or []) or 'features unknown'}); "
        f"{cfg['threads']} thread(s); numba threading layer "
        f"{m.get('threading_layer') or 'none'}; rnnlab's per-step products: {cfg['blas']}; "
        "float32; "
        f"glibc keeps freed memory: {m.get('freed_memory_kept', cfg['keep_freed_memory'])}; "
        f"median of {cfg['repeats']} repeats in blocks of at "
        f"most 3 per library, libraries alternating, each block after {cfg['warmup']} "
        f"warm-up calls; numpy {m['numpy']}, torch {m['torch']}, "
        f"numba {m.get('numba', 'absent')}; OPENBLAS_THREAD_TIMEOUT "
        f"{m.get('openblas_thread_timeout') or 'unset'}; other processes kept "
        f"{_fmt(m.get('other_processes_cores'), '.2f')} cores busy on average meanwhile.",
        "sgemm peak (n=2048): "
        + ", ".join(f"{k} {v:.0f}" for k, v in m["sgemm_peak_gflops"].items()) + " GFLOP/s.",
        "Ratio = rnnlab time / PyTorch time (below 1: rnnlab faster). GFLOP/s counts matrix "
        "products only. Stream: `layer.step` (checks and converts its arguments every call); "
        "Stream: `rnnlab.Stream.step`, the same maths with the state kept. "
        "GEMMs only: the training step's matrix products alone, NumPy's BLAS over PyTorch's "
        "(what the BLAS allows). "
        "Memory: resident-set growth over one training step (MB), same method "
        "for both; tracemalloc = NumPy arrays only.",
        "",
        "| cell | B,T,D,H | train ms (rnnlab / torch) | ratio (of minima) | GFLOP/s | % peak "
        "| infer ms (rnnlab / torch) | ratio (of minima) | stream µs (rnnlab / torch) | ratio "
        "| Stream µs | ratio | mem MB rnnlab (tracemalloc) / torch | GEMMs only numpy/torch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        s = row["shape"]
        tr, inf, st = row["train"], row["infer"], row["stream"]
        mem = row.get("memory_mb") or {}
        mr, mt = mem.get("rnnlab") or {}, mem.get("torch") or {}
        lines.append(
            f"| {row['cell']} | {s['B']},{s['T']},{s['D']},{s['H']} "
            f"| {tr['rnnlab_ms']:.2f} / {_fmt(tr.get('torch_ms'), '.2f')} "
            f"| {_fmt(tr.get('ratio'), '.2f')} ({_fmt(tr.get('ratio_of_minima'), '.2f')}) "
            f"| {tr['rnnlab_gflops']:.0f} "
            f"| {100 * tr['fraction_of_peak']:.0f} "
            f"| {inf['rnnlab_ms']:.2f} / {_fmt(inf.get('torch_ms'), '.2f')} "
            f"| {_fmt(inf.get('ratio'), '.2f')} ({_fmt(inf.get('ratio_of_minima'), '.2f')}) "
            f"| {1e3 * st['rnnlab_ms']:.1f} / {_fmt(st.get('torch_ms', 0) * 1e3 or None, '.1f')} "
            f"| {_fmt(st.get('ratio'), '.2f')} "
            f"| {1e3 * row['stream_lean']['rnnlab_ms']:.1f} "
            f"| {_fmt(row['stream_lean'].get('ratio'), '.2f')} "
            f"| {_fmt(mr.get('rss_growth'), '.1f')} ({_fmt(mr.get('tracemalloc_peak'), '.1f')}) "
            f"/ {_fmt(mt.get('rss_growth'), '.1f')} "
            f"| {_fmt((row.get('gemm_only') or {}).get('ratio'), '.2f')} |"
        )
    if any("rnnlab_bf16_ms" in row["train"] for row in result["rows"]):
        lines += _bf16_table(result)
    comp = result.get("compile")
    if comp:
        keys = [k for k in comp.get("cold", {}) if k != "error"]
        lines += ["", "First calls (forward + backward, masked forward + backward, step), "
                  "seconds, empty numba cache (cold) and filled (cached):", "",
                  "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for label in ("cold", "cached"):
            d = comp.get(label, {})
            lines.append(f"| {label} | " + " | ".join(_fmt(d.get(k), ".2f") for k in keys) + " |")
    met = result["targets"]
    lines += ["", "Speed targets: ✓ met, ✗ missed, – not measured", "",
              "| cell | B,T,D,H | " + " | ".join(k for k in _target_keys(met)) + " |",
              "|---|---|" + "---|" * len(_target_keys(met))]
    for t in met:
        s = t["shape"]
        cells = [{True: "✓", False: "✗", None: "–"}.get(t.get(k), "") if k in t else ""
                 for k in _target_keys(met)]
        lines.append(f"| {t['cell']} | {s['B']},{s['T']},{s['D']},{s['H']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n"


def _bf16_table(result) -> list:
    """The bf16 rows: rnnlab with precision bf16 against PyTorch under bf16 autocast."""
    peak = result["machine"].get("bf16_gemm_peak_gflops") or {}
    lines = ["", "bf16 (rnnlab precision=\"bf16\"; PyTorch under torch.autocast(\"cpu\", "
             "dtype=torch.bfloat16)); bf16 GEMM roof (n=2048): "
             + (", ".join(f"{k} {v:.0f}" for k, v in peak.items()) or "–") + " GFLOP/s.",
             "Ratio bf16 = rnnlab bf16 / PyTorch bf16; to fp32 = rnnlab bf16 / PyTorch fp32.",
             "", "| cell | B,T,D,H | train ms (rnnlab / torch bf16) | ratio bf16 | to fp32 "
             "| % bf16 roof (rnnlab / torch) | infer ms (rnnlab / torch bf16) | ratio bf16 "
             "| to fp32 |", "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        s, tr, inf = row["shape"], row["train"], row["infer"]
        if "rnnlab_bf16_ms" not in tr:
            continue
        roof = (f"{100 * tr['rnnlab_bf16_fraction_of_bf16_peak']:.0f} / "
                f"{100 * tr['torch_bf16_fraction_of_bf16_peak']:.0f}"
                if "torch_bf16_fraction_of_bf16_peak" in tr else "–")
        lines.append(
            f"| {row['cell']} | {s['B']},{s['T']},{s['D']},{s['H']} "
            f"| {tr['rnnlab_bf16_ms']:.2f} / {_fmt(tr.get('torch_bf16_ms'), '.2f')} "
            f"| {_fmt(tr.get('ratio_bf16'), '.2f')} "
            f"| {_fmt(tr.get('ratio_bf16_to_torch_fp32'), '.2f')} | {roof} "
            f"| {inf['rnnlab_bf16_ms']:.2f} / {_fmt(inf.get('torch_bf16_ms'), '.2f')} "
            f"| {_fmt(inf.get('ratio_bf16'), '.2f')} "
            f"| {_fmt(inf.get('ratio_bf16_to_torch_fp32'), '.2f')} |")
    return lines


def _target_keys(targets) -> list:
    keys = []
    for t in targets:
        keys += [k for k in t if k not in ("cell", "shape") and k not in keys]
    return keys
