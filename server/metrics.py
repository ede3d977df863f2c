"""The node's Prometheus metrics: every metric object, in one registry per node.

Counting is per op, per connection and per pub/sub message or flush, never per recipient: a
message's deliveries are counted once per message (`messages_delivered`), the socket writes
once per flush. With `--metrics false` the node makes no `Metrics` at all (nothing counted).

With PROMETHEUS_MULTIPROC_DIR set (worker processes), prometheus-client keeps every value in
that directory and `exposition` serves all processes' values aggregated, as its documentation
describes; the gauges say how they combine (`multiprocess_mode`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from roomhub.protocol import ops

OP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNKNOWN_OP = "unknown"  # an op name not in the table: bounded label values


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The metric objects of one node. `sample` is called at scrape time (gauges that are
    read, not counted)."""

    def __init__(self, sample: Callable[[Metrics], None] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._sample = sample
        shared = multiprocess_dir() is not None
        if shared:
            # The metric objects write to the directory; what is served is read back from it.
            self.exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.exposed)
        else:
            self.exposed = self.registry
            ProcessCollector(registry=self.registry)
        r = self.registry

        def gauge(name: str, doc: str, labels: Iterable[str], mode: str) -> Gauge:
            return Gauge(name, doc, list(labels), registry=r, multiprocess_mode=mode)

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=r)

        self.connections_open = gauge(
            "roomhub_connections_open",
            "WebSocket connections open on this node (kind: user, server, or unauthenticated)",
            ["encoding", "kind"],
            "livesum",
        )
        self.connections_opened = counter(
            "roomhub_connections_opened",
            "WebSocket connections opened (handshake done)",
            ["encoding"],
        )
        self.connections_closed = counter(
            "roomhub_connections_closed",
            "WebSocket connections closed, by close code (the one the node sent, else 1006)",
            ["code"],
        )
        self.auth_failures = counter(
            "roomhub_auth_failures",
            "connections refused at auth, by reason (the error's reason, or timeout)",
            ["reason"],
        )
        self.ops = counter(
            "roomhub_ops",
            "requests answered, by op and result code (ok or the error code)",
            ["op", "code"],
        )
        self.op_seconds = Histogram(
            "roomhub_op_duration_seconds",
            "seconds from a request's arrival to its reply, by op",
            ["op"],
            registry=r,
            buckets=OP_BUCKETS,
        )
        self.messages_published = counter(
            "roomhub_messages_published",
            "system messages published by this node's ops (successful mutating ops)",
        )
        self.messages_received = counter(
            "roomhub_messages_received", "system messages this node received from Redis pub/sub"
        )
        self.messages_delivered = counter(
            "roomhub_messages_delivered",
            "system messages delivered in order to this node's connections of the room (once per"
            " message, not per connection)",
        )
        self.socket_writes = counter(
            "roomhub_socket_writes",
            "batched socket writes to clients (one per connection per flush)",
        )
        self.slow_consumer_drops = counter(
            "roomhub_slow_consumer_drops",
            "connections closed with 4008: their send buffer was full",
        )
        self.rate_limited = counter(
            "roomhub_rate_limit_rejections",
            "mutating ops refused with 100006, by limit (app, user, connection)",
            ["limit"],
        )
        self.pubsub_reconnects = counter(
            "roomhub_pubsub_reconnects",
            "pub/sub connections back after a loss (each followed by a heal from the logs)",
        )
        self.heals = counter(
            "roomhub_heals",
            "room logs read to fill a gap in pub/sub (after a lost message or a reconnect)",
        )
        self.resyncs = counter(
            "roomhub_room_resyncs",
            "rooms restarted from a snapshot because the log no longer held the gap",
        )
        self.redis_errors = counter(
            "roomhub_redis_errors",
            "Redis failures seen by ops and heals (kind: unavailable or script)",
            ["kind"],
        )
        self.send_buffer_bytes = gauge(
            "roomhub_send_buffer_bytes",
            "unsent bytes in the clients' send buffers, all connections (sampled at scrape)",
            [],
            "livesum",
        )
        self.send_buffer_max_bytes = gauge(
            "roomhub_send_buffer_max_bytes",
            "unsent bytes of the fullest connection's send buffer (sampled at scrape)",
            [],
            "livemax",
        )
        self.presence_changes = counter(
            "roomhub_presence_changes",
            "users this node made come online or go offline (change: online, offline; the"
            " users of dead nodes it reaped included)",
            ["change"],
        )
        self.presence_reaped = counter(
            "roomhub_presence_reaped_nodes",
            "dead node instances (missed heartbeats) whose users this node took offline",
        )
        self.presence_users = gauge(
            "roomhub_presence_users",
            "users this node holds online in Redis (sampled at scrape)",
            [],
            "livesum",
        )
        self.presence_pending = gauge(
            "roomhub_presence_pending",
            "users whose presence change this node has yet to write to Redis (sampled at scrape)",
            [],
            "livesum",
        )
        # Per op, the children of a success: looked up once, not per request.
        self._ok = {
            name: (self.ops.labels(name, "ok"), self.op_seconds.labels(name)) for name in ops.OPS
        }
        limits = ("app", "user", "connection")
        self.limits = {name: self.rate_limited.labels(name) for name in limits}

    def op_done(self, op: str, code: int | None, started: float) -> None:
        """One answered request: `code` None = ok; `started` = its perf_counter at arrival."""
        children = self._ok.get(op)
        if children is None:
            self.ops.labels(UNKNOWN_OP, str(code)).inc()
            return
        ok, seconds = children
        seconds.observe(time.perf_counter() - started)
        if code is None:
            ok.inc()
        else:
            self.ops.labels(op, str(code)).inc()

    def exposition(self) -> bytes:
        """The Prometheus text of this node (of all the workers, in multiprocess mode)."""
        if self._sample is not None:
            self._sample(self)
        return generate_latest(self.exposed)
