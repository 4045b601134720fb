"""A model of image pulls on simulated nodes (pure: time is passed in, nothing sleeps).

What it captures, and why:
- A pull moves the image's compressed bytes. Alone on a node it runs at the node's bandwidth.
- Nodes share the registry: its egress bandwidth is split evenly between the pulls in flight (a fluid
  model), so a fan-out to many nodes slows every pull, as a pull storm does on a real cluster.
- The kubelet pulls one image at a time per node by default (serializeImagePulls: true), so a second pull
  on a busy node waits; the kubelet reports that wait in "(Ys including waiting)".
- Every pull pays a fixed round trip to resolve the manifest, also when all layers are already present
  (pull policy Always on a warm node).
The model does not simulate unpacking, disk speed or lazy pulling; those belong to real nodes.
"""

from __future__ import annotations

import dataclasses
import math

RESOLVE_SECONDS = 0.05


@dataclasses.dataclass
class Pull:
    key: str              # who asked: namespace/pod
    node: str
    image: str
    size_bytes: int
    queued_at: float
    started_at: float | None = None
    remaining: float = 0.0
    finished_at: float | None = None


@dataclasses.dataclass
class PullModel:
    registry_bandwidth: float = 1_250_000_000.0  # bytes/s the registry serves in total (10 Gbit/s)
    node_bandwidth: dict[str, float] = dataclasses.field(default_factory=dict)
    default_node_bandwidth: float = 125_000_000.0
    now: float = 0.0
    queues: dict[str, list[Pull]] = dataclasses.field(default_factory=dict)
    # Pulls that finished while enqueue() moved time forward, handed out by the next advance().
    unreported: list[Pull] = dataclasses.field(default_factory=list)

    def _active(self) -> list[Pull]:
        return [q[0] for q in self.queues.values() if q and q[0].started_at is not None]

    def _rate(self, pull: Pull, active: int) -> float:
        node_bw = self.node_bandwidth.get(pull.node, self.default_node_bandwidth)
        return min(node_bw, self.registry_bandwidth / max(active, 1))

    def advance(self, now: float) -> list[Pull]:
        """Move time forward to `now`, returning the pulls that finished on the way (in finish order)."""
        if now < self.now:
            raise ValueError(f"time went backwards: {now} < {self.now}")
        finished, self.unreported = self.unreported, []
        while True:
            active = self._active()
            if not active:
                self.now = now
                return finished
            rates = {id(p): self._rate(p, len(active)) for p in active}
            finish = {id(p): self.now + p.remaining / rates[id(p)] for p in active}
            soonest = min(finish.values())
            if soonest > now:
                for p in active:
                    p.remaining = max(0.0, p.remaining - rates[id(p)] * (now - self.now))
                self.now = now
                return finished
            # Completion is decided by finish time, not by bytes left: at large clock values a few bytes'
            # worth of time vanishes in rounding, and a byte threshold would never be reached.
            for p in active:
                if finish[id(p)] <= soonest:
                    p.remaining = 0.0
                else:
                    p.remaining = max(0.0, p.remaining - rates[id(p)] * (soonest - self.now))
            self.now = max(self.now, soonest)
            for p in [p for p in active if finish[id(p)] <= soonest]:
                p.finished_at = self.now
                self.queues[p.node].pop(0)
                finished.append(p)
                self._start_next(p.node)

    def _start_next(self, node: str) -> None:
        queue = self.queues.get(node)
        if queue and queue[0].started_at is None:
            head = queue[0]
            head.started_at = self.now
            # The manifest round trip costs time, modelled as bytes at the node's bandwidth.
            head.remaining = head.size_bytes + RESOLVE_SECONDS * self.node_bandwidth.get(
                node, self.default_node_bandwidth)

    def enqueue(self, key: str, node: str, image: str, size_bytes: int, now: float) -> Pull:
        if size_bytes < 0:
            raise ValueError(f"image size must be ≥ 0, got {size_bytes}")
        self.unreported = self.advance(now)
        pull = Pull(key=key, node=node, image=image, size_bytes=size_bytes, queued_at=now)
        self.queues.setdefault(node, []).append(pull)
        self._start_next(node)
        return pull

    def next_finish(self) -> float | None:
        """When the next pull finishes if nothing else arrives (for a timer), or None when idle."""
        active = self._active()
        if not active:
            return None
        return min(self.now + p.remaining / self._rate(p, len(active)) for p in active)


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String(), as the kubelet prints it: 850ms, 1.234s, 1m2.5s."""
    if seconds < 0:
        return "-" + go_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        text = f"{ms:.6f}".rstrip("0").rstrip(".")
        return f"{text}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    sec_text = f"{secs:.9f}".rstrip("0").rstrip(".")
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{sec_text}s"


def pulled_message(image: str, pull_seconds: float, total_seconds: float, size_bytes: int) -> str:
    """The kubelet's Pulled event message (kubelet 1.30+)."""
    return (f'Successfully pulled image "{image}" in {go_duration(_round_ms(pull_seconds))} '
            f'({go_duration(_round_ms(total_seconds))} including waiting). Image size: {size_bytes} bytes.')


def _round_ms(seconds: float) -> float:
    # The kubelet truncates both durations to milliseconds.
    return math.floor(seconds * 1000) / 1000
