"""The Grafana dashboards, as data: each builder returns the dashboard's JSON document (a dict), built from
startbench_* metric names (runtime/metrics.py defines them; tests/unit/test_dashboards.py checks every name in a
query is one of them). Pure: no Kubernetes, no Prometheus client.

`hack/render_chart.py` writes each one to charts/startbench/dashboards/<name>.json, which the chart ships as a
ConfigMap. Every panel query is an instant or range PromQL expression over startbench_* metrics; the Prometheus
test (tests/cluster/test_prometheus.py) sends each one, with the variables filled in (`substitute`), to a real
Prometheus and asserts that it returns data. Histograms and counters are read cumulatively (since the operator
started): benchmark runs come in bursts, and a rate over a window would be empty between bursts.
"""

from __future__ import annotations

import re

DS = {"type": "prometheus", "uid": "${datasource}"}
RUN_SEL = 'benchmark=~"$benchmark",framework=~"$framework",node=~"$node"'


def _variable(name: str, label: str, metric: str) -> dict:
    query = f"label_values({metric}, {label})"
    return {"name": name, "label": label, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
            "definition": query, "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1}


def _datasource_variable() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1}


def _target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> dict:
    return {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto",
            "instant": instant, "range": not instant, "format": "table" if table else "time_series"}


def _panel(kind: str, title: str, description: str, targets: list[dict], unit: str, pos: tuple[int, int, int, int],
           options: dict | None = None, transformations: list | None = None, custom: dict | None = None) -> dict:
    x, y, w, h = pos
    return {"type": kind, "title": title, "description": description, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom or {}}, "overrides": []},
            "options": options or {}, "transformations": transformations or []}


def _matrix(row: str, column: str) -> list[dict]:
    """Instant table rows (row, column, Value) → one row per `row`, one column per `column` (for bar charts)."""
    return [{"id": "groupingToMatrix", "options": {"rowField": row, "columnField": column, "valueField": "Value",
                                                   "emptyValue": "null"}}]


