"""A real benchmark's report, opened by a real browser: the operator runs two images on the local cluster,
`startbench report` writes the page, and headless Chromium (Debian's package, installed by
hack/ci/setup-35-chromium.sh) renders it to a screenshot that shows the plots in the phase colours.

Without chromium the test is skipped, naming that script; under CI=true it fails instead, before the cluster
starts (the `tools` marker, tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess

import pytest
from PIL import Image

from startbench.cli import main as cli
from startbench.report.style import PHASE_COLOURS
from tests.cluster import benchmarks as bm
from tests.support.tools import chromium_path

pytestmark = pytest.mark.tools("chromium")
WIDTH, HEIGHT = 1400, 3000


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


def test_a_real_benchmarks_report_reads_in_a_browser(operator, custom, core, namespace, local_cluster, fresh_image,
                                                      tmp_path, capsys):
    # Two images no node has seen: each node's first cold pull downloads, so the report has real pulls to draw.
    images = [{"name": "base", "image": fresh_image(1024), "framework": "pytorch", "variant": "naive"},
              {"name": "tiny", "image": fresh_image(256 * 1024), "framework": "pytorch", "variant": "slim"}]
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
    screenshot(chromium_path(), page, png, tmp_path / "profile")
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


def test_results_watch_follows_a_running_benchmark_and_fails_on_a_failed_threshold(operator, custom, core, namespace,
                                                                                     local_cluster, fresh_image,
                                                                                     capsys):
    """`startbench results --watch` on a benchmark that is still running: it prints progress lines while the runs
    end, the results once it has finished, and exits 1 because a threshold failed (what a CI gate relies on)."""
    images = [{"name": "tiny", "image": fresh_image(64 * 1024), "framework": "pytorch", "variant": "slim"}]
    body = bm.benchmark("watched", images, max_nodes=2, cache="both", repetitions=2, parallelism=1,
                        thresholds=[{"metric": "scheduling", "quantile": "p50", "maxSeconds": 0.000001}])
    bm.create(custom, namespace, body)
    argv = ["results", "watched", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"], "--watch",
            "--interval", "0.5"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if " runs ended, " in line]
    ended = [int(line.split(": ", 1)[1].split("/")[0]) for line in progress]
    assert ended[-1] == 8 and len(set(ended)) >= 2, progress  # it saw the runs end, not only the end
    assert "ThresholdsMet False; exit status 1" in progress[-1], progress[-1]
    assert "Seconds per image, observed cache state and metric" in captured.out  # then the results
    status = bm.get(custom, namespace, "watched")["status"]
    assert status["phase"] == "Succeeded" and status["progress"] == "8/8"
