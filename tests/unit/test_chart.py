"""The Helm chart: lint, render, least-privilege RBAC, the operator Deployment's hardening, the schema, and the
derived files (CRD copy, dashboards, manifests/) kept in step with their sources. The tests marked
`tools("helm")` run the real helm binary (built by hack/ci/setup-30-prometheus.sh); no cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from startbench.runtime import config
from tests.support import tools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "startbench"
HELM = tools.helm_path()
needs_helm = pytest.mark.tools("helm")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check, timeout=60)


def render(*sets: str, release: str = "sb", namespace: str = "startbench") -> list[dict]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def one(docs: list[dict], kind: str, name_part: str = "") -> dict:
    found = [d for d in docs if d["kind"] == kind and name_part in d["metadata"]["name"]]
    assert len(found) == 1, f"expected one {kind} named *{name_part}*, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_container(docs: list[dict]) -> dict:
    return next(c for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"] if c["name"] == "operator")


@needs_helm
def test_lint_is_clean_in_strict_mode():
    result = helm("lint", str(CHART), "--strict", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
def test_derived_files_are_current():
    result = subprocess.run(["python3", str(REPO / "hack" / "render_chart.py"), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_crd_is_the_source_under_a_generated_header():
    copy = (CHART / "crds" / "benchmark.yaml").read_text()
    source = (REPO / "crds" / "benchmark.yaml").read_text()
    assert copy.startswith("# GENERATED from crds/benchmark.yaml")
    assert copy.endswith(source) and yaml.safe_load(copy) == yaml.safe_load(source)


@needs_helm
def test_deployment_is_two_hardened_replicas_running_startbench_operator_with_a_lease_election():
    docs = render()
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    # Two replicas, one leads; a rolling update starts the new pod (a standby) before the old one goes.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    cfg = config.load({e["name"]: e["value"] for e in operator_container(docs)["env"]})
    assert cfg.leader_election_lease == "startbench/sb-startbench"
    assert (cfg.retry_period_seconds, cfg.renew_deadline_seconds, cfg.lease_duration_seconds) == (2, 10, 15)
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    single = render("replicaCount=1")
    assert one(single, "Deployment")["spec"]["replicas"] == 1
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = operator_container(docs)
    assert container["command"][-2:] == ["startbench", "operator"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # Liveness is Kopf's /healthz, on the port the --liveness argument makes Kopf listen on.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == "health"
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in container["args"]
    # The metrics port agrees across the env, the container and the Service.
    env = {e["name"]: e.get("value") for e in container["env"]}
    service = one(docs, "Service", "metrics")
    assert int(env["STARTBENCH_METRICS_PORT"]) == ports["metrics"] == service["spec"]["ports"][0]["port"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


@needs_helm
def test_operator_env_is_a_valid_configuration():
    container = operator_container(render("operator.watchNamespaces={team-a,team-b}", "operator.logLevel=DEBUG"))
    env = {e["name"]: e["value"] for e in container["env"]}
    cfg = config.load(env)
    assert cfg.namespaces == ("team-a", "team-b") and cfg.log_level == "DEBUG"
    assert cfg.metrics_port == 9090 and cfg.metrics_address == "0.0.0.0"


def _rules(doc: dict) -> list[tuple[str, str, str]]:
    return [(g, r, v) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]]


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


@needs_helm
def test_watching_named_namespaces_grants_work_only_there_and_reads_cluster_wide():
    docs = render("operator.watchNamespaces={team-a,team-b}")
    roles = [d for d in docs if d["kind"] == "Role" and "leader-election" not in d["metadata"]["name"]]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and "leader-election" not in d["metadata"]["name"]]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sb-startbench", "namespace": "startbench"}]
    work = set(_rules(roles[0]))
    for needed in [("startbench.dev", "benchmarks", v) for v in ("get", "list", "watch", "patch")] + \
                  [("startbench.dev", "benchmarks/status", "patch")] + \
                  [("", "pods", v) for v in ("create", "delete", "list", "watch", "get", "patch")] + \
                  [("", "events", v) for v in ("create", "list", "watch")] + \
                  [("", "configmaps", v) for v in ("get", "list", "create", "update")]:
        assert needed in work, needed
    assert not any(r in ("secrets", "*") or v == "*" for _g, r, v in work)
    [cluster_role] = [d for d in docs if d["kind"] == "ClusterRole"]
    cluster = set(_rules(cluster_role))
    assert not {v for _g, _r, v in cluster} & WRITE_VERBS, "cluster-wide access must be read-only"
    assert {r for _g, r, _v in cluster} == {"nodes", "customresourcedefinitions", "namespaces"}


@needs_helm
@pytest.mark.parametrize("sets", [(), ("operator.watchNamespaces={team-*}",)])
def test_all_namespaces_or_a_glob_needs_cluster_wide_work_rules(sets):
    docs = render(*sets)
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding") and "leader-election" not in d["metadata"]["name"]]
    work = one(docs, "ClusterRole", "-work")
    assert ("", "pods", "create") in _rules(work) and ("", "secrets", "get") not in _rules(work)
    assert ("", "namespaces", "watch") in _rules(one(docs, "ClusterRole", "-read"))


@needs_helm
def test_patch_nodes_only_for_purging_simulated_nodes():
    for docs in (render(), render("cachePurge.enabled=true", "cachePurge.image.repository=r/ctr", "cachePurge.image.tag=v1")):
        assert not [rule for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in _rules(d)
                    if rule[1] == "nodes" and rule[2] in WRITE_VERBS]
    docs = render("cachePurge.simulatedNodes=true")
    role = one(docs, "ClusterRole", "purge-simulated")
    assert _rules(role) == [("", "nodes", "patch")]
    binding = one(docs, "ClusterRoleBinding", "purge-simulated")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert not [d for d in docs if d["kind"] == "DaemonSet"]  # no agent: simulated nodes need none


@needs_helm
def test_the_leader_election_role_reaches_one_lease_in_the_release_namespace():
    docs = render()
    role = one(docs, "Role", "leader-election")
    assert role["metadata"]["namespace"] == "startbench"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["sb-startbench"],
         "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]
    binding = one(docs, "RoleBinding", "leader-election")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sb-startbench", "namespace": "startbench"}]
    # The Lease the operator is told to use is the one the Role names.
    env = {e["name"]: e["value"] for e in operator_container(docs)["env"]}
    assert env["STARTBENCH_LEADER_ELECTION_LEASE"] == "startbench/" + role["rules"][0]["resourceNames"][0]
    result = helm("template", "sb", str(CHART), "--set", "operator.leaderElection.renewDeadlineSeconds=20",
                  check=False)
    assert result.returncode != 0 and "retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds" in result.stderr


@needs_helm
def test_every_name_fits_63_characters_with_a_long_release_name():
    release = "a-very-long-release-name-for-a-benchmarking-operator"  # 52 of the 53 helm allows
    docs = render("serviceMonitor.enabled=true", "cachePurge.enabled=true", "cachePurge.image.repository=r/crictl",
                  "cachePurge.image.tag=v1", release=release)
    for doc in docs:
        name = doc["metadata"]["name"]
        assert len(name) <= 63 and not name.endswith("-"), name
    names = [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs]
    assert len(names) == len(set(names)), "two objects got the same truncated name"


@needs_helm
def test_service_monitor_only_when_enabled():
    assert not [d for d in render() if d["kind"] == "ServiceMonitor"]
    monitor = one(render("serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom"), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


@needs_helm
def test_dashboards_are_configmaps_with_a_configurable_sidecar_label():
    maps = [d for d in render("dashboards.label=my_dashboards", "dashboards.labelValue=yes") if d["kind"] == "ConfigMap"]
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(k for m in maps for k in m["data"]) == files and files
    for m in maps:
        assert m["metadata"]["labels"]["my_dashboards"] == "yes"
        [(name, text)] = m["data"].items()
        assert text == (CHART / "dashboards" / name).read_text().rstrip("\n")
    assert not [d for d in render("dashboards.enabled=false") if d["kind"] == "ConfigMap"]


@needs_helm
def test_builder_adds_a_loopback_dind_sidecar_and_points_the_operator_at_it():
    docs = render("builder.enabled=true", "builder.insecureRegistries={registry.local:5000}")
    containers = {c["name"]: c for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]}
    dind = containers["dind"]
    assert dind["securityContext"]["privileged"] is True
    assert "--host=tcp://127.0.0.1:2375" in dind["args"] and "--insecure-registry=registry.local:5000" in dind["args"]
    env = {e["name"]: e["value"] for e in containers["operator"]["env"]}
    assert env["STARTBENCH_DOCKER_HOST"] == "tcp://127.0.0.1:2375"
    assert containers["operator"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert "dind" not in {c["name"] for c in one(render(), "Deployment")["spec"]["template"]["spec"]["containers"]}


@needs_helm
def test_build_values_become_the_operators_build_configuration(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    args = ["template", "sb", str(CHART), "--namespace", "startbench", "--set", "build.registry=10.88.0.1:5000/team",
            "--set", "build.baseImage=10.88.0.1:5000/startbench/base:bookworm",
            "--set", "builder.insecureRegistries={10.88.0.1:5000}",
            "--set-file", f"build.caBundle.pem={bundle}"]
    docs = [d for d in yaml.safe_load_all(helm(*args).stdout) if d]
    container = operator_container(docs)
    env = {e["name"]: e["value"] for e in container["env"]}
    cfg = config.load(env)
    assert cfg.build_registry == "10.88.0.1:5000/team"
    assert cfg.build_base_image == "10.88.0.1:5000/startbench/base:bookworm"
    assert cfg.build_ca_bundle == "/etc/startbench/build-ca/ca.crt"
    assert cfg.insecure_registries == ("10.88.0.1:5000",)  # the builder's plain-HTTP registries, for manifests
    ca_map = one(docs, "ConfigMap", "build-ca")
    assert ca_map["data"]["ca.crt"] == bundle.read_text()
    [volume] = [v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "build-ca"]
    assert volume["configMap"]["name"] == ca_map["metadata"]["name"]
    assert {"name": "build-ca", "mountPath": "/etc/startbench/build-ca", "readOnly": True} in container["volumeMounts"]
    # An existing ConfigMap instead; and nothing of it by default.
    container = operator_container(render("build.caBundle.configMap=corp-ca", "build.caBundle.key=bundle.pem"))
    assert {e["name"]: e["value"] for e in container["env"]}["STARTBENCH_BUILD_CA_BUNDLE"] == \
        "/etc/startbench/build-ca/bundle.pem"
    default = render()
    assert not {e["name"] for e in operator_container(default)["env"]} & {
        "STARTBENCH_BUILD_REGISTRY", "STARTBENCH_BUILD_BASE_IMAGE", "STARTBENCH_BUILD_CA_BUNDLE"}
    assert not [d for d in default if d["kind"] == "ConfigMap" and "build-ca" in d["metadata"]["name"]]


def test_the_build_error_names_chart_values_that_exist():
    """The operator's message for a build entry without a registry names chart values; each must be in values.yaml."""
    import re

    source = (REPO / "operator" / "startbench" / "runtime" / "imagebuilds.py").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    named = re.findall(r"chart value ([a-zA-Z.]+)", source) + re.findall(r"with ([a-z]+\.[a-zA-Z]+)", source)
    assert "build.registry" in named
    for dotted in named:
        node = values
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"{dotted} is not a chart value"
            node = node[part]


