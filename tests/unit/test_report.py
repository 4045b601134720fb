"""The results report (report/ and cli/report.py), rendered from realistic records (tests/unit/report_records.py
makes them through core/status.run_record, as the operator does)."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from startbench.cli import main as cli
from startbench.cli import report as report_cli
from startbench.core.contracts import PHASES
from startbench.report import data, figures, html, render, style
from tests.unit.report_records import make_records

FAILS = {"compare-naive-n0-c1": "OOMKilled", "compare-slim-n1-c2": "ErrImagePull"}
OPTIONS = render.Options(pods=200, pods_per_node=8)


@pytest.fixture(scope="module")
def bench():
    return make_records(fail=FAILS)


@pytest.fixture(scope="module")
def page(bench):
    return html.render_html(*bench, OPTIONS, generated_at="2025-11-24T16:31:00Z")


def svgs(page: str) -> dict[str, str]:
    """Each figure's inline <svg> element, by figure name."""
    out = {}
    for match in re.finditer(r'<div class="figure" id="figure-([a-z]+)">(<svg.*?</svg>)', page, re.DOTALL):
        out[match.group(1)] = match.group(2)
    return out


def test_the_palette_has_one_colour_per_phase_in_phase_order():
    assert tuple(style.PHASE_COLOURS) == PHASES and tuple(style.PHASE_LABELS) == PHASES
    assert len({c.lower() for c in style.PHASE_COLOURS.values()}) == len(PHASES)
    assert not {c.lower() for c in style.PHASE_COLOURS.values()} & {c.lower() for c in style.IMAGE_COLOURS}


def test_the_page_holds_every_plot_as_inline_svg(page):
    figs = svgs(page)
    assert sorted(figs) == sorted(render.PLOTS) and page.count("<svg") == len(render.PLOTS)
    for name, element in figs.items():
        ET.fromstring(element)  # well-formed
        assert "<metadata" not in element and "<?xml" not in element, name
    assert "<img" not in page and "<script" not in page and "<link" not in page
    # Text stays text (searchable, and the browser draws it): axis labels with their units.
    assert "seconds since the run's pod was created" in figs["waterfall"]
    assert "MB/s (image size / kubelet pull time)" in figs["pulls"]
    assert "pods started" in figs["capacity"] and "seconds since the pods were created" in figs["capacity"]


def test_the_waterfall_has_a_bar_per_phase_span_in_the_phase_colours(bench, page):
    _, records = bench
    waterfall = svgs(page)["waterfall"]
    runs = data.runs(records)
    assert [r.name for r in runs] == sorted((r["name"] for r in records), key=lambda n: next(
        x["order"] for x in records if x["name"] == n))
    for phase, colour in style.PHASE_COLOURS.items():
        spans = sum(1 for run in runs for seg in run.segments if seg.phase == phase)
        # One bar per span of that phase, and its legend patch: nothing else has a phase's colour.
        assert waterfall.count(f"fill: {colour.lower()}") == spans + 1, phase
    # Failed runs name their reason; each label has the cache state asked for and the one observed.
    assert "FAILED: OOMKilled" in waterfall and "FAILED: ErrImagePull" in waterfall
    assert "compare-naive-n0-w1  warm/hit" in waterfall and "compare-slim-n0-c1  cold/miss" in waterfall
    # The phases figure uses the same colours.
    assert all(f"fill: {c.lower()}" in svgs(page)["phases"] for c in style.PHASE_COLOURS.values())


def test_the_page_needs_no_network(page):
    refs = re.findall(r'''(?:src|href)\s*=\s*["']([^"']*)["']''', page)
    assert refs and all(ref.startswith("#") for ref in refs), [r for r in refs if not r.startswith("#")]
    assert not re.search(r"url\(\s*['\"]?(?!#)", page) and "@import" not in page
    # The only http(s) text: the SVG and XLink namespace names, which no browser fetches.
    for match in re.finditer(r"https?://[^\"'\s<>]*", page):
        assert match.group(0) in ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"), match.group(0)
        assert re.search(r'xmlns(:xlink)?="$', page[match.start() - 13:match.start()]), match.group(0)


def test_ids_are_unique_across_the_figures(page):
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)) > len(render.PLOTS)
    targets = set(re.findall(r'(?:href="#|url\(#)([^")]+)', page))
    assert targets <= set(ids), targets - set(ids)


