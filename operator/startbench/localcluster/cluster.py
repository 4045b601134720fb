"""`startbench cluster up | down | status`: bring the local cluster up (building what is missing), report
each component's health, and stop every process it started."""

from __future__ import annotations

import dataclasses
import importlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from startbench.localcluster import components, nodes, paths, pki, stages
from startbench.localcluster.processes import Managed, command_lines

Progress = Callable[[str], None]
# The control plane's processes, newest first (components.control_plane() starts them in the reverse order).
STOP_ORDER = ("simkubelet", "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
CONTROL_PLANE = tuple(reversed(STOP_ORDER))  # start order


class ClusterError(RuntimeError):
    """The cluster could not be brought up; the message says which component and shows its log."""


@dataclasses.dataclass(frozen=True)
class UpOptions:
    gpu_nodes: int = 4
    cpu_nodes: int = 2
    pull_bandwidth: int = 125_000_000          # bytes/s per simulated node
    registry_bandwidth: float = 1_250_000_000  # bytes/s the registry serves to all simulated nodes
    docker: bool = True                        # Docker engine, registries and base image too
    build: bool = True                         # build missing binaries (else fail)
    real_node: bool = True                     # one real kubelet node too (realnode.py); skipped if it cannot run

    def __post_init__(self):
        if not 0 <= self.gpu_nodes <= 1000 or not 0 <= self.cpu_nodes <= 1000:
            raise ValueError("--gpu-nodes and --cpu-nodes must each be between 0 and 1000")
        if self.gpu_nodes + self.cpu_nodes == 0:
            raise ValueError("the cluster needs at least one node: raise --gpu-nodes or --cpu-nodes")
        if self.pull_bandwidth <= 0 or self.registry_bandwidth <= 0:
            raise ValueError("bandwidths must be positive (bytes per second)")


def _state() -> Path:
    return paths.cluster_dir()


def _docker_parts() -> list[tuple[str, object]]:
    """The Docker engine, registries and base image modules, in start order (they live beside this one)."""
    names = ("docker_engine", "registry", "baseimage")
    return [(n, importlib.import_module(f"startbench.localcluster.{n}")) for n in names]


def build_binaries(progress: Progress) -> None:
    missing = paths.binaries().missing()
    if not missing:
        return
    progress(f"building {len(missing)} missing binaries from the Go module proxy (first time: ~10 minutes)")
    started = time.monotonic()
    proc = subprocess.Popen(["bash", str(paths.BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-30:]
        if line.startswith("[build"):
            progress(line)
    if proc.wait() != 0:
        raise ClusterError("building the cluster's binaries failed (hack/k8s/build.sh):\n" + "\n".join(tail))
    progress(f"binaries built in {time.monotonic() - started:.0f}s")


def _wait_healthy(component: components.Component, managed: Managed, progress: Progress) -> None:
    deadline = time.monotonic() + component.startup_seconds
    problem = None
    while time.monotonic() < deadline:
        if not managed.running():
            raise ClusterError(f"{component.name} exited while starting; last lines of {managed.log_file}:\n"
                               f"{managed.log_tail(25)}")
        problem = component.health()
        if problem is None:
            return
        time.sleep(0.2)
    raise ClusterError(f"{component.name} did not become healthy in {component.startup_seconds:.0f}s ({problem}); "
                       f"last lines of {managed.log_file}:\n{managed.log_tail(25)}")


def up(options: UpOptions, progress: Progress = print) -> dict:
    """Bring everything up; idempotent. Returns {'seconds': ..., 'kubeconfig': ..., 'nodes': [...]}."""
    started = time.monotonic()
    if options.build:
        build_binaries(progress)
    missing = paths.binaries().missing()
    if missing:
        raise ClusterError("binaries missing: " + ", ".join(map(str, missing)) + "; run without --no-build")
    if options.docker:
        for name, module in _docker_parts():
            t = time.monotonic()
            module.ensure()
            progress(f"{name} ready ({time.monotonic() - t:.1f}s)")
    state = _state()
    state.mkdir(parents=True, exist_ok=True)
    files = pki.ensure(state / "pki")
    kubeconfig = paths.kubeconfig_path()
    components.write_kubeconfig(kubeconfig, files)
    stages_file = state / "kwok-stages.yaml"
    stages_file.write_text(stages.config_yaml())
    for component in components.control_plane(state, files, kubeconfig, stages_file, options.registry_bandwidth):
        managed = Managed(component.name, state)
        if managed.running() and component.health() is None:
            continue
        t = time.monotonic()
        managed.start(component.argv, env={"PYTHONPATH": str(paths.REPO_ROOT / "operator")})
        _wait_healthy(component, managed, progress)
        progress(f"{component.name} up ({time.monotonic() - t:.1f}s)")
    node_names = _ensure_nodes(kubeconfig, options, progress)
    real_node = _ensure_real_node(kubeconfig, options, progress)
    seconds = time.monotonic() - started
    progress(f"cluster up in {seconds:.1f}s: {len(node_names)} simulated nodes; "
             f"export KUBECONFIG={kubeconfig}")
    return {"seconds": seconds, "kubeconfig": str(kubeconfig), "nodes": node_names, "real_node": real_node}


def _ensure_real_node(kubeconfig: Path, options: UpOptions, progress: Progress) -> str | None:
    """The optional real node (realnode.py): logged and skipped, never fatal, when it cannot run here."""
    if not (options.real_node and options.docker):
        return None
    from startbench.localcluster import realnode
    return realnode.ensure(kubeconfig, progress)


def _client(kubeconfig: Path):
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def _ensure_nodes(kubeconfig: Path, options: UpOptions, progress: Progress, timeout: float = 120) -> list[str]:
    core = _client(kubeconfig)
    pools = nodes.default_pools(options.gpu_nodes, options.cpu_nodes, options.pull_bandwidth)
    wanted = {m["metadata"]["name"]: m for m in nodes.manifests(pools)}
    # Only the cluster's own pools: a benchmark's or a test's pool of simulated nodes (their own
    # startbench.dev/pool label) is theirs to delete, even while `up` runs again.
    own = {m["metadata"]["labels"]["startbench.dev/pool"] for m in wanted.values()} | {"gpu", "cpu"}
    existing = {n.metadata.name for n in core.list_node(label_selector="type=kwok").items
                if (n.metadata.labels or {}).get("startbench.dev/pool") in own}
    for name in sorted(existing - set(wanted)):
        core.delete_node(name)
    to_create = [m for name, m in wanted.items() if name not in existing]
    if to_create:
        progress(f"creating {len(to_create)} simulated nodes")
    seconds = create_simulated_nodes(core, to_create, sorted(wanted), timeout)
    if to_create:
        progress(f"{len(to_create)} simulated nodes Ready in {seconds:.1f}s")
    return sorted(wanted)


NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
NODE_CREATE_WORKERS = 8  # within the API client's connection pool (5 per core)


def create_simulated_nodes(core, manifests: list[dict], wait_for: list[str], timeout: float = 120) -> float:
    """Create `manifests` (several at a time: one round trip after another made a thousand nodes take minutes)
    and wait until every node named in `wait_for` is Ready (KWOK takes them on) and schedulable (the node
    lifecycle controller has lifted the not-ready taint it puts on a new node); seconds it took."""
    from concurrent.futures import ThreadPoolExecutor

    import urllib3
    from kubernetes.client.rest import ApiException

    started = time.monotonic()

    def create(manifest: dict) -> None:
        for attempt in range(30):  # an API server restarting (the shared cluster's tests restart it) is waited for
            try:
                core.create_node(manifest)
                return
            except ApiException as err:
                if err.status == 409:
                    return
                if err.status not in (429, 500, 503, 504) or attempt == 29:
                    raise
            except (urllib3.exceptions.HTTPError, OSError):
                if attempt == 29:
                    raise
            time.sleep(2)

    if manifests:
        with ThreadPoolExecutor(max_workers=min(NODE_CREATE_WORKERS, len(manifests))) as pool:
            list(pool.map(create, manifests))
    wanted = set(wait_for)
    deadline = time.monotonic() + timeout
    while True:
        try:
            listed = core.list_node(label_selector="type=kwok").items
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            listed = []  # the API server is away: wait for it, up to the deadline
        ready = {n.metadata.name for n in listed
                 if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
                 and not any(t.key in NOT_READY_TAINTS for t in (n.spec.taints or []))}
        if wanted <= ready:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise ClusterError(f"{len(wanted - ready)} simulated nodes not Ready after {timeout:.0f}s; "
                               f"kwok log:\n{Managed('kwok', _state()).log_tail(20)}")
        time.sleep(0.5)


def status() -> list[dict]:
    """Every component, started or not, in start order: name, running, pid, healthy, problem (and the log tail
    when it crashed), and `optional` for the real node (the cluster runs without it where it cannot run)."""
    state = _state()
    comps: dict[str, components.Component] = {}
    if paths.kubeconfig_path().exists():  # health checks need the cluster's certificates, made by `up`
        files = pki.ensure(state / "pki")
        comps = {c.name: c for c in components.control_plane(state, files, paths.kubeconfig_path(),
                                                             state / "kwok-stages.yaml", 1.0)}
    rows = []
    for name in CONTROL_PLANE:
        managed = Managed(name, state)
        pid = managed.pid()
        row = {"name": name, "pid": pid, "running": pid is not None, "optional": False}
        if pid is not None:
            row["problem"] = comps[name].health() if name in comps else "running, but the cluster has no kubeconfig"
        elif managed.pid_file.exists() or managed.log_file.exists():
            # It was started and is gone: a crash. Show why.
            row["problem"] = "not running; last log lines:\n" + managed.log_tail(10)
        else:
            row["problem"] = "not started (startbench cluster up starts it)"
        row["healthy"] = row["problem"] is None
        rows.append(row)
    for name, module in _docker_parts_if_present() + _real_node_if_present():
        row = {"name": name, "running": None, "pid": None, "optional": name == "realnode"}
        try:
            row["problem"] = module.status_problem()
        except Exception as err:  # a status check must not crash the status command
            row["problem"] = str(err)
        row["healthy"] = row["problem"] is None
        rows.append(row)
    return rows


def healthy(rows: list[dict] | None = None) -> bool:
    """Whether the cluster runs: every component that is not optional is healthy (an empty list is not)."""
    rows = status() if rows is None else rows
    required = [r for r in rows if not r.get("optional")]
    return bool(required) and {r["name"] for r in required} >= set(CONTROL_PLANE) and all(r["healthy"] for r in required)


def control_plane_healthy(rows: list[dict] | None = None) -> bool:
    """Whether every control-plane process (etcd ... simkubelet) runs and answers; the Docker parts aside."""
    rows = status() if rows is None else rows
    by_name = {r["name"]: r for r in rows}
    return all(name in by_name and by_name[name]["healthy"] for name in CONTROL_PLANE)


def _real_node_if_present():
    try:
        return [("realnode", importlib.import_module("startbench.localcluster.realnode"))]
    except ImportError:
        return []


def _docker_parts_if_present():
    try:
        return _docker_parts()
    except ImportError:
        return []


def down(progress: Progress = print, keep_data: bool = False, docker: bool = True) -> list[str]:
    """Stop every process `up` started, newest first. Returns the names of what was stopped."""
    state = _state()
    stopped = []
    from startbench.localcluster import realnode
    # The real node first, while the API server still runs: its kubelet stops its pods (network, mounts).
    stopped += realnode.stop(progress)
    for name in STOP_ORDER:
        if Managed(name, state).stop():
            stopped.append(name)
            progress(f"stopped {name}")
    if docker:
        for name, module in reversed(_docker_parts_if_present()):
            if hasattr(module, "stop") and module.stop():
                stopped.append(name)
                progress(f"stopped {name}")
    if not keep_data:
        shutil.rmtree(state / "etcd", ignore_errors=True)
    return stopped


def leftover_processes() -> list[str]:
    """Processes still running from our binaries (for `down` checks and tests)."""
    ours = {str(p) for p in dataclasses.astuple(paths.binaries())}
    found = []
    for pid, argv in command_lines():
        if argv[0].decode(errors="replace") in ours or b"startbench.localcluster.simkubelet" in argv:
            found.append(f"{pid} {' '.join(a.decode(errors='replace') for a in argv if a)}")
    from startbench.localcluster import realnode
    return found + realnode.leftovers()


def kubeconfig() -> Path:
    path = paths.kubeconfig_path()
    if not path.exists():
        raise ClusterError("no local cluster: run `startbench cluster up` first")
    return path
