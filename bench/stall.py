"""Part 3 of the `resilience` scenario (`resilience.run`), the stalled client: 1 node; a room
with a reading member and a member whose connection never reads again after `auth` (a raw
WebSocket whose transport stops reading); a closed loop of member.update ops. The hub's RSS
and its kernel send queue are sampled from /proc meanwhile; the hub's log tells when it dropped
the slow consumer (4008), its open file descriptors when it let the connection go
(SLOW_CONSUMER_GRACE later)."""

from __future__ import annotations

import asyncio
import contextlib
from time import monotonic
from typing import Any

from . import infra
from .harness import Bench, LoadProcess
from .results import StalledRun
from .verify import codes

SLOW_CONSUMER_LOG = b"closing slow consumer"
DEFAULT_SEND_BUFFER_LIMIT = 4 * 1024 * 1024  # ROOMHUB_SEND_BUFFER_LIMIT's default


async def stalled_client(
    bench: Bench, members: LoadProcess, writer: LoadProcess, limit: int, pad: int, run_no: int
) -> StalledRun:
    """One stalled-client run: a hub with send buffer `limit` (0: its default), ops
    carrying `pad` extra bytes (0: the bench's usual small op); the reading and the stalled
    member in the load process `members`, the closed loop in `writer`."""
    size = limit or DEFAULT_SEND_BUFFER_LIMIT
    name = (
        f"send buffer limit {size // 1024} KiB{'' if limit else ' (default)'}, "
        f"{'+' + str(pad) + ' B' if pad else 'small'} messages"
    )
    bench.progress.phase(f"resilience: stalled client, {name}: setup")
    env = {"ROOMHUB_SEND_BUFFER_LIMIT": str(limit)} if limit else None
    (hub,) = await bench.start_hubs(1, env=env)
    try:
        return await _stalled(bench, members, writer, hub, name, pad, limit, run_no)
    finally:
        await bench.stop_hubs([hub])


