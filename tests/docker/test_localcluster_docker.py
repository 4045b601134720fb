"""The Docker engine, the two local registries and the base image, as `startbench cluster up` sets them up."""

from __future__ import annotations

import base64
import http.client
import json
import os
import stat

import docker
import pytest

from startbench.localcluster import baseimage, docker_engine, registry

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json"
)


def _get(address: str, path: str, auth: tuple[str, str] | None = None, method: str = "GET"):
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Accept": MANIFEST_TYPES}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _push(client, ref: str, auth_config: dict | None = None) -> list[dict]:
    lines = list(client.api.push(ref, stream=True, decode=True, auth_config=auth_config))
    return lines


def _delete_manifest(address: str, repo: str, digest: str, auth=None) -> None:
    status, _, _ = _get(address, f"/v2/{repo}/manifests/{digest}", auth=auth, method="DELETE")
    assert status == 202, f"registry refused to delete {repo}@{digest}: {status}"


def test_engine_answers_and_ensure_is_idempotent(docker_host):
    client = docker.DockerClient(base_url=docker_host)
    try:
        assert client.ping()
        assert client.version()["ApiVersion"]
        info = client.info()
        # Both local registries are trusted over plain HTTP (explicitly, or via Docker's 127.0.0.0/8 default).
        cidrs = info["RegistryConfig"]["InsecureRegistryCIDRs"]
        assert "127.0.0.0/8" in cidrs
    finally:
        client.close()
    assert docker_engine.ensure(progress=lambda _m: None) == docker_host
    assert docker_engine.status()["answers"] is True


def test_registries_answer_with_and_without_auth(registries):
    assert registries["noauth"] == "127.0.0.1:5000" and registries["auth"] == "127.0.0.1:5001"
    assert registry.probe(5000) == 200
    assert registry.probe(5001) == 401
    mode = stat.S_IMODE(os.stat(registries["password_file"]).st_mode)
    assert mode == 0o600
    assert registry.ensure(progress=lambda _m: None) == registries
    st = registry.status()
    assert st["noauth"]["answers"] and not st["noauth"]["auth"]
    assert st["auth"]["answers"] and st["auth"]["auth"]


def test_base_image_runs_python(base_image, docker_host):
    assert base_image == "127.0.0.1:5000/startbench/base:bookworm"
    assert baseimage.run_python(code="print(1)", docker_host=docker_host).strip() == "1"
    # A second ensure finds the image and the registry copy and does nothing.
    messages = []
    assert baseimage.ensure(docker_host=docker_host, progress=messages.append) == base_image
    assert any("is present" in m for m in messages) and any("is in the registry" in m for m in messages)


def test_noauth_registry_accepts_a_push_and_serves_the_manifest(docker_client, base_image, unique_tag):
    repo = "startbench-test/push"
    ref = f"127.0.0.1:5000/{repo}:{unique_tag}"
    image = docker_client.images.get(base_image)
    image.tag(ref)
    try:
        lines = _push(docker_client, ref)
        assert not [l for l in lines if "error" in l], lines
        status, headers, body = _get("127.0.0.1:5000", f"/v2/{repo}/manifests/{unique_tag}")
        assert status == 200
        manifest = json.loads(body)
        assert manifest["schemaVersion"] == 2
        # The registry's manifest points at the very image config the engine holds.
        assert manifest["config"]["digest"] == image.id
        assert len(manifest["layers"]) == len(image.attrs["RootFS"]["Layers"])
        _delete_manifest("127.0.0.1:5000", repo, headers["Docker-Content-Digest"])
        assert _get("127.0.0.1:5000", f"/v2/{repo}/manifests/{unique_tag}")[0] == 404
    finally:
        docker_client.images.remove(ref)


def test_auth_registry_refuses_anonymous_and_accepts_the_credentials(docker_client, base_image, registries, unique_tag):
    repo = "startbench-test/auth"
    ref = f"127.0.0.1:5001/{repo}:{unique_tag}"
    creds = {"username": registries["username"], "password": registry.password()}
    docker_client.images.get(base_image).tag(ref)
    try:
        anonymous = _push(docker_client, ref)
        assert any("error" in l for l in anonymous), "the auth registry accepted an anonymous push"
        wrong = _push(docker_client, ref, auth_config={"username": "startbench", "password": "not-it"})
        assert any("error" in l for l in wrong), "the auth registry accepted a wrong password"
        ok = _push(docker_client, ref, auth_config=creds)
        assert not [l for l in ok if "error" in l], ok

        path = f"/v2/{repo}/manifests/{unique_tag}"
        assert _get(registries["auth"], path)[0] == 401
        status, headers, _ = _get(registries["auth"], path, auth=(creds["username"], creds["password"]))
        assert status == 200

        # Anonymous pull through the engine is refused too; the same pull with credentials works.
        docker_client.images.remove(ref)
        with pytest.raises(docker.errors.APIError):
            docker_client.images.pull(f"127.0.0.1:5001/{repo}", tag=unique_tag)
        docker_client.images.pull(f"127.0.0.1:5001/{repo}", tag=unique_tag, auth_config=creds)
        _delete_manifest(registries["auth"], repo, headers["Docker-Content-Digest"],
                         auth=(creds["username"], creds["password"]))
    finally:
        try:
            docker_client.images.remove(ref)
        except docker.errors.ImageNotFound:
            pass


def test_status_problems_are_none_when_all_runs(base_image):
    assert docker_engine.status_problem() is None
    assert registry.status_problem() is None
    assert baseimage.status_problem() is None
    assert "not in the local registry" in baseimage.status_problem("startbench/never-built:x")
