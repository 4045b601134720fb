"""The observed cache state from evidence (core/cache.py): the kubelet's event, the node's image list read before
the run, and the operator's purges."""

from __future__ import annotations

import pytest

from startbench.core.cache import NodeEvidence, counts_as, downloaded, node_evidence, observed_cache
from startbench.core.kubelet_events import parse_event
from startbench.core.timeline import Observations, build_timeline, observe_event, observe_pod

IMAGE = "127.0.0.1:5000/startbench/base:bookworm"
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
# node.status.images as the kubelet reports them with containerd: the tag and the repo digest of each image.
NODE = [{"names": [f"127.0.0.1:5000/startbench/base@{D1}", IMAGE], "sizeBytes": 48_000_000},
        {"names": ["127.0.0.1:5000/startbench/pause@sha256:" + "9" * 64, "127.0.0.1:5000/startbench/pause:3.10"],
         "sizeBytes": 700_000}]


def test_node_evidence_reads_the_kubelets_image_list():
    assert node_evidence(IMAGE, NODE) == NodeEvidence(True, (D1,))
    # By digest, and by another spelling of the same tag.
    assert node_evidence(f"127.0.0.1:5000/startbench/base@{D1}", NODE).image_on_node
    assert not node_evidence("127.0.0.1:5000/startbench/base:trixie", NODE).image_on_node
    assert node_evidence("127.0.0.1:5000/startbench/base:trixie", NODE).digests == (D1,)  # the repo's digests
    assert node_evidence("busybox", [{"names": ["docker.io/library/busybox:latest"]}]).image_on_node
    assert node_evidence(IMAGE, []) == NodeEvidence(False, ())
    # A purge before the run: not on the node, whatever the list read before it said.
    assert node_evidence(IMAGE, NODE, purged=True) == NodeEvidence(False, (), True)
    assert not node_evidence("Not A Reference", NODE).image_on_node


def test_an_earlier_run_that_got_the_image_onto_the_node_counts_when_the_kubelets_list_is_stale():
    earlier = {"name": "b-base-n0-c1", "pull": {"imageID": f"127.0.0.1:5000/startbench/base@{D1}"}}
    # The kubelet refreshes status.images every few seconds: right after the first pull it may not list it yet.
    assert node_evidence(IMAGE, [], earlier=earlier) == NodeEvidence(True, (D1,), False, "b-base-n0-c1")
    assert node_evidence(IMAGE, None, earlier=earlier).image_on_node
    assert node_evidence(IMAGE, [], purged=True, earlier=earlier) == NodeEvidence(False, (), True)
    state, record = observed_cache(False, node_evidence(IMAGE, [], earlier=earlier), f"x@{D1}")
    assert state == "revalidated" and "b-base-n0-c1" in record["why"] and record["pulledBy"] == "b-base-n0-c1"


@pytest.mark.parametrize("evidence", [NodeEvidence(True, (D1,)), NodeEvidence(False, (), True), NodeEvidence(False),
                                      NodeEvidence(True, (D1,), False, "b-x-n0-c1")])
def test_evidence_round_trips_through_the_pods_annotations(evidence):
    assert NodeEvidence.from_annotations(evidence.annotations()) == evidence
    assert NodeEvidence.from_annotations({}) is None


@pytest.mark.parametrize("cache_hit, evidence, image_id, state", [
    (True, NodeEvidence(True, (D1,)), None, "hit"),
    (None, NodeEvidence(True, (D1,)), None, "unknown"),
    (False, None, None, "miss"),                                      # no evidence: a download, said so
    (False, NodeEvidence(False), None, "miss"),                       # the node did not have it
    (False, NodeEvidence(False, (), True), None, "miss"),             # purged first
    (False, NodeEvidence(True, (D1,)), f"x@{D1}", "revalidated"),     # had it, pulled the same digest
    (False, NodeEvidence(True, (D1,)), None, "revalidated"),          # had it (no imageID to compare)
    (False, NodeEvidence(True, (D1,)), f"x@{D2}", "miss"),            # the tag moved: new layers
])
def test_observed_cache_decision(cache_hit, evidence, image_id, state):
    got, record = observed_cache(cache_hit, evidence, image_id)
    assert got == state
    assert record["event"] == {True: "AlreadyPresent", False: "Pulled", None: None}[cache_hit]
    if cache_hit is False:
        assert record["why"]


def test_a_pod_with_evidence_gives_a_revalidated_timeline_and_the_record_says_why():
    pod = {"metadata": {"annotations": NodeEvidence(True, (D1,)).annotations()}, "spec": {"nodeName": "n0"},
           "status": {"phase": "Running"}}
    obs = observe_pod(Observations(created_ms=1000.0), pod, 1100.0)
    obs = observe_event(obs, parse_event("Pulled", f'Successfully pulled image "{IMAGE}" in 22ms (22ms including '
                                                   'waiting). Image size: 48000000 bytes.'), 1500.0)
    timeline = build_timeline(obs).to_dict()
    assert timeline["cacheObserved"] == "revalidated"
    assert timeline["cacheEvidence"]["imageOnNode"] is True and "transferred nothing" in timeline["cacheEvidence"]["why"]
    # The evidence survives the operator's restart (observations are persisted as JSON on the pod).
    assert Observations.from_dict(obs.to_dict()) == obs


def test_only_downloads_measure_throughput_and_thresholds_count_the_observed_state():
    assert downloaded({"timeline": {"cacheObserved": "miss"}})
    assert not downloaded({"timeline": {"cacheObserved": "revalidated"}}) and not downloaded({})
    assert counts_as("miss", "cold") and not counts_as("revalidated", "cold") and not counts_as("hit", "cold")
    assert counts_as("hit", "warm") and not counts_as("miss", "warm")
    assert all(counts_as(s, None) for s in ("hit", "miss", "revalidated", "unknown"))
