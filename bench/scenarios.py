"""The load scenarios: `ceiling`, `throughput`, `fanout`, `nodes`, `connections`, and
`presence` and `churn` (what is started, what load is offered, what is measured:
docs/performance.md sections 2 and 3). Each is a
function of the `Bench`, called by the CLI's registry (`cli.SCENARIOS`), that stops what it
started and returns its result (`results.py`)."""

from __future__ import annotations

import asyncio
import statistics
from time import monotonic
from typing import Any

from roomhub.server.auth import mint_token
from roomhub.server.store.keys import PRESENCE_NODES_KEY, user_online_key

from . import infra
from .harness import Bench, Layout
from .infra import HOST
from .measure import Todo, load_runs
from .results import (
    Ceiling,
    Churn,
    Connections,
    ObserverView,
    OnlineMismatch,
    PresenceCost,
    PresenceRun,
    Run,
    Runs,
    Throughput,
)
from .stats import summary_ms
from .wsclient import Session, connect


async def ceiling(bench: Bench) -> Ceiling:
    plan = bench.plan
    limit = plan.ceiling
    bench.progress.phase("ceiling: setup")
    hubs = await bench.start_hubs(2, rate_limit=limit)
    layout = bench.layout("ceil", 1, 2, nodes=2)
    await bench.populate(hubs[0], layout)
    room, members = layout.rooms[0]
    sender, receivers = bench.spawn(2, "load-ceiling-")
    await bench.connect(
        [receivers], [[(HOST, hubs[m % 2].port, user, False) for m, user in enumerate(members)]]
    )
    senders = [
        (HOST, hubs[c % 2].port, f"bench-sender{c}", True) for c in range(plan.ceiling_senders)
    ]
    await bench.connect([sender], [senders], what="senders")
    await asyncio.sleep(1.2)  # let the setup ops leave the one-second window
    before = (await sender.call("call", op="room.get", args={"room": room}))["seq"]
    waited = await bench.wait_quiet()
    await receivers.call("reset")
    offered = 2 * limit
    bench.progress.phase(
        f"ceiling: offering {offered}/s for {plan.ceiling_duration:.0f}s over 2 nodes"
    )
    cpu0 = [h.cpu() for h in hubs]

    def sending(info: dict[str, Any]) -> None:
        bench.progress.update(
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
    sent_t, reply_t = sent["sent_t"], sent["reply_t"]
    admitted_rate = len(admitted) / plan.ceiling_duration
    seqs = sorted(recs)
    every_member = all(count == len(members) for count, _ in recs.values())
    out = Ceiling(
        ceiling_per_s=limit,
        offered_per_s=offered,
        duration_s=plan.ceiling_duration,
        nodes=2,
        sender_connections=plan.ceiling_senders,
        sent=len(results),
        admitted=len(admitted),
        rejected=len(rejected),
        other_errors=len(results) - len(admitted) - len(rejected) - sent["unanswered"],
        unanswered=sent["unanswered"],
        admitted_per_s=round(admitted_rate, 1),
        admitted_within_5pct=abs(admitted_rate - limit) <= 0.05 * limit,
        rejection_latency_ms=summary_ms(reply_t[i] - sent_t[i] for i in rejected),
        admitted_ack_latency_ms=summary_ms(reply_t[i] - sent_t[i] for i in admitted),
        seq_before=before,
        seq_after=after,
        seq_advanced=after - before,
        seq_advanced_equals_admitted=after - before == len(admitted),
        messages_delivered=len(recs),
        messages_gapless=seqs == list(range(before + 1, after + 1)),
        every_member_got_every_message=every_member and len(recs) == len(admitted),
        hub_cpu_s=round(hub_cpu, 3),
        waited_for_quiet_s=waited,
    )
    bench.progress.done(
        f"admitted {out.admitted_per_s}/s of {offered}/s (ceiling {limit}), "
        f"rejection p99 {out.rejection_latency_ms.p99} ms, seq advanced "
        f"{out.seq_advanced} for {out.admitted} admitted"
    )
    await bench.teardown()
    return out


async def throughput(bench: Bench) -> Throughput:
    plan = bench.plan
    hubs = await bench.start_hubs(1)
    runs: list[Run] = []
    sweep: list[Run] = []
    for rooms, members in plan.configs:
        name = f"{rooms}x{members}"
        label = f"throughput {name}"
        layout = bench.layout(f"tp{name}", rooms, members)
        if (rooms, members) == plan.sweep_config:
            todos = [
                Todo(f"{label} @{rate}/s", float(rate), plan.sweep_duration, plan.window)
                for rate in plan.sweep_rates
            ]
            todos.append(Todo(f"{label} @max", None, plan.run_duration, plan.window))
            results = await load_runs(bench, hubs, layout, label, todos)
            sweep.extend(results)
            runs.append(results[-1])
        else:
            window = plan.window if members < 1000 else plan.fanout_window
            todo = Todo(f"{label} @max", None, plan.run_duration, window)
            runs.extend(await load_runs(bench, hubs, layout, label, [todo]))
    await bench.teardown()
    return Throughput(runs=runs, sweep=sweep)


async def fanout(bench: Bench) -> Runs:
    """One big room: a paced run (latency below saturation), then closed-loop runs with
    more and more ops in flight (deliveries/s against latency)."""
    plan = bench.plan
    hubs = await bench.start_hubs(1)
    name = f"fanout 1x{plan.fanout_members}"
    layout = bench.layout("fan", 1, plan.fanout_members)
    rate = plan.fanout_paced_rate
    todos = [Todo(f"{name} @{rate}/s", float(rate), plan.run_duration, 1)]
    todos += [
        Todo(f"{name} @max {plan.senders * w} in flight", None, plan.run_duration, w)
        for w in plan.fanout_windows
    ]
    runs = await load_runs(bench, hubs, layout, name, todos)
    await bench.teardown()
    return Runs(runs=runs)


async def nodes(bench: Bench) -> Runs:
    plan = bench.plan
    rooms, members = plan.nodes_config
    runs = []
    for count in (1, 2):
        hubs = await bench.start_hubs(count)
        label = f"nodes {count}x {rooms}x{members}"
        layout = bench.layout(f"n{count}", rooms, members, nodes=count)
        todo = Todo(f"{label} @max", None, plan.run_duration, plan.window)
        runs.extend(await load_runs(bench, hubs, layout, label, [todo]))
        await bench.teardown()
    return Runs(runs=runs)


async def _idle_connections(
    bench: Bench, hub: infra.HubProcess, users: list[str], presence: bool = False
) -> tuple[Connections, int, float]:
    """`users` connect and authenticate to `hub` from `connection_procs` load processes and
    stay idle (`presence`: with `presence: true`); the figures, the presence events they got
    meanwhile, and the cores other programs used while they connected (noise)."""
    plan = bench.plan
    procs_n = plan.connection_procs
    procs = bench.spawn(procs_n, "load-conn-")
    # Warm the hub up (first-use imports, pools, JWT) so the baseline is a working node.
    warm = [(HOST, hub.port, f"{bench.tag}-warm{i}", False) for i in range(20)]
    await bench.connect(procs[:1], [warm], what="warm-up", presence=presence)
    await procs[0].call("disconnect")
    await asyncio.sleep(1.0)
    waited = await bench.wait_quiet()
    rss0, cpu0 = hub.rss(), hub.cpu()
    targets: list[list[tuple[str, int, str, bool]]] = [[] for _ in procs]
    for i, user in enumerate(users):
        targets[i % procs_n].append((HOST, hub.port, user, False))
    busy0, own0, wall0 = infra.system_busy_seconds(), bench.own_cpu(), monotonic()
    done = await bench.connect(
        procs, targets, concurrency=plan.connect_concurrency, presence=presence
    )
    cpu1, rss1 = hub.cpu(), hub.rss()
    busy, own = infra.system_busy_seconds() - busy0, bench.own_cpu() - own0
    other = round(max(0.0, busy - own) / (monotonic() - wall0), 2)
    await asyncio.sleep(2.0)  # idle: settles the buffers of the last handshakes
    rss2 = hub.rss()
    counts = await asyncio.gather(*(p.call("count") for p in procs))
    still = sum(c["open"] for c in counts)
    events = sum(c["presence_events"] for c in counts)
    connected = done["connected"]
    out = Connections(
        connections=connected,
        load_processes=procs_n,
        still_open_after_idle=still,
        connect_time_s=round(done["elapsed_s"], 3),
        connections_per_s=round(connected / done["elapsed_s"], 1),
        hub_cpu_us_per_connection=round((cpu1 - cpu0) / connected * 1e6, 1),
        hub_rss_before_bytes=rss0,
        hub_rss_after_bytes=rss2,
        hub_rss_after_connect_bytes=rss1,
        hub_bytes_per_connection=round((rss2 - rss0) / connected),
        hub_kib_per_connection=round((rss2 - rss0) / connected / 1024, 2),
        nofile_limit=infra.raise_nofile()[0],
        waited_for_quiet_s=waited,
    )
    return out, events, other


async def connections(bench: Bench) -> Connections:
    n = bench.plan.connections
    bench.progress.phase(f"connections: {n} idle authenticated connections")
    (hub,) = await bench.start_hubs(1)
    out, _, _ = await _idle_connections(bench, hub, [f"{bench.tag}-c{i}" for i in range(n)])
    bench.progress.done(
        f"{out.connections} connected in {out.connect_time_s} s, "
        f"{out.hub_kib_per_connection} KiB of hub RSS each"
    )
    await bench.teardown()
    return out


# --- presence ---------------------------------------------------------------------------------


def _presence_flag(on: bool) -> list[str]:
    return ["--presence", "true" if on else "false"]


async def _room_presence(session: Session, rooms: list[str]) -> dict[str, list[str]]:
    """room.presence of every room (a server session): room -> the members online."""
    gate = asyncio.Semaphore(64)

    async def one(room: str) -> list[str]:
        async with gate:
            result = await session.call("room.presence", {"room": room})
        online: list[str] = result["online"]
        if result["count"] != len(online):
            raise RuntimeError(f"room.presence of {room}: count {result['count']} for {online}")
        return online

    return dict(zip(rooms, await asyncio.gather(*(one(room) for room in rooms))))


def _median_ratio(on: list[float], off: list[float]) -> float:
    return round(statistics.median(on) / statistics.median(off), 3)


async def presence(bench: Bench) -> PresenceCost:
    """The `connections` run on a hub with `--presence false` (auth without presence) and on
    one with `--presence true` (auth with `presence: true`), each on a fresh hub, alternating
    (off, on, then on, off ...). The users are members of rooms of `presence_room_members`,
    connected room by room, so presence events flow to the members already connected."""
    plan = bench.plan
    n, m = plan.connections, plan.presence_room_members
    if n % m:
        raise ValueError(f"{n} connections do not fill rooms of {m}")
    layout = bench.layout("pres", n // m, m)
    rooms = [room for room, _ in layout.rooms]
    users = [user for _, members in layout.rooms for user in members]
    bench.progress.phase(f"presence: setup ({len(rooms)} rooms x {m} members)")
    (setup,) = await bench.start_hubs(1)
    await bench.populate(setup, layout)
    await bench.teardown()
    runs: list[PresenceRun] = []
    failed: list[str] = []
    for round_no in range(plan.presence_rounds):
        for on in (False, True) if round_no % 2 == 0 else (True, False):
            what = f"presence {'on' if on else 'off'}"
            bench.progress.phase(f"{what}: {n} idle connections (round {round_no + 1})")
            (hub,) = await bench.start_hubs(1, args=_presence_flag(on))
            figures, events, other = await _idle_connections(bench, hub, users, presence=on)
            online: int | None = None
            if on:  # presence is written behind the sockets: give it a moment
                session = await bench.session(hub, "bench-admin", server=True)
                deadline = monotonic() + 10
                while True:
                    online = sum(len(v) for v in (await _room_presence(session, rooms)).values())
                    if online == figures.connections or monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                session.client.close()
            run = PresenceRun(
                presence=on,
                round=round_no + 1,
                figures=figures,
                presence_events_received=events,
                online_counted=online,
                online_exact=None if online is None else online == figures.connections,
                other_cpu_cores=other,
            )
            runs.append(run)
            if figures.still_open_after_idle != figures.connections:
                failed.append(f"{what}: {figures.still_open_after_idle} still open of {n}")
            if on and not run.online_exact:
                failed.append(f"{what}: room.presence counts {online} online of {n} connected")
            if on and m > 1 and events == 0:
                failed.append(f"{what}: no presence event reached the connections")
            if not on and events:
                failed.append(f"{what}: {events} presence events with presence off")
            bench.progress.done(
                f"{figures.connections_per_s}/s, {figures.hub_kib_per_connection} KiB and "
                f"{figures.hub_cpu_us_per_connection} us of hub CPU per connection, "
                f"{events} presence events (other programs: {other} cores)"
            )
            await bench.teardown()

    def series(on: bool, key: str) -> list[float]:
        return [getattr(r.figures, key) for r in runs if r.presence == on]

    rate = {on: series(on, "connections_per_s") for on in (False, True)}
    kib = {on: series(on, "hub_kib_per_connection") for on in (False, True)}
    cpu = {on: series(on, "hub_cpu_us_per_connection") for on in (False, True)}
    rate_ratio = _median_ratio(rate[True], rate[False])
    rss_ratio = _median_ratio(kib[True], kib[False])
    for check in failed:
        bench.progress.note(f"presence: FAILED CHECK: {check}")
    return PresenceCost(
        connections=n,
        room_members=m,
        rooms=len(rooms),
        rounds=plan.presence_rounds,
        runs=runs,
        connections_per_s_off=rate[False],
        connections_per_s_on=rate[True],
        connect_rate_ratio=rate_ratio,
        kib_per_connection_off=kib[False],
        kib_per_connection_on=kib[True],
        rss_ratio=rss_ratio,
        hub_cpu_us_per_connection_off=cpu[False],
        hub_cpu_us_per_connection_on=cpu[True],
        cpu_ratio=_median_ratio(cpu[True], cpu[False]),
        within_20pct=rate_ratio >= 0.8 and rss_ratio <= 1.2,
        failed_checks=failed,
    )


async def _redis_presence(bench: Bench, users: list[str]) -> tuple[dict[str, set[str]], int]:
    """Each user's online set in Redis, as node ids (an instance is `<node id>.<hex>`), and
    how many node instances Redis lists as alive."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(bench.redis_url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.smembers(user_online_key(bench.app, user))
            found = await pipe.execute()
        live = await client.zcard(PRESENCE_NODES_KEY)
    finally:
        await client.aclose()
    held = {
        user: {raw.decode().rsplit(".", 1)[0] for raw in instances}
        for user, instances in zip(users, found)
        if instances
    }
    return held, int(live)


async def _late_auths(
    bench: Bench, hub: infra.HubProcess, users: list[str], room: str
) -> tuple[int, list[str]]:
    """Each user connects to `hub` (started with --auth-timeout churn_late_deadline), sends
    `auth` around that deadline (spread from 20 ms before it to 10 ms after), then closes.
    Returns how many auths were answered ok, and the users online once presence settled
    (none should be: every connection is closed)."""
    plan = bench.plan
    deadline = plan.churn_late_deadline
    answered = 0

    async def late(i: int, user: str) -> None:
        nonlocal answered
        session = Session(await connect(HOST, hub.port))
        await asyncio.sleep(deadline - 0.02 + 0.03 * i / len(users))
        token = mint_token(bench.secret, user)
        try:
            reply = await session.request("auth", {"key": bench.app, "token": token}, 5)
            answered += bool(reply.get("ok"))
        except Exception:
            pass  # closed with 4401: too late
        session.client.close()

    await asyncio.gather(*(late(i, user) for i, user in enumerate(users)))
    admin = await bench.session(hub, "bench-admin", server=True)
    stop = monotonic() + plan.churn_settle
    while True:
        online = (await _room_presence(admin, [room]))[room]
        if not online or monotonic() > stop:
            break
        await asyncio.sleep(0.2)
    admin.client.close()
    return answered, online


async def churn(bench: Bench) -> Churn:
    """`churn_users` users connect and disconnect in a loop over 2 nodes for `churn_duration`
    s (every `churn_second_every`-th user with a second connection churning on its own, so it
    is sometimes on both nodes at once), observers with `presence: true` following them. At
    the end, with each user's connections known: room.presence, the online sets in Redis and
    every observer's view must equal the users connected (else the checks fail: exit 1)."""
    plan = bench.plan
    bench.progress.phase("churn: setup")
    hubs = await bench.start_hubs(2, args=_presence_flag(True))
    node_of = {hub.port: hub.name for hub in hubs}
    users = [f"{bench.tag}-ch{i}" for i in range(plan.churn_users)]
    observers = [f"{bench.tag}-obs{k}" for k in range(plan.churn_observers)]
    m = plan.churn_room_members
    layout = Layout(
        [
            (f"{bench.tag}-chr{r}", [*observers, *users[start : start + m]])
            for r, start in enumerate(range(0, len(users), m))
        ],
        2,
    )
    rooms = [room for room, _ in layout.rooms]
    await bench.populate(hubs[0], layout)
    late_users = [f"{bench.tag}-late{i}" for i in range(plan.churn_late_auths)]
    late_room = f"{bench.tag}-late"
    if late_users:
        await bench.populate(hubs[0], Layout([(late_room, late_users)], 1))
    watcher, *churners = bench.spawn(1 + plan.churn_procs, "load-churn-")
    await watcher.call(
        "presence",
        action="observe",
        targets=[(HOST, hubs[k % 2].port, user) for k, user in enumerate(observers)],
        key=bench.app,
        secret=bench.secret,
        rooms=rooms,
        users=users,
    )
    slots: list[list[tuple[str, list[int]]]] = [[] for _ in churners]
    ports = [hub.port for hub in hubs]
    doubles = 0
    for i, user in enumerate(users):
        mine = slots[i % len(churners)]
        mine.append((user, [ports[i % 2], ports[(i + 1) % 2]]))  # takes turns on the nodes
        if plan.churn_second_every and i % plan.churn_second_every == 0:
            mine.append((user, [ports[(i + 1) % 2], ports[i % 2]]))
            doubles += 1
    bench.progress.done(
        f"{len(users)} users ({doubles} with two connections) in {len(rooms)} rooms, "
        f"{len(observers)} observers"
    )
    await bench.wait_quiet()
    bench.progress.phase(f"churn: {len(users)} users over 2 nodes for {plan.churn_duration:.0f}s")
    tallies = [{"connects": 0, "disconnects": 0} for _ in churners]

    def tracker(index: int) -> Any:
        def seen(info: dict[str, Any]) -> None:
            tallies[index] = info
            bench.progress.update(
                f"connects {sum(t['connects'] for t in tallies)}, disconnects "
                f"{sum(t['disconnects'] for t in tallies)}, open {info.get('open', 0)} "
                f"(this process)"
            )

        return seen

    done = await asyncio.gather(
        *(
            proc.call(
                "presence",
                on_progress=tracker(i),
                action="churn",
                slots=slots[i],
                host=HOST,
                key=bench.app,
                secret=bench.secret,
                duration=plan.churn_duration,
                hold=plan.churn_hold,
                gap=plan.churn_gap,
                concurrency=plan.churn_concurrency,
                abort_every=plan.churn_abort_every,
                seed=i,
            )
            for i, proc in enumerate(churners)
        )
    )
    started = min(d["started_at"] for d in done)
    stopped = max(d["finished_at"] for d in done)
    wall = stopped - started
    total = {k: sum(d[k] for d in done) for k in ("connects", "disconnects", "aborts", "failed")}

    async def connected_now() -> dict[str, set[str]]:
        held: dict[str, set[str]] = {}
        for part in await asyncio.gather(*(p.call("presence", action="state") for p in churners)):
            for user, on_ports in part.items():
                held.setdefault(user, set()).update(node_of[port] for port in on_ports)
        return held

    # Settle: the hubs write presence behind the sockets; room.presence must become exact.
    bench.progress.phase("churn: checking presence")
    session = await bench.session(hubs[0], "bench-admin", server=True)
    watched = set(users)
    deadline = monotonic() + plan.churn_settle
    settled: float | None = None
    while True:
        expected = await connected_now()
        listed = await _room_presence(session, rooms)
        online = {user for members in listed.values() for user in members if user in watched}
        if online == set(expected):
            settled = round(monotonic() - stopped, 2)
            break
        if monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    in_redis, live = await _redis_presence(bench, users)
    redis_exact = in_redis == expected
    views: list[dict[str, Any]] = []
    while True:  # the observers' last events may still be on their way
        views = await watcher.call("presence", action="views", since=started, until=stopped)
        if all(set(v["online"]) == set(expected) for v in views) or monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    session.client.close()
    observer_views = [
        ObserverView(
            user=observers[k],
            node=hubs[k % 2].name,
            events=v["events"],
            events_during_churn=v["events_in_window"],
            view_exact=set(v["online"]) == set(expected),
            missing=sorted(set(expected) - set(v["online"]))[:10],
            extra=sorted(set(v["online"]) - set(expected))[:10],
        )
        for k, v in enumerate(views)
    ]
    wrong = sorted(
        u
        for u in users
        if expected.get(u, set()) != in_redis.get(u, set()) or (u in online) != (u in expected)
    )
    mismatches = [
        OnlineMismatch(
            user=u,
            connected_on=sorted(expected.get(u, set())),
            redis_online_on=sorted(in_redis.get(u, set())),
            in_room_presence=u in online,
        )
        for u in wrong[:20]
    ]
    failed: list[str] = []
    if settled is None:
        failed.append(
            f"room.presence not exact {plan.churn_settle:.0f} s after the churn: "
            f"{len(online)} online, {len(expected)} connected, users wrong: {len(wrong)}"
        )
    if not redis_exact:
        failed.append(f"Redis online sets wrong for {len(wrong)} users (see mismatches)")
    if live != len(hubs):
        failed.append(f"Redis lists {live} live node instances for {len(hubs)} hubs")
    inexact = [o.user for o in observer_views if not o.view_exact]
    if inexact:
        failed.append(f"observers whose events disagree with the connected users: {inexact}")
    if not all(v["open"] for v in views):
        failed.append("an observer's connection was closed")
    if total["connects"] == 0 or total["disconnects"] == 0:
        failed.append("no churn: nothing connected or disconnected")
    answered, late_online = 0, []
    if late_users:
        bench.progress.phase(
            f"churn: {len(late_users)} auths around the auth deadline "
            f"({plan.churn_late_deadline} s) of a third node"
        )
        (late_hub,) = await bench.start_hubs(
            1, args=[*_presence_flag(True), "--auth-timeout", str(plan.churn_late_deadline)]
        )
        answered, late_online = await _late_auths(bench, late_hub, late_users, late_room)
        if late_online:
            failed.append(
                f"{len(late_online)} of {len(late_users)} users whose auth was sent around "
                "the auth deadline stay online after their connection closed"
            )
    events = sum(v["events"] for v in views)
    during = sum(v["events_in_window"] for v in views)
    out = Churn(
        nodes=len(hubs),
        users=len(users),
        users_with_two_connections=doubles,
        rooms=len(rooms),
        observers=len(observers),
        duration_s=round(wall, 2),
        connects=total["connects"],
        disconnects=total["disconnects"],
        aborts=total["aborts"],
        connect_failures=total["failed"],
        connect_errors=[e for d in done for e in d["errors"]][:5],
        connects_per_s=round(total["connects"] / wall, 1),
        disconnects_per_s=round(total["disconnects"] / wall, 1),
        auth_latency_ms=summary_ms(t for d in done for t in d["auth_s"]),
        presence_events=events,
        presence_events_per_s=round(during / wall, 1),
        presence_events_per_s_per_observer=round(during / wall / max(1, len(views)), 1),
        connected_at_end=len(expected),
        online_at_end=len(online),
        settled_after_s=settled,
        online_set_exact=settled is not None,
        redis_online_sets_exact=redis_exact,
        live_node_instances=live,
        observers_exact=not inexact,
        observer_views=observer_views,
        mismatches=mismatches,
        late_auths=len(late_users),
        late_auth_deadline_s=plan.churn_late_deadline,
        late_auths_answered=answered,
        late_auths_online_after_close=len(late_online),
        late_auth_users_online=late_online[:10],
        failed_checks=failed,
    )
    for check in failed:
        bench.progress.note(f"churn: FAILED CHECK: {check}")
    bench.progress.done(
        f"{out.connects_per_s} connects/s, {out.disconnects_per_s} disconnects/s, "
        f"{out.presence_events_per_s} presence events/s to {out.observers} observers; "
        f"{out.connected_at_end} connected at the end, room.presence "
        f"{'exact' if out.online_set_exact else 'NOT EXACT'}"
    )
    await bench.teardown()
    return out
