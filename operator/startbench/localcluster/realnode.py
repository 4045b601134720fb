"""One real node in the local cluster: a real kubelet on our own containerd, so pods really pull images from
the local registry and really start, and pull and start times are measured for real.

`ensure(kubeconfig)` starts, under `<cluster state>/realnode/`:
  containerd   Debian's containerd with its own config, root, state and socket (CRI on, overlayfs snapshots,
               runc through the v2 shim, cgroupfs), separate from the Docker engine's containerd;
  CNI          a bridge (`sbcni0`, 10.88.0.0/16, host-local IPAM) from Debian's containernetworking-plugins;
  pause        a tiny static Go program (hack/realnode/pause) built with the local Go toolchain into a
               FROM-scratch image, pushed as 127.0.0.1:5000/startbench/pause:3.10: containerd's sandbox image;
  kubelet      the cluster's own kubelet build, registered to the same API server as node `real-node-0`;
  networking   kube-proxy, CoreDNS and the API server on the bridge (clusternet.py), so pods there reach
               Services by name, the `kubernetes` Service included, as on any cluster.
The node carries `startbench.dev/pool=real`, `nvidia.com/gpu.product=fake`, the taint
`startbench.dev/real-node=true:NoSchedule` (only pods that tolerate it land there, so simulated-node tests never
do) and advertises a fake `nvidia.com/gpu: 8` (patched into its status, the documented way to advertise an
extended resource). It is not annotated `kwok.x-k8s.io/node`, so the operator treats it as real.

`stop()` drains the node's pods through the kubelet, stops kubelet and containerd, kills what is left of their
containers, unmounts what they mounted, removes the bridge and the node object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from startbench.localcluster import clusternet, paths
from startbench.localcluster.processes import Managed, command_lines, system_path, write_if_changed

Progress = Callable[[str], None]

NODE_NAME = "real-node-0"
REGISTRY = "127.0.0.1:5000"
PAUSE_IMAGE = f"{REGISTRY}/startbench/pause:3.10"
PAUSE_SOURCE = paths.REPO_ROOT / "hack" / "realnode" / "pause"
KUBELET_PORT = 20250          # the API server reaches logs and exec here (node status carries the port)
KUBELET_HEALTHZ_PORT = 20248
POD_SUBNET = "10.88.0.0/16"
BRIDGE = "sbcni0"
# The kubelet refuses a loopback node IP, so the node's address is the pod bridge's gateway: local to this
# machine, reachable by the API server, and not on any outside interface.
NODE_IP = "10.88.0.1"
GPUS = 8
TAINT = {"key": "startbench.dev/real-node", "value": "true", "effect": "NoSchedule"}
LABELS = {"startbench.dev/pool": "real", "nvidia.com/gpu.product": "fake", "type": "real"}
TOLERATION = {"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"], "effect": TAINT["effect"]}
CONTAINERD = "realnode-containerd"
KUBELET = "realnode-kubelet"
PROCESS_NAMES = (KUBELET, CONTAINERD)  # stop order
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "firewall")
# The cgroup v1 controllers the kubelet and runc need (cgroup v2 needs none of this list).
CGROUP_V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")
READY_TIMEOUT_S = 120.0


class RealNodeError(RuntimeError):
    """The real node could not be started; the message says which part failed and shows its log."""


def state_dir() -> Path:
    return paths.cluster_dir() / "realnode"


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"


def layout() -> Layout:
    return Layout(state_dir())


# ---- what this machine must have -------------------------------------------------------------------------

def mounted_cgroup_v1_controllers(mountinfo: str) -> set[str]:
    """The cgroup v1 controllers (of those we need) mounted, from /proc/self/mountinfo's text."""
    found: set[str] = set()
    for line in mountinfo.splitlines():
        _, _, after = line.partition(" - ")
        fields = after.split()
        if len(fields) >= 3 and fields[0] == "cgroup":
            found.update(o for o in fields[2].split(",") if o in CGROUP_V1_CONTROLLERS)
    return found


