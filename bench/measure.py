"""One measured run: member.update ops offered by a sender load process (closed loop, or paced
at a rate), every member's system message recorded by the receiver load processes, and the
CPU time of the hubs, the load processes, Redis and the whole machine meanwhile."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from time import monotonic
from typing import Any

from . import infra
from .harness import Bench, Layout, LoadProcess
from .results import Run
from .stats import merge_recs, summary_ms


@dataclass(frozen=True)
class Todo:
    """A run to do on a prepared layout: rate None is the closed loop of `window` per
    sender connection."""

    label: str
    rate: float | None
    duration: float
    window: int


class _Clocks:
    """CPU seconds of everything that matters, read at the start and the end of a run."""

    def __init__(self, bench: Bench, hubs: list[infra.HubProcess], loads: list[LoadProcess]):
        self.hubs = [h.cpu() for h in hubs]
        self.loads = [p.cpu() for p in loads]
        self.redis = bench.redis_cpu()
        self.busy = infra.system_busy_seconds()
        self.wall = monotonic()


async def _drain(bench: Bench, receivers: list[LoadProcess], label: str, expected: int) -> None:
    """Until the receivers got `expected` messages, or nothing came for 3 s, or the timeout."""

    async def count() -> int:
        counts = await asyncio.gather(*(r.call("count") for r in receivers))
        got: int = sum(c["events"] for c in counts)
        bench.progress.update(f"{label}: draining deliveries {got}/{expected}")
        return got

    await infra.settle(count, expected, timeout=bench.plan.drain_timeout, quiet=3, poll=0.05)


async def measure(
    bench: Bench,
    hubs: list[infra.HubProcess],
    sender: LoadProcess,
    receivers: list[LoadProcess],
    layout: Layout,
    todo: Todo,
    keys: bool = False,
) -> Run:
    """Offer member.update ops (closed loop when `todo.rate` is None) and measure the replies
    and every member's system message. `keys`: each op carries an idempotency key."""
    plan, label, rate, duration = bench.plan, todo.label, todo.rate, todo.duration
    bench.run_no += 1
    members = layout.members
    waited = await bench.wait_quiet()
    await asyncio.gather(*(r.call("reset") for r in receivers))
    loads = [sender, *receivers]
    start = _Clocks(bench, hubs, loads)

    def sending(info: dict[str, Any]) -> None:
        bench.progress.update(
            f"{label}: {info['elapsed']:.1f}/{duration:.0f}s sent "
            f"{info['sent']} acked {info['replies']}"
        )

    sent = await sender.call(
        "send",
        on_progress=sending,
        rooms=layout.rooms,
        duration=duration,
        rate=rate,
        window=todo.window,
        cap=plan.paced_cap,
        base=bench.run_no * 10**8,
        drain_timeout=plan.drain_timeout,
        keys=keys,
    )
    ok = [i for i, r in enumerate(sent["result"]) if r > 0]
    expected = len(ok) * members
    await _drain(bench, receivers, label, expected)
    end = _Clocks(bench, hubs, loads)
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
    first = sent_t[0] if sent_t else start.wall
    last_reply = max((reply_t[i] for i in ok), default=0.0)
    ops_span = last_reply - first if ok else 0.0
    deliv_span = last_delivery - first if delivered else 0.0
    hub_cpu = sum(b - a for a, b in zip(start.hubs, end.hubs))
    load_cpu = sum(b - a for a, b in zip(start.loads, end.loads))
    redis_cpu = (
        end.redis - start.redis if start.redis is not None and end.redis is not None else None
    )
    busy, wall = end.busy - start.busy, end.wall - start.wall
    errors: dict[str, int] = {}
    for r in sent["result"]:
        if r < 0:
            errors[str(-r)] = errors.get(str(-r), 0) + 1
    return Run(
        label=label,
        rooms=len(layout.rooms),
        members_per_room=members,
        nodes=len(hubs),
        mode="max" if rate is None else "paced",
        idempotency_keys=keys,
        offered_ops_per_s=rate,
        duration_s=duration,
        sender_connections=plan.senders,
        window_per_connection=todo.window if rate is None else None,
        sent=len(sent_t),
        shed=sent["shed"],
        ok=len(ok),
        errors=errors,
        unanswered=sent["unanswered"],
        ops_per_s=round(len(ok) / ops_span, 1) if ops_span > 0 else None,
        deliveries=delivered,
        expected_deliveries=expected,
        missing_deliveries=max(0, expected - delivered),
        incomplete_ops=incomplete,
        deliveries_per_s=round(delivered / deliv_span, 1) if deliv_span > 0 else None,
        ack_latency_ms=summary_ms(acks),
        delivery_latency_ms=summary_ms(deliveries_lat),
        hub_cpu_s=round(hub_cpu, 3),
        hub_cpu_util=round(hub_cpu / deliv_span / len(hubs), 3) if deliv_span > 0 else None,
        hub_cpu_us_per_delivery=round(hub_cpu / delivered * 1e6, 2) if delivered else None,
        hub_cpu_us_per_op=round(hub_cpu / len(ok) * 1e6, 1) if ok else None,
        ops_per_hub_core_s=round(len(ok) / hub_cpu, 1) if hub_cpu > 0 else None,
        deliveries_per_hub_core_s=round(delivered / hub_cpu, 1) if hub_cpu > 0 else None,
        load_cpu_s=round(load_cpu, 3),
        load_cpu_us_per_delivery=round(load_cpu / delivered * 1e6, 2) if delivered else None,
        redis_cpu_s=None if redis_cpu is None else round(redis_cpu, 3),
        measured_wall_s=round(wall, 3),
        waited_for_quiet_s=waited,
        other_cpu_s=round(max(0.0, busy - hub_cpu - load_cpu - (redis_cpu or 0.0)), 3),
        machine_cpu_util=round(busy / wall / (os.cpu_count() or 1), 3),
    )


def _done(bench: Bench, run: Run) -> None:
    bench.progress.done(
        f"{run.ops_per_s} ops/s, {run.deliveries_per_s} deliveries/s, "
        f"ack p99 {run.ack_latency_ms.p99} ms, delivery p99 {run.delivery_latency_ms.p99} ms, "
        f"hub {run.hub_cpu_us_per_delivery} us/delivery"
    )


async def load_runs(
    bench: Bench, hubs: list[infra.HubProcess], layout: Layout, label: str, todos: list[Todo]
) -> list[Run]:
    """Prepare one layout, then do each run on it."""
    bench.progress.phase(f"{label}: setup")
    sender, receivers = await bench.prepare(hubs, layout, label)
    bench.progress.done(f"{len(layout.rooms)} rooms x {layout.members} members connected")
    results = []
    for todo in todos:
        bench.progress.phase(todo.label)
        result = await measure(bench, hubs, sender, receivers, layout, todo)
        _done(bench, result)
        results.append(result)
    for proc in [sender, *receivers]:
        await proc.call("disconnect")
    return results
