"""`startbench operator`: run the operator (what the Helm chart's Deployment runs)."""

from __future__ import annotations

import signal
import sys
import threading


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("operator", help="run the startbench operator against the current kubeconfig",
                                   description="Run the operator. Configuration: STARTBENCH_* variables (README).")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                        help="Kopf liveness endpoint (default http://0.0.0.0:8080/healthz; '' disables it)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import logging

    from startbench.runtime import config
    from startbench.runtime import handlers  # noqa: F401  (registers the handlers)
    from startbench.runtime.metrics import Metrics

    try:
        cfg = config.load()
    except config.ConfigError as err:
        print(f"startbench operator: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    metrics = Metrics()
    if cfg.metrics_port:
        metrics.serve(cfg.metrics_port, cfg.metrics_address)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = handlers.run_in_thread({"config": cfg, "metrics": metrics}, cfg.namespaces, stop=stop,
                                    liveness=args.liveness or None)
    while thread.is_alive():
        thread.join(0.5)
    return 0
