"""Each plot writes a real PNG; rnnlab itself imports without matplotlib."""

import subprocess
import sys

import numpy as np
import pytest

import rnnlab
from rnnlab import diagnostics as dg

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == PNG, path
    assert len(data) > min_bytes, (path, len(data))  # axes, labels and curves, not a blank


def test_rnnlab_and_plots_import_without_matplotlib():
    code = ("import sys, rnnlab, rnnlab.plots, rnnlab.diagnostics; "
            "assert 'matplotlib' not in sys.modules, 'imported matplotlib eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def mpl():
    return pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def flows():
    x = np.random.default_rng(0).normal(size=(2, 30, 3))
    return {"Elman": dg.gradient_flow(rnnlab.Elman(3, 8, seed=0), x),
            "LSTM": dg.gradient_flow(rnnlab.LSTM(3, 8, seed=0), x)}


def test_plot_flow(mpl, flows, tmp_path):
    from rnnlab import plots

    out = tmp_path / "sub" / "flow.png"
    assert plots.plot_flow(flows, out, fraction=0.01) == out
    assert_png(out)
    # one unlabelled curve; an underflowed zero is left out of the log axis, not an error
    f = flows["Elman"].copy()
    f[-1] = 0
    assert_png(plots.plot_flow(f, tmp_path / "one.png", relative=False))


def test_plot_flow_heatmap(mpl, flows, tmp_path):
    from rnnlab import plots

    ck = [(200, flows["LSTM"]), (0, flows["Elman"]), (100, flows["Elman"][:20])]
    assert_png(plots.plot_flow_heatmap(ck, tmp_path / "heat.png"))


def test_plot_saturation(mpl, tmp_path):
    from rnnlab import plots

    x = np.random.default_rng(0).normal(size=(2, 30, 3)) * 3
    s = dg.saturation(rnnlab.GRU(3, 8, seed=0), x)
    assert_png(plots.plot_saturation(s, tmp_path / "sat.png"))


def test_plot_loss(mpl, tmp_path):
    from rnnlab import plots

    train = list(1 / np.arange(1, 41))
    val = [v + 0.1 if i % 4 == 0 else None for i, v in enumerate(train)]  # every 4th epoch
    out = plots.plot_loss({"train": train, "validation": val}, tmp_path / "loss.png")
    assert_png(out)
    pairs = [(10 * i, 2.0 / i) for i in range(1, 30)]
    assert_png(plots.plot_loss(pairs, tmp_path / "pairs.png", logy=True), 5_000)


def test_plot_report(mpl, tmp_path):
    from rnnlab import plots

    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 8, 2, cell="elman", readout="last", seed=0)
    r = dg.diagnose(net, rng.normal(size=(2, 20, 3)), rng.integers(0, 2, size=2))
    paths = plots.plot_report(r, tmp_path / "report")
    assert [p.name for p in paths] == ["flow.png", "saturation.png", "loss_gradients.png"]
    for p in paths:
        assert_png(p)


def test_plot_errors(mpl, flows, tmp_path):
    from rnnlab import plots

    with pytest.raises(ValueError, match=r"path must name a \.png file, got '.*flow\.jpg'"):
        plots.plot_flow(flows, tmp_path / "flow.jpg")
    with pytest.raises(ValueError, match="flows is empty"):
        plots.plot_flow({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="lag-0 value 0.0"):
        plots.plot_flow({"bad": [0.0, 1.0]}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\(step, flow\) pairs"):
        plots.plot_flow_heatmap([flows["LSTM"]], tmp_path / "a.png")
    with pytest.raises(ValueError, match="all None"):
        plots.plot_loss({"validation": [None, None]}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        plots.plot_loss([[1, 2, 3], [4, 5, 6]], tmp_path / "a.png")