def test_the_page_stands_alone(bench, page):
    benchmark, _ = bench
    import startbench
    assert f"startbench {startbench.__version__}" in page and "team/compare" in page
    # Spec, conditions, thresholds with their verdicts, nodes, images.
    assert "maxSeconds: 30" in page and "startbench.dev/pool: gpu" in page
    assert "ThresholdExceeded" in page and "NOT MET" in page and ">met<" in page
    assert "p90 timeToFirstStep" in page and "33.271" in page
    assert "gpu-00" in page and "cpu x86_64" in page
    assert "application/vnd.oci.image.layer.v1.tar+gzip: 9" in page and "sha256:" + "a" * 64 in page
    assert "16 ended of 16 planned, 2 failed" in page
    # Capacity: the model's sentences for 200 pods, with their total.
    assert "200 pods of naive, cold: 16 start at once (2 node(s) x 8)" in page


def test_text_from_the_cluster_is_escaped(bench):
    benchmark, records = bench
    records = [dict(r) for r in records]
    records[0]["message"] = "<script>alert(1)</script>"
    out = html.render_html(benchmark, records, OPTIONS)
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_a_benchmark_with_no_run_renders():
    out = html.render_html({"metadata": {"name": "fresh", "namespace": "team"}, "spec": {"images": []}}, [])
    assert "<svg" not in out and out.count("Nothing to plot") == 5
    assert "No run failed (no run has ended yet)" in out and "has not run on any node yet" in out
    assert "0 ended of ? planned, 0 failed" in out and "no run reached a first step" in out


def test_a_benchmark_whose_runs_all_failed_renders():
    benchmark, records = make_records(only_failed=True)
    out = html.render_html(benchmark, records, OPTIONS)
    figs = svgs(out)
    assert {"waterfall", "phases", "failures"} <= set(figs) and "capacity" not in figs
    assert "no run of image &#x27;naive&#x27; succeeded" in out
    assert out.count("FAILED: ") >= len(records)


def test_only_downloads_measure_pull_throughput(bench):
    _, records = bench
    pulls = data.pulls(records)
    # The OOMKilled run pulled before it failed: a download all the same. The ErrImagePull run pulled nothing.
    assert len(pulls) == sum(1 for r in records if r["timeline"]["cacheObserved"] == "miss") == 7
    assert {(p.image, round(p.mb_per_s, 6)) for p in pulls} == {("naive", 120.0), ("slim", round(1000 / 9, 6))}
    odd = [{"name": "r", "image": "x", "node": "n", "pull": {"seconds": 2.0, "imageSizeBytes": 10**9},
            "timeline": {"cacheObserved": observed}} for observed in ("hit", "revalidated", "unknown")]
    odd.append({"name": "s", "image": "x", "pull": {"imageSizeBytes": 10**9}, "timeline": {"cacheObserved": "miss"}})
    assert data.pulls(odd) == []


def test_phase_stacks_leave_out_merged_spans_and_take_the_total_to_the_first_step():
    rec = {"name": "a", "image": "x", "order": 0, "result": "Succeeded", "timeToFirstStepMs": 10_000.0,
           "timeline": {"cacheObserved": "miss", "end": "first_step", "totalMs": 10_000.0, "phases": {
               "scheduling": {"ms": 1000.0}, "waiting_to_pull": {"ms": 4000.0, "covers": ["waiting_to_pull", "pulling"]},
               "create_start": {"ms": 5000.0}}}}
    (stack,) = data.phase_stacks([rec], ["x"])
    assert stack.p50 == {"scheduling": 1.0, "create_start": 5.0} and stack.total_p50 == 10.0
    assert stack.endpoint == "first step"
    (run,) = data.runs([rec])
    assert [(s.phase, s.start_s, s.seconds, s.merged) for s in run.segments] == [
        ("scheduling", 0.0, 1.0, False), ("waiting_to_pull", 1.0, 4.0, True), ("create_start", 5.0, 5.0, False)]


def test_failures_by_reason_most_frequent_first(bench):
    _, records = bench
    assert [(f.reason, f.count) for f in data.failures(records)] == [("ErrImagePull", 1), ("OOMKilled", 1)]
    assert data.failures([r for r in records if r["result"] == "Succeeded"]) == []


