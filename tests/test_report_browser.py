"""The report page in a real browser (headless Chromium): it renders, every image loads, the experiments fold."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pytest

from facelab.reporting.document import load_experiment, write_report
from tests.test_report import CLASSES, RECIPES, six_experiments, write_experiment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")

# Runs after the page has loaded: records every image that did not decode, and how the page is built.
PROBE = """<script>window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  document.body.setAttribute('data-probe', JSON.stringify({images: document.images.length, broken: broken,
    folded: document.querySelectorAll('details:not([open])').length,
    links: [...document.querySelectorAll('a[href^="#"]')].filter(a => !document.getElementById(a.getAttribute('href').slice(1))).length}));
});</script>"""


def chromium(*args: str) -> str:
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Probe(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = None

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.found = dict(attrs).get("data-probe")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    for exp in six_experiments():
        write_experiment(root, exp, histograms=exp["task"] == "face")
    write_report([load_experiment(t, r, root) for t in CLASSES for r in RECIPES], root / "reports", root / "zscore")
    return root / "reports"


def test_every_image_loads_and_every_experiment_starts_folded(report):
    page = (report / "index.html").read_text()
    probe_page = report / "probe.html"
    probe_page.write_text(page.replace("</body>", PROBE + "</body>"))
    parser = Probe()
    parser.feed(chromium("--dump-dom", probe_page.as_uri()))
    assert parser.found, "the probe did not run: the page never finished loading"
    found = json.loads(parser.found)
    assert found["broken"] == []
    assert found["images"] == page.count("<img ")  and found["images"] == 2 * 2 + 6 * 2 + 3 * 2
    assert found["folded"] == 6 and found["links"] == 0  # the table of contents points at real sections


def test_screenshot_of_the_page_is_not_blank(report, tmp_path):
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", (report / "index.html").as_uri())
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 50  # text, tables and figures
