import csv
import io
import json

import pytest

import argparse

from startbench.cli import main as cli
from startbench.cli import results as results_cli
from startbench.runtime.metrics import PHASES
from startbench.core.results import CSV_COLUMNS, render, run_row

RECORDS = [
    {"name": "b1-slim-n0-c1", "image": "slim", "node": "sim-gpu-00", "cache": "cold", "repetition": 1, "order": 0,
     "result": "Succeeded", "reason": "Completed", "message": "ok", "timeToFirstStepMs": 12_500.0,
     "timeline": {"cacheObserved": "miss", "phases": {
         "scheduling": {"ms": 20.0, "source": "watch:PodScheduled"},
         "waiting_to_pull": {"ms": 480.0, "source": "event:Pulling",
                             "covers": ["waiting_to_pull", "pulling"]}}},
     "pull": {"seconds": 9.5, "withWaitSeconds": 9.7, "imageSizeBytes": 957000000},
     "report": {"valid": True, "ok": True, "metrics": {"samples_per_s": 812.5}}},
    {"name": "b1-slim-n0-w1", "image": "slim", "node": "sim-gpu-00", "cache": "warm", "repetition": 1, "order": 1,
     "result": "Failed", "reason": "OOMKilled", "message": "the container ran out of memory, lower batchSize",
     "timeline": {"cacheObserved": "hit", "phases": {}}, "report": {"present": False, "problem": "no report"}},
]
BENCH = {"metadata": {"name": "b1", "namespace": "team"}, "spec": {"repetitions": 1},
         "status": {"phase": "PartiallyFailed", "progress": "2/2", "p50TimeToFirstStepSeconds": 12.5,
                    "conditions": [{"type": "ThresholdsMet", "status": "False", "reason": "ThresholdExceeded",
                                    "message": "p99 timeToFirstStep of slim is 70s, limit 60s"}],
                    "summaries": [{"image": "slim", "cache": "miss", "metric": "timeToFirstStep", "count": 1,
                                   "p50Seconds": 12.5, "p90Seconds": 12.5, "p99Seconds": 12.5, "minSeconds": 12.5,
                                   "maxSeconds": 12.5}],
                    "thresholds": [{"metric": "timeToFirstStep", "quantile": "p99", "maxSeconds": 60, "image": "slim",
                                    "count": 1, "observedSeconds": 70.0, "met": False}]}}


def test_row_keeps_exact_phases_and_blanks_merged_ones():
    row = run_row(RECORDS[0])
    assert list(row) == list(CSV_COLUMNS)
    assert row["scheduling_s"] == 0.02 and row["waiting_to_pull_s"] is None and row["pulling_s"] is None
    assert row["time_to_first_step_s"] == 12.5 and row["cache_observed"] == "miss"
    assert (row["pull_s"], row["image_size_bytes"], row["samples_per_s"]) == (9.5, 957000000, 812.5)


def test_csv_has_one_row_per_run_and_parses():
    rows = list(csv.DictReader(io.StringIO(render("csv", BENCH, RECORDS))))
    assert [r["run"] for r in rows] == ["b1-slim-n0-c1", "b1-slim-n0-w1"]
    assert rows[1]["reason"] == "OOMKilled" and rows[1]["time_to_first_step_s"] == ""
    assert set(f"{p}_s" for p in PHASES) <= set(rows[0])


def test_json_carries_status_and_runs():
    doc = json.loads(render("json", BENCH, RECORDS))
    assert doc["name"] == "b1" and doc["phase"] == "PartiallyFailed" and doc["progress"] == "2/2"
    assert doc["runs"] == RECORDS and doc["thresholds"][0]["met"] is False


def test_table_shows_summary_thresholds_and_failures():
    text = render("table", BENCH, RECORDS)
    assert "team/b1" in text and "PartiallyFailed" in text and "2/2" in text
    assert "timeToFirstStep" in text and "12.500" in text and "p50 time to first step 12.500 s" in text
    assert "60.000" in text  # whole seconds from the API server print like the rest
    assert "ThresholdsMet=False" in text and "NO" in text
    assert "Failed runs (1 of 2)" in text and "OOMKilled" in text


def test_table_of_a_fresh_benchmark():
    text = render("table", {"metadata": {"name": "b"}}, [])
    assert "No run has ended yet." in text and "no run has reached a first step" in text


def test_unknown_format():
    with pytest.raises(ValueError, match="table, json, csv"):
        render("xml", BENCH, RECORDS)


def test_subcommand_is_registered():
    assert ("results", "startbench.cli.results") in cli.SUBCOMMANDS
    parser = argparse.ArgumentParser()
    results_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["results", "b1", "--format", "csv", "-n", "team"])
    assert (args.name, args.format, args.namespace) == ("b1", "csv", "team")


@pytest.mark.parametrize("command", ["results", "capacity"])
def test_a_kubeconfig_that_cannot_be_used_is_one_clear_line(command, tmp_path, monkeypatch):
    extra = ["--pods", "1"] if command == "capacity" else []
    with pytest.raises(SystemExit) as err:
        cli.main([command, "b1", "--kubeconfig", str(tmp_path / "missing"), *extra])
    assert str(err.value).startswith(f"startbench: cannot use the kubeconfig {tmp_path / 'missing'}")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent-too"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SystemExit) as err:
        cli.main([command, "b1", *extra])
    assert "no kubeconfig found and not running in a cluster" in str(err.value)


def test_table_and_json_show_the_node_context():
    from startbench.core.nodecontext import node_context
    node = {"metadata": {"name": "real-0", "annotations": {}},
            "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.6.20", "kubeletVersion": "v1.33.13"}}}
    bench = {**BENCH, "status": {**BENCH["status"], "nodeContext": [
        node_context(node, {"kubeletconfig": {"serializeImagePulls": False, "maxParallelImagePulls": 4}})]}}
    text = render("table", bench, RECORDS)
    assert "Nodes" in text and "containerd://1.6.20" in text and "v1.33.13" in text and "kubelet configz" in text
    assert json.loads(render("json", bench, RECORDS))["nodeContext"][0]["maxParallelImagePulls"] == 4