def unavailable_reason() -> str | None:
    """None when this machine can run the real node, else exactly why not and what to install or change."""
    if os.uname().sysname != "Linux":
        return f"the real node needs Linux (containerd, runc, cgroups); this is {os.uname().sysname}"
    if os.geteuid() != 0:
        return "the real node needs root (containerd, runc, mounts, network namespaces); run as root"
    missing = [b for b in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "mount", "ip")
               if shutil.which(b, path=system_path()) is None]
    if missing:
        return (f"missing programs: {', '.join(missing)}; install Debian's containerd, runc, iptables and iproute2 "
                "(hack/ci/setup-15-realnode.sh)")
    plugins = [p for p in CNI_PLUGINS if not os.access(CNI_BIN_DIR / p, os.X_OK)]
    if plugins:
        return (f"missing CNI plugins in {CNI_BIN_DIR}: {', '.join(plugins)}; install Debian's "
                "containernetworking-plugins (hack/ci/setup-15-realnode.sh)")
    if not os.access(paths.binaries().kubelet, os.X_OK):
        return f"no kubelet at {paths.binaries().kubelet}; run `startbench cluster up` to build it"
    if shutil.which("go") is None and not _pause_in_registry():
        return "the pause image is not in the local registry and `go` is not installed to build it"
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            mountinfo = ""
        lacking = sorted(set(CGROUP_V1_CONTROLLERS) - mounted_cgroup_v1_controllers(mountinfo))
        if lacking:
            return f"cgroup v1 controllers not mounted: {', '.join(lacking)}; the kubelet and runc need them"
    return None


def _snapshotter() -> str:
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        return "native"
    return "overlayfs" if "\toverlay\n" in filesystems or filesystems.rstrip().endswith("\toverlay") else "native"


# ---- configuration files ---------------------------------------------------------------------------------

def _has_cap_sys_resource() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 24 & 1)  # CAP_SYS_RESOURCE is capability 24
    except (OSError, ValueError):
        pass
    return False


def containerd_config(lay: Layout, snapshotter: str, restrict_oom: bool = False) -> str:
    """containerd 1.6 config (version 2): our own root, state and socket; the CRI plugin on."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""# Written by startbench (operator/startbench/localcluster/realnode.py); rewritten on every start.
version = 2
root = "{lay.root / 'containerd' / 'root'}"
state = "{lay.root / 'containerd' / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{lay.socket}"

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{lay.root / 'containerd' / 'opt'}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Root here may lack CAP_SYS_RESOURCE (no lowering of oom_score_adj: runc fails with "can't get final
  # child's PID from pipe"); clamp the kubelet's negative scores to containerd's own instead.
  restrict_oom_score_adj = {str(restrict_oom).lower()}
  max_container_log_line_size = 16384

[{cri}.containerd]
  snapshotter = "{snapshotter}"
  default_runtime_name = "runc"
  discard_unpacked_layers = false

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{lay.root / 'runc'}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{lay.cni_conf_dir}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{lay.hosts_dir}"
"""


def registry_hosts(lay: Layout) -> dict[Path, str]:
    """hosts.toml per local registry: both speak plain HTTP on loopback; the no-auth one also as pods reach it,
    on the node IP (clusternet.py forwards it there), the name images built in the cluster are pushed under."""
    files = {}
    for host in ("127.0.0.1:5000", "127.0.0.1:5001", f"{NODE_IP}:{clusternet.REGISTRY_PORT}"):
        files[lay.hosts_dir / host / "hosts.toml"] = (
            f'server = "http://{host}"\n\n[host."http://{host}"]\n  capabilities = ["pull", "resolve"]\n')
    return files


def cni_config(lay: Layout) -> str:
    """The bridge, then the firewall plugin: it accepts each pod's traffic in the FORWARD chain, whose policy a
    Docker engine on the same machine sets to DROP (pod to pod, pod to a Service's pod, pod to the outside)."""
    return json.dumps({
        "cniVersion": "0.4.0",
        "name": "startbench-realnode",
        "plugins": [{
            "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": str(lay.root / "cni" / "ipam")},
        }, {"type": "firewall", "backend": "iptables"}],
    }, indent=2) + "\n"


