"""Registry reads that the local registries cannot show: Docker Hub's names, and token services.

The token-service case runs against a small HTTP server on loopback that speaks the Distribution token protocol
(a 401 with a Bearer challenge, a token endpoint, then the manifest for that token): Debian's registry has no
token service of its own, and this machine reaches no public registry.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from startbench.images import manifest, registry_api
from startbench.images.credentials import Credentials
from startbench.core.reference import DOCKER_HUB_API, InvalidReference, parse

MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 7},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "a" * 64,
                "size": 1000}],
}).encode()


@pytest.mark.parametrize("ref,host,api_host,repository,reference", [
    ("python:3.11-slim", "docker.io", DOCKER_HUB_API, "library/python", "3.11-slim"),
    ("pytorch/pytorch", "docker.io", DOCKER_HUB_API, "pytorch/pytorch", "latest"),
    ("nvcr.io/nvidia/pytorch:25.01-py3", "nvcr.io", "nvcr.io", "nvidia/pytorch", "25.01-py3"),
    ("127.0.0.1:5000/startbench/base:bookworm", "127.0.0.1:5000", "127.0.0.1:5000", "startbench/base", "bookworm"),
    ("localhost/x@sha256:" + "f" * 64, "localhost", "localhost", "x", "sha256:" + "f" * 64),
])
def test_references_name_the_registry_api_to_ask(ref, host, api_host, repository, reference):
    parsed = parse(ref)
    assert (parsed.host, parsed.api_host, parsed.repository, parsed.reference) == (host, api_host, repository,
                                                                                  reference)


def test_an_invalid_reference_is_refused_in_the_kubelets_words():
    with pytest.raises(InvalidReference, match="invalid reference format"):
        parse("Upper/Case:tag")


class TokenRegistry(BaseHTTPRequestHandler):
    """Serves MANIFEST only for the token its /token endpoint hands out; a user is accepted if it is 'reader'."""

    token_requests: list = []

    def log_message(self, *_):
        pass

    def _send(self, code: int, body: bytes, headers: dict) -> None:
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            auth = self.headers.get("Authorization")
            type(self).token_requests.append((self.path, auth))
            if auth and auth != "Basic cmVhZGVyOnNlY3JldA==":  # reader:secret
                return self._send(401, b"{}", {})
            return self._send(200, json.dumps({"token": "t0k"}).encode(), {"Content-Type": "application/json"})
        if self.headers.get("Authorization") != "Bearer t0k":
            challenge = (f'Bearer realm="http://{host}/token",service="{host}",'
                         f'scope="repository:team/model:pull"')
            return self._send(401, b"{}", {"WWW-Authenticate": challenge})
        return self._send(200, MANIFEST, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                          "Docker-Content-Digest": manifest.digest_of(MANIFEST)})


@pytest.fixture
def token_registry():
    TokenRegistry.token_requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_public_repository_behind_a_token_service_is_read_with_an_anonymous_token(token_registry):
    raw, media_type, digest = registry_api.fetch_manifest(token_registry, "team/model", "v1")
    assert raw == MANIFEST and digest == manifest.digest_of(MANIFEST)
    assert manifest.sizes(raw, media_type).compressed_bytes == 1000
    [(path, auth)] = TokenRegistry.token_requests
    assert auth is None and "scope=repository%3Ateam%2Fmodel%3Apull" in path


def test_credentials_go_to_the_token_service_and_a_refusal_names_them(token_registry):
    registry_api.fetch_manifest(token_registry, "team/model", "v1", Credentials(token_registry, "reader", "secret"))
    with pytest.raises(registry_api.RegistryAPIError, match="refused the credentials") as err:
        registry_api.fetch_manifest(token_registry, "team/model", "v1", Credentials(token_registry, "reader", "wrong"))
    assert "wrong" not in str(err.value)


def test_registries_allowed_plain_http_are_spoken_to_without_tls(monkeypatch):
    from startbench.images import registry_api

    monkeypatch.setattr(registry_api, "_PLAIN_HTTP", set())
    assert registry_api.base_url("10.88.0.1:5000") == "https://10.88.0.1:5000"
    assert registry_api.base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    registry_api.allow_plain_http(["10.88.0.1:5000", " ", "registry.local:5000/"])
    assert registry_api.base_url("10.88.0.1:5000") == "http://10.88.0.1:5000"
    assert registry_api.base_url("registry.local:5000") == "http://registry.local:5000"
    assert registry_api.base_url("10.88.0.1:5001") == "https://10.88.0.1:5001"
