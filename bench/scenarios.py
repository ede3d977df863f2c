"""The scenarios: what is started, what load is offered, what is measured.

The orchestrator (this module, in the `python -m roomhub.bench` process) starts redis-server
and hub nodes as subprocesses, sets rooms up over one server-token connection, and drives
load processes (`worker.py`, spawned with multiprocessing) that hold the measured connections.
It reads the hubs' CPU time and RSS from /proc; it never runs load in its own process while a
measurement is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from time import monotonic
from typing import Any

from . import infra, worker
from .stats import merge_recs, summary_ms
from .wsclient import open_session

SCENARIOS = (
    "ceiling",
    "throughput",
    "fanout",
    "idempotency",
    "connections",
    "nodes",
    "resilience",
    "hostile",
)
HOST = "127.0.0.1"  # loopback only


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
    # resilience (bench/resilience.py): a steady writer across a Redis restart (members split
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

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            ceiling=50,
            ceiling_duration=2.0,
            configs=((2, 5), (2, 10), (1, 20)),
            sweep_config=(2, 10),
            sweep_rates=(50, 100),
            run_duration=1.0,
            sweep_duration=1.0,
            window=4,
            fanout_members=20,
            fanout_paced_rate=20,
            fanout_windows=(1, 4),
            connections=200,
            connection_procs=2,
            nodes_config=(2, 10),
            drain_timeout=10.0,
            res_rate=50.0,
            res_members=2,
            res_warm=1.0,
            res_outage=0.5,
            res_after=1.5,
            res_drain=3.0,
            node_members=2,
            node_warm=1.0,
            node_after=1.5,
            stall_ops=2000,
            stall_warmup=100,
            stall_runs=((64 * 1024, 1000),),
            stall_release_wait=0.0,
            idempotency_rounds=1,
            flood_seconds=1.0,
            stall_ping=0.5,
            resume_messages=200,
            resume_clients=5,
        )


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


def _waker(future: asyncio.Future[None]) -> Callable[[], None]:
    def wake() -> None:
        if not future.done():
            future.set_result(None)

    return wake


async def _pipe_recv(pipe: Connection) -> Any:
    loop = asyncio.get_running_loop()
    fd = pipe.fileno()
    while not pipe.poll():
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _waker(ready))
        try:
            await ready
        finally:
            loop.remove_reader(fd)
    os.set_blocking(fd, True)  # uvloop's add_reader made it non-blocking
    return pipe.recv()


class LoadProcess:
    """The orchestrator's handle on one load process."""

    def __init__(self, ctx: Any, name: str) -> None:
        self.name = name
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker.main, args=(child,), name=name, daemon=True)
        self.proc.start()
        child.close()
        self.pid = self.proc.pid
        self._lock = asyncio.Lock()

    async def call(self, command: str, on_progress: Any = None, **args: Any) -> Any:
        async with self._lock:
            self.pipe.send((command, args))
            while True:
                try:
                    kind, payload = await _pipe_recv(self.pipe)
                except EOFError:
                    raise RuntimeError(f"load process {self.name} died") from None
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(payload)
                    continue
                if kind == "error":
                    raise RuntimeError(f"load process {self.name} failed:\n{payload}")
                return payload

    def cpu(self) -> float:
        try:
            return infra.cpu_seconds(self.pid)
        except OSError:
            return 0.0

    async def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call("close"), 10)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.pipe.close()


@dataclass
class Layout:
    """Rooms and who connects where, for one load configuration."""

    rooms: list[tuple[str, list[str]]]
    nodes: int
    members: int = field(init=False)

    def __post_init__(self) -> None:
        self.members = len(self.rooms[0][1])


