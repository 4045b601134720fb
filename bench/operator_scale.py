"""How the operator holds up at scale: thousands of run pods over hundreds of simulated GPU nodes.

Creates its own pool of simulated nodes (bench-gpu-*, label startbench.dev/pool=bench) on the running local
cluster (and says how long they took to be Ready), runs the operator as a subprocess scoped to its own
namespace, applies one Benchmark of --nodes nodes x --repetitions (cold), and reports:

- the operator's CPU seconds per pod and its peak memory (VmHWM);
- API requests per pod, from the API server's own metrics (apiserver_request_total, scraped before and after
  with the cluster's admin certificate): every client's requests while the benchmark ran (the operator, the
  scheduler, KWOK, the pull simulator), by resource and verb;
- runs lost (planned but not recorded, or recorded twice) and orphan pods, which must be 0;
- boundaries that came from a fallback source instead of the watch or the kubelet event (each record's
  timeline names its sources, docs/benchmark.md), and boundaries not observed at all;
- wall time per wave (a repetition: first pod created to last run recorded).

Everything it created is deleted at the end. The result is kept under bench/results/ (bench/keep.py: date,
commit, machine, command, load average).

    python3 bench/operator_scale.py --nodes 1000 --repetitions 5                       # 5,000 runs, fan-out
    python3 bench/operator_scale.py --nodes 1000 --repetitions 1 --mode sequential --parallelism 200
    python3 bench/operator_scale.py --nodes 100 --profile /tmp/profile.svg             # py-spy, small scale

Needs `startbench cluster up` first. Numbers are for this machine at this moment: they are kept, never
asserted.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import urllib3
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "bench"))

from keep import Keeper  # noqa: E402
from startbench.localcluster import cluster as localcluster  # noqa: E402
from startbench.localcluster import nodes as simnodes  # noqa: E402
from startbench.localcluster import paths  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
METRICS_URL = "https://127.0.0.1:16443/metrics"
POOL = ("startbench.dev/pool", "bench")
# The boundaries the watch and the kubelet events are meant to give (docs/benchmark.md's timeline table), by the
# phase that ends at each: anything else there is a fallback; no phase ending there means not observed.
PRIMARY = {"scheduling": {"watch:PodScheduled"},
           "waiting_to_pull": {"event:Pulled-duration", "event:Pulled-present"},
           "pulling": {"event:Pulled"},
           "create_start": {"watch:ContainerRunning", "report:process_start"}}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_SAMPLE = re.compile(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_requests() -> collections.Counter:
    """apiserver_request_total by (resource/subresource, verb), read from the API server's /metrics."""
    pki = paths.cluster_dir() / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    text = urllib.request.urlopen(METRICS_URL, context=context, timeout=30).read().decode()
    counts: collections.Counter = collections.Counter()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(1)))
            resource = labels.get("resource", "") + ("/" + labels["subresource"] if labels.get("subresource") else "")
            counts[(resource, labels.get("verb", ""))] += float(m.group(2))
    return counts


def boundary_sources(records: list[dict]) -> dict:
    """Per boundary (by the phase that ends there): how many runs had it from the watch or event, from a fallback
    source (named), or not at all; and the runs whose pull or start boundary was not from the watch or event."""
    out: dict = {}
    for phase, primary in PRIMARY.items():
        counts: collections.Counter = collections.Counter()
        for r in records:
            p = ((r.get("timeline") or {}).get("phases") or {})
            # The entry whose span ends at this boundary: the phase itself, or a merged one that covers it last.
            ended = next((q for name, q in p.items() if (q.get("covers") or [name])[-1] == phase), None)
            source = ended.get("source") if ended else None
            counts["primary" if source in primary else f"fallback:{source}" if source else "notObserved"] += 1
        out[phase] = dict(counts)
    pull_or_start = 0
    for r in records:
        p = ((r.get("timeline") or {}).get("phases") or {})
        sources = {name: (p.get(name) or {}).get("source") for name in ("waiting_to_pull", "pulling", "create_start")}
        if any(sources[n] not in PRIMARY[n] for n in sources) and r.get("result") == "Succeeded":
            pull_or_start += 1
    out["succeededRunsWithPullOrStartNotFromWatchOrEvent"] = pull_or_start
    return out


