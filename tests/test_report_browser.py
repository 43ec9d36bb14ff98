"""The report page in a real browser (headless Chromium): it renders, every image loads, the experiments fold."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pytest

from facelab import paths
from facelab.reporting.document import write_report
from facelab.reporting.results import load_experiment
from tests.test_report import CLASSES, RECIPES, six_experiments, write_experiment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.e2e,  # starts a real browser
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")]

# Runs after the page has loaded: records every image that did not decode, and how the page is built.
PROBE = """<script>window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const widths = Object.fromEntries([...document.images].map(i => [i.getAttribute('src'), i.naturalWidth]));
  document.body.setAttribute('data-probe', JSON.stringify({
    images: document.images.length, broken: broken, widths: widths,
    folded: document.querySelectorAll('details:not([open])').length,
    links: [...document.querySelectorAll('a[href^="#"]')]
      .filter(a => !document.getElementById(a.getAttribute('href').slice(1))).length}));
});</script>"""


def chromium(*args: str) -> str:
    assert CHROMIUM is not None  # the module is skipped without it
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


EXPLAINED = ("gallery", "saliency", "reliability")


def draw_explained(folder) -> None:
    """evaluate's three images as its own functions draw them, from a small made-up test split."""
    from facelab.evaluation.explain import reliability_diagram
    from facelab.evaluation.gallery import mistake_gallery
    from facelab.evaluation.saliency import saliency_figure

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    actual, predicted = np.array([0, 1] * 6), np.array([0, 1, 1, 0] * 3)
    probabilities = np.full((12, 2), 0.3)
    probabilities[np.arange(12), predicted] = 0.7
    out = paths.explained_images(folder)
    reliability_diagram(probabilities, actual, 15, "face/x", out["reliability"])
    mistake_gallery(pixels, actual, predicted, probabilities, [f"{i}.png" for i in range(12)], ("other", "target"),
                    out["gallery"])
    maps = rng.random((12, 32, 32)).astype(np.float32)
    saliency = {"maps": maps[:2], "images": pixels[:2], "counts": np.array([3, 3]), "gallery_maps": maps[2:6],
                "gallery_images": pixels[2:6]}
    saliency_figure(saliency, ("other", "target"), [f"{i}" for i in range(4)], "face/x", out["saliency"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    for exp in six_experiments():
        write_experiment(root, exp, histograms=exp.task == "face")
        if exp.task == "face":
            draw_explained(paths.plots(exp.task, exp.recipe, 42, root))
    write_report([load_experiment(t, r, [42], root) for t in CLASSES for r in RECIPES], root / "reports",
                 root / "zscore")
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
    assert found["images"] == page.count("<img ")  and found["images"] == 2 * 2 + 6 * 2 + 3 * 2 + 3 * 3
    # evaluate's images (face experiments): decoded at their own size, and none of them blank
    explained = {src: width for src, width in found["widths"].items() if src.rsplit("_", 1)[-1][:-4] in EXPLAINED}
    assert len(explained) == 9 and min(explained.values()) > 200
    for src in explained:
        pixels = matplotlib.image.imread(report / src)[..., :3]
        assert (pixels < 0.95).any(axis=2).mean() > 0.02, f"{src} is blank"
    assert found["folded"] == 6 and found["links"] == 0  # the table of contents points at real sections


def test_screenshot_of_the_page_is_not_blank(report, tmp_path):
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", (report / "index.html").as_uri())
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 50  # text, tables and figures
