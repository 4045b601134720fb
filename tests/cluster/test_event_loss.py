"""Event loss on the real local cluster: the pull simulator drops the kubelet's Pulled and Started events of every
pod on one node (sim.startbench.dev/drop-events on the node) and delays every event on another; each run still
ends Succeeded with a timeline that names its sources, the fallback ones included."""

from __future__ import annotations

import uuid

import pytest

from startbench.localcluster import cluster, nodes, stages
from tests.cluster import benchmarks as bm


@pytest.fixture
def lossy_nodes(core):
    """Two simulated GPU nodes of this test's own pool: one drops events, one delays them. Deleted afterwards."""
    pool = f"loss-{uuid.uuid4().hex[:5]}"
    manifests = nodes.manifests([nodes.NodePool(pool, 2, gpus=8)])
    switches = [{stages.DROP_EVENTS: "Pulled,Started"}, {stages.DELAY_EVENTS: "3s"}]
    for manifest, switch in zip(manifests, switches):
        manifest["metadata"]["labels"]["startbench.dev/pool"] = pool
        manifest["metadata"]["annotations"].update(switch)
    names = [m["metadata"]["name"] for m in manifests]
    try:
        cluster.create_simulated_nodes(core, manifests, names)
        yield pool, names
    finally:
        for name in names:
            core.delete_node(name)


def test_runs_whose_events_were_dropped_or_delayed_end_with_timelines_naming_their_sources(
        operator, custom, core, namespace, lossy_nodes):
    pool, (dropping, delaying) = lossy_nodes
    body = bm.benchmark("lossy", [{"name": "base", "image": bm.BASE_IMAGE, "framework": "pytorch",
                                   "variant": "naive"}], pool=pool, cache="cold", repetitions=2, parallelism=2)
    bm.create(custom, namespace, body)
    done = bm.wait_finished(custom, namespace, "lossy", timeout=240)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    records = bm.records(core, namespace, "lossy")
    assert len(records) == 4
    for record in records:
        assert record["result"] == "Succeeded", record
        phases = record["timeline"]["phases"]
        assert all(p.get("source") for p in phases.values()), phases
        if record["node"] == dropping:
            # No Pulled: pull start falls back to the Pulling event, and the unseen `pulled` is covered by the
            # phase before it, up to the container start the watch saw (the Started event was dropped too).
            assert phases["waiting_to_pull"]["source"] == "event:Pulling", phases
            assert phases["pulling"]["covers"] == ["pulling", "create_start"], phases
            assert phases["pulling"]["source"] == "watch:ContainerRunning", phases
        else:
            assert record["node"] == delaying
            # Events three seconds late: whatever arrived before the run was recorded is used, under its own name;
            # a boundary that had not arrived is covered, never invented.
            sources = {p["source"] for p in phases.values()}
            assert sources <= {"watch:PodScheduled", "event:Scheduled", "event:Pulled-duration", "event:Pulled",
                               "event:Pulling", "watch:ContainerRunning", "event:Started"}, phases
            assert record["timeline"]["end"] == "container_started", record["timeline"]