def kubelet_config(lay: Layout, ca_file: Path) -> str:
    """KubeletConfiguration (v1beta1). The kubelet serves on the node IP (the pod bridge's gateway) and
    authenticates callers with the cluster's CA or a token review, and authorises them with the API server."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{lay.socket}",
        "serializeImagePulls": True,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca_file)}},
        "authorization": {"mode": "Webhook"},
        # A dev machine's disk is often well used: evict only when it is truly full.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "registerWithTaints": [TAINT],
        # kube-proxy (clusternet.py) writes the Service rules; keep the kubelet's own KUBE-FIREWALL and canary
        # chains out of the host's iptables.
        "makeIPTablesUtilChains": False,
        # Cluster DNS: CoreDNS behind the kube-dns Service (clusternet.py); pods get it as their name server.
        "clusterDNS": [clusternet.DNS_SERVICE_IP],
        "clusterDomain": clusternet.CLUSTER_DOMAIN,
        "podLogsDir": str(lay.root / "pod-logs"),
        "staticPodPath": "",
        "resolvConf": "/etc/resolv.conf",
        "maxPods": 32,
        "eventRecordQPS": 50,
        "eventBurst": 100,
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "30s",
    }
    return json.dumps(config, indent=2) + "\n"


def kubelet_argv(lay: Layout, kubeconfig: Path) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in LABELS.items())
    return [str(paths.binaries().kubelet), f"--kubeconfig={kubeconfig}", f"--config={lay.kubelet_config}",
            f"--root-dir={lay.kubelet_root}", f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
            f"--node-labels={labels}",
            # cAdvisor (inside the kubelet) reads container and image-filesystem stats from our containerd.
            f"--containerd={lay.socket}", "--containerd-namespace=k8s.io", "--v=1"]


# ---- the pause image -------------------------------------------------------------------------------------

def _pause_in_registry() -> bool:
    from startbench.localcluster.baseimage import _in_registry
    return _in_registry(PAUSE_IMAGE)


def _source_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(PAUSE_SOURCE.glob("*")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def ensure_pause_image(progress: Progress = print) -> str:
    """Build the pause program (static, CGO off) and push it as a FROM-scratch image, unless the registry
    already serves it. Returns the image reference."""
    if _pause_in_registry():
        return PAUSE_IMAGE
    import docker

    out = state_dir() / "pause"
    out.parent.mkdir(parents=True, exist_ok=True)
    progress(f"real node: building the pause program from {PAUSE_SOURCE}")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    built = subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."], cwd=PAUSE_SOURCE,
                           env=env, capture_output=True, text=True)
    if built.returncode != 0:
        raise RealNodeError(f"building the pause program failed:\n{built.stderr[-2000:]}")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = (f'FROM scratch\nLABEL dev.startbench.pause.source="{_source_digest()}"\n'
                      'COPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n').encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(str(out), arcname="pause")
    context.seek(0)
    client = docker.from_env()
    try:
        client.images.build(fileobj=context, custom_context=True, tag=PAUSE_IMAGE, rm=True)
        for line in client.api.push(PAUSE_IMAGE, stream=True, decode=True):
            if "error" in line:
                raise RealNodeError(f"pushing {PAUSE_IMAGE} failed: {line['error']}; is the local registry up?")
    finally:
        client.close()
    if not _pause_in_registry():
        raise RealNodeError(f"pushed {PAUSE_IMAGE} but the registry does not serve it; see the registry log")
    progress(f"real node: pushed {PAUSE_IMAGE}")
    return PAUSE_IMAGE


# ---- processes -------------------------------------------------------------------------------------------

def _managed(name: str) -> Managed:
    return Managed(name, paths.cluster_dir())


def _ctr(lay: Layout, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", str(lay.socket), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PATH": system_path()})


def containerd_problem(lay: Layout) -> str | None:
    """None when our containerd answers and its CRI plugin loaded, else what is wrong."""
    if not lay.socket.exists():
        return f"no socket at {lay.socket}"
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(lay.socket))
    except OSError as err:
        return f"containerd does not answer on {lay.socket}: {err}"
    try:
        listed = _ctr(lay, "plugins", "ls")
    except subprocess.TimeoutExpired:
        return "`ctr plugins ls` timed out"
    if listed.returncode != 0:
        return f"`ctr plugins ls` failed: {listed.stderr.strip()}"
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "io.containerd.grpc.v1" and fields[1] == "cri":
            return None if fields[-1] == "ok" else f"containerd's CRI plugin did not load ({fields[-1]})"
    return "containerd has no CRI plugin"


def _start_containerd(lay: Layout, progress: Progress) -> None:
    managed = _managed(CONTAINERD)
    if managed.running() and containerd_problem(lay) is None:
        return
    if not managed.running():
        lay.socket.unlink(missing_ok=True)
    t = time.monotonic()
    binary = shutil.which("containerd", path=system_path()) or "containerd"
    managed.start([binary, "--config", str(lay.containerd_config)], env={"PATH": system_path()})
    deadline = time.monotonic() + 30
    problem = None
    while time.monotonic() < deadline:
        if not managed.running():
            raise RealNodeError(f"containerd exited while starting; last lines of {managed.log_file}:\n"
                                f"{managed.log_tail(25)}")
        problem = containerd_problem(lay)
        if problem is None:
            progress(f"real node: containerd up ({time.monotonic() - t:.1f}s)")
            return
        time.sleep(0.2)
    raise RealNodeError(f"containerd did not become ready in 30s ({problem}); last lines of {managed.log_file}:\n"
                        f"{managed.log_tail(25)}")


def _ensure_bridge() -> None:
    """The CNI bridge, created before the kubelet so its gateway address can be the node IP (the bridge
    plugin adopts an existing bridge with its gateway address)."""
    def ip(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", *args], capture_output=True, text=True, env={**os.environ, "PATH": system_path()})

    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        made = ip("link", "add", BRIDGE, "type", "bridge")
        if made.returncode != 0:
            raise RealNodeError(f"creating the bridge {BRIDGE} failed: {made.stderr.strip()}")
    prefix = POD_SUBNET.split("/")[1]
    if f"inet {NODE_IP}/{prefix}" not in ip("-4", "addr", "show", "dev", BRIDGE).stdout:
        added = ip("addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE)
        if added.returncode != 0:
            raise RealNodeError(f"adding {NODE_IP}/{prefix} to {BRIDGE} failed: {added.stderr.strip()}")
    ip("link", "set", BRIDGE, "up")


def _core(kubeconfig: Path):
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def node_problem(core) -> str | None:
    """None when the node is registered, Ready, tainted and advertises the GPUs, else what is missing."""
    from kubernetes.client.rest import ApiException

    try:
        node = core.read_node(NODE_NAME)
    except ApiException as err:
        return f"node {NODE_NAME} is not registered" if err.status == 404 else f"reading node {NODE_NAME}: {err}"
    ready = [c for c in (node.status.conditions or []) if c.type == "Ready"]
    if not ready or ready[0].status != "True":
        why = f"{ready[0].reason}: {ready[0].message}" if ready else "no Ready condition yet"
        return f"node {NODE_NAME} is not Ready ({why})"
    if (node.status.allocatable or {}).get("nvidia.com/gpu") != str(GPUS):
        return f"node {NODE_NAME} does not advertise nvidia.com/gpu: {GPUS}"
    if not any(t.key == TAINT["key"] and t.effect == TAINT["effect"] for t in (node.spec.taints or [])):
        return f"node {NODE_NAME} lacks the taint {TAINT['key']}={TAINT['value']}:{TAINT['effect']}"
    return None


def _advertise_gpus(core) -> None:
    """The documented way to advertise a node-level extended resource: a JSON patch on the node's status."""
    patch = [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(GPUS)},
             {"op": "add", "path": "/status/allocatable/nvidia.com~1gpu", "value": str(GPUS)}]
    core.patch_node_status(NODE_NAME, patch)


