"""The image purge: its pure parts (reference aliases, the simulated cache edit, reading `ctr images ls`, the
cache-purge agent's DaemonSet) and the purger's answers through a fake ClusterIO."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as hs

from startbench.core import purge
from startbench.core.reference import aliases, normalize
from startbench.runtime.purger import purge_image

D_BASE = "sha256:5c6fe74a5f6cea2e5625581999726906733c53abd960c87693568336046234a1"
D_PAUSE = "sha256:9498e72d71e8982098bedf6f7b6312416573c222b53da4fecc5913a43027b5cf"
# `ctr --namespace k8s.io images ls` on the local cluster's real node (containerd 1.6.20, CRI plugin), after the
# kubelet pulled two images: each has its tag, its @sha256 form and its image ID as separate references.
CTR_LS = f"""\
REF                                                                                                    TYPE                                                 DIGEST                                                                  SIZE      PLATFORMS   LABELS                          
127.0.0.1:5000/startbench/base:bookworm                                                                application/vnd.docker.distribution.manifest.v2+json {D_BASE} 46.6 MiB  linux/amd64 io.cri-containerd.image=managed 
127.0.0.1:5000/startbench/base@{D_BASE} application/vnd.docker.distribution.manifest.v2+json {D_BASE} 46.6 MiB  linux/amd64 io.cri-containerd.image=managed 
127.0.0.1:5000/startbench/pause:3.10                                                                   application/vnd.docker.distribution.manifest.v2+json {D_PAUSE} 717.9 KiB linux/amd64 io.cri-containerd.image=managed 
127.0.0.1:5000/startbench/pause@{D_PAUSE} application/vnd.docker.distribution.manifest.v2+json {D_PAUSE} 717.9 KiB linux/amd64 io.cri-containerd.image=managed 
sha256:17c6ccd46a9d1da7b4ee13738980643c38303ecc9fc1e076aaf15ad49ef31999                                application/vnd.docker.distribution.manifest.v2+json {D_PAUSE} 717.9 KiB linux/amd64 io.cri-containerd.image=managed 
sha256:36616cc2e816c8edc9e88fbad9cce271b184cd602dbb7e3601a9ed5bad90a492                                application/vnd.docker.distribution.manifest.v2+json {D_BASE} 46.6 MiB  linux/amd64 io.cri-containerd.image=managed 
"""
BASE = "127.0.0.1:5000/startbench/base:bookworm"


# --- references
def test_normalize_spells_references_as_containerd_stores_them():
    assert normalize("busybox") == "docker.io/library/busybox:latest"
    assert normalize("library/busybox:1.36") == "docker.io/library/busybox:1.36"
    assert normalize("user/app") == "docker.io/user/app:latest"
    assert normalize("ghcr.io/a/b") == "ghcr.io/a/b:latest"
    assert normalize("localhost/a") == "localhost/a:latest"
    assert normalize(BASE) == BASE
    assert normalize(f"127.0.0.1:5000/x@{D_BASE}") == f"127.0.0.1:5000/x@{D_BASE}"


def test_aliases_of_a_reference_with_tag_and_digest_include_its_digest_and_tag_forms():
    ref = f"127.0.0.1:5000/startbench/base:bookworm@{D_BASE}"
    assert aliases(ref) == [ref, f"127.0.0.1:5000/startbench/base@{D_BASE}", BASE]
    assert aliases(BASE) == [BASE]
    assert aliases(f"127.0.0.1:5000/startbench/base@{D_BASE}") == [f"127.0.0.1:5000/startbench/base@{D_BASE}"]


# --- the simulated node's cache annotation
def test_without_image_removes_only_that_image_and_keeps_the_rest_sorted():
    cache = json.dumps(["z.example/other:1", BASE, "a.example/app:2"])
    assert json.loads(purge.without_image(cache, BASE)) == ["a.example/app:2", "z.example/other:1"]


def test_without_image_of_an_absent_image_changes_nothing():
    cache = json.dumps(["a.example/app:2", "z.example/other:1"])
    assert purge.without_image(cache, BASE) == cache
    assert purge.without_image(None, BASE) == "[]"
    assert purge.without_image("not json", BASE) == "[]"
    assert purge.without_image('{"a": 1}', BASE) == "[]"


def test_without_image_matches_short_and_qualified_spellings_and_digest_aliases():
    assert purge.without_image(json.dumps(["docker.io/library/busybox:latest", "busybox:1.36"]), "busybox") \
        == json.dumps(["busybox:1.36"])
    pinned = f"{BASE}@{D_BASE}"
    cache = json.dumps([BASE, f"127.0.0.1:5000/startbench/base@{D_BASE}", "127.0.0.1:5000/startbench/base:other"])
    assert json.loads(purge.without_image(cache, pinned)) == ["127.0.0.1:5000/startbench/base:other"]


refs = hs.builds(lambda host, repo, tag: f"{host}/{repo}:{tag}", hs.sampled_from(["127.0.0.1:5000", "r.example"]),
                 hs.sampled_from(["a", "b/c", "startbench/base"]), hs.sampled_from(["1", "latest", "slim"]))


@given(hs.lists(refs, unique=True), refs)
def test_without_image_is_a_subset_without_the_image_and_idempotent(cache, image):
    once = purge.without_image(json.dumps(cache), image)
    assert set(json.loads(once)) == set(cache) - {image}
    assert purge.without_image(once, image) == once


# --- `ctr images ls`
def test_parse_ctr_images_reads_every_reference_with_its_target():
    rows = purge.parse_ctr_images(CTR_LS)
    assert len(rows) == 6
    assert rows[0] == purge.CtrImage(BASE, D_BASE)
    assert purge.parse_ctr_images("REF TYPE DIGEST SIZE PLATFORMS LABELS\n") == []


def test_refs_to_remove_are_the_tag_digest_form_and_image_id_of_the_image_only():
    assert purge.refs_to_remove(CTR_LS, BASE) == [
        BASE, f"127.0.0.1:5000/startbench/base@{D_BASE}",
        "sha256:36616cc2e816c8edc9e88fbad9cce271b184cd602dbb7e3601a9ed5bad90a492"]
    by_digest = purge.refs_to_remove(CTR_LS, f"127.0.0.1:5000/startbench/base@{D_BASE}")
    assert sorted(by_digest) == sorted(purge.refs_to_remove(CTR_LS, BASE))


def test_refs_to_remove_is_empty_for_an_image_the_node_does_not_have():
    assert purge.refs_to_remove(CTR_LS, "127.0.0.1:5000/startbench/pytorch:slim") == []
    assert purge.refs_to_remove("", BASE) == []


# --- the agent's DaemonSet
def test_daemonset_mounts_the_hosts_socket_where_ctr_looks_and_holds_an_idle_pod():
    ds = purge.daemonset_manifest("startbench-system", "r.example/ctr:1", cri_socket="/var/run/k3s/containerd.sock")
    assert ds["kind"] == "DaemonSet" and ds["metadata"]["namespace"] == "startbench-system"
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == purge.CONTAINER and container["image"] == "r.example/ctr:1"
    (volume,) = pod["volumes"]
    assert volume["hostPath"] == {"path": "/var/run/k3s/containerd.sock", "type": "Socket"}
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"]
    assert purge.CTR[purge.CTR.index("--address") + 1] == mount["mountPath"]
    assert "sleep" in container["command"][-1] and "trap" in container["command"][-1]


def test_daemonset_pods_carry_the_label_the_operator_selects_by():
    ds = purge.daemonset_manifest("ns", "img")
    key, value = purge.SELECTOR.split("=")
    template_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert template_labels[key] == value
    assert ds["spec"]["selector"]["matchLabels"].items() <= template_labels.items()


def test_daemonset_tolerates_every_taint_by_default_and_takes_a_selector():
    ds = purge.daemonset_manifest("ns", "img")
    assert ds["spec"]["template"]["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in ds["spec"]["template"]["spec"]
    gpu = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    ds = purge.daemonset_manifest("ns", "img", node_selector={"startbench.dev/pool": "gpu"}, tolerations=gpu)
    assert ds["spec"]["template"]["spec"]["tolerations"] == gpu
    assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"startbench.dev/pool": "gpu"}


def test_daemonset_is_root_without_capabilities_and_asks_little():
    container = purge.daemonset_manifest("ns", "img")["spec"]["template"]["spec"]["containers"][0]
    sc = container["securityContext"]
    assert sc["runAsUser"] == 0 and sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] == {"cpu": "5m", "memory": "16Mi"}


# --- purge_image without an agent
class _NoAgentIO:
    def running_pods_on_node(self, namespace, selector, node):
        assert selector == purge.SELECTOR and node == "gpu-1"
        return []


def test_a_real_node_without_an_agent_fails_and_says_how_to_fix_it():
    for namespace in ("startbench-system", None):
        result = purge_image(_NoAgentIO(), "gpu-1", BASE, namespace, simulated=False)
        assert not result.ok and result.how is None
        assert "gpu-1" in result.message and purge.CHART_VALUE in result.message
        assert "spec.purgeImageBeforeColdRun" in result.message


# --- the exec's status channel (a metav1.Status)
def test_exit_status_reads_success_nonzero_exit_and_a_refused_exec():
    assert purge.exit_status('{"metadata":{},"status":"Success"}', "") == (0, "")
    nonzero = ('{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit '
               'status 2","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}')
    assert purge.exit_status(nonzero, "ctr: oops") == (2, "ctr: oops")
    # What this cluster's API server answered when it could not reach a node's kubelet by its host name.
    refused = ('{"metadata":{},"status":"Failure","message":"error sending request: Post \\"https://real-node-0:'
               '20250/exec/ns/pod/agent\\": dial tcp: lookup real-node-0: no such host","reason":"InternalError",'
               '"code":500}')
    code, err = purge.exit_status(refused, "")
    assert code == -1 and "no such host" in err
    code, err = purge.exit_status("", "")
    assert code == -1 and "without an exit status" in err
