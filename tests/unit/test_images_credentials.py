"""Registry credentials from Docker config documents and Kubernetes Secrets; the password never shows."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from startbench.images import credentials as c


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(kind: str, data: dict, plain: bool = False) -> dict:
    body = {"stringData": data} if plain else {"data": {k: _b64(v) for k, v in data.items()}}
    return {"type": kind, "metadata": {"name": "push", "namespace": "ci"}, **body}


@pytest.mark.parametrize("key", ["127.0.0.1:5001", "http://127.0.0.1:5001", "https://127.0.0.1:5001/v1/"])
def test_docker_config_auth_entry_is_found_under_any_key_spelling(key):
    doc = {"auths": {key: {"auth": _b64("alice:s3cret:with:colons")}}}
    creds = c.from_docker_config(doc, "127.0.0.1:5001")
    assert (creds.username, creds.password) == ("alice", "s3cret:with:colons")
    assert c.from_docker_config(doc, "127.0.0.1:5000") is None


def test_docker_hub_aliases_match():
    doc = {"auths": {"https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}}
    assert c.from_docker_config(doc, "docker.io").username == "bob"
    assert c.registry_host("ubuntu:22.04") == "docker.io"
    assert c.registry_host("myorg/app:1") == "docker.io"
    assert c.registry_host("127.0.0.1:5000/startbench-jax:slim-cpu") == "127.0.0.1:5000"
    assert c.registry_host("localhost/x") == "localhost"


def test_credential_helpers_are_refused_with_an_alternative():
    with pytest.raises(c.CredentialsError, match="credential helper.*Kubernetes Secret"):
        c.from_docker_config({"auths": {}, "credHelpers": {"ghcr.io": "gh"}}, "ghcr.io")


def test_bad_auth_field_names_the_entry():
    with pytest.raises(c.CredentialsError, match=r"auths\['r:1'\]\.auth"):
        c.from_docker_config({"auths": {"r:1": {"auth": "!!!not base64"}}}, "r:1")
    with pytest.raises(c.CredentialsError, match="user:password"):
        c.from_docker_config({"auths": {"r:1": {"auth": _b64("nocolon")}}}, "r:1")


@pytest.mark.parametrize("plain", [False, True])
def test_secret_dockerconfigjson_and_basic_auth(plain):
    config = json.dumps({"auths": {"ghcr.io": {"auth": _b64("ci:tok")}}})
    creds = c.from_secret(_secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": config}, plain), "ghcr.io")
    assert (creds.username, creds.password, creds.source) == ("ci", "tok", "Secret ci/push")
    basic = c.from_secret(_secret("kubernetes.io/basic-auth", {"username": "u", "password": "p"}, plain), "r:1")
    assert (basic.username, basic.password) == ("u", "p")


def test_secret_without_this_registry_says_how_to_add_it():
    config = json.dumps({"auths": {"ghcr.io": {"auth": _b64("ci:tok")}}})
    with pytest.raises(c.CredentialsError, match="no credentials for registry quay.io.*--docker-server=quay.io"):
        c.from_secret(_secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": config}), "quay.io")
    with pytest.raises(c.CredentialsError, match="Secret ci/push .*holds no registry credentials"):
        c.from_secret(_secret("Opaque", {"token": "x"}), "quay.io")


def test_load_docker_config_from_env(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r:5": {"auth": _b64("a:b")}}}))
    path = c.docker_config_path({"DOCKER_CONFIG": str(tmp_path)})
    assert c.load_docker_config("r:5", path).password == "b"
    assert c.load_docker_config("r:5", tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(c.CredentialsError, match="bad.json is not JSON"):
        c.load_docker_config("r:5", tmp_path / "bad.json")


@given(st.text(min_size=6, max_size=40).filter(lambda s: s.strip() == s and "\n" not in s))
def test_password_never_in_repr_str_or_dict(password):
    def shown(creds) -> str:
        text = repr(creds) + str(creds) + json.dumps(creds.to_dict())
        return text.replace("user-x", "").replace("Secret a/b", "").replace("r:1", "")

    # A password that spells part of the fixed text (e.g. "regist", from the field name "registry") would be
    # found there whether or not it leaked: such a case tests nothing.
    assume(password not in shown(c.Credentials("r:1", "user-x", "", "Secret a/b")))
    creds = c.Credentials("r:1", "user-x", password, "Secret a/b")
    assert password not in shown(creds)
    assert creds.auth_config() == {"username": "user-x", "password": password}
