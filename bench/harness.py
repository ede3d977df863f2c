"""The harness: the orchestrator's handles on load processes (`LoadProcess`, over the pipe
protocol of `pipe.py`) and the `Bench` every scenario runs on: it starts and stops
redis-server, hub nodes and load processes, sets rooms up and connects their members, and reads
the CPU time of what it started. It never runs load in its own process while a measurement is
running. One measured run is `measure.py`; the scenarios are the modules that import these.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from roomhub.server.auth import mint_token

from . import infra, pipe, worker
from .infra import HOST
from .plan import Plan, Progress
from .wsclient import Session, open_session


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
        """One command (`Worker.cmd_<command>(**args)`), its progress to `on_progress`."""
        async with self._lock:
            return await pipe.call(self.pipe, self.name, command, args, on_progress)

    async def res(self, action: str, **args: Any) -> Any:
        """One command of the resilience scenario's load side (`worker_res.LoadSide`)."""
        return await self.call("res", action=action, **args)

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
        args: list[str] | None = None,
    ) -> list[infra.HubProcess]:
        """Start `count` hub nodes (on the bench's Redis unless `redis_url`; on `ports`, e.g.
        to restart a node on its port; with `env`, e.g. ROOMHUB_* settings; with `args`, more
        `serve` flags) and wait for them."""
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
                args=args,
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

    async def session(
        self, hub: infra.HubProcess, user: str, *, server: bool = False, on_event: Any = None
    ) -> Session:
        """An authenticated connection of this process to `hub` (setup work, not measured)."""
        token = mint_token(self.secret, user, server=server)
        return await open_session(HOST, hub.port, self.app, token, on_event)

    async def populate(self, hub: infra.HubProcess, layout: Layout) -> None:
        """Users, then rooms with every member added (owner = first member), reply "ack"."""
        session = await self.session(hub, "bench-admin", server=True)
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
        presence: bool = False,
    ) -> dict[str, Any]:
        """Connect and authenticate every target (`presence`: with `presence: true`)."""
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
                    presence=presence,
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
