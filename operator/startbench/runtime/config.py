"""The operator's configuration: one object read from STARTBENCH_* environment variables.

Every variable is documented in the README ("Configuration"). `load()` validates all of them at
start-up and raises ConfigError naming the variable and what to change, so a bad deployment fails
at once instead of half-way through a benchmark.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping


class ConfigError(ValueError):
    """A STARTBENCH_* variable has a value the operator cannot use."""


@dataclasses.dataclass(frozen=True)
class Config:
    # Namespaces the operator watches; empty means the whole cluster.
    namespaces: tuple[str, ...] = ()
    # Port of the Prometheus /metrics endpoint (0 disables it).
    metrics_port: int = 9090
    # Address the metrics endpoint binds to.
    metrics_address: str = "0.0.0.0"
    # Docker engine used for image builds; empty means the SDK's default (DOCKER_HOST or the local socket).
    docker_host: str = ""
    # Maximum number of pods one benchmark may have in flight, whatever its spec asks (guards the cluster).
    max_parallel_pods: int = 1000
    # Log level of the operator: DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    # Registry (host[:port][/namespace]) that images a Benchmark asks the operator to build are pushed to; the
    # cluster's nodes must be able to pull from it. Empty: the operator refuses build entries.
    build_registry: str = ""
    # BASE_IMAGE build argument for those builds (empty: each Dockerfile's own default).
    build_base_image: str = ""
    # A CA bundle for the builds' pip step only (a machine behind a TLS-intercepting proxy); never in images.
    build_ca_bundle: str = ""
    # Registries (host[:port]) spoken to over plain HTTP, as a Docker engine's --insecure-registry: where built
    # images are pushed and image manifests read (loopback registries always are).
    insecure_registries: tuple[str, ...] = ()
    # Namespace of the image-purge agent (chart value cachePurge.enabled); empty: no agent, so a Benchmark that
    # asks for purges before cold runs fails those runs on real nodes (simulated nodes need no agent).
    purge_namespace: str = ""
    # The Lease ("namespace/name") the operator's replicas elect their one active replica with (runtime/leader.py);
    # empty: no election, Kopf starts at once (one replica only).
    leader_election_lease: str = ""
    # Seconds: how long a Lease stays valid without renewal, how long the holder keeps trying to renew before it
    # steps down, and how often every candidate tries (retry < renew deadline < lease duration).
    lease_duration_seconds: int = 15
    renew_deadline_seconds: int = 10
    retry_period_seconds: int = 2


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; set it to a whole number between {low} and {high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range; set it between {low} and {high}")
    return value


def _dns_name(text: str, limit: int) -> bool:
    import re
    return len(text) <= limit and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", text) is not None


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration from `env` (default: os.environ)."""
    env = os.environ if env is None else env
    namespaces = tuple(ns.strip() for ns in env.get("STARTBENCH_NAMESPACES", "").split(",") if ns.strip())
    for ns in namespaces:
        # Kopf also takes glob patterns ("team-*"); the rest must be a DNS label.
        plain = ns.replace("*", "a").replace("?", "a")
        if len(ns) > 63 or not plain.replace("-", "a").isalnum() or not plain.islower() or ns[0] == "-" or ns[-1] == "-":
            raise ConfigError(
                f"STARTBENCH_NAMESPACES has {ns!r}, which is not a namespace name or pattern; give a "
                "comma-separated list of lower-case DNS labels (globs like team-* allowed), or leave it empty for all"
            )
    log_level = env.get("STARTBENCH_LOG_LEVEL", "INFO").upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"STARTBENCH_LOG_LEVEL={log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    lease = env.get("STARTBENCH_LEADER_ELECTION_LEASE", "").strip()
    if lease:
        lease_ns, slash, lease_name = lease.partition("/")
        if not slash or not _dns_name(lease_ns, 63) or not _dns_name(lease_name, 253):
            raise ConfigError(f"STARTBENCH_LEADER_ELECTION_LEASE={lease!r} is not NAMESPACE/NAME; give the Lease the "
                              "replicas elect their leader with, e.g. startbench/startbench, or leave it empty")
    lease_s = _int(env, "STARTBENCH_LEASE_DURATION_SECONDS", 15, 2, 3600)
    renew_s = _int(env, "STARTBENCH_RENEW_DEADLINE_SECONDS", 10, 1, 3600)
    retry_s = _int(env, "STARTBENCH_RETRY_PERIOD_SECONDS", 2, 1, 3600)
    if not retry_s < renew_s < lease_s:
        raise ConfigError(f"leader election needs STARTBENCH_RETRY_PERIOD_SECONDS ({retry_s}) < "
                          f"STARTBENCH_RENEW_DEADLINE_SECONDS ({renew_s}) < STARTBENCH_LEASE_DURATION_SECONDS "
                          f"({lease_s}): a holder must step down before another replica may take over")
    return Config(
        leader_election_lease=lease,
        lease_duration_seconds=lease_s,
        renew_deadline_seconds=renew_s,
        retry_period_seconds=retry_s,
        namespaces=namespaces,
        metrics_port=_int(env, "STARTBENCH_METRICS_PORT", 9090, 0, 65535),
        metrics_address=env.get("STARTBENCH_METRICS_ADDRESS", "0.0.0.0") or "0.0.0.0",
        docker_host=env.get("STARTBENCH_DOCKER_HOST", ""),
        max_parallel_pods=_int(env, "STARTBENCH_MAX_PARALLEL_PODS", 1000, 1, 100_000),
        log_level=log_level,
        build_registry=env.get("STARTBENCH_BUILD_REGISTRY", "").strip().rstrip("/"),
        build_base_image=env.get("STARTBENCH_BUILD_BASE_IMAGE", "").strip(),
        build_ca_bundle=env.get("STARTBENCH_BUILD_CA_BUNDLE", "").strip(),
        insecure_registries=tuple(r.strip().rstrip("/") for r in env.get("STARTBENCH_INSECURE_REGISTRIES", "").split(",")
                                  if r.strip()),
        purge_namespace=env.get("STARTBENCH_PURGE_NAMESPACE", "").strip(),
    )
