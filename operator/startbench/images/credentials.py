"""Registry credentials from a Docker config file or a Kubernetes Secret (pure parsing, no network).

A Credentials object never shows its password: not in repr(), str() or to_dict(); errors name the
registry, the user and where the credentials came from, never the secret itself.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


class CredentialsError(ValueError):
    """Credentials could not be read; the message names the source and what to change."""


@dataclasses.dataclass(frozen=True)
class Credentials:
    registry: str
    username: str
    password: str = dataclasses.field(repr=False)
    source: str = ""

    def __str__(self) -> str:
        return f"{self.username}@{self.registry} (from {self.source or 'caller'})"

    def auth_config(self) -> dict:
        """The docker SDK's auth_config for push/pull (passed per call, never stored by the engine)."""
        return {"username": self.username, "password": self.password}

    def to_dict(self) -> dict:
        return {"registry": self.registry, "username": self.username, "source": self.source}


def registry_host(reference: str) -> str:
    """The registry host of an image reference or push target ('127.0.0.1:5000/x/y:t' -> '127.0.0.1:5000')."""
    first = reference.split("/", 1)[0]
    if "/" not in reference or ("." not in first and ":" not in first and first != "localhost"):
        return "docker.io"
    return first


def _normalise_key(key: str) -> str:
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    key = key.split("/", 1)[0]
    return "docker.io" if key in ("index.docker.io", "registry-1.docker.io") else key


def _decode_auth(entry: Mapping[str, Any], where: str) -> tuple[str, str]:
    if entry.get("username") and entry.get("password") is not None:
        return str(entry["username"]), str(entry["password"])
    auth = entry.get("auth")
    if not auth:
        raise CredentialsError(f"{where} has neither `auth` nor `username`/`password`; run `docker login` again")
    try:
        user, sep, password = base64.b64decode(auth).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsError(f"{where}.auth is not base64 of user:password; run `docker login` again") from None
    if not sep or not user:
        raise CredentialsError(f"{where}.auth does not decode to user:password; run `docker login` again")
    return user, password


def from_docker_config(doc: Mapping[str, Any], registry: str, source: str = "docker config") -> Credentials | None:
    """The credentials for `registry` in a Docker config document ({"auths": {...}}), or None if absent."""
    auths = doc.get("auths")
    if auths is None and all(isinstance(v, Mapping) for v in doc.values()):
        auths = doc  # the old ~/.dockercfg shape: the auths map itself
    if not isinstance(auths, Mapping):
        raise CredentialsError(f"{source} has no `auths` object; write it with `docker login` or "
                               "`kubectl create secret docker-registry`")
    want = _normalise_key(registry)
    for key, entry in auths.items():
        if _normalise_key(key) == want and isinstance(entry, Mapping):
            user, password = _decode_auth(entry, f"{source} auths[{key!r}]")
            return Credentials(registry=registry, username=user, password=password, source=source)
    helpers = doc.get("credHelpers") or {}
    if want in {_normalise_key(k) for k in helpers}:
        raise CredentialsError(
            f"{source} keeps the credentials for {registry} in a credential helper, which startbench does "
            "not call; pass them from a Kubernetes Secret or with --username/--password-stdin"
        )
    return None


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
    return base / "config.json"


def load_docker_config(registry: str, path: Path | None = None) -> Credentials | None:
    """Credentials for `registry` from the Docker config file (DOCKER_CONFIG or ~/.docker/config.json)."""
    path = path or docker_config_path()
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise CredentialsError(f"{path} is not JSON ({exc.__class__.__name__}); fix or remove it") from None
    return from_docker_config(doc, registry, source=str(path))


def _b64field(data: Mapping[str, Any], key: str, where: str) -> str:
    try:
        return base64.b64decode(data[key]).decode()
    except (binascii.Error, UnicodeDecodeError, TypeError):
        raise CredentialsError(f"{where} data[{key!r}] is not base64; recreate the Secret") from None


def from_secret(secret: Mapping[str, Any], registry: str) -> Credentials:
    """Credentials from a Kubernetes Secret (as a dict, e.g. the API object's to_dict() or a manifest).

    Types: kubernetes.io/dockerconfigjson (`.dockerconfigjson`), kubernetes.io/dockercfg (`.dockercfg`) and
    kubernetes.io/basic-auth (`username`, `password`). Values in `data` are base64; `stringData` is plain.
    """
    meta = secret.get("metadata") or {}
    where = f"Secret {meta.get('namespace', '?')}/{meta.get('name', '?')}"
    data = dict(secret.get("data") or {})
    plain = dict(secret.get("stringData") or secret.get("string_data") or {})
    kind = secret.get("type") or ""

    def field(key: str) -> str | None:
        if key in plain:
            return str(plain[key])
        if key in data and data[key] is not None:
            return _b64field(data, key, where)
        return None

    for key in (".dockerconfigjson", ".dockercfg"):
        text = field(key)
        if text is not None:
            try:
                doc = json.loads(text)
            except ValueError:
                raise CredentialsError(f"{where} {key} is not JSON; recreate it with "
                                       "`kubectl create secret docker-registry`") from None
            creds = from_docker_config(doc, registry, source=where)
            if creds is None:
                raise CredentialsError(
                    f"{where} has no credentials for registry {registry}; add an auths entry for it "
                    f"(kubectl create secret docker-registry --docker-server={registry} ...)"
                )
            return creds
    user, password = field("username"), field("password")
    if user and password is not None:
        return Credentials(registry=registry, username=user, password=password, source=where)
    raise CredentialsError(
        f"{where} (type {kind or 'unset'}) holds no registry credentials; use a kubernetes.io/dockerconfigjson "
        "Secret (kubectl create secret docker-registry) or a kubernetes.io/basic-auth one"
    )