def _stacked_bars(x_field: str) -> dict:
    return {"xField": x_field, "stacking": "normal", "orientation": "horizontal", "showValue": "auto",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi"}}


def _startup_dashboard() -> dict:
    mean_phase = (f"sum by (image, phase) (startbench_phase_seconds_sum{{{RUN_SEL}}})\n"
                  f"  / sum by (image, phase) (startbench_phase_seconds_count{{{RUN_SEL}}})")
    # Mean of each phase, added up: the mean startup to the last boundary a run reached (the first step when
    # the pod reports one; container start otherwise).
    mean_startup = (f"sum by (image, cache) (\n"
                    f"  sum by (image, cache, phase) (startbench_phase_seconds_sum{{{RUN_SEL}}})\n"
                    f"  / sum by (image, cache, phase) (startbench_phase_seconds_count{{{RUN_SEL}}}))")
    mean_pull = (f"sum by (image, cache) (startbench_phase_seconds_sum{{{RUN_SEL},phase=\"pulling\"}})\n"
                 f"  / sum by (image, cache) (startbench_phase_seconds_count{{{RUN_SEL},phase=\"pulling\"}})")
    q = lambda p: (f"histogram_quantile({p}, sum by (le, image) "  # noqa: E731
                   f"(startbench_time_to_first_step_seconds_bucket{{{RUN_SEL}}}))")
    panels = [
        _panel("barchart", "Startup breakdown by image",
               "Mean seconds of each startup phase per image, stacked: scheduling, waiting to pull, pulling, "
               "container create/start, imports, device init, first step. Over every run since the operator started.",
               [_target(mean_phase, instant=True, table=True)], "s", (0, 0, 24, 9),
               _stacked_bars("image"), _matrix("image", "phase")),
        _panel("barchart", "Cold versus warm: startup time",
               "Mean startup seconds per image (the mean phases added up, from pod creation to the first step, or to "
               "container start for pods without an in-pod report), cold cache (image pulled) next to warm (image "
               "on the node).", [_target(mean_startup, instant=True, table=True)], "s", (0, 9, 12, 8),
               {**_stacked_bars("image"), "stacking": "none"}, _matrix("image", "cache")),
        _panel("barchart", "Cold versus warm: pull phase",
               "Mean seconds in the pulling phase per image and cache state (a warm run pulls nothing).",
               [_target(mean_pull, instant=True, table=True)], "s", (12, 9, 12, 8),
               {**_stacked_bars("image"), "stacking": "none"}, _matrix("image", "cache")),
        _panel("timeseries", "Time to first step (p50, p90)",
               "Quantiles of pod creation to the end of the first training step (to container start for runs "
               "without an in-pod report), per image, over every run since the operator started.",
               [_target(q(0.5), "p50 {{image}}"), _target(q(0.9), "p90 {{image}}", ref="B")], "s", (0, 17, 12, 8)),
        _panel("timeseries", "Pull throughput per node",
               "Compressed bytes per second of pull time, last cold pull of each image on each node.",
               [_target('max by (node, image) (startbench_pull_throughput_bytes_per_second{node=~"$node"})',
                        "{{node}} {{image}}")], "Bps", (12, 17, 12, 8)),
        _panel("table", "Image sizes",
               "Compressed (registry) and uncompressed (engine) size and layer count of each framework image.",
               [_target('max by (benchmark, image, framework, variant, kind) '
                        '(startbench_image_size_bytes{benchmark=~"$benchmark", framework=~"$framework"})',
                        instant=True, table=True),
                _target('max by (benchmark, image, framework, variant) '
                        '(startbench_image_layers{benchmark=~"$benchmark", framework=~"$framework"})',
                        ref="B", instant=True, table=True)], "bytes", (0, 25, 12, 8),
               {"showHeader": True}, [{"id": "merge", "options": {}},
                                      {"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                     "renameByName": {"Value #A": "bytes",
                                                                                      "Value #B": "layers"}}}]),
        _panel("bargauge", "Failed runs by reason",
               "Runs that did not reach a first step, by result and reason (ErrImagePull, Unschedulable, OOMKilled, "
               "...), since the operator started.",
               [_target('sum by (result, reason) (startbench_runs_total{benchmark=~"$benchmark",result!="Succeeded"})',
                        "{{result}} {{reason}}", instant=True)], "short", (12, 25, 12, 8),
               {"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True}),
        _panel("stat", "Runs by result", "Finished runs by result since the operator started.",
               [_target('sum by (result) (startbench_runs_total{benchmark=~"$benchmark"})', "{{result}}",
                        instant=True)], "short", (0, 33, 12, 5), {"reduceOptions": {"calcs": ["lastNotNull"]}}),
    ]
    return _dashboard("startbench-startup", "startbench / pod startup",
                      "From kubectl apply to the first training step, phase by phase, per image, node and cache state.",
                      panels, [_datasource_variable(), _variable("benchmark", "benchmark", "startbench_runs_total"),
                               _variable("framework", "framework", "startbench_phase_seconds_count"),
                               _variable("node", "node", "startbench_phase_seconds_count")])


def _training_dashboard() -> dict:
    sel = RUN_SEL
    by = "benchmark, image, model, node"
    panels = [
        _panel("timeseries", "Training throughput", "Samples per second in each run's steady window (in-pod report).",
               [_target(f"max by ({by}) (startbench_training_samples_per_second{{{sel}}})",
                        "{{benchmark}} {{image}} {{model}} {{node}}")], "short", (0, 0, 12, 8)),
        _panel("timeseries", "Achieved TFLOP/s", "Model FLOPs per second achieved in the steady window.",
               [_target(f"max by ({by}) (startbench_training_tflops{{{sel}}})",
                        "{{benchmark}} {{image}} {{model}} {{node}}")], "short", (12, 0, 12, 8)),
        _panel("timeseries", "GPU utilisation", "Mean NVML GPU utilisation during the run (GPU runs only).",
               [_target(f"max by ({by}) (startbench_training_gpu_utilization_ratio{{{sel}}})",
                        "{{benchmark}} {{image}} {{model}} {{node}}")], "percentunit", (0, 8, 12, 8),
               custom={"axisSoftMax": 1}),
        _panel("timeseries", "Model FLOPs utilisation", "Achieved over the GPU model's peak TFLOP/s (GPU runs only).",
               [_target(f"max by ({by}) (startbench_training_mfu{{{sel}}})",
                        "{{benchmark}} {{image}} {{model}} {{node}}")], "percentunit", (12, 8, 12, 8),
               custom={"axisSoftMax": 1}),
        _panel("stat", "Operator up", "1 while the operator's Kopf loop runs (startbench_operator_up).",
               [_target("max(startbench_operator_up)", "up", instant=True)], "short", (0, 16, 8, 5),
               {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}),
        _panel("timeseries", "Benchmarks in progress", "Benchmarks that are building or running now.",
               [_target("sum(startbench_benchmarks_active)", "active")], "short", (8, 16, 8, 5)),
        _panel("timeseries", "Reconcile errors", "Handler invocations that raised an unexpected error (0 is good).",
               [_target("sum by (handler) (startbench_reconcile_errors_total) or vector(0)", "{{handler}}")],
               "short", (16, 16, 8, 5)),
    ]
    return _dashboard("startbench-training", "startbench / training and operator",
                      "In-pod training metrics per run (throughput, TFLOP/s, MFU, GPU utilisation) and the "
                      "operator's own health.",
                      panels, [_datasource_variable(),
                               _variable("benchmark", "benchmark", "startbench_training_samples_per_second"),
                               _variable("framework", "framework", "startbench_training_samples_per_second"),
                               _variable("node", "node", "startbench_training_samples_per_second")])


def _dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    for number, panel in enumerate(panels, 1):
        panel["id"] = number
    return {"uid": uid, "title": title, "description": description, "tags": ["startbench"], "editable": True,
            "schemaVersion": 39, "version": 1, "timezone": "browser", "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "graphTooltip": 1,
            "templating": {"list": variables}, "annotations": {"list": []}, "panels": panels, "links": []}


DASHBOARDS = {"startup": _startup_dashboard, "training": _training_dashboard}


def panel_queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL expression) of every target of every panel."""
    return [(panel["title"], target["refId"], target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Fill in dashboard variables as Grafana would: $name and ${name}; a missing one is an error."""
    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)