@pytest.mark.parametrize("name", render.PLOTS)
def test_each_plot_writes_a_valid_png(bench, name):
    png = render.render_plot(name, "png", *bench, OPTIONS)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    Image.open(io.BytesIO(png)).verify()
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.width == round(style.WIDTH_IN * style.DPI) and im.height > 100


def test_one_plot_as_svg_and_a_plot_with_nothing_to_draw(bench):
    benchmark, records = bench
    svg = render.render_plot("phases", "svg", benchmark, records).decode()
    assert svg.startswith("<svg") and ET.fromstring(svg) is not None
    ok = [r for r in records if r["result"] == "Succeeded"]
    with pytest.raises(render.ReportError, match="nothing to plot for 'failures': no run failed"):
        render.render_plot("failures", "png", benchmark, ok)
    with pytest.raises(render.ReportError, match="no plot 'pie'"):
        render.render_plot("pie", "png", benchmark, records)


def test_the_waterfall_draws_at_most_its_limit_and_says_so(bench, monkeypatch):
    benchmark, records = bench
    assert figures.MAX_WATERFALL_RUNS == 300
    monkeypatch.setattr(figures, "MAX_WATERFALL_RUNS", 5)
    out = html.render_html(benchmark, records, OPTIONS)
    assert "The first 5 of 16 runs are drawn." in out
    assert svgs(out)["waterfall"].count(f"fill: {style.PHASE_COLOURS['scheduling'].lower()}") == 5 + 1


# --- the command ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output,fmt,plot,expected", [
    (None, None, None, ("b1-report.html", "html")),
    ("r.html", None, None, ("r.html", "html")),
    ("x.png", None, None, ("x.png", "png")),
    (None, None, "phases", ("b1-phases.png", "png")),
    (None, "svg", "pulls", ("b1-pulls.svg", "svg")),
    ("w.svg", None, "waterfall", ("w.svg", "svg")),
])
def test_the_output_and_its_format(output, fmt, plot, expected):
    path, chosen = report_cli.choose_output("b1", output, fmt, plot)
    assert (str(path), chosen) == expected


def test_a_plot_cannot_be_written_as_html():
    with pytest.raises(ValueError, match="--plot waterfall writes one figure as png or svg"):
        report_cli.choose_output("b1", "r.html", None, "waterfall")


def test_the_command_lists_the_report_plots():
    assert report_cli.PLOTS == render.PLOTS and report_cli.FORMATS == render.FORMATS
    assert ("report", "startbench.cli.report") in cli.SUBCOMMANDS


class _IO:
    def allocatable_gpus(self, nodes):
        return [8 for _ in nodes]


def test_the_command_writes_the_page_and_one_plot(bench, tmp_path, monkeypatch, capsys):
    benchmark, records = bench
    monkeypatch.setattr(report_cli, "load", lambda args, command: (_IO(), "team", benchmark, records))
    out = tmp_path / "report.html"
    assert cli.main(["report", "compare", "-n", "team", "-o", str(out), "--pods", "64"]) == 0
    assert f"wrote the report of team/compare (16 runs) to {out}" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "64 pods on 2 node(s), 8 per node" in text
    png = tmp_path / "w.png"
    assert cli.main(["report", "compare", "--plot", "waterfall", "-o", str(png)]) == 0
    Image.open(png).verify()
    ok = [r for r in records if r["result"] == "Succeeded"]
    monkeypatch.setattr(report_cli, "load", lambda args, command: (_IO(), "team", benchmark, ok))
    assert cli.main(["report", "compare", "--plot", "failures", "-o", str(tmp_path / "f.png")]) == 1
    assert "nothing to plot for 'failures'" in capsys.readouterr().err
    assert cli.main(["report", "compare", "--plot", "failures", "-o", str(tmp_path / "f.html")]) == 2


def test_without_matplotlib_the_command_says_what_to_install(monkeypatch, capsys):
    """The operator image carries no matplotlib (dockerfiles/operator/requirements.txt): there the command says so."""
    import sys
    for name in [m for m in sys.modules if m == "startbench.report" or m.startswith("startbench.report.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(report_cli, "load", lambda args, command: pytest.fail("read the cluster first"))
    assert cli.main(["report", "b1", "-o", "x.html"]) == 1
    assert "the report needs matplotlib" in capsys.readouterr().err