def _ensure_taint(core) -> None:
    node = core.read_node(NODE_NAME)
    taints = node.spec.taints or []
    if not any(t.key == TAINT["key"] and t.effect == TAINT["effect"] for t in taints):
        core.patch_node(NODE_NAME, {"spec": {"taints": [*(t.to_dict() for t in taints), TAINT]}})


def _kubelet_health_problem() -> str | None:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return None if response.status == 200 else f"kubelet {url}: HTTP {response.status}"
    except (urllib.error.URLError, OSError) as err:
        return f"kubelet not answering on {url}: {getattr(err, 'reason', err)}"


def _start_kubelet(lay: Layout, kubeconfig: Path, progress: Progress) -> None:
    core = _core(kubeconfig)
    managed = _managed(KUBELET)
    t = time.monotonic()
    if not managed.running():
        managed.start(kubelet_argv(lay, kubeconfig), env={"PATH": system_path()})
    deadline = time.monotonic() + READY_TIMEOUT_S
    problem = None
    while time.monotonic() < deadline:
        if not managed.running():
            raise RealNodeError(f"the kubelet exited while starting; last lines of {managed.log_file}:\n"
                                f"{managed.log_tail(30)}")
        # The kubelet's own health first: a node object can still read Ready from a kubelet just stopped.
        problem = _kubelet_health_problem() or node_problem(core)
        if problem is None:
            progress(f"real node: {NODE_NAME} Ready with {GPUS} nvidia.com/gpu ({time.monotonic() - t:.1f}s)")
            return
        if "nvidia.com/gpu" in problem:
            _advertise_gpus(core)
        elif "lacks the taint" in problem:
            _ensure_taint(core)
        time.sleep(0.5)
    raise RealNodeError(f"{problem} after {READY_TIMEOUT_S:.0f}s; last lines of {managed.log_file}:\n"
                        f"{managed.log_tail(30)}")


