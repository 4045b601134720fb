"""`startbench operator`: run the operator (what the Helm chart's Deployment runs).

With STARTBENCH_LEADER_ELECTION_LEASE set (the chart sets it), the process first stands by as a candidate for the
Lease (runtime/leader.py), answering the liveness endpoint itself, and starts Kopf only once it leads. It exits 1
when it loses the Lease (the kubelet restarts it as a new candidate), and releases the Lease after Kopf stopped on
SIGTERM, so another replica takes over at once.
"""

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


class _StandbyHealth:
    """The liveness endpoint while this replica stands by (Kopf, which serves it when leading, is not started):
    200 `standby` while the election loop runs. Closed before Kopf binds the same address."""

    def __init__(self, url: str):
        import http.server
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        path = parts.path or "/"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                code, body = (200, b"standby\n") if self.path.split("?")[0] == path else (404, b"not found\n")
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # the kubelet probes every few seconds: no log line each time
                pass

        self.server = http.server.ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="standby-health", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _elector(cfg):
    import socket

    from startbench.runtime import leader
    from startbench.runtime.kube import Leases

    namespace, _, name = cfg.leader_election_lease.partition("/")
    election = leader.Election(namespace, name, leader.identity(socket.gethostname()),
                               lease_seconds=cfg.lease_duration_seconds,
                               renew_deadline_seconds=cfg.renew_deadline_seconds,
                               retry_seconds=cfg.retry_period_seconds)
    return leader.LeaderElector(Leases.from_environment(), election)


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

    elector, lost, renewing = None, threading.Event(), threading.Event()
    if cfg.leader_election_lease:
        elector = _elector(cfg)
        standby = _StandbyHealth(args.liveness) if args.liveness else None
        try:
            if not elector.acquire(stop):
                return 0
        finally:
            if standby is not None:
                standby.close()
        threading.Thread(target=elector.hold, args=(renewing, lost), name="lease-renewal", daemon=True).start()

    thread = handlers.run_in_thread({"config": cfg, "metrics": metrics}, cfg.namespaces, stop=stop,
                                    liveness=args.liveness or None)
    code = 0
    while thread.is_alive():
        if lost.is_set() and not stop.is_set():
            logging.getLogger("startbench.operator").error("lost the leader lease: stopping so that only the new "
                                                           "leader acts")
            stop.set()
            code = 1
        thread.join(0.5)
    renewing.set()
    if elector is not None and not lost.is_set():
        elector.release()
    return code