def retried(call, *args, attempts: int = 60, **kwargs):
    """An API call, again every 2 s while the API server is away (the shared cluster's API server is restarted
    by other tests now and then): a measurement should not end, or leave its nodes behind, for that."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except (urllib3.exceptions.HTTPError, OSError, client.exceptions.ApiException) as err:
            if isinstance(err, client.exceptions.ApiException) and err.status not in (0, 429, 500, 503, 504):
                raise
            if attempt == attempts - 1:
                raise
            print(f"  (API call failed: {str(err)[:100]}; again in 2s)", flush=True)
            time.sleep(2)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it has not stopped in 30 s (Kopf may take longer with thousands of objects)."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--mode", choices=("fanOut", "sequential"), default="fanOut")
    parser.add_argument("--parallelism", type=int, help="default: --nodes")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--profile", help="record the operator with py-spy into this SVG (slows it down a little)")
    parser.add_argument("--log-level", default="WARNING", help="the operator's (its log: /tmp/NAMESPACE-operator.log)")
    parser.add_argument("--no-keep", action="store_true", help="print only (a trial run)")
    args = parser.parse_args()
    # A SIGTERM (a `timeout`) ends it like ^C: the finally blocks stop the operator and delete what it created.
    signal.signal(signal.SIGTERM, _interrupt)
    keeper = Keeper("operator_scale")
    parallelism = args.parallelism or args.nodes

    kubeconfig = str(paths.kubeconfig_path())
    api = config.new_client_from_config(kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-scale-{uuid.uuid4().hex[:6]}"
    pool = simnodes.NodePool("bench-gpu", args.nodes, gpus=8)
    manifests = simnodes.manifests([pool])
    for m in manifests:
        m["metadata"]["labels"][POOL[0]] = POOL[1]
    names = [m["metadata"]["name"] for m in manifests]
    print(f"creating {len(manifests)} simulated GPU nodes", flush=True)
    try:
        return measure(args, keeper, core, custom, kubeconfig, namespace, manifests, names, parallelism)
    finally:
        cleanup(core, custom, namespace)


def cleanup(core, custom, namespace: str) -> None:
    """The benchmark's namespace and the bench's node pool, whatever happened."""
    def exists() -> bool:
        return bool(retried(core.list_namespace, field_selector=f"metadata.name={namespace}").items)

    if exists():
        retried(core.delete_namespace, namespace)
    deadline = time.monotonic() + 300
    while exists() and time.monotonic() < deadline:
        # The operator is gone: release the Benchmark's finalizer so the namespace can go.
        for b in retried(custom.list_namespaced_custom_object, "startbench.dev", "v1alpha1", namespace,
                         "benchmarks")["items"]:
            if b["metadata"].get("finalizers"):
                retried(custom.patch_namespaced_custom_object, "startbench.dev", "v1alpha1", namespace, "benchmarks",
                        b["metadata"]["name"], {"metadata": {"finalizers": []}})
        time.sleep(2)
    retried(core.delete_collection_node, label_selector=f"{POOL[0]}={POOL[1]}")
    print(f"deleted namespace {namespace} and the nodes labelled {POOL[0]}={POOL[1]}", flush=True)


def measure(args, keeper, core, custom, kubeconfig: str, namespace: str, manifests: list[dict], names: list[str],
            parallelism: int) -> int:
    nodes_seconds = localcluster.create_simulated_nodes(core, manifests, names, timeout=600)
    print(f"  {len(manifests)} nodes Ready in {nodes_seconds:.1f}s", flush=True)
    retried(core.create_namespace, {"metadata": {"name": namespace}})
    while not retried(core.list_namespaced_service_account, namespace,
                      field_selector="metadata.name=default").items:
        time.sleep(0.2)

    env = {**os.environ, "KUBECONFIG": kubeconfig, "STARTBENCH_NAMESPACES": namespace,
           "STARTBENCH_METRICS_PORT": "0", "PYTHONPATH": str(REPO / "operator"), "STARTBENCH_LOG_LEVEL": args.log_level,
           "STARTBENCH_MAX_PARALLEL_PODS": str(max(parallelism, 1000))}
    log_path = f"/tmp/{namespace}-operator.log"
    log = open(log_path, "wb")

    def start_operator() -> subprocess.Popen:
        log.flush()
        return subprocess.Popen([sys.executable, "-m", "startbench", "operator", "--liveness", ""], env=env,
                                stdout=log, stderr=subprocess.STDOUT)

    log_from = 0  # where the current operator's lines begin in its log
    operator = start_operator()
    restarts, cpu_earlier = 0, 0.0
    profiler = None
    time.sleep(3)
    if args.profile:
        profiler = subprocess.Popen(["py-spy", "record", "-o", args.profile, "--pid", str(operator.pid),
                                     "--rate", "50", "--nonblocking"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    cpu_before = cpu_seconds(operator.pid)
    requests_before = retried(api_requests)
    runs = args.nodes * args.repetitions
    body = {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark", "metadata": {"name": "scale"},
            "spec": {"images": [{"name": "base", "image": "127.0.0.1:5000/startbench/base:bookworm",
                                 "framework": "pytorch", "variant": "naive"}],
                     "nodes": {"selector": {"matchLabels": {POOL[0]: POOL[1]}},
                               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                               "gpusPerPod": 1, "maxNodes": args.nodes},
                     "cache": "cold", "repetitions": args.repetitions, "mode": args.mode,
                     "parallelism": parallelism, "runTimeoutSeconds": 900}}
    started = time.monotonic()
    retried(custom.create_namespaced_custom_object, "startbench.dev", "v1alpha1", namespace, "benchmarks", body)
    status: dict = {}
    loads: list[float] = []  # the 1-minute load average every 5 s: CPU figures on a busy machine are not trustworthy
    try:
        while time.monotonic() - started < args.timeout:
            status = retried(custom.get_namespaced_custom_object, "startbench.dev", "v1alpha1", namespace,
                             "benchmarks", "scale").get("status", {})
            if status.get("phase") in ("Succeeded", "PartiallyFailed", "Failed"):
                break
            if (not status.get("phase") and time.monotonic() - started > 30 and restarts < 3
                    and b"Unresolved resources cannot be served" in Path(log_path).read_bytes()[log_from:]):
                # Kopf gives up on a resource it could not resolve when it started (an API server restarting at
                # that moment: "Unresolved resources cannot be served"). Start it again; its CPU so far counts.
                print("  the operator could not resolve Benchmarks when it started: starting it again", flush=True)
                cpu_earlier += cpu_seconds(operator.pid) - cpu_before
                stop(operator)
                log_from = Path(log_path).stat().st_size
                operator, restarts = start_operator(), restarts + 1
                time.sleep(3)
                cpu_before, started = cpu_seconds(operator.pid), time.monotonic()
            loads.append(round(os.getloadavg()[0], 2))
            print(f"  {time.monotonic() - started:6.0f}s  {status.get('phase')}  {status.get('progress')}  "
                  f"load {loads[-1]:.1f}", flush=True)
            time.sleep(5)
        wall = time.monotonic() - started
        cpu = cpu_seconds(operator.pid) - cpu_before + cpu_earlier
        peak = peak_rss_mib(operator.pid)
        requests_after = retried(api_requests)
        maps = retried(core.list_namespaced_config_map, namespace, label_selector="startbench.dev/benchmark=scale")
        records = [r for m in maps.items for r in json.loads((m.data or {}).get("records.json", "[]"))]
        recorded = [r["name"] for r in records]
        leftover = retried(core.list_namespaced_pod, namespace).items
    finally:
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its SVG
            profiler.wait(60)
        stop(operator)
    # A counter that went down: the API server restarted meanwhile (the shared cluster's tests restart it), and
    # the requests before its restart are missing from the count.
    restarted = any(requests_after.get(k, 0) < n for k, n in requests_before.items())
    requests = {k: requests_after[k] - requests_before.get(k, 0) for k in requests_after}
    requests = {f"{r} {v}": n for (r, v), n in sorted(requests.items(), key=lambda kv: -kv[1]) if n > 0}
    total_requests = sum(requests.values())
    waves = []
    for rep in sorted({r["repetition"] for r in records}):
        wave = [r for r in records if r["repetition"] == rep]
        created = [r["createdMs"] for r in wave]
        finished = [r.get("finishedMs") or r["createdMs"] for r in wave]
        pulls = sorted((r.get("pull") or {}).get("seconds", 0.0) for r in wave)
        waves.append({"repetition": rep, "runs": len(wave), "createdWithinSeconds": (max(created) - min(created)) / 1000,
                      "wallSeconds": (max(finished) - min(created)) / 1000,
                      "pullP50Seconds": pulls[len(pulls) // 2] if pulls else None,
                      "pullMaxSeconds": pulls[-1] if pulls else None})
    sources = boundary_sources(records)
    # Planned: what the operator planned (status.total), which is fewer than nodes x repetitions when it excluded
    # nodes (not Ready at that moment, say: the shared machine's load can delay KWOK's heartbeats); both are kept.
    planned = int(status.get("total") or runs)
    lost = planned - len(set(recorded)) + (len(recorded) - len(set(recorded)))
    result = {
        "nodes": args.nodes, "repetitions": args.repetitions, "mode": args.mode, "parallelism": parallelism,
        "runsAsked": runs, "runsPlanned": planned, "nodesUsed": len(status.get("nodes") or []),
        "runsRecorded": len(set(recorded)), "records": len(recorded), "runsLost": lost,
        "orphanPods": sum(1 for p in leftover if p.metadata.name not in set(recorded)),
        "results": dict(collections.Counter(f"{r['result']}/{r['reason']}" for r in records)),
        "phase": status.get("phase"), "wallSeconds": round(wall, 1),
        "operatorCpuSeconds": round(cpu, 2), "operatorRestartsByTheBench": restarts, "operatorCpuMsPerPod": round(cpu / max(planned, 1) * 1000, 2),
        "operatorPeakRssMiB": round(peak, 1),
        "apiRequests": round(total_requests), "apiServerRestartedDuringRun": restarted, "apiRequestsPerPod": round(total_requests / max(planned, 1), 2),
        "apiRequestsByResourceVerb": {k: round(v) for k, v in requests.items()},
        "boundarySources": sources, "waves": waves, "recordConfigMaps": len(maps.items),
        "simulatedNodesReadySeconds": round(nodes_seconds, 1),
        "loadAverageDuringRun": {"min": min(loads, default=None), "median": sorted(loads)[len(loads) // 2] if loads
                                 else None, "max": max(loads, default=None)}, "operatorLog": log_path,
        **({"profile": args.profile} if args.profile else {}),
    }
    print()
    print(f"benchmark phase          {status.get('phase')}  ({status.get('progress')})")
    print(f"runs planned             {planned} of {runs} asked ({len(status.get('nodes') or [])} nodes used)")
    print(f"runs recorded            {len(set(recorded))}  (records: {len(recorded)}) {result['results']}")
    print(f"runs lost                {lost}")
    print(f"orphan pods              {result['orphanPods']}")
    print(f"wall time                {wall:.1f}s")
    print(f"operator CPU             {cpu:.1f}s  = {cpu / max(planned, 1) * 1000:.1f} ms per pod")
    print(f"operator peak memory     {peak:.0f} MiB")
    print(f"API requests             {total_requests:.0f} = {total_requests / max(planned, 1):.1f} per pod (all clients); top: "
          + ", ".join(f"{k} {v:.0f}" for k, v in list(requests.items())[:6]))
    print(f"boundary sources         {json.dumps(sources)}")
    for w in waves:
        print(f"wave {w['repetition']}: {w['runs']} runs, {w['wallSeconds']:.1f}s wall, created within "
              f"{w['createdWithinSeconds']:.1f}s; pull p50 {w['pullP50Seconds']:.2f}s, max {w['pullMaxSeconds']:.2f}s")
    print(f"record ConfigMaps        {len(maps.items)}")
    print(f"simulated nodes Ready    {nodes_seconds:.1f}s for {args.nodes}")
    if not args.no_keep:
        keeper.keep(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
