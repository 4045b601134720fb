"""The Grafana dashboards: well-formed, the panels the issue asks for, the variables, metric names that exist,
and PromQL that Prometheus' own parser (promtool) accepts. Whether each query returns data from a real run is
tests/cluster/test_prometheus.py's job."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from startbench.runtime import dashboards
from startbench.runtime.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "charts" / "startbench" / "dashboards"

DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}
ALL = {"benchmark": ".*", "framework": ".*", "node": ".*", "datasource": "prometheus"}


def test_both_dashboards_are_there_with_unique_uids():
    assert set(DASHBOARDS) == {"startup", "training"}
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids) and all(len(u) <= 40 for u in uids)


@pytest.mark.parametrize("name", ["startup", "training"])
def test_variables_for_benchmark_framework_and_node_match_everything_when_all(name):
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for var in ("benchmark", "framework", "node"):
        v = variables[var]
        assert v["includeAll"] and v["multi"] and v["allValue"] == ".*"
        assert re.fullmatch(rf"label_values\(startbench_\w+, {var}\)", v["query"]["query"])
    # Every panel query uses only variables the dashboard defines.
    for title, _ref, expr in dashboards.panel_queries(DASHBOARDS[name]):
        used = set(re.findall(r"\$\{?(\w+)", expr))
        assert used <= set(variables), (title, used - set(variables))


@pytest.mark.parametrize("name", ["startup", "training"])
def test_panels_are_well_formed(name):
    panels = DASHBOARDS[name]["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"] and panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
    # No two panels overlap.
    cells = set()
    for panel in panels:
        pos = panel["gridPos"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_the_issue_panels_are_all_there():
    titles = " | ".join(p["title"].lower() for d in DASHBOARDS.values() for p in d["panels"])
    for wanted in ("startup breakdown by image", "cold versus warm", "pull throughput per node", "image sizes",
                   "time to first step", "training throughput", "gpu utilisation", "failed runs by reason",
                   "operator up"):
        assert wanted in titles, wanted
    startup = next(p for p in DASHBOARDS["startup"]["panels"] if p["title"] == "Startup breakdown by image")
    assert startup["options"]["stacking"] == "normal" and "phase" in startup["targets"][0]["expr"]


def _metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        kind = family.type
        if kind == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count")}
        elif kind == "counter":
            names.add(f"{family.name}_total")
        else:
            names.add(family.name)
    return names


def test_every_metric_a_dashboard_reads_exists():
    known = _metric_names()
    for dashboard in DASHBOARDS.values():
        exprs = [e for _t, _r, e in dashboards.panel_queries(dashboard)]
        exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for metric in re.findall(r"\bstartbench_\w+", expr):
                assert metric in known, f"{metric} in {expr!r} is not a metric of startbench.runtime.metrics"


def test_no_query_groups_by_a_per_pod_label():
    for dashboard in DASHBOARDS.values():
        for _title, _ref, expr in dashboards.panel_queries(dashboard):
            assert not re.search(r"\b(pod|run|run_id|pod_name)\b", expr), expr


@pytest.mark.tools("promtool")
def test_every_query_parses_with_promtool(tmp_path):
    # promtool parses the expression of every recording rule: the dashboards' queries, variables filled in.
    rules = []
    for name, dashboard in DASHBOARDS.items():
        for i, (_title, _ref, expr) in enumerate(dashboards.panel_queries(dashboard)):
            rules.append({"record": f"startbench:{name}:{i}", "expr": dashboards.substitute(expr, ALL)})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout

    # And promtool does refuse a broken one (this check can fail).
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [
        {"record": "startbench:bad", "expr": "sum by (image (startbench_runs_total)"}]}]}))
    assert subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, timeout=60).returncode != 0


def test_substitute_fills_both_spellings_and_refuses_unknown_variables():
    assert dashboards.substitute('x{a=~"$benchmark",b="${node}"}', {"benchmark": "b1", "node": "n"}) == \
        'x{a=~"b1",b="n"}'
    with pytest.raises(KeyError, match=r"\$nope"):
        dashboards.substitute("x{a=~\"$nope\"}", {})


def test_chart_files_are_the_modules_dashboards():
    # hack/render_chart.py writes them (its --check, with helm, also covers manifests/); this needs no helm.
    assert {name: build() for name, build in dashboards.DASHBOARDS.items()} == DASHBOARDS


def test_dashboards_module_is_pure_data():
    # Importable where neither a cluster client nor a metrics registry is wanted (hack/render_chart.py, tests).
    code = ("import sys, startbench.runtime.dashboards\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'kopf', 'prometheus_client', "
            "'docker', 'yaml'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=REPO / "operator")
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
