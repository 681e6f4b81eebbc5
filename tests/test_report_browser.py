"""rnnlab report pages rendered in a real browser: headless Chromium.

For every kind of run folder: the page's script runs under its Content-Security-Policy,
every section and figure is in the rendered DOM, the screenshot is not blank, and the page
makes no network request (read from Chromium's own network log). Two controls show that
the network check can fail: a page without the policy that loads an image from a server is
caught, and the same image put into a report is blocked by the report's policy.

Chromium is Debian's ``chromium`` (``scripts/install-test-deps.sh`` installs it); without
one these tests skip, saying so.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import runfolders
from test_report import EXPECTED

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (scripts/install-test-deps.sh installs "
                             "Debian's chromium)")


def browse(page: Path, tmp: Path, *extra) -> subprocess.CompletedProcess:
    """Run Chromium on ``page`` with a fresh profile and a network log at tmp/net.json."""
    profile = tmp / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    net = tmp / "net.json"
    net.unlink(missing_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                           f"--log-net-log={net}", *extra, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=90)


def page_requests(net: Path) -> list[str]:
    """URLs the page asked for: requests whose network isolation key is the file:// page
    (Chromium's own requests, update checks and the like, carry other keys)."""
    log = json.loads(net.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start and "file://" in e["params"].get("network_isolation_key", "")
            + e["params"].get("site_for_cookies", "")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return runfolders.runs(tmp_path_factory)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_the_rendered_page_has_every_section_and_figure_and_asks_for_nothing(
        runs, kind, tmp_path):
    r = browse(runs[kind] / "report.html", tmp_path, "--dump-dom")
    dom = r.stdout
    assert 'data-script="ran"' in dom, r.stderr[-2000:]  # the inline script ran under the CSP
    sections, figures = EXPECTED[kind]
    assert re.findall(r'<section id="([^"]+)"', dom) == sections
    assert set(figures) <= set(re.findall(r'data-figure="([^"]+)"', dom))
    # the script gave every chart drawn on both axes its toggle
    both = len(re.findall(r'<svg[^>]*data-scales="linear log"', dom))
    assert dom.count('<button class="scale"') == both > (0 if kind != "sweep" else -1)
    assert page_requests(tmp_path / "net.json") == []


def test_the_screenshot_is_not_blank(runs, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    r = browse(runs["lm"] / "report.html", tmp_path, f"--screenshot={shot}",
               "--window-size=1280,2400")
    assert shot.is_file(), r.stderr[-2000:]
    img = imread(shot)[..., :3]  # (rows, columns, RGB) in [0, 1]
    assert img.shape[:2] == (2400, 1280)
    colours = np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, curves and shaded notes, not one flat colour
    ink = np.mean(img.min(axis=2) < 0.9)
    assert 0.02 < ink < 0.6, ink  # some, but not all, of the page is drawn on
    assert np.mean(img[..., 2] - img[..., 0] > 0.3) > 1e-4  # the blue of the curves


def test_the_network_check_catches_a_page_that_fetches(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    browse(bad, tmp_path, "--dump-dom")
    assert page_requests(tmp_path / "net.json") == ["http://127.0.0.1:9/x.png"]


def test_the_reports_policy_blocks_a_fetch(runs, tmp_path):
    html = (runs["sweep"] / "report.html").read_text(encoding="utf-8")
    spiked = tmp_path / "spiked.html"
    spiked.write_text(html.replace("</header>",
                                   '<img src="http://127.0.0.1:9/y.png"></header>'))
    r = browse(spiked, tmp_path, "--dump-dom")
    assert "127.0.0.1:9/y.png" in r.stdout  # the image is on the page ...
    assert page_requests(tmp_path / "net.json") == []  # ... and never asked for


def test_the_toggle_switches_each_chart_to_its_other_axis(runs, tmp_path):
    html = (runs["lm"] / "report.html").read_text(encoding="utf-8")
    before = re.findall(r'<svg[^>]*data-scale="(\w+)" data-scales="linear log"', html)
    assert before and "log" in before and "linear" in before
    # a second inline script, after the page's own, presses every toggle once
    clicks = ("<script>document.querySelectorAll('button.scale').forEach(function(b){"
              "b.click();});document.body.dataset.clicked='yes';</script></body>")
    pressed = tmp_path / "pressed.html"
    pressed.write_text(html.replace("</body>", clicks))
    dom = browse(pressed, tmp_path, "--dump-dom").stdout
    assert 'data-clicked="yes"' in dom
    after = re.findall(r'<svg[^>]*data-scale="(\w+)" data-scales="linear log"', dom)
    assert after == [{"log": "linear", "linear": "log"}[s] for s in before]
    for svg_ in re.findall(r'<svg[^>]*data-scales="linear log".*?</svg>', dom):
        shown = re.search(r'data-scale="(\w+)"', svg_).group(1)
        hidden = {"log": "linear", "linear": "log"}[shown]
        assert re.search(rf'<g class="scale-{hidden}" style="display: none;?"', svg_)
        assert not re.search(rf'<g class="scale-{shown}" style="display: none', svg_)
