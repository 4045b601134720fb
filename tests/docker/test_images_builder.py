"""The image builder against the real engine and the real local registries, with tiny images.

Every recorded number is checked against a second source: the registry's own manifest and blob lengths
(HTTP, not through the builder's code) and the engine's image inspect.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests

from startbench.cli import main as cli
from startbench.images import builder, credentials, store
from startbench.images.errors import BuildFailed, CredentialsRefused, PushRefused, RegistryUnavailable
from startbench.localcluster import registry

TINY = """ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS builder
ARG FLAVOUR=cpu
COPY operator/startbench/__init__.py /opt/startbench/startbench/__init__.py
COPY operator/startbench/workload/ /opt/startbench/startbench/workload/
RUN python3 -m compileall -q /opt/startbench && echo "$FLAVOUR" > /opt/startbench/flavour
FROM ${BASE_IMAGE}
COPY --from=builder /opt/startbench /opt/startbench
COPY dockerfiles/tiny/payload.txt /opt/payload.txt
ENV PYTHONPATH=/opt/startbench
USER 10001:10001
ENTRYPOINT ["python3", "-m", "startbench.workload"]
"""


@pytest.fixture
def dockerfiles(tmp_path, unique_tag) -> Path:
    root = tmp_path / "dockerfiles"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "slim.Dockerfile").write_text(TINY)
    # A payload unique to this run, so the pushed layer is new to the registry (no cache hit hides a push).
    (root / "tiny" / "payload.txt").write_text(unique_tag * 1000)
    (root / "broken").mkdir()
    (root / "broken" / "slim.Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo preparing && echo the-step-that-fails >&2 && exit 3\n")
    return root


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "records.json"


def _registry_view(address: str, repository: str, tag: str, auth=None) -> tuple[str, dict, dict[str, int]]:
    base = f"http://{address}/v2/{repository}"
    resp = requests.get(f"{base}/manifests/{tag}", auth=auth, timeout=10,
                        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert resp.status_code == 200
    doc = resp.json()
    lengths = {}
    for layer in doc["layers"]:
        head = requests.head(f"{base}/blobs/{layer['digest']}", auth=auth, timeout=10, allow_redirects=True)
        assert head.status_code == 200
        lengths[layer["digest"]] = int(head.headers["Content-Length"])
    return resp.headers["Docker-Content-Digest"], doc, lengths


def _check_against_registry_and_engine(rec, docker_client, auth=None):
    address, path = rec.repository.split("/", 1)
    digest, doc, lengths = _registry_view(address, path, rec.tag, auth)
    assert rec.digest == digest
    assert [l.digest for l in rec.layers] == list(lengths)
    assert [l.size for l in rec.layers] == list(lengths.values())
    assert rec.compressed_bytes == sum(lengths.values())
    assert rec.config_bytes == doc["config"]["size"]
    image = docker_client.images.get(rec.reference)
    assert rec.image_id == image.id == doc["config"]["digest"]
    assert rec.uncompressed_bytes == image.attrs["Size"]
    assert rec.layer_count == len(image.attrs["RootFS"]["Layers"])


def test_build_push_and_record_on_the_noauth_registry(dockerfiles, store_path, base_image, registries,
                                                     docker_host, docker_client):
    messages: list[str] = []
    rec = builder.build_and_push("tiny", "slim", "cpu", registries["noauth"], progress=messages.append,
                                 base_image=base_image, docker_host=docker_host, dockerfiles=dockerfiles,
                                 store_path=store_path)
    assert rec.reference == f"{registries['noauth']}/startbench-tiny:slim-cpu"
    _check_against_registry_and_engine(rec, docker_client)
    assert rec.build_s > 0 and rec.push_s > 0 and rec.base_image == base_image
    # The build log and per-layer push progress reached the callback.
    assert any(m.startswith("build: Step") for m in messages)
    assert any(m.startswith("push ") and "Push" in m for m in messages)
    # Recorded, and the image runs its entry point's package as the non-root user.
    assert [r.to_dict() for r in store.load(store_path)] == [rec.to_dict()]
    out = docker_client.containers.run(rec.reference, entrypoint=["python3", "-c",
                                       "import os, startbench.workload.report; print(os.getuid(), open('/opt/startbench/flavour').read())"],
                                       remove=True, network_disabled=True).decode().split()
    assert out == ["10001", "cpu"]


def test_auth_registry_needs_credentials_and_records_nothing_without(dockerfiles, store_path, base_image,
                                                                     registries, docker_host, docker_client,
                                                                     monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    common = dict(base_image=base_image, docker_host=docker_host, dockerfiles=dockerfiles, store_path=store_path)
    with pytest.raises(PushRefused, match="needs credentials"):
        builder.build_and_push("tiny", "slim", "cpu", registries["auth"], **common)
    assert not store_path.exists()

    wrong = credentials.Credentials(registries["auth"], registries["username"], "not-the-password-xyz", "test")
    with pytest.raises(CredentialsRefused) as excinfo:
        builder.build_and_push("tiny", "slim", "cpu", registries["auth"], credentials=wrong, **common)
    assert "not-the-password-xyz" not in str(excinfo.value) and registries["username"] in str(excinfo.value)
    assert not store_path.exists()

    # The right credentials, as a Kubernetes Secret of type dockerconfigjson (what kubectl creates).
    password = registry.password()
    auth = base64.b64encode(f"{registries['username']}:{password}".encode()).decode()
    config = {"auths": {registries["auth"]: {"username": registries["username"], "password": password, "auth": auth}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
              "metadata": {"name": "push", "namespace": "ci"},
              "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}
    creds = credentials.from_secret(secret, registries["auth"])
    assert password not in repr(creds) and password not in str(creds)
    messages: list[str] = []
    rec = builder.build_and_push("tiny", "slim", "cpu", registries["auth"], credentials=creds,
                                 progress=messages.append, **common)
    assert not any(password in m for m in messages)
    _check_against_registry_and_engine(rec, docker_client, auth=(registries["username"], password))
    assert password not in json.dumps(rec.to_dict())
    assert [r.reference for r in store.load(store_path)] == [rec.reference]


def test_credentials_from_the_docker_config_file(dockerfiles, store_path, base_image, registries, docker_host,
                                                 monkeypatch, tmp_path):
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(f"{registries['username']}:{registry.password()}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {f"http://{registries['auth']}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    rec = builder.build_and_push("tiny", "slim", "cpu", registries["auth"], base_image=base_image,
                                 docker_host=docker_host, dockerfiles=dockerfiles, store_path=store_path)
    assert rec.compressed_bytes > 0 and store.load(store_path)[0].digest == rec.digest


def test_failing_build_carries_the_log_tail(dockerfiles, store_path, base_image, registries, docker_host):
    with pytest.raises(BuildFailed) as excinfo:
        builder.build_and_push("broken", "slim", "cpu", registries["noauth"], base_image=base_image,
                               docker_host=docker_host, dockerfiles=dockerfiles, store_path=store_path)
    message = str(excinfo.value)
    assert "the-step-that-fails" in message and "returned a non-zero code: 3" in message
    assert any("preparing" in line for line in excinfo.value.log_tail)
    assert not store_path.exists()


def test_unreachable_registry_is_reported_after_retries(dockerfiles, store_path, base_image, docker_host,
                                                        monkeypatch):
    monkeypatch.setattr(builder, "PUSH_RETRIES", 1)
    messages: list[str] = []
    with pytest.raises(RegistryUnavailable, match="127.0.0.1:5999"):
        builder.build_and_push("tiny", "slim", "cpu", "127.0.0.1:5999", progress=messages.append,
                               base_image=base_image, docker_host=docker_host, dockerfiles=dockerfiles,
                               store_path=store_path)
    assert any("retry 1/1" in m for m in messages)
    assert not store_path.exists()


def test_cli_build_then_sizes(dockerfiles, base_image, registries, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("STARTBENCH_CACHE", str(tmp_path / "cache"))
    rc = cli.main(["images", "build", "--framework", "tiny", "--variant", "slim", "--push", registries["noauth"],
                   "--base-image", base_image, "--dockerfiles", str(dockerfiles), "--quiet", "--format", "json"])
    assert rc == 0
    built = json.loads(capsys.readouterr().out)
    assert cli.main(["images", "sizes", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [built]
    assert cli.main(["images", "sizes"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["repository", "tag", "uncompressed", "compressed", "layers", "compression"]
    assert table[1].split()[:2] == [built["repository"], "slim-cpu"]
    assert table[1].split()[-2:] == [str(built["layer_count"]), "gzip"]  # the engine pushes gzip layers
    rc = cli.main(["images", "build", "--framework", "nope", "--variant", "slim", "--push", registries["noauth"],
                   "--dockerfiles", str(dockerfiles), "--quiet"])
    assert rc == 1 and "frameworks with Dockerfiles: broken, tiny" in capsys.readouterr().err
