"""Two focused scenarios: the cost of idempotency keys, and what hostile clients cost the hub.

`idempotency`: the same closed-loop 10 x 10 run with and without a key on every op,
alternating, so the two are measured back to back on the same rooms and connections.

`hostile`: one hub per attack, measured from outside with raw sockets: a ping flood from a
client that never reads (RSS, drop), a reader that stops below the send-buffer limit (time
until keepalive drops it), and non-members resuming a 10,000-message room (hub CPU each,
RSS, and how long a member's request waits meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from time import monotonic
from typing import Any, cast

from roomhub.server.auth import mint_token

from . import infra
from .harness import Bench
from .infra import HOST
from .measure import Todo, measure
from .results import Hostile, Idempotency, PingFlood, ResumeStorm, StalledReader
from .wsclient import OP_PING, Session, WSClient, connect


async def idempotency(bench: Bench) -> Idempotency:
    plan = bench.plan
    hubs = await bench.start_hubs(1)
    rooms, members = plan.configs[0]
    layout = bench.layout("idem", rooms, members)
    bench.progress.phase("idempotency: setup")
    sender, receivers = await bench.prepare(hubs, layout, "idem")
    runs = []
    for round_no in range(plan.idempotency_rounds):
        for keys in (False, True):
            label = f"idempotency {rooms}x{members} @max keys={'on' if keys else 'off'}"
            bench.progress.phase(f"{label} (round {round_no + 1})")
            todo = Todo(label, None, plan.run_duration, plan.window)
            run = await measure(bench, hubs, sender, receivers, layout, todo, keys=keys)
            bench.progress.done(f"{run.ops_per_s} ops/s, hub {run.hub_cpu_us_per_op} us/op")
            runs.append(run)
    await bench.teardown()
    without = [r.hub_cpu_us_per_op for r in runs if not r.idempotency_keys]
    with_keys = [r.hub_cpu_us_per_op for r in runs if r.idempotency_keys]
    # (a run without a single ok op has no figure: the scenario fails here, as it should)
    ratio = statistics.median(cast(list[float], with_keys)) / statistics.median(
        cast(list[float], without)
    )
    return Idempotency(
        runs=runs,
        hub_us_per_op_without=without,
        hub_us_per_op_with=with_keys,
        median_ratio=round(ratio, 3),
        within_5pct=ratio <= 1.05,
    )


# hostile clients --------------------------------------------------------------------------


async def _sample_rss(hub: infra.HubProcess, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], hub.rss())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


def _drop_lines(hub: infra.HubProcess) -> int:
    return sum(1 for line in hub.log_text().splitlines() if b"dropping" in line)


async def _drop_time(hub: infra.HubProcess, before: int, limit: float) -> float | None:
    """The monotonic time at which the hub has logged one more 'dropping' line than
    `before` (polled every 20 ms), or None after `limit` seconds."""
    deadline = monotonic() + limit
    while monotonic() < deadline:
        if _drop_lines(hub) > before:
            return monotonic()
        await asyncio.sleep(0.02)
    return None


def _since(started: float, at: float | None) -> float | None:
    return None if at is None else round(at - started, 2)


async def _ping_flood(bench: Bench, hub: infra.HubProcess, authenticated: bool) -> PingFlood:
    """A client that sends 125-byte pings as fast as it can and never reads a byte."""
    if authenticated:
        client: WSClient = (await bench.session(hub, "flooder")).client
    else:
        client = await connect(HOST, hub.port)
    assert client.transport is not None
    client.transport.pause_reading()
    drops = _drop_lines(hub)
    rss0 = hub.rss()
    stop, peak = asyncio.Event(), [rss0]
    sampler = asyncio.create_task(_sample_rss(hub, stop, peak))
    sent, started = 0, monotonic()
    watcher = asyncio.create_task(_drop_time(hub, drops, bench.plan.flood_seconds + 1))
    while monotonic() - started < bench.plan.flood_seconds and not watcher.done():
        if client.closed.done() or client.transport.is_closing():
            break
        if client.transport.get_write_buffer_size() < 1 << 20:
            for _ in range(200):
                client.write_frame(OP_PING, b"p" * 125)
            sent += 200
        await asyncio.sleep(0)
    dropped_after = _since(started, await watcher)
    client.close()
    await asyncio.sleep(1.0)
    stop.set()
    await sampler
    return PingFlood(
        authenticated=authenticated,
        pings_sent=sent,
        hub_rss_before_mib=round(rss0 / 2**20, 1),
        hub_rss_peak_mib=round(peak[0] / 2**20, 1),
        hub_rss_after_mib=round(hub.rss() / 2**20, 1),
        dropped_after_s=dropped_after,
    )


async def _stalled_reader(bench: Bench, hub: infra.HubProcess, pad: int) -> StalledReader:
    """A member that stops reading (pongs too) while the room's traffic goes on, its backlog
    staying under the send-buffer limit: keepalive must drop it within interval + timeout."""
    admin = await bench.session(hub, "adm", server=True)
    room = f"{bench.tag}-stall{pad}"
    await admin.call("user.upsert", {"id": "stalled"})
    await admin.call("room.create", {"room": room, "owner": "stalled", "reply": "ack"})
    stalled = await bench.session(hub, "stalled")
    assert stalled.client.transport is not None
    drops = _drop_lines(hub)
    stalled.client.transport.pause_reading()
    started = monotonic()
    watcher = asyncio.create_task(_drop_time(hub, drops, 4 * bench.plan.stall_ping + 5))
    ops = 0
    while monotonic() - started < 0.5 and not watcher.done():  # a backlog under the limit
        await asyncio.gather(
            *(
                admin.call(
                    "member.update",
                    {
                        "room": room,
                        "user": "stalled",
                        "properties": {"pad": "x" * pad, "n": ops + i},
                        "reply": "ack",
                    },
                )
                for i in range(50)
            )
        )
        ops += 50
    dropped_after = _since(started, await watcher)
    stalled.client.close()
    admin.client.close()
    return StalledReader(
        message_pad_bytes=pad,
        ops_while_stalled=ops,
        bound_s=2 * bench.plan.stall_ping,
        dropped_after_s=dropped_after,
    )


async def _resume_storm(bench: Bench, hub: infra.HubProcess, members: bool) -> ResumeStorm:
    """`resume_clients` users resume a room of `resume_messages` messages, all at once, while
    a member asks room.get in a loop: hub CPU per resume, RSS, and the member's worst wait.
    Non-members resume from seq 0 (each must get `resync 0` and cost next to nothing);
    members, for comparison, resume the last 1,000 messages (the default resume cap)."""
    admin = await bench.session(hub, "adm", server=True)
    room = f"{bench.tag}-resume-{'m' if members else 'n'}"
    users = [f"resumer{'m' if members else 'n'}{i}" for i in range(bench.plan.resume_clients)]
    await asyncio.gather(*(admin.call("user.upsert", {"id": u}) for u in [*users, "probe"]))
    await admin.call(
        "room.create",
        {"room": room, "owner": "probe", "members": users if members else [], "reply": "ack"},
    )
    gate = asyncio.Semaphore(64)

    async def update(n: int) -> None:
        async with gate:
            args = {"room": room, "user": "probe", "properties": {"n": n}, "reply": "ack"}
            await admin.call("member.update", args)

    await asyncio.gather(*(update(n) for n in range(bench.plan.resume_messages)))
    current = (await admin.call("room.get", {"room": room}))["seq"]
    replay = min(1000, bench.plan.resume_messages // 2) if members else 0
    after = current - replay if members else 0
    expected = bench.plan.resume_clients * (replay if members else 1)
    probe = await bench.session(hub, "probe")
    replayed = [0]
    all_in = asyncio.Event()

    def count(frame: dict[str, Any], _t: float) -> None:
        replayed[0] += 1
        if replayed[0] >= expected:
            all_in.set()

    waits: list[float] = []
    done = asyncio.Event()

    async def probing() -> None:
        while not done.is_set():
            t = monotonic()
            await probe.call("room.get", {"room": room})
            waits.append(monotonic() - t)
            await asyncio.sleep(0.01)

    rss0, cpu0 = hub.rss(), hub.cpu()
    stop, peak = asyncio.Event(), [rss0]
    sampler = asyncio.create_task(_sample_rss(hub, stop, peak))
    prober = asyncio.create_task(probing())
    started = monotonic()
    clients = await asyncio.gather(
        *(
            connect(HOST, hub.port, on_event=count)
            for _ in users  # connected first: the storm is the auths, all at once
        )
    )
    sessions = [Session(client) for client in clients]
    token = {u: mint_token(bench.secret, u) for u in users}
    await asyncio.gather(
        *(
            s.call("auth", {"key": bench.app, "token": token[u], "resume": {room: after}}, 120)
            for s, u in zip(sessions, users)
        )
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 60)
    elapsed = monotonic() - started
    done.set()
    await prober
    cpu = hub.cpu() - cpu0
    stop.set()
    await sampler
    for s in [*sessions, probe, admin]:
        s.client.close()
    return ResumeStorm(
        members=members,
        room_messages=current,
        resumed_from_seq=after,
        clients=bench.plan.resume_clients,
        frames_received=replayed[0],
        frames_expected=expected,
        wall_s=round(elapsed, 2),
        hub_cpu_ms_per_resume=round(cpu / bench.plan.resume_clients * 1000, 2),
        hub_rss_before_mib=round(rss0 / 2**20, 1),
        hub_rss_peak_mib=round(peak[0] / 2**20, 1),
        member_request_wait_ms={
            "p50": round(statistics.median(waits) * 1000, 1) if waits else None,
            "max": round(max(waits) * 1000, 1) if waits else None,
        },
    )


def _flood_line(f: PingFlood) -> str:
    return (
        f"ping flood (authenticated={f.authenticated}): hub RSS {f.hub_rss_before_mib} -> "
        f"peak {f.hub_rss_peak_mib} MiB, dropped after {f.dropped_after_s} s"
    )


def _storm_line(s: ResumeStorm) -> str:
    return (
        f"{s.clients} {'members' if s.members else 'non-members'} resume from seq "
        f"{s.resumed_from_seq} of {s.room_messages}: {s.hub_cpu_ms_per_resume} ms hub CPU "
        f"each, member waited max {s.member_request_wait_ms['max']} ms"
    )


def _stall_line(s: StalledReader) -> str:
    return (
        f"stalled reader ({s.ops_while_stalled} ops of +{s.message_pad_bytes} B): dropped "
        f"after {s.dropped_after_s} s (bound {s.bound_s} s)"
    )


async def hostile(bench: Bench) -> Hostile:
    bench.progress.phase("hostile: ping flood")
    (hub,) = await bench.start_hubs(1)
    floods = [await _ping_flood(bench, hub, auth) for auth in (False, True)]
    for flood in floods:
        bench.progress.done(_flood_line(flood))
    bench.progress.phase("hostile: resume storms")
    storms = [await _resume_storm(bench, hub, members) for members in (False, True)]
    for storm in storms:
        bench.progress.done(_storm_line(storm))
    await bench.teardown()
    bench.progress.phase("hostile: stalled readers")
    ping = str(bench.plan.stall_ping)
    (hub,) = await bench.start_hubs(
        1, env={"ROOMHUB_PING_INTERVAL": ping, "ROOMHUB_PING_TIMEOUT": ping}
    )
    stalls = [await _stalled_reader(bench, hub, pad) for pad in (0, 1000)]
    for stall in stalls:
        bench.progress.done(_stall_line(stall))
    await bench.teardown()
    return Hostile(ping_flood=floods, resume_storm=storms, stalled_reader=stalls)
