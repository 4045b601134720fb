#!/usr/bin/env python3
"""How long the operator is away when its leader fails: the chart installed as a user installs it (two replicas
on the local cluster's real node, the operator image built with `startbench images build`), a benchmark running
(24 sequential runs of the base image on the real node, so the pull simulator's load does not enter),
and the leading replica taken away mid-benchmark, `--kills` times each way:

  crash     SIGKILL of the leader's process on the node: nothing runs after it; the standby takes over once the
            Lease has gone unrenewed for leaseDurationSeconds (15 s by default) by its own clock;
  delete    `kubectl delete pod` of the leader: SIGTERM, Kopf stops, the Lease is released, the standby takes it
            at its next try (retryPeriodSeconds, 2 s).

For each: seconds from the kill to another replica holding the Lease, and to the first run pod the new leader
creates (what a user sees resume). Every benchmark must end Succeeded with every run recorded once and no pod
created twice, or the script fails.

  python3 bench/ha_takeover.py [--kills 3]

Needs `startbench cluster up` with the real node. Not part of the test suite (tests/cluster/test_chart_e2e.py
checks one crash with bounds). The result is kept under bench/results/ (bench/keep.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from kubernetes import client, config  # noqa: E402

from keep import Keeper  # noqa: E402
from startbench.localcluster import paths  # noqa: E402
from tests.cluster import benchmarks as bm  # noqa: E402
from tests.cluster import release as rel  # noqa: E402
from tests.cluster.helpers import wait_for  # noqa: E402


def one(kind: str, r: rel.Release, watched: str, api, core, custom, coordination, index: int) -> dict:
    wait_for(lambda: len([p for p in r.operator_pods(core) if all(s.ready for s in p.status.container_statuses or [])])
             == 2, timeout=180, what="two operator pods ready")
    name = f"ha-{kind}-{index}"
    watch = rel.PodWatch(api, watched)
    try:
        bm.create(custom, watched, rel.long_benchmark(name, repetitions=12, real=True))
        wait_for(lambda: len(rel.records(core, watched, name)) >= 3, timeout=180, what="three runs recorded")
        leader, holder = r.leader(coordination), r.lease_holder(coordination)
        if kind == "crash":
            t0 = rel.kill_container_process(core, r.namespace, leader)
        else:
            t0 = time.monotonic()
            core.delete_namespaced_pod(leader, r.namespace)
        wait_for(lambda: r.lease_holder(coordination) not in ("", holder), timeout=90, interval=0.05,
                 what="another replica holding the Lease")
        lease_s = time.monotonic() - t0
        first = wait_for(lambda: watch.created_after(t0 + lease_s), timeout=120, interval=0.05,
                         what="a run pod created by the new leader")[0][0]
        body = rel.wait_finished(custom, watched, name, timeout=600)
        status = body["status"]
        records = [x["name"] for x in rel.records(core, watched, name)]
        pods = {n: u for n, u in watch.uids.items() if n.startswith(name)}
        ok = (status["phase"] == "Succeeded" and len(records) == len(set(records)) == status["total"]
              and len(pods) == status["total"] and all(len(u) == 1 for u in pods.values()))
        if not ok:
            raise SystemExit(f"{name}: {status['phase']}, {len(records)} records ({len(set(records))} distinct) of "
                             f"{status['total']}, pods created twice: {[n for n, u in pods.items() if len(u) > 1]}")
        return {"kind": kind, "leaseTakenSeconds": round(lease_s, 2), "firstNewRunPodSeconds": round(first - t0, 2),
                "runs": status["total"], "recordedOnce": True, "podsCreatedOnce": True}
    finally:
        watch.stop()
        custom.delete_namespaced_custom_object("startbench.dev", "v1alpha1", watched, "benchmarks", name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=3, help="takeovers measured each way (default 3)")
    args = parser.parse_args()
    keeper = Keeper("ha_takeover")
    kubeconfig = str(paths.kubeconfig_path())
    api = config.new_client_from_config(kubeconfig)
    core, custom, coordination = client.CoreV1Api(api), client.CustomObjectsApi(api), client.CoordinationV1Api(api)
    digest = rel.build_operator_image()
    suffix = uuid.uuid4().hex[:6]
    r = rel.Release(f"sbh-{suffix}", f"sbh-{suffix}", kubeconfig)
    watched = f"sbh-{suffix}-w"
    for ns in (r.namespace, watched):
        core.create_namespace({"metadata": {"name": ns}})
    wait_for(lambda: core.list_namespaced_service_account(watched, field_selector="metadata.name=default").items)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r.install(rel.values(digest, [watched]), Path(tmp))
        for i in range(args.kills):
            for kind in ("crash", "delete"):
                rows.append(one(kind, r, watched, api, core, custom, coordination, i))
                print(rows[-1], flush=True)
    finally:
        r.helm("uninstall", r.name, "--wait", timeout=240, check=False)
        for ns in (watched, r.namespace):
            core.delete_namespace(ns)
    summary = {}
    for kind in ("crash", "delete"):
        mine = [x for x in rows if x["kind"] == kind]
        summary[kind] = {f: {"median": round(statistics.median(x[f] for x in mine), 2),
                             "max": max(x[f] for x in mine)} for f in ("leaseTakenSeconds", "firstNewRunPodSeconds")}
    result = {"operatorImage": f"{rel.OPERATOR_REPOSITORY}@{digest}", "replicas": 2,
              "leaderElection": {"leaseDurationSeconds": 15, "renewDeadlineSeconds": 10, "retryPeriodSeconds": 2},
              "benchmark": "12 repetitions x cold/warm of the base image (framework none), the real node, sequential",
              "takeovers": rows, "summary": summary}
    keeper.keep(result)
    for kind, fields in summary.items():
        print(f"{kind}: Lease taken {fields['leaseTakenSeconds']['median']} s (max {fields['leaseTakenSeconds']['max']}),"
              f" first new run pod {fields['firstNewRunPodSeconds']['median']} s "
              f"(max {fields['firstNewRunPodSeconds']['max']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
