"""A real benchmark's report, opened by a real browser: the operator runs two images on the local cluster,
`startbench report` writes the page, and headless Chromium (Debian's package, installed by
hack/ci/setup-35-chromium.sh) renders it to a screenshot that shows the plots in the phase colours."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from PIL import Image

from startbench.cli import main as cli
from startbench.report.style import PHASE_COLOURS
from tests.cluster import benchmarks as bm

CHROMIUM_SETUP = "hack/ci/setup-35-chromium.sh"
WIDTH, HEIGHT = 1400, 3000


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary. Missing: a skip that names the setup script, or under CI=true a failure (there the
    setup scripts have run, so a missing browser is a broken setup). Session-scoped and first in the test's
    arguments, so it is checked before the cluster and the operator start."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true and chromium is missing: {CHROMIUM_SETUP} installs it (apt: chromium)", pytrace=False)
    pytest.skip(f"chromium is not installed: run {CHROMIUM_SETUP}")


def screenshot(chromium: str, page, png, profile) -> None:
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--screenshot={png}",
                           f"--window-size={WIDTH},{HEIGHT}", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]


def colour_pixels(png) -> dict[str, int]:
    """Pixels of each phase's colour (within 3 per channel: the inside of a bar is drawn exactly)."""
    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(maxcolors=WIDTH * HEIGHT)
    out = {}
    for phase, hex_colour in PHASE_COLOURS.items():
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        out[phase] = sum(n for n, c in colours if all(abs(a - b) <= 3 for a, b in zip(c, rgb)))
    return out


def test_a_real_benchmarks_report_reads_in_a_browser(chromium, operator, custom, core, namespace, local_cluster,
                                                      tiny_image, tmp_path, capsys):
    images = [{"name": "base", "image": bm.BASE_IMAGE, "framework": "pytorch", "variant": "naive"},
              {"name": "tiny", "image": tiny_image, "framework": "pytorch", "variant": "slim"}]
    bm.create(custom, namespace, bm.benchmark("report", images, max_nodes=2, cache="both", repetitions=2))
    status = bm.wait_finished(custom, namespace, "report", timeout=180)["status"]
    assert status["phase"] == "Succeeded", status
    page = tmp_path / "report.html"
    argv = ["report", "report", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"]]
    assert cli.main(argv + ["-o", str(page), "--pods", "40"]) == 0
    assert f"to {page}" in capsys.readouterr().out
    text = page.read_text()
    # Every run succeeded: every plot but the failures one, inline, and nothing fetched from outside.
    assert re.findall(r'id="figure-([a-z]+)"', text) == ["waterfall", "phases", "pulls", "sizes", "capacity"]
    assert all(ref.startswith("#") for ref in re.findall(r'(?:src|href)="([^"]*)"', text))
    assert "No run failed." in text and f"{namespace}/report" in text
    assert "40 pods of base, cold: 16 start at once (2 node(s) x 8)" in text

    png = tmp_path / "report.png"
    screenshot(chromium, page, png, tmp_path / "profile")
    with Image.open(png) as im:
        assert im.size == (WIDTH, HEIGHT)
        extrema = im.convert("L").getextrema()
    assert extrema[0] < 60 and extrema[1] > 240, "the screenshot is blank"
    pixels = colour_pixels(png)
    # Each phase's legend patch is a few hundred pixels; the runs' bars add thousands: the cold runs' pulls, and
    # every run's container create and start (simulated nodes end there).
    assert pixels["pulling"] > 2000 and pixels["create_start"] > 1000, pixels
    assert all(n > 0 for n in pixels.values()), pixels

    # One plot for a ticket.
    single = tmp_path / "waterfall.png"
    assert cli.main(argv + ["--plot", "waterfall", "-o", str(single)]) == 0
    with Image.open(single) as im:
        assert im.format == "PNG" and im.width > 1000
