"""What a bench run does and how it tells: the plan (sizes and durations, `--quick` the tiny
one) and the live progress line on stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from time import monotonic
from typing import Any


@dataclass(frozen=True)
class Plan:
    """Sizes and durations; `quick` is the tiny configuration the tests run."""

    ceiling: int = 200
    ceiling_duration: float = 10.0
    ceiling_senders: int = 4
    configs: tuple[tuple[int, int], ...] = ((10, 10), (10, 100), (1, 1000))
    sweep_config: tuple[int, int] = (10, 100)
    sweep_rates: tuple[int, ...] = (200, 500, 1000, 2000)
    run_duration: float = 5.0
    sweep_duration: float = 4.0
    senders: int = 4
    # ops in flight per sender connection in the closed-loop (max) runs (x 4 senders): enough
    # to saturate the hub, which then gathers several messages per connection into one write
    # (at 8 x 4 = 32 in flight a 10 x 100 hub still idles ~15%)
    window: int = 16
    fanout_window: int = 16
    fanout_windows: tuple[int, ...] = (1, 4, 16)
    fanout_members: int = 1000
    fanout_paced_rate: int = 50
    connections: int = 10_000
    connection_procs: int = 4
    connect_concurrency: int = 25  # handshakes in flight per load process
    nodes_config: tuple[int, int] = (10, 100)
    paced_cap: int = 2000  # open-loop ops in flight before the generator sheds
    drain_timeout: float = 15.0
    # resilience (resilience.py, stall.py): a steady writer across a Redis restart (members split
    # over 2 nodes) and across a node restart, then a stalled client under a closed loop
    res_rate: float = 100.0  # member.update ops/s offered by the writer
    res_members: int = 4
    res_warm: float = 3.0  # seconds of traffic before Redis is stopped
    res_outage: float = 2.0  # Redis is started again this long after its SIGTERM
    res_after: float = 4.0  # seconds of traffic after that
    res_drain: float = 5.0  # seconds for the members to get the room's last message
    node_members: int = 8  # half of them on the node that is restarted
    node_warm: float = 2.5
    node_after: float = 4.0
    stall_ops: int = 10_000
    stall_warmup: int = 500
    stall_window: int = 16
    # stalled-client runs: (ROOMHUB_SEND_BUFFER_LIMIT of the hub, 0: its default of 4 MiB;
    # extra bytes per message, 0: the usual small member.update)
    stall_runs: tuple[tuple[int, int], ...] = ((0, 0), (0, 1000))
    stall_release_wait: float = 8.0  # after the 4008: until the hub lets the connection go
    # probes.py: idempotency keys off/on rounds; hostile clients
    idempotency_rounds: int = 3
    flood_seconds: float = 5.0  # a never-reading client sends pings this long
    stall_ping: float = 2.0  # ping_interval = ping_timeout of the stalled-reader hub
    resume_messages: int = 10_000  # in the room that RESUME_CLIENTS resume from seq 0
    resume_clients: int = 80
    # deploy.py: the closed loop against 1 worker, then a supervisor of 2; metrics off/on rounds
    workers_config: tuple[int, int] = (10, 100)
    workers_counts: tuple[int, ...] = (1, 2)
    metrics_configs: tuple[tuple[int, int], ...] = ((10, 100), (1, 1000))
    metrics_rounds: int = 3
    # httpapi.py: member.update over the server API and over the WebSocket, alternating rounds
    # (closed loop, then paced), the same number of connections each, one request in flight on
    # each
    http_config: tuple[int, int] = (10, 10)
    http_connections: int = 16
    http_rounds: int = 3
    http_rate: int = 200
    http_duration: float = 5.0
    # presence (scenarios.py): the `connections` run (same size) with presence off and on, each
    # on a fresh hub, alternating over the rounds; the users in rooms of this many members
    presence_room_members: int = 100
    presence_rounds: int = 3
    # churn: users connecting and disconnecting in a loop over 2 nodes, observers following
    churn_users: int = 1000
    churn_room_members: int = 100  # every observer is a member of every room besides
    churn_observers: int = 4
    churn_duration: float = 30.0
    churn_hold: float = 1.0  # mean seconds a connection stays open (uniform 0..2x)
    churn_gap: float = 1.0  # mean seconds before the user connects again (uniform 0..2x)
    churn_second_every: int = 4  # every n-th user churns a second connection too (0: none)
    churn_abort_every: int = 4  # every n-th disconnect of a load process is a TCP abort
    churn_procs: int = 2
    churn_concurrency: int = 16  # handshakes in flight per load process
    churn_settle: float = 15.0  # seconds for presence to become exact after the churn
    # then, on a third node with --auth-timeout churn_late_deadline, users whose auth is sent
    # around that deadline (spread over -20..+10 ms) and whose connection then closes: none
    # may stay online (0: not done)
    churn_late_auths: int = 200
    churn_late_deadline: float = 0.5

    @classmethod
    def quick(cls) -> Plan:
        """The tiny configuration the tests run: seconds per run, a few members."""
        return cls(
            ceiling=50, ceiling_duration=2.0,
            configs=((2, 5), (2, 10), (1, 20)), sweep_config=(2, 10), sweep_rates=(50, 100),
            run_duration=1.0, sweep_duration=1.0, window=4,
            fanout_members=20, fanout_paced_rate=20, fanout_windows=(1, 4),
            connections=200, connection_procs=2, nodes_config=(2, 10), drain_timeout=10.0,
            res_rate=50.0, res_members=2, res_warm=1.0, res_outage=0.5, res_after=1.5,
            res_drain=3.0, node_members=2, node_warm=1.0, node_after=1.5,
            stall_ops=2000, stall_warmup=100, stall_runs=((64 * 1024, 1000),),
            stall_release_wait=0.0,
            idempotency_rounds=1, flood_seconds=1.0, stall_ping=0.5, resume_messages=200,
            resume_clients=5, workers_config=(2, 10), metrics_configs=((2, 10), (1, 20)),
            metrics_rounds=1, http_config=(2, 5), http_connections=4, http_rounds=1,
            http_duration=1.0, presence_room_members=10, presence_rounds=1, churn_users=100,
            churn_room_members=25, churn_observers=2, churn_duration=3.0, churn_hold=0.3,
            churn_gap=0.3, churn_settle=10.0, churn_late_auths=50,
        )  # fmt: skip


class Progress:
    """A live status line on stderr (rewritten in place on a terminal, plain lines otherwise)."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.name = ""
        self.started = monotonic()
        self.bench_started = monotonic()
        self._last = 0.0

    def phase(self, name: str) -> None:
        self.name = name
        self.started = monotonic()
        if not self.tty:
            print(f"[bench {self._clock()}] {name} ...", file=self.stream, flush=True)
        self.update("")

    def update(self, detail: str, force: bool = False) -> None:
        if not self.tty:
            return
        now = monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        line = f"[bench {self._clock()}] {self.name} {now - self.started:5.1f}s {detail}"
        self.stream.write("\r\033[K" + line[:160])
        self.stream.flush()

    def done(self, summary: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        print(f"[bench {self._clock()}] {self.name}: {summary}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        print(f"[bench] {text}", file=self.stream, flush=True)

    def _clock(self) -> str:
        return f"{monotonic() - self.bench_started:6.1f}s"