@needs_helm
def test_cache_purge_agent_and_its_exec_permission_only_when_enabled():
    assert not [d for d in render() if d["kind"] == "DaemonSet"]
    docs = render("cachePurge.enabled=true", "cachePurge.image.repository=r/crictl", "cachePurge.image.tag=v1")
    daemonset = one(docs, "DaemonSet", "cache-purge")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["volumes"][0]["hostPath"] == {"path": "/run/containerd/containerd.sock", "type": "Socket"}
    assert pod["containers"][0]["image"] == "r/crictl:v1"
    role = one(docs, "Role", "cache-purge")
    assert role["metadata"]["namespace"] == "startbench" and ("", "pods/exec", "create") in _rules(role)


@needs_helm
@pytest.mark.parametrize("sets,message", [
    (["operator.logLevel=LOUD"], "logLevel"),
    (["operator.watchNamespaces={Team_A}"], "watchNamespaces"),
    (["nosuchkey=1"], "nosuchkey"),
    (["cachePurge.enabled=true"], "repository"),
    (["image.digest=latest"], "digest"),
    (["build.registry=http://registry:5000"], "registry"),
    (["build.caBundle.pem=not a certificate"], "pem"),
    (["build.caBundle.pem=-----BEGIN CERTIFICATE-----", "build.caBundle.configMap=corp-ca"], "caBundle"),
])
def test_schema_refuses_bad_values_naming_the_field(sets, message):
    args = ["template", "sb", str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = helm(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_values_file_is_commented_and_points_at_its_schema():
    lines = (CHART / "values.yaml").read_text().splitlines()
    assert "values.schema.json" in lines[0]
    assert sum(1 for line in lines if line.lstrip().startswith("#")) >= 40


def test_manifests_are_the_default_rendering_with_the_crd():
    docs = [d for d in yaml.safe_load_all((REPO / "manifests" / "startbench.yaml").read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "Service",
            "ConfigMap"} <= kinds
    assert all(d["metadata"].get("namespace") == "startbench" for d in docs
               if d["kind"] in ("Deployment", "ServiceAccount", "Service", "ConfigMap"))
