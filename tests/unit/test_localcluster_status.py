"""`startbench cluster status` on a fresh machine lists every component, stopped ones included, and a fresh state
is never taken for a running cluster (the cluster tier's fixture asks `control_plane_healthy`)."""

from __future__ import annotations

from startbench.cli import main as cli
from startbench.localcluster import cluster

EXPECTED = [*cluster.CONTROL_PLANE, "docker_engine", "registry", "baseimage", "realnode"]


def test_a_fresh_state_lists_every_component_as_not_started(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STARTBENCH_CACHE", str(tmp_path / "fresh"))
    rows = cluster.status()
    assert [r["name"] for r in rows] == EXPECTED
    for row in rows[:len(cluster.CONTROL_PLANE)]:
        assert (row["running"], row["healthy"], row["optional"]) == (False, False, False), row
        assert "not started" in row["problem"]
    assert not cluster.control_plane_healthy(rows) and not cluster.healthy(rows)
    assert cli.main(["cluster", "status"]) == 1
    out = capsys.readouterr().out
    assert all(name in out for name in EXPECTED) and "startbench cluster up" in out


def _row(name, healthy=True, optional=False):
    return {"name": name, "healthy": healthy, "optional": optional, "running": healthy, "pid": None,
            "problem": None if healthy else "down"}


def test_health_needs_every_control_plane_component_and_ignores_only_the_optional_real_node():
    control = [_row(n) for n in cluster.CONTROL_PLANE]
    docker = [_row(n) for n in ("docker_engine", "registry", "baseimage")]
    assert cluster.healthy(control + docker + [_row("realnode", False, optional=True)])
    assert cluster.control_plane_healthy(control)
    # The bug this guards against: only the Docker parts listed (a fresh state) looked like a running cluster.
    assert not cluster.control_plane_healthy(docker) and not cluster.healthy(docker)
    assert not cluster.healthy([]) and not cluster.control_plane_healthy([])
    assert not cluster.control_plane_healthy(control[:-1])
    assert not cluster.healthy(control + [_row("registry", False)])
    assert not cluster.control_plane_healthy([_row("etcd", False)] + control[1:])
