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
    # Namespace of the image-purge agent (chart value cachePurge.enabled); empty: no agent, so a Benchmark that
    # asks for purges before cold runs fails those runs on real nodes (simulated nodes need no agent).
    purge_namespace: str = ""


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
    return Config(
        namespaces=namespaces,
        metrics_port=_int(env, "STARTBENCH_METRICS_PORT", 9090, 0, 65535),
        metrics_address=env.get("STARTBENCH_METRICS_ADDRESS", "0.0.0.0") or "0.0.0.0",
        docker_host=env.get("STARTBENCH_DOCKER_HOST", ""),
        max_parallel_pods=_int(env, "STARTBENCH_MAX_PARALLEL_PODS", 1000, 1, 100_000),
        log_level=log_level,
        build_registry=env.get("STARTBENCH_BUILD_REGISTRY", "").strip().rstrip("/"),
        build_base_image=env.get("STARTBENCH_BUILD_BASE_IMAGE", "").strip(),
        build_ca_bundle=env.get("STARTBENCH_BUILD_CA_BUNDLE", "").strip(),
        purge_namespace=env.get("STARTBENCH_PURGE_NAMESPACE", "").strip(),
    )