def ensure(kubeconfig: Path | str, progress: Progress = print) -> str | None:
    """Start (idempotently) the real node and return its name; None when it cannot run here, after telling
    `progress` exactly why ("real node unavailable: ...")."""
    reason = unavailable_reason()
    if reason is None:
        try:
            return _ensure(Path(kubeconfig), progress)
        except (RealNodeError, OSError, subprocess.SubprocessError) as err:
            reason = str(err)
        except Exception as err:  # noqa: BLE001 - the real node is optional: an API or Docker error ends it too
            reason = f"{type(err).__name__}: {err}"
    progress(f"real node unavailable: {reason}")
    return None


def _ensure(kubeconfig: Path, progress: Progress) -> str:
    lay = layout()
    for d in (lay.root, lay.kubelet_root, lay.root / "pod-logs", lay.root / "runc"):
        d.mkdir(parents=True, exist_ok=True)
    containerd_changed = write_if_changed(lay.containerd_config, containerd_config(
        lay, _snapshotter(), restrict_oom=not _has_cap_sys_resource()))
    for path, text in registry_hosts(lay).items():
        write_if_changed(path, text)  # read on every pull: no restart
    write_if_changed(lay.cni_conf_dir / "10-startbench.conflist", cni_config(lay))
    kubelet_changed = write_if_changed(lay.kubelet_config, kubelet_config(lay, paths.cluster_dir() / "pki" / "ca.crt"))
    # A running process keeps the configuration it started with: restart what a changed file configures.
    if containerd_changed or kubelet_changed:
        if _managed(KUBELET).stop():
            progress("real node: kubelet restarted for its changed configuration")
    if containerd_changed and _managed(CONTAINERD).stop():
        progress("real node: containerd restarted for its changed configuration")
    ensure_pause_image(progress)
    _ensure_bridge()
    _start_containerd(lay, progress)
    _start_kubelet(lay, kubeconfig, progress)
    try:
        clusternet.ensure(kubeconfig, NODE_NAME, NODE_IP, POD_SUBNET, progress)
    except clusternet.ClusterNetError as err:
        raise RealNodeError(f"the real node's cluster networking: {err}") from None
    return NODE_NAME


def _containers_using(lay: Layout, names: set[str]) -> list[str]:
    listed = _ctr(lay, "-n", "k8s.io", "containers", "ls")
    return [f.split()[0] for f in listed.stdout.splitlines()[1:] if len(f.split()) >= 2 and f.split()[1] in names]


def wait_unlisted(reference: str, timeout_s: float = 120.0) -> float:
    """Wait until the real node's kubelet no longer lists `reference` in its node status (`status.images`): the
    kubelet refreshes that list only every several seconds, and the operator's cache evidence reads it
    (core/cache.py), so a run started right after `remove_image` would find the image still listed and take its
    download for a revalidation. Returns the seconds waited."""
    from startbench.core.cache import node_evidence

    core = _core(paths.kubeconfig_path())
    started = time.monotonic()
    while True:
        images = [{"names": list(i.names or [])} for i in (core.read_node(NODE_NAME).status.images or [])]
        if not node_evidence(reference, images).image_on_node:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RealNodeError(f"{NODE_NAME} still lists {reference} {timeout_s:.0f}s after it was removed")
        time.sleep(1.0)


