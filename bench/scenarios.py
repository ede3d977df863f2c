"""The load scenarios: `ceiling`, `throughput`, `fanout`, `nodes` and `connections` (what is
started, what load is offered, what is measured: docs/performance.md section 3). Each is a
function of the `Bench`, called by the CLI's registry (`cli.SCENARIOS`), that stops what it
started and returns its result (`results.py`)."""

from __future__ import annotations

import asyncio
from typing import Any

from . import infra
from .harness import Bench
from .infra import HOST
from .measure import Todo, load_runs
from .results import Ceiling, Connections, Run, Runs, Throughput
from .stats import summary_ms


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


async def connections(bench: Bench) -> Connections:
    plan = bench.plan
    n, procs_n = plan.connections, plan.connection_procs
    bench.progress.phase(f"connections: {n} idle authenticated connections")
    (hub,) = await bench.start_hubs(1)
    procs = bench.spawn(procs_n, "load-conn-")
    # Warm the hub up (first-use imports, pools, JWT) so the baseline is a working node.
    warm = [(HOST, hub.port, f"{bench.tag}-warm{i}", False) for i in range(20)]
    await bench.connect(procs[:1], [warm], what="warm-up")
    await procs[0].call("disconnect")
    await asyncio.sleep(1.0)
    waited = await bench.wait_quiet()
    rss0, cpu0 = hub.rss(), hub.cpu()
    targets: list[list[tuple[str, int, str, bool]]] = [[] for _ in procs]
    for i in range(n):
        targets[i % procs_n].append((HOST, hub.port, f"{bench.tag}-c{i}", False))
    done = await bench.connect(procs, targets, concurrency=plan.connect_concurrency)
    cpu1, rss1 = hub.cpu(), hub.rss()
    await asyncio.sleep(2.0)  # idle: settles the buffers of the last handshakes
    rss2 = hub.rss()
    still = sum(c["open"] for c in await asyncio.gather(*(p.call("count") for p in procs)))
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
    bench.progress.done(
        f"{connected} connected in {out.connect_time_s} s, "
        f"{out.hub_kib_per_connection} KiB of hub RSS each"
    )
    await bench.teardown()
    return out