class Bench:
    def __init__(self, plan: Plan, redis_url: str | None, log_dir: str, progress: Progress) -> None:
        self.plan = plan
        self.progress = progress
        self.log_dir = log_dir
        self.ctx = multiprocessing.get_context("spawn")
        self.tag = secrets.token_hex(3)
        self.app = f"bench{self.tag}"
        self.secret = secrets.token_urlsafe(32)
        self.owned_redis: infra.RedisServer | None = None
        self.redis_url = redis_url or ""
        self.hubs: list[infra.HubProcess] = []
        self.loads: list[LoadProcess] = []
        self.run_no = 0
        self.quiet_wait = 0.0  # seconds to wait for other programs before each run (0: no)

    def own_cpu(self) -> float:
        """CPU seconds of everything this bench started (hubs, load processes, Redis)."""
        total = sum(h.cpu() for h in self.hubs) + sum(p.cpu() for p in self.loads)
        redis = self.redis_cpu()
        return total + (redis or 0.0)

    async def wait_quiet(self, cores: float = 0.15, sample: float = 0.5) -> float:
        """On a shared machine: wait up to `quiet_wait` s until other programs use less than
        `cores` CPUs, so they do not eat into the measurement. Returns the seconds waited."""
        if self.quiet_wait <= 0:
            return 0.0
        started = monotonic()
        while True:
            busy0, own0, t0 = infra.system_busy_seconds(), self.own_cpu(), monotonic()
            await asyncio.sleep(sample)
            busy1, own1, t1 = infra.system_busy_seconds(), self.own_cpu(), monotonic()
            other = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
            waited = monotonic() - started
            if other < cores or waited >= self.quiet_wait:
                return round(waited, 1)
            self.progress.update(
                f"waiting for other programs to go quiet ({other:.2f} cores "
                f"busy, {waited:.0f}/{self.quiet_wait:.0f}s)",
                force=True,
            )

    # lifecycle ------------------------------------------------------------------------------

    def start_redis(self) -> None:
        if not self.redis_url:
            self.owned_redis = infra.RedisServer()
            self.owned_redis.wait_ready()
            self.redis_url = self.owned_redis.url

    def redis_cpu(self) -> float | None:
        import redis

        try:
            client = redis.Redis.from_url(self.redis_url)
            try:
                info = client.info("cpu")
            finally:
                client.close()
            return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        except Exception:
            return None

    async def start_hubs(
        self,
        count: int,
        rate_limit: int = 0,
        *,
        redis_url: str | None = None,
        ports: list[int] | None = None,
        env: dict[str, str] | None = None,
    ) -> list[infra.HubProcess]:
        """Start `count` hub nodes (on the bench's Redis unless `redis_url`; on `ports`, e.g.
        to restart a node on its port; with `env`, e.g. ROOMHUB_* settings) and wait for them."""
        hubs = [
            infra.HubProcess(
                redis_url or self.redis_url,
                self.app,
                self.secret,
                rate_limit=rate_limit,
                log_dir=self.log_dir,
                name=f"hub{len(self.hubs) + i}-{self.tag}",
                port=ports[i] if ports else None,
                env=env,
            )
            for i in range(count)
        ]
        self.hubs.extend(hubs)
        await asyncio.gather(*(hub.wait_ready() for hub in hubs))
        return hubs

    def spawn(self, count: int, kind: str) -> list[LoadProcess]:
        procs = [LoadProcess(self.ctx, f"{kind}{i}") for i in range(count)]
        self.loads.extend(procs)
        return procs

    async def teardown(self) -> None:
        """Stop every load process and hub this bench started (not Redis)."""
        loads, self.loads = self.loads, []
        await asyncio.gather(*(load.close() for load in loads), return_exceptions=True)
        await self.stop_hubs(list(self.hubs))

    async def stop_hubs(self, hubs: list[infra.HubProcess]) -> None:
        """Stop these hubs (SIGTERM, in parallel) and forget them."""
        self.hubs = [hub for hub in self.hubs if hub not in hubs]
        await asyncio.gather(*(asyncio.to_thread(hub.stop) for hub in hubs))
        for hub in hubs:
            if hub.proc.returncode in (0, -15):  # keep the log of a hub that failed
                with contextlib.suppress(OSError):
                    os.unlink(hub.log_path)

    def close(self) -> None:
        for load in self.loads:
            if load.proc.is_alive():
                load.proc.terminate()
        for hub in self.hubs:
            hub.stop()
        if self.redis_url:
            with contextlib.suppress(Exception):
                infra.flush_app(self.redis_url, self.app, owned=self.owned_redis is not None)
        if self.owned_redis is not None:
            self.owned_redis.stop()

    # setup ----------------------------------------------------------------------------------

    def layout(self, label: str, rooms: int, members: int, nodes: int = 1) -> Layout:
        prefix = f"{self.tag}-{label}"
        return Layout(
            [
                (f"{prefix}-r{r}", [f"{prefix}-r{r}m{m}" for m in range(members)])
                for r in range(rooms)
            ],
            nodes,
        )

    async def populate(self, hub: infra.HubProcess, layout: Layout) -> None:
        """Users, then rooms with every member added (owner = first member), reply "ack"."""
        session = await open_session(
            HOST, hub.port, self.app, worker.mint(self.secret, "bench-admin", True)
        )
        gate = asyncio.Semaphore(128)

        async def call(op: str, args: dict[str, Any]) -> None:
            async with gate:
                await session.call(op, args)

        async def make(room: str, members: list[str]) -> None:
            await call(
                "room.create",
                {
                    "room": room,
                    "name": room,
                    "owner": members[0],
                    "members": members[1:100],
                    "reply": "ack",
                },
            )
            for start in range(100, len(members), 100):
                await call(
                    "member.add",
                    {"room": room, "invitees": members[start : start + 100], "reply": "ack"},
                )

        try:
            users = [user for _, members in layout.rooms for user in members]
            await asyncio.gather(*(call("user.upsert", {"id": user}) for user in users))
            await asyncio.gather(*(make(room, members) for room, members in layout.rooms))
        finally:
            session.client.close()

    async def connect(
        self,
        procs: list[LoadProcess],
        targets: list[list[tuple[str, int, str, bool]]],
        concurrency: int = 32,
        what: str = "connections",
    ) -> dict[str, Any]:
        counts = [0] * len(procs)
        total = sum(len(t) for t in targets)

        def tracker(index: int) -> Any:
            def seen(info: dict[str, Any]) -> None:
                counts[index] = info["connected"]
                self.progress.update(f"{what}: {sum(counts)}/{total} connected")

            return seen

        started = monotonic()
        results = await asyncio.gather(
            *(
                proc.call(
                    "connect",
                    on_progress=tracker(i),
                    targets=t,
                    key=self.app,
                    secret=self.secret,
                    concurrency=concurrency,
                )
                for i, (proc, t) in enumerate(zip(procs, targets))
                if t
            )
        )
        connected = sum(r["connected"] for r in results)
        failed = sum(r["failed"] for r in results)
        if failed:
            errors = [e for r in results for e in r["errors"]]
            raise RuntimeError(f"{failed} of {total} {what} failed: {errors[:3]}")
        finished = max(r["finished_at"] for r in results)
        return {"connected": connected, "elapsed_s": finished - started}

    async def prepare(
        self, hubs: list[infra.HubProcess], layout: Layout, label: str
    ) -> tuple[LoadProcess, list[LoadProcess]]:
        """Populate the rooms, then connect every member (receivers) and the senders."""
        self.progress.update("creating users and rooms", force=True)
        await self.populate(hubs[0], layout)
        total = len(layout.rooms) * layout.members
        n_recv = 1 if total <= 200 else 2
        sender, *receivers = self.spawn(1 + n_recv, f"load-{label}-")
        targets: list[list[tuple[str, int, str, bool]]] = [[] for _ in receivers]
        index = 0
        for _, members in layout.rooms:
            for m, user in enumerate(members):
                hub = hubs[m % len(hubs)]  # a room's members alternate over the nodes
                targets[index % n_recv].append((HOST, hub.port, user, False))
                index += 1
        await self.connect(receivers, targets, what="members")
        send_targets = [
            (HOST, hubs[c % len(hubs)].port, f"bench-sender{c}", True)
            for c in range(self.plan.senders)
        ]
        await self.connect([sender], [send_targets], what="senders")
        return sender, receivers

    # one measured run -----------------------------------------------------------------------

    async def measure(
        self,
        hubs: list[infra.HubProcess],
        sender: LoadProcess,
        receivers: list[LoadProcess],
        layout: Layout,
        *,
        label: str,
        rate: float | None,
        duration: float,
        window: int,
        keys: bool = False,
    ) -> dict[str, Any]:
        """Offer member.update ops (closed loop when rate is None) and measure the replies
        and every member's system message."""
        self.run_no += 1
        members = layout.members
        waited = await self.wait_quiet()
        await asyncio.gather(*(r.call("reset") for r in receivers))
        loads = [sender, *receivers]
        cpu0 = [h.cpu() for h in hubs]
        load0 = [p.cpu() for p in loads]
        redis0 = self.redis_cpu()
        busy0 = infra.system_busy_seconds()
        wall0 = monotonic()

        def sending(info: dict[str, Any]) -> None:
            self.progress.update(
                f"{label}: {info['elapsed']:.1f}/{duration:.0f}s sent "
                f"{info['sent']} acked {info['replies']}"
            )

        sent = await sender.call(
            "send",
            on_progress=sending,
            rooms=layout.rooms,
            duration=duration,
            rate=rate,
            window=window,
            cap=self.plan.paced_cap,
            base=self.run_no * 10**8,
            drain_timeout=self.plan.drain_timeout,
            keys=keys,
        )
        ok = [i for i, r in enumerate(sent["result"]) if r > 0]
        expected = len(ok) * members
        deadline = monotonic() + self.plan.drain_timeout
        last, still_since = -1, monotonic()
        while True:
            counts = await asyncio.gather(*(r.call("count") for r in receivers))
            got = sum(c["events"] for c in counts)
            self.progress.update(f"{label}: draining deliveries {got}/{expected}")
            if got >= expected or monotonic() > deadline:
                break
            if got != last:
                last, still_since = got, monotonic()
            elif monotonic() - still_since > 3:
                break
            await asyncio.sleep(0.05)
        cpu1 = [h.cpu() for h in hubs]
        load1 = [p.cpu() for p in loads]
        redis1 = self.redis_cpu()
        busy1 = infra.system_busy_seconds()
        wall1 = monotonic()
        parts = await asyncio.gather(*(r.call("collect") for r in receivers))
        recs = merge_recs([p["recs"] for p in parts])

        sent_t, reply_t = sent["sent_t"], sent["reply_t"]
        room_ids = [room for room, _ in layout.rooms]
        acks, deliveries_lat = [], []
        incomplete = 0
        for i in ok:
            acks.append(reply_t[i] - sent_t[i])
            rec = recs.get(room_ids[sent["room_of"][i]], {}).get(sent["result"][i])
            if rec is not None and rec[0] >= members:
                deliveries_lat.append(rec[1] - sent_t[i])
            else:
                incomplete += 1
        delivered = sum(count for seqs in recs.values() for count, _ in seqs.values())
        last_delivery = max((t for seqs in recs.values() for _, t in seqs.values()), default=0.0)
        first = sent_t[0] if sent_t else wall0
        last_reply = max((reply_t[i] for i in ok), default=0.0)
        ops_span = last_reply - first if ok else 0.0
        deliv_span = last_delivery - first if delivered else 0.0
        hub_cpu = sum(b - a for a, b in zip(cpu0, cpu1))
        load_cpu = sum(b - a for a, b in zip(load0, load1))
        errors: dict[str, int] = {}
        for r in sent["result"]:
            if r < 0:
                errors[str(-r)] = errors.get(str(-r), 0) + 1
        return {
            "label": label,
            "rooms": len(layout.rooms),
            "members_per_room": members,
            "nodes": len(hubs),
            "mode": "max" if rate is None else "paced",
            "idempotency_keys": keys,
            "offered_ops_per_s": rate,
            "duration_s": duration,
            "sender_connections": self.plan.senders,
            "window_per_connection": window if rate is None else None,
            "sent": len(sent_t),
            "shed": sent["shed"],
            "ok": len(ok),
            "errors": errors,
            "unanswered": sent["unanswered"],
            "ops_per_s": round(len(ok) / ops_span, 1) if ops_span > 0 else None,
            "deliveries": delivered,
            "expected_deliveries": expected,
            "missing_deliveries": max(0, expected - delivered),
            "incomplete_ops": incomplete,
            "deliveries_per_s": round(delivered / deliv_span, 1) if deliv_span > 0 else None,
            "ack_latency_ms": summary_ms(acks),
            "delivery_latency_ms": summary_ms(deliveries_lat),
            "hub_cpu_s": round(hub_cpu, 3),
            "hub_cpu_util": round(hub_cpu / deliv_span / len(hubs), 3) if deliv_span > 0 else None,
            "hub_cpu_us_per_delivery": round(hub_cpu / delivered * 1e6, 2) if delivered else None,
            "hub_cpu_us_per_op": round(hub_cpu / len(ok) * 1e6, 1) if ok else None,
            # What one fully busy hub core would do at this cost: noise-resistant capacity.
            "ops_per_hub_core_s": round(len(ok) / hub_cpu, 1) if hub_cpu > 0 else None,
            "deliveries_per_hub_core_s": round(delivered / hub_cpu, 1) if hub_cpu > 0 else None,
            "load_cpu_s": round(load_cpu, 3),
            "load_cpu_us_per_delivery": round(load_cpu / delivered * 1e6, 2) if delivered else None,
            "redis_cpu_s": round(redis1 - redis0, 3)
            if redis0 is not None and redis1 is not None
            else None,
            "measured_wall_s": round(wall1 - wall0, 3),
            "waited_for_quiet_s": waited,
            # Everything else the machine did meanwhile (other programs): the noise floor.
            "other_cpu_s": round(
                max(
                    0.0,
                    (busy1 - busy0)
                    - hub_cpu
                    - load_cpu
                    - (redis1 - redis0 if redis0 is not None and redis1 is not None else 0.0),
                ),
                3,
            ),
            "machine_cpu_util": round((busy1 - busy0) / (wall1 - wall0) / (os.cpu_count() or 1), 3),
        }

    def _done(self, run: dict[str, Any]) -> None:
        lat = run["delivery_latency_ms"]
        self.progress.done(
            f"{run['ops_per_s']} ops/s, {run['deliveries_per_s']} deliveries/s, "
            f"ack p99 {run['ack_latency_ms']['p99']} ms, delivery p99 {lat['p99']} ms, "
            f"hub {run['hub_cpu_us_per_delivery']} us/delivery"
        )

    async def load_runs(
        self,
        hubs: list[infra.HubProcess],
        layout: Layout,
        label: str,
        runs: list[tuple[str, float | None, float, int]],
    ) -> list[dict[str, Any]]:
        """Prepare one layout, then do each (label, rate, duration, window) run on it."""
        self.progress.phase(f"{label}: setup")
        sender, receivers = await self.prepare(hubs, layout, label)
        self.progress.done(f"{len(layout.rooms)} rooms x {layout.members} members connected")
        results = []
        for run_label, rate, duration, window in runs:
            self.progress.phase(run_label)
            result = await self.measure(
                hubs,
                sender,
                receivers,
                layout,
                label=run_label,
                rate=rate,
                duration=duration,
                window=window,
            )
            self._done(result)
            results.append(result)
        for proc in [sender, *receivers]:
            await proc.call("disconnect")
        return results

    # scenarios ------------------------------------------------------------------------------

    async def ceiling(self) -> dict[str, Any]:
        plan = self.plan
        ceiling = plan.ceiling
        self.progress.phase("ceiling: setup")
        hubs = await self.start_hubs(2, rate_limit=ceiling)
        layout = self.layout("ceil", 1, 2, nodes=2)
        await self.populate(hubs[0], layout)
        room, members = layout.rooms[0]
        sender, receivers = self.spawn(2, "load-ceiling-")
        await self.connect(
            [receivers], [[(HOST, hubs[m % 2].port, user, False) for m, user in enumerate(members)]]
        )
        await self.connect(
            [sender],
            [
                [
                    (HOST, hubs[c % 2].port, f"bench-sender{c}", True)
                    for c in range(plan.ceiling_senders)
                ]
            ],
            what="senders",
        )
        await asyncio.sleep(1.2)  # let the setup ops leave the one-second window
        before = (await sender.call("call", op="room.get", args={"room": room}))["seq"]
        waited = await self.wait_quiet()
        await receivers.call("reset")
        offered = 2 * ceiling
        self.progress.phase(
            f"ceiling: offering {offered}/s for {plan.ceiling_duration:.0f}s over 2 nodes"
        )
        cpu0 = [h.cpu() for h in hubs]

        def sending(info: dict[str, Any]) -> None:
            self.progress.update(
                f"{info['elapsed']:.1f}/{plan.ceiling_duration:.0f}s sent {info['sent']}"
            )

        sent = await sender.call(
            "send",
            on_progress=sending,
            rooms=layout.rooms,
            duration=plan.ceiling_duration,
            rate=offered,
            cap=100_000,
            base=10**9,
            drain_timeout=plan.drain_timeout,
        )
        await asyncio.sleep(0.5)  # the last admitted messages reach the members
        hub_cpu = sum(h.cpu() - c for h, c in zip(hubs, cpu0))
        after = (await sender.call("call", op="room.get", args={"room": room}))["seq"]
        recs = (await receivers.call("collect"))["recs"].get(room, {})
        results = sent["result"]
        admitted = [i for i, r in enumerate(results) if r > 0]
        rejected = [i for i, r in enumerate(results) if r == -100009]
        other = len(results) - len(admitted) - len(rejected) - sent["unanswered"]
        sent_t, reply_t = sent["sent_t"], sent["reply_t"]
        admitted_rate = len(admitted) / plan.ceiling_duration
        seqs = sorted(recs)
        every_member = all(count == len(members) for count, _ in recs.values())
        out = {
            "ceiling_per_s": ceiling,
            "offered_per_s": offered,
            "duration_s": plan.ceiling_duration,
            "nodes": 2,
            "sender_connections": plan.ceiling_senders,
            "sent": len(results),
            "admitted": len(admitted),
            "rejected": len(rejected),
            "other_errors": other,
            "unanswered": sent["unanswered"],
            "admitted_per_s": round(admitted_rate, 1),
            "admitted_within_5pct": abs(admitted_rate - ceiling) <= 0.05 * ceiling,
            "rejection_latency_ms": summary_ms(reply_t[i] - sent_t[i] for i in rejected),
            "admitted_ack_latency_ms": summary_ms(reply_t[i] - sent_t[i] for i in admitted),
            "seq_before": before,
            "seq_after": after,
            "seq_advanced": after - before,
            "seq_advanced_equals_admitted": after - before == len(admitted),
            "messages_delivered": len(recs),
            "messages_gapless": seqs == list(range(before + 1, after + 1)),
            "every_member_got_every_message": every_member and len(recs) == len(admitted),
            "hub_cpu_s": round(hub_cpu, 3),
            "waited_for_quiet_s": waited,
        }
        self.progress.done(
            f"admitted {out['admitted_per_s']}/s of {offered}/s (ceiling {ceiling}), "
            f"rejection p99 {out['rejection_latency_ms']['p99']} ms, seq advanced "
            f"{out['seq_advanced']} for {out['admitted']} admitted"
        )
        await self.teardown()
        return out

    async def throughput(self) -> dict[str, Any]:
        plan = self.plan
        hubs = await self.start_hubs(1)
        runs, sweep = [], []
        for rooms, members in plan.configs:
            name = f"{rooms}x{members}"
            layout = self.layout(f"tp{name}", rooms, members)
            if (rooms, members) == plan.sweep_config:
                todo: list[tuple[str, float | None, float, int]] = [
                    (f"throughput {name} @{rate}/s", float(rate), plan.sweep_duration, plan.window)
                    for rate in plan.sweep_rates
                ]
                todo.append((f"throughput {name} @max", None, plan.run_duration, plan.window))
                results = await self.load_runs(hubs, layout, f"throughput {name}", todo)
                sweep.extend(results)
                runs.append(results[-1])
            else:
                window = plan.window if members < 1000 else plan.fanout_window
                runs.extend(
                    await self.load_runs(
                        hubs,
                        layout,
                        f"throughput {name}",
                        [(f"throughput {name} @max", None, plan.run_duration, window)],
                    )
                )
        await self.teardown()
        return {"runs": runs, "sweep": sweep}

    async def fanout(self) -> dict[str, Any]:
        """One big room: a paced run (latency below saturation), then closed-loop runs with
        more and more ops in flight (deliveries/s against latency)."""
        plan = self.plan
        hubs = await self.start_hubs(1)
        name = f"1x{plan.fanout_members}"
        layout = self.layout("fan", 1, plan.fanout_members)
        todo: list[tuple[str, float | None, float, int]] = [
            (
                f"fanout {name} @{plan.fanout_paced_rate}/s",
                float(plan.fanout_paced_rate),
                plan.run_duration,
                1,
            )
        ]
        todo += [
            (f"fanout {name} @max {plan.senders * w} in flight", None, plan.run_duration, w)
            for w in plan.fanout_windows
        ]
        runs = await self.load_runs(hubs, layout, f"fanout {name}", todo)
        await self.teardown()
        return {"runs": runs}

    async def nodes(self) -> dict[str, Any]:
        plan = self.plan
        rooms, members = plan.nodes_config
        runs = []
        for count in (1, 2):
            hubs = await self.start_hubs(count)
            label = f"nodes {count}x {rooms}x{members}"
            layout = self.layout(f"n{count}", rooms, members, nodes=count)
            runs.extend(
                await self.load_runs(
                    hubs, layout, label, [(f"{label} @max", None, plan.run_duration, plan.window)]
                )
            )
            await self.teardown()
        return {"runs": runs}

    async def connections(self) -> dict[str, Any]:
        plan = self.plan
        n, procs_n = plan.connections, plan.connection_procs
        self.progress.phase(f"connections: {n} idle authenticated connections")
        (hub,) = await self.start_hubs(1)
        procs = self.spawn(procs_n, "load-conn-")
        # Warm the hub up (first-use imports, pools, JWT) so the baseline is a working node.
        warm = [(HOST, hub.port, f"{self.tag}-warm{i}", False) for i in range(20)]
        await self.connect(procs[:1], [warm], what="warm-up")
        await procs[0].call("disconnect")
        await asyncio.sleep(1.0)
        waited = await self.wait_quiet()
        rss0, cpu0 = hub.rss(), hub.cpu()
        targets: list[list[tuple[str, int, str, bool]]] = [[] for _ in procs]
        for i in range(n):
            targets[i % procs_n].append((HOST, hub.port, f"{self.tag}-c{i}", False))
        done = await self.connect(procs, targets, concurrency=plan.connect_concurrency)
        cpu1, rss1 = hub.cpu(), hub.rss()
        await asyncio.sleep(2.0)  # idle: settles the buffers of the last handshakes
        rss2 = hub.rss()
        still = sum(c["open"] for c in await asyncio.gather(*(p.call("count") for p in procs)))
        connected = done["connected"]
        out = {
            "connections": connected,
            "load_processes": procs_n,
            "still_open_after_idle": still,
            "connect_time_s": round(done["elapsed_s"], 3),
            "connections_per_s": round(connected / done["elapsed_s"], 1),
            "hub_cpu_us_per_connection": round((cpu1 - cpu0) / connected * 1e6, 1),
            "hub_rss_before_bytes": rss0,
            "hub_rss_after_bytes": rss2,
            "hub_rss_after_connect_bytes": rss1,
            "hub_bytes_per_connection": round((rss2 - rss0) / connected),
            "hub_kib_per_connection": round((rss2 - rss0) / connected / 1024, 2),
            "nofile_limit": infra.raise_nofile()[0],
            "waited_for_quiet_s": waited,
        }
        self.progress.done(
            f"{connected} connected in {out['connect_time_s']} s, "
            f"{out['hub_kib_per_connection']} KiB of hub RSS each"
        )
        await self.teardown()
        return out

    async def resilience(self) -> dict[str, Any]:
        from .resilience import Resilience

        return await Resilience(self).run()