def remove_image(reference: str, wait_s: float = 60.0) -> list[str]:
    """Remove an image from the node (every name the CRI gave it: tag, repo digest, image ID), so the next pull
    downloads its layers again. Returns the names removed (empty when the node does not have it); the pause image
    is never removed.

    containerd skips downloading a layer whose unpacked snapshot exists, and a container (even an exited one)
    keeps its image's snapshots, so this first waits up to `wait_s` for the kubelet to remove the containers
    that use the image (delete their pods first). Layers shared with another image still on the node stay."""
    lay = layout()
    listed = _ctr(lay, "-n", "k8s.io", "images", "ls")
    if listed.returncode != 0:
        raise RealNodeError(f"`ctr images ls` on the real node failed: {listed.stderr.strip()}")
    targets: dict[str, str] = {}
    for line in listed.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            targets[fields[0]] = fields[2]
    digest = targets.get(reference)
    if digest is None or digest == targets.get(PAUSE_IMAGE):
        return []
    names = sorted(name for name, target in targets.items() if target == digest)
    deadline = time.monotonic() + wait_s
    while (users := _containers_using(lay, set(names))) and time.monotonic() < deadline:
        time.sleep(0.5)
    if users:
        raise RealNodeError(f"{reference} is still used by {len(users)} containers on {NODE_NAME} after "
                            f"{wait_s:.0f}s; delete the pods that ran it first")
    removed = _ctr(lay, "-n", "k8s.io", "images", "rm", "--sync", *names, timeout=60)
    if removed.returncode != 0:
        raise RealNodeError(f"removing {reference} from the real node failed: {removed.stderr.strip()}")
    return names


def container_log(namespace: str, pod: str, uid: str, container: str, restart: int = 0) -> str | None:
    """A container's output as the kubelet wrote it on this machine (the CRI log format, one
    `<time> <stream> <tag> <text>` per line), as plain text; None when there is no such log. The API server
    cannot fetch real-node logs itself (it has no kubelet client certificate: docs/realnode.md)."""
    path = layout().root / "pod-logs" / f"{namespace}_{pod}_{uid}" / container / f"{restart}.log"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    out, partial = [], ""
    for line in lines:
        fields = line.split(" ", 3)
        if len(fields) < 3:
            continue
        text = fields[3] if len(fields) == 4 else ""
        if fields[2] == "P":  # a partial line continues in the next entry
            partial += text
        else:
            out.append(partial + text)
            partial = ""
    return "\n".join(out) + ("\n" if out else "")


def status_problem() -> str | None:
    """None when the real node runs and is Ready; else why not (for `startbench cluster status`)."""
    reason = unavailable_reason()
    if reason is not None:
        return f"cannot run here: {reason}"
    for name in PROCESS_NAMES:
        managed = _managed(name)
        if not managed.running():
            if managed.log_file.exists():
                return f"{name} is not running; last log lines:\n{managed.log_tail(10)}"
            return f"{name} not started (startbench cluster up starts it)"
    problem = containerd_problem(layout())
    if problem is not None:
        return problem
    kubeconfig = paths.kubeconfig_path()
    if not kubeconfig.exists():
        return "no cluster kubeconfig"
    try:
        problem = node_problem(_core(kubeconfig))
    except Exception as err:  # a status check must not crash the status command
        return f"cannot read node {NODE_NAME}: {err}"
    return problem or clusternet.problem(NODE_IP)


# ---- stopping --------------------------------------------------------------------------------------------

def _mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of `roots`, deepest first (unmount order)."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    prefixes = [str(r).rstrip("/") for r in roots]
    for line in lines:
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda m: (-m.count("/"), m))


def _our_shims(lay: Layout) -> list[int]:
    """Pids of containerd shims started by our containerd (their command line names our socket)."""
    needle = str(lay.socket).encode()
    return [pid for pid, argv in command_lines()
            if argv[0].endswith(b"containerd-shim-runc-v2") and needle in argv]


def _tasks(lay: Layout) -> list[tuple[str, str]]:
    """(id, status) of every task in our containerd's k8s.io namespace."""
    try:
        listed = _ctr(lay, "-n", "k8s.io", "tasks", "ls")
    except subprocess.TimeoutExpired:
        return []
    rows = []
    for line in listed.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            rows.append((fields[0], fields[2]))
    return rows


