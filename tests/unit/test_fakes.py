"""The fake ClusterIO keeps the real seam's methods and answers as the API server would."""

from __future__ import annotations

import inspect
import json

import pytest
from kubernetes.client.rest import ApiException

from fakes import FakeClock, FakeClusterIO, make_node, merge_patch
from startbench.core.manifests import BenchmarkRef
from startbench.core.records import chunk_records
from startbench.runtime.kube import ClusterIO

REF = BenchmarkRef("b", "ns", "uid-b")


def _public_methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_fake_cluster_io_has_every_public_method_of_cluster_io_with_the_same_parameters():
    real, fake = _public_methods(ClusterIO), _public_methods(FakeClusterIO)
    assert real, "ClusterIO has no public methods: did the seam move?"
    missing = sorted(set(real) - set(fake))
    assert not missing, f"FakeClusterIO lacks {missing}"
    for name, signature in real.items():
        got = [(p.name, p.kind, p.default) for p in fake[name].parameters.values()]
        want = [(p.name, p.kind, p.default) for p in signature.parameters.values()]
        assert got == want, f"FakeClusterIO.{name}{fake[name]} differs from ClusterIO.{name}{signature}"


def test_status_patches_merge_as_a_json_merge_patch():
    io = FakeClusterIO()
    io.add_benchmark({"metadata": {"name": "b", "namespace": "ns", "uid": "uid-b"}, "spec": {}})
    io.patch_status(REF, {"phase": "Running", "images": {"a": {"reference": "r/a:1", "layers": 3}}})
    io.patch_status(REF, {"images": {"b": {"reference": "r/b:1"}, "a": {"layers": None}}, "message": None})
    assert io.get_benchmark("ns", "b")["status"] == {"phase": "Running", "images": {
        "a": {"reference": "r/a:1"}, "b": {"reference": "r/b:1"}}}
    assert merge_patch({"l": [1, 2]}, {"l": [3]}) == {"l": [3]}  # lists are replaced, not merged
    with pytest.raises(ApiException) as err:
        io.patch_status(BenchmarkRef("gone", "ns", "u"), {"phase": "Running"})
    assert err.value.status == 404


def test_records_written_are_read_back_and_unchanged_chunks_are_not_rewritten():
    io = FakeClusterIO()
    first = chunk_records([{"name": "r1", "finishedMs": 1, "order": 0}])
    assert io.write_records(REF, first, []) == ["b-records-0"]
    assert io.read_records("ns", "b") == first and io.read_records("ns", "other") == []
    io.configmaps[("ns", "b-records-0")]["data"]["marker"] = "kept"
    assert io.write_records(REF, first, first) == ["b-records-0"]
    assert io.configmaps[("ns", "b-records-0")]["data"]["marker"] == "kept"  # not replaced: unchanged
    assert [r["name"] for r in io.records("ns", "b")] == ["r1"]
    with pytest.raises(ApiException):
        io.read_records("ns", "b", ["b-records-7"])


def test_pods_are_created_once_refused_on_request_and_annotated():
    io = FakeClusterIO()
    pod = {"metadata": {"name": "p", "labels": {}, "annotations": {}}, "spec": {}}
    assert io.create_pod("ns", pod) is None and io.create_pod("ns", pod) is None  # the second is a 409
    assert io.created == [("ns", "p")] and io.count("create_pod") == 2
    io.refusals["q"] = "the API server refused the pod (403 Forbidden): quota"
    assert "quota" in io.create_pod("ns", {"metadata": {"name": "q"}, "spec": {}})
    assert ("ns", "q") not in io.pods
    io.annotate_pod("ns", "p", {"k": "v"})
    assert io.pods[("ns", "p")]["metadata"]["annotations"] == {"k": "v"}
    io.delete_pod("ns", "p")
    io.delete_pod("ns", "p")  # a 404 is not an error
    assert io.deleted == [("ns", "p")] and not io.pods


def test_node_annotation_patches_are_conditional_on_the_resource_version():
    io = FakeClusterIO([make_node("n", annotations={"a": "1"})])
    notes, version = io.node_annotations("n")
    assert notes == {"a": "1"}
    assert io.patch_node_annotations("n", {"a": "2"}, version)
    assert not io.patch_node_annotations("n", {"a": "3"}, version)  # stale version: a 409
    io.patch_conflicts = 1
    notes, version = io.node_annotations("n")
    assert not io.patch_node_annotations("n", {"a": "4"}, version)
    notes, version = io.node_annotations("n")
    assert io.patch_node_annotations("n", {"a": "4"}, version)
    assert io.node_metadata("n")[1] == {"a": "4"} and io.node_metadata("gone") == ({}, {})
    assert io.allocatable_gpus(["n", "gone"]) == [1]


def test_node_images_are_the_kubelets_list_or_none_for_a_node_that_cannot_be_read():
    io = FakeClusterIO([make_node("n", images=[{"names": ["r/a@sha256:" + "1" * 64, "r/a:1"], "sizeBytes": 9}])])
    assert io.node_images("n") == [{"names": ["r/a@sha256:" + "1" * 64, "r/a:1"], "sizeBytes": 9}]
    assert io.node_images("gone") is None


def test_exec_answers_in_order_and_agents_are_found_per_node():
    io = FakeClusterIO()
    io.purge_agents[("sys", "n")] = ["agent-1"]
    io.exec_results = [(0, "listing", ""), (1, "", "boom")]
    assert io.running_pods_on_node("sys", "app=x", "n") == ["agent-1"]
    assert io.running_pods_on_node("sys", "app=x", "m") == []
    assert io.exec_in_pod("sys", "agent-1", "agent", ["ls"], 1.0) == (0, "listing", "")
    assert io.exec_in_pod("sys", "agent-1", "agent", ["rm"], 1.0) == (1, "", "boom")
    assert io.exec_in_pod("sys", "agent-1", "agent", ["rm"], 1.0) == (0, "", "")
    assert [c["command"] for c in io.calls_to("exec_in_pod")] == [["ls"], ["rm"], ["rm"]]


def test_secrets_are_read_or_not_found():
    io = FakeClusterIO()
    io.secrets[("ns", "creds")] = {"metadata": {"name": "creds"}, "data": {"token": "dG9rZW4="}}
    assert io.read_secret("ns", "creds")["data"] == {"token": "dG9rZW4="}
    with pytest.raises(ApiException) as err:
        io.read_secret("ns", "other")
    assert err.value.status == 404


def test_events_are_kept_and_the_clock_moves_only_when_told():
    io = FakeClusterIO()
    io.event(REF, "Normal", "Planned", "x" * 2000)
    assert io.events == [{"namespace": "ns", "name": "b", "type": "Normal", "reason": "Planned",
                          "message": "x" * 1024}]
    clock = FakeClock(1000.0)
    assert clock() == clock() == 1000.0
    assert clock.advance(500, s=1) == 2500.0 == clock()
    assert json.dumps(io.get_benchmark("ns", "b")) == "null"
