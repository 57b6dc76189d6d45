"""The HTML report opened in a real browser (headless Chromium, Debian's `chromium` package): it lays out into a
non-blank page with the figures drawn, and injected markup shows as text, never as elements."""
from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from reports.html import render_html
from reports.plots import FIGURES
from tests.conftest import skip_unless_ci
from tests.reports.sample import typed
from tests.reports.test_html import ESCAPED, INJECTED, full_results

pytestmark = pytest.mark.integration

# runs on event handlers of an element; if the markup ever became an element, the title would change
IMG_PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"
TAB_BLUE = np.array([31, 119, 180]) / 255  # matplotlib's first colour: only the figures use it


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:  # under CI=true a failure: .ci/run installs it
        skip_unless_ci("chromium not found on PATH: install it with `apt-get install chromium` (Debian package)")
    return exe


def browse(tmp_path: Path, page: Path, *mode: str) -> subprocess.CompletedProcess:
    """One headless Chromium run on a fresh profile, with every background fetch turned off."""
    profile = tmp_path / "profile"  # tmp_path is new for every test, so is the profile
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *mode, page.as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    results = copy.deepcopy(full_results())
    results["candidates"][1]["benchmarks"][0]["predictions"]["test"][0] = IMG_PAYLOAD
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(typed(results)))
    return path


def test_screenshot_shows_a_page_with_figures(tmp_path, report):
    shot = tmp_path / "shot.png"
    browse(tmp_path, report, f"--screenshot={shot}", "--window-size=1400,2400")
    assert shot.exists() and shot.stat().st_size > 20_000
    pixels = image.imread(str(shot))[..., :3]  # (height, width, rgb) floats in [0, 1]
    assert pixels.shape[:2] == (2400, 1400)
    assert (pixels != pixels[0, 0]).any(), "the page rendered as one flat colour"
    blue = (np.abs(pixels - TAB_BLUE) < 0.03).all(axis=-1).sum()
    assert blue > 2_000, f"only {blue} pixels in the figures' blue: the SVG figures did not draw"


def test_injected_markup_stays_text(tmp_path, report):
    dom = browse(tmp_path, report, "--dump-dom").stdout
    assert "Leaderboard" in dom
    assert ESCAPED in dom  # the candidate name, serialised back as text
    assert INJECTED not in dom and "<script" not in dom.lower()
    assert "&lt;img src=x onerror=" in dom and "<img" not in dom.lower()
    assert "<title>sftbench - full - run 20261125-000000-fedcba</title>" in dom, "a handler rewrote the title"
    assert dom.count("<svg") == len(FIGURES)  # every figure drew from the sample results


MEASURE = ("<script>const lb = document.querySelector('table.leaderboard').getBoundingClientRect();"
           "const box = document.querySelector('table.leaderboard').parentElement.getBoundingClientRect();"
           "document.title = [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
           " Math.ceil(lb.right), Math.ceil(box.right)].join(' ');</script></body>")


@pytest.mark.parametrize("which", ["sample", "full"])
def test_the_page_never_overflows_and_one_benchmarks_leaderboard_fits_1280_px(tmp_path, which):
    """A copy of the page with a measuring script (the report itself has none): the document is never wider than
    the window; with one benchmark (the sample, like the demo) the leaderboard fits without its sideways scroll, and
    with two it scrolls inside its own box."""
    from tests.reports.sample import sample_results

    results = sample_results() if which == "sample" else full_results()
    page = tmp_path / "measure.html"
    page.write_text(render_html(typed(results)).replace("</body>", MEASURE))
    dom = browse(tmp_path, page, "--dump-dom", "--window-size=1280,2000").stdout
    width, viewport, table_right, box_right = map(int, dom.split("<title>")[1].split("</title>")[0].split())
    assert width <= viewport, (width, viewport)
    if which == "sample":
        assert table_right <= box_right <= viewport, (table_right, box_right)