async def _stalled(
    bench: Bench,
    members: LoadProcess,
    writer: LoadProcess,
    hub: infra.HubProcess,
    name: str,
    pad: int,
    limit: int,
    run_no: int,
) -> StalledRun:
    plan, progress = bench.plan, bench.progress
    layout = bench.layout(f"st{run_no}", 1, 2)
    await bench.populate(hub, layout)
    room, (reader, stalled) = layout.rooms[0]
    who = {"port": hub.port, "key": bench.app, "secret": bench.secret}
    await members.res("reader_connect", user=reader, **who)
    loop_args = {
        **who,
        "room": room,
        "targets": [reader, stalled],
        "window": plan.stall_window,
        "pad": pad,
    }
    # warm the hub up (code paths, pools, allocator) before the baseline
    warm = await writer.res("closed_loop", count=plan.stall_warmup, base=0, **loop_args)
    if min(warm["result"]) <= 0:
        raise RuntimeError(f"the warm-up ops failed: {codes(r for r in warm['result'] if r <= 0)}")
    start_seq = max(warm["result"])  # the room's seq before the measured ops
    await asyncio.sleep(0.5)
    port = await members.res("stalled_connect", user=stalled, **who)
    await asyncio.sleep(0.2)
    fds_before = infra.open_fds(hub.pid)
    rss_before = hub.rss()

    rss: list[int] = [rss_before]
    kernel: list[int] = [0]  # the hub's socket send queue to the stalled client
    acked = {"n": 0}
    seen: dict[str, Any] = {"drop_t": None, "acked_at_drop": None, "release_t": None}
    stop, released = asyncio.Event(), asyncio.Event()

    async def watch() -> None:
        offset = hub.log_path.stat().st_size
        while not stop.is_set():
            with contextlib.suppress(OSError):
                rss.append(hub.rss())
            queues = infra.tcp_queues(hub.port, port)
            if queues is not None:
                kernel.append(queues[0])
            if seen["drop_t"] is None:
                if SLOW_CONSUMER_LOG in hub.log_text(offset):
                    seen["drop_t"], seen["acked_at_drop"] = monotonic(), acked["n"]
            elif seen["release_t"] is None and infra.open_fds(hub.pid) < fds_before:
                seen["release_t"] = monotonic()
                released.set()
            await asyncio.sleep(0.02)

    def sending(info: dict[str, Any]) -> None:
        acked["n"] = info["acked"]
        progress.update(f"{info['elapsed']:.1f}s acked {info['acked']}/{plan.stall_ops}")

    progress.phase(f"resilience: stalled client, {name}: {plan.stall_ops} ops")
    watcher = asyncio.create_task(watch())
    t0 = monotonic()
    try:
        run = await writer.call(
            "res",
            on_progress=sending,
            action="closed_loop",
            count=plan.stall_ops,
            base=10**6,
            **loop_args,
        )
        ok = sum(1 for r in run["result"] if r > 0)
        deadline = monotonic() + plan.drain_timeout
        while monotonic() < deadline:
            got = (await members.res("reader_status"))["count"]
            if got >= plan.stall_warmup + ok:
                break
            await asyncio.sleep(0.05)
        rss_end = hub.rss()
        kernel_end = (infra.tcp_queues(hub.port, port) or (0, 0))[0]
        if seen["drop_t"] is not None:  # the hub lets go of it SLOW_CONSUMER_GRACE later
            wait = seen["drop_t"] + plan.stall_release_wait - monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), max(0.0, wait))
        await asyncio.sleep(1.0)
        rss_after = hub.rss()
        still_open = infra.open_fds(hub.pid) >= fds_before
    finally:
        stop.set()
        await watcher
    got_stalled = await members.res("stall_collect", after_seq=start_seq, expect=ok, wait=5.0)
    status = await members.res("reader_status")
    reader_seqs = await members.res("reader_collect")
    reader_seqs = [s for s in reader_seqs if s > start_seq]
    acked_seqs = sorted(r for r in run["result"] if r > 0)
    drop_t, release_t = seen["drop_t"], seen["release_t"]
    out = StalledRun(
        send_buffer_limit_bytes=limit or DEFAULT_SEND_BUFFER_LIMIT,
        send_buffer_limit_is_default=not limit,
        ops=plan.stall_ops,
        window=plan.stall_window,
        pad_bytes=pad,
        message_bytes=status["mean_bytes"],
        message_bytes_total=round(status["mean_bytes"] * ok),
        acknowledged=ok,
        errors=codes(r for r in run["result"] if r <= 0),
        elapsed_s=round(run["elapsed_s"], 3),
        ops_per_s=round(ok / run["elapsed_s"], 1) if run["elapsed_s"] > 0 else None,
        ack_latency_ms=run["ack_latency_ms"],
        hub_rss_before_bytes=rss_before,
        hub_rss_peak_bytes=max(rss),
        hub_rss_end_of_ops_bytes=rss_end,
        hub_rss_after_bytes=rss_after,
        hub_rss_growth_peak_bytes=max(rss) - rss_before,
        hub_kernel_send_queue_peak_bytes=max(kernel),
        hub_kernel_send_queue_end_of_ops_bytes=kernel_end,
        rss_samples=len(rss),
        stalled_dropped=drop_t is not None,
        stalled_dropped_after_s=None if drop_t is None else round(drop_t - t0, 3),
        stalled_dropped_after_acked_ops=seen["acked_at_drop"],
        stalled_released_after_drop_s=None
        if release_t is None or drop_t is None
        else round(release_t - drop_t, 3),
        stalled_connection_open_at_end=still_open,
        stalled_kernel_queued_bytes=got_stalled["kernel_queued_bytes"],
        stalled_received_when_reading_again=got_stalled["received"],
        stalled_received_in_order=got_stalled["in_order"],
        stalled_close_code=got_stalled["close_code"],
        reader_received=len(reader_seqs),
        reader_in_order=all(a < b for a, b in zip(reader_seqs, reader_seqs[1:])),
        reader_got_every_ack_in_order=reader_seqs == acked_seqs
        and acked_seqs == list(range(start_seq + 1, start_seq + ok + 1)),
    )
    dropped = "no" if drop_t is None else f"yes (4008) after {seen['acked_at_drop']} ops"
    progress.done(
        f"hub RSS {rss_before / 2**20:.1f} -> peak {max(rss) / 2**20:.1f} -> after "
        f"{rss_after / 2**20:.1f} MiB, kernel send queue peak {max(kernel) / 2**20:.1f} MiB; "
        f"stalled client dropped: {dropped}; reader got {len(reader_seqs)}/{ok} in order: "
        f"{out.reader_got_every_ack_in_order}"
    )
    return out
