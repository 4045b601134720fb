"""push(): per-layer progress, retries on transient registry errors, refusals without retry.

The engine is replaced by a recorded push stream (the chunk shapes the Docker engine sends); the real
engine and registry are exercised in tests/docker/test_images_builder.py.
"""

from __future__ import annotations

import pytest

from startbench.images import builder
from startbench.images.credentials import Credentials
from startbench.images.errors import PushRefused, RegistryUnavailable

OK = [
    {"status": "The push refers to repository [r:1/startbench-jax]"},
    {"status": "Preparing", "progressDetail": {}, "id": "aaa"},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 2048}, "id": "aaa"},
    {"status": "Pushing", "progressDetail": {"current": 600, "total": 2048}, "id": "aaa"},
    {"status": "Pushing", "progressDetail": {"current": 2048, "total": 2048}, "id": "aaa"},
    {"status": "Pushed", "progressDetail": {}, "id": "aaa"},
    {"status": "slim-cpu: digest: sha256:feed size: 943"},
    {"progressDetail": {}, "aux": {"Tag": "slim-cpu", "Digest": "sha256:feed", "Size": 943}},
]


def _error(message):
    return [{"status": "Preparing", "id": "aaa"}, {"errorDetail": {"message": message}, "error": message}]


class _Api:
    def __init__(self, scripts):
        self.scripts, self.calls = list(scripts), []

    def push(self, repository, tag, stream, decode, auth_config):
        self.calls.append((repository, tag, auth_config))
        yield from self.scripts.pop(0)


class _Client:
    def __init__(self, *scripts):
        self.api = _Api(scripts)


def test_progress_per_layer_and_digest():
    client, messages = _Client(OK), []
    assert builder.push(client, "r:1/startbench-jax:slim-cpu", None, messages.append) == "sha256:feed"
    assert client.api.calls == [("r:1/startbench-jax", "slim-cpu", None)]
    layer = [m for m in messages if m.startswith("push aaa")]
    # 600/2048 is in the same quarter as 512/2048: not repeated.
    assert layer == ["push aaa: Preparing", "push aaa: Pushing 0.0/0.0 MB", "push aaa: Pushing 0.0/0.0 MB",
                     "push aaa: Pushed"]


def test_transient_errors_are_retried_then_succeed(monkeypatch):
    monkeypatch.setattr(builder.time, "sleep", lambda s: None)
    client = _Client(_error("read tcp: connection reset by peer"),
                     _error("received unexpected HTTP status: 503 Service Unavailable"), OK)
    messages: list[str] = []
    assert builder.push(client, "r:1/x:t", None, messages.append, retries=3) == "sha256:feed"
    assert [m.split(";")[1].strip() for m in messages if "retry" in m] == ["retry 1/3 in 1s", "retry 2/3 in 2s"]


def test_retries_are_bounded(monkeypatch):
    monkeypatch.setattr(builder.time, "sleep", lambda s: None)
    client = _Client(*[_error("dial tcp 127.0.0.1:5999: connect: connection refused")] * 3)
    with pytest.raises(RegistryUnavailable, match="after 3 attempt"):
        builder.push(client, "127.0.0.1:5999/x:t", None, lambda m: None, retries=2)


def test_refusals_are_not_retried_and_say_what_to_do():
    client = _Client(_error("no basic auth credentials"))
    with pytest.raises(PushRefused, match="needs credentials.*Kubernetes Secret"):
        builder.push(client, "r:1/x:t", None, lambda m: None)
    assert len(client.api.calls) == 1
    creds = Credentials("r:1", "bob", "hunter2-secret", "Secret ci/push")
    client = _Client(_error("denied: requested access to the resource is denied"))
    with pytest.raises(PushRefused, match="as bob@r:1 .*may push") as excinfo:
        builder.push(client, "r:1/x:t", creds, lambda m: None)
    assert "hunter2-secret" not in str(excinfo.value)
    assert client.api.calls[0][2] == {"username": "bob", "password": "hunter2-secret"}


def test_stream_without_digest_is_an_error():
    with pytest.raises(PushRefused, match="without a digest"):
        builder.push(_Client(OK[:-1]), "r:1/x:t", None, lambda m: None)