def _sandbox_netns(lay: Layout) -> list[Path]:
    """Network namespace files of our containers (from their OCI specs): containerd 1.6 keeps them under
    /var/run/netns, shared with anyone else's, so we unmount only the ones our containers name."""
    found = []
    try:
        listed = _ctr(lay, "-n", "k8s.io", "containers", "ls", "-q")
    except subprocess.TimeoutExpired:
        return found
    for cid in listed.stdout.split():
        try:
            info = json.loads(_ctr(lay, "-n", "k8s.io", "containers", "info", cid).stdout or "{}")
        except (json.JSONDecodeError, subprocess.TimeoutExpired):
            continue
        for ns in (((info.get("Spec") or {}).get("linux") or {}).get("namespaces") or []):
            path = ns.get("path") or ""
            if ns.get("type") == "network" and "/netns/" in path:
                found.append(Path(path))
    return sorted(set(found))


def _drain(core, lay: Layout, progress: Progress, timeout: float = 45.0) -> None:
    """Delete the node's pods and let the kubelet stop them (it tears down their network and volumes)."""
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE_NAME}").items
    for pod in pods:
        try:
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        except Exception:  # already gone
            pass
    if pods:
        progress(f"real node: deleted {len(pods)} pods; waiting for the kubelet to stop them")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [t for t, status in _tasks(lay) if status != "STOPPED"]
        volumes = _mounts_under(lay.kubelet_root / "pods")
        if not running and not volumes:
            return
        time.sleep(0.5)


def stop(progress: Progress = print) -> list[str]:
    """Stop the real node and undo what it set up: its pods (through the kubelet while it still runs), the
    kubelet, containerd and its shims, their mounts, the bridge and the node object. Returns what was stopped.
    Safe to call when nothing runs."""
    lay = layout()
    stopped: list[str] = []
    core = None
    kubeconfig = paths.kubeconfig_path()
    if kubeconfig.exists():
        try:
            core = _core(kubeconfig)
            core.get_api_resources()
        except Exception:  # the API server is gone: nothing to drain or delete
            core = None
    kubelet = _managed(KUBELET)
    containerd = _managed(CONTAINERD)
    if core is not None and kubelet.running() and containerd.running():
        _drain(core, lay, progress)
    if kubelet.stop():
        stopped.append(KUBELET)
        progress(f"stopped {KUBELET}")
    stopped += clusternet.stop(progress)
    netns: list[Path] = []
    if containerd.running():
        netns = _sandbox_netns(lay)
        for task, _ in _tasks(lay):
            _ctr(lay, "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", task)
        for task, _ in _tasks(lay):
            _ctr(lay, "-n", "k8s.io", "tasks", "delete", "-f", task, timeout=30)
    if containerd.stop():
        stopped.append(CONTAINERD)
        progress(f"stopped {CONTAINERD}")
    for pid in _our_shims(lay):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for point in _mounts_under(lay.root) + [str(p) for p in netns if _mounts_under(p)]:
        subprocess.run(["umount", point], capture_output=True)
        if _mounts_under(Path(point)):
            subprocess.run(["umount", "-l", point], capture_output=True)
    for path in netns:
        path.unlink(missing_ok=True)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
    _remove_empty_cgroups()
    if core is not None:
        try:
            core.delete_node(NODE_NAME)
        except Exception:  # not registered
            pass
    return stopped


def _remove_empty_cgroups() -> None:
    """The kubelet's `kubepods` cgroup tree (cgroupfs driver) in each hierarchy, once no task is left in it."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
            try:
                d.rmdir()
            except OSError:  # not empty (a task is still in it) or already gone
                pass


def leftovers() -> list[str]:
    """What the real node left behind: processes (kubelet, containerd, shims) and mounts. Empty after stop()."""
    lay = layout()
    found = [f"process {name} (pid {_managed(name).pid()})" for name in PROCESS_NAMES if _managed(name).running()]
    found += clusternet.leftovers()
    found += [f"shim pid {pid}" for pid in _our_shims(lay)]
    found += [f"mount {m}" for m in _mounts_under(lay.root)]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"network interface {BRIDGE}")
    return found
