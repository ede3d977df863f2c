"""The `resilience` scenario: what clients see when Redis or a hub node restarts, and what a
client that stops reading costs the hub. Real processes on loopback, like the rest of the bench.

1. **Redis restart.** A redis-server of its own with AOF (`appendfsync everysec`), 2 hub nodes,
   one room whose members (`roomhub.clients.RoomClient`, reconnecting) alternate over the
   nodes, and a writer sending `member.update` (reply "ack") at a steady rate, retrying an op
   that fails with 100001 (or whose connection drops) at its next tick. Mid-run Redis gets
   SIGTERM (a clean shutdown) and is started again on the same port and data dir.
2. **Node restart.** 2 nodes on the bench's Redis; every member has both URLs (its own node
   first); the writer is on the node that stays up. Mid-run the other node gets SIGTERM (it
   closes its clients with 1001), and is started again on its port once it has exited.
3. **Stalled client.** 1 node; a room with a reading member and a member whose connection
   never reads again after `auth` (a raw WebSocket whose transport stops reading); a closed
   loop of member.update ops. The hub's RSS is sampled from /proc meanwhile; the hub's log
   tells when it dropped the slow consumer (4008), its open file descriptors when it let the
   connection go (SLOW_CONSUMER_GRACE later).

Every op carries a fresh value (`score`), so each acknowledged op is found in the room's
history (`room.history`, read at the end) by its value, and each member's received messages
are compared with that history: every acknowledged op must be there exactly once, and every
member must have received each history message exactly once, in order.

This module is the orchestrator side of parts 1 and 2 and runs the whole scenario (`run`);
part 3 is `stall.py`, the comparison `verify.py`. The load side (`worker_res.LoadSide`) runs in
two load processes (the worker's `res` command): the members in one, the writer in the other;
the orchestrator only starts and stops processes, reads /proc and the hub logs, and compares
the records (same CLOCK_MONOTONIC everywhere).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from time import monotonic
from typing import Any

from . import infra, results
from .harness import Bench, LoadProcess
from .infra import HOST
from .results import FailedButApplied, MovedClient, NodeRestart, RedisRestart, Verdict
from .stall import stalled_client
from .stats import summary_ms
from .verify import codes, verify


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _url(hub: infra.HubProcess) -> str:
    return f"ws://{HOST}:{hub.port}/ws"


async def _exited(proc: subprocess.Popen[bytes], timeout: float = 15) -> float:
    """Wait for a process to exit (SIGKILL after `timeout`); the time it was seen gone."""
    deadline = monotonic() + timeout
    while proc.poll() is None:
        if monotonic() > deadline:
            proc.kill()
            proc.wait()
            break
        await asyncio.sleep(0.005)
    return monotonic()


def _moved(m: dict[str, Any], t_kill: float, sent_at: dict[Any, float]) -> MovedClient:
    """A member of the node that was stopped at `t_kill`: when it was closed, OPEN again,
    and got its first live message (`sent_at`: when the op of each value was sent)."""
    drops = [(t, c) for s, t, c in m["transitions"] if s == "reconnecting" and t >= t_kill]
    if not drops:  # never dropped (or not seen): nothing to time
        return MovedClient(m["user"], False, None, None, None, None, m["last_url"])
    t_close, code = drops[0]
    t_open = next((t for s, t, _ in m["transitions"] if s == "open" and t > t_close), None)
    live = None
    if t_open is not None:
        # the first message of an op sent after the client was OPEN again: live, not
        # replayed (the replay was read before the auth reply)
        live = next(
            (
                t
                for _, score, t in m["delivered"]
                if t >= t_open and sent_at.get(score, 0.0) >= t_open
            ),
            None,
        )
    return MovedClient(
        user=m["user"],
        closed=True,
        close_code=code,
        closed_after_sigterm_ms=_ms(t_close - t_kill),
        open_again_ms=_ms(None if t_open is None else t_open - t_close),
        first_live_message_ms=_ms(None if live is None else live - t_close),
        reconnected_to=m["last_url"],
    )


async def run(bench: Bench) -> results.Resilience:
    """The three parts, with two load processes (members, writer)."""
    members, writer = bench.spawn(2, "load-res-")
    restarts = Restarts(bench, members, writer)
    out = results.Resilience(
        redis_restart=await restarts.redis_restart(),
        node_restart=await restarts.node_restart(),
        stalled_client=results.StalledClient(
            runs=[
                await stalled_client(bench, members, writer, limit, pad, run_no)
                for run_no, (limit, pad) in enumerate(bench.plan.stall_runs, 1)
            ]
        ),
    )
    await bench.teardown()
    return out


class Restarts:
    """Parts 1 and 2: a steady writer and reconnecting members across a restart."""

    def __init__(self, bench: Bench, members: LoadProcess, writer: LoadProcess) -> None:
        self.bench = bench
        self.plan = bench.plan
        self.progress = bench.progress
        self.members_proc = members
        self.writer_proc = writer
        self.run_no = 0

    # shared by the two restart parts --------------------------------------------------------

    async def setup_room(
        self, hubs: list[infra.HubProcess], label: str, members: int, writer_hub: int
    ) -> tuple[str, list[str], int]:
        """A room whose members alternate over the hubs (each with every URL, its own hub's
        first), all connected; the writer connected to `hubs[writer_hub]`."""
        bench = self.bench
        self.run_no += 1
        layout = bench.layout(f"{label}{self.run_no}", 1, members, nodes=len(hubs))
        await bench.populate(hubs[0], layout)
        room, users = layout.rooms[0]
        urls = [_url(h) for h in hubs]
        specs = [(u, urls[i % len(urls) :] + urls[: i % len(urls)]) for i, u in enumerate(users)]
        self.progress.update(f"connecting {members} members", force=True)
        await self.members_proc.res(
            "members_connect",
            members=specs,
            key=bench.app,
            secret=bench.secret,
            room=room,
        )
        await self.writer_proc.res(
            "writer_connect",
            urls=[urls[writer_hub]],
            key=bench.app,
            secret=bench.secret,
        )
        start_seq = await self.writer_proc.res("room_seq", room=room)
        return room, users, start_seq

    def start_writing(
        self, room: str, users: list[str], duration: float, base: int
    ) -> asyncio.Task[Any]:
        def sending(info: dict[str, Any]) -> None:
            self.progress.update(
                f"{info['elapsed']:.1f}/{duration:.0f}s sent {info['sent']} acked "
                f"{info['acked']} failed {info['failed']}"
            )

        return asyncio.create_task(
            self.writer_proc.call(
                "res",
                on_progress=sending,
                action="write",
                room=room,
                targets=users,
                rate=self.plan.res_rate,
                duration=duration,
                base=base,
            )
        )

    async def finish(
        self, room: str, start_seq: int, attempts: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], Verdict]:
        """Wait until every member got the room's last message (or res_drain s), then the
        history, the members' records and the comparison."""
        final_seq = await self.writer_proc.res("room_seq", room=room)
        deadline = monotonic() + self.plan.res_drain
        while monotonic() < deadline:
            status = await self.members_proc.res("members_status")
            behind = [u for u, s in status.items() if s["last_seq"] < final_seq]
            if not behind:
                break
            self.progress.update(f"waiting for {len(behind)} members to reach seq {final_seq}")
            await asyncio.sleep(0.05)
        history = await self.writer_proc.res("history", room=room, after_seq=start_seq)
        members = await self.members_proc.res("members_collect")
        await self.writer_proc.res("writer_close")
        return members, verify(attempts, history, members, start_seq)

    def _common(self, users: list[str], attempts: dict[str, Any], check: Verdict) -> dict[str, Any]:
        """The fields both restart parts report: the setup, the writer, the comparison."""
        return {
            "nodes": 2,
            "members": len(users),
            "rate_per_s": self.plan.res_rate,
            "duration_s": round(attempts["ended"] - attempts["started"], 3),
            "ops": attempts["ops"],
            "ops_unfinished": attempts["unfinished_ops"],
            "shed": attempts["shed"],
            "tally": check.tally,
            "exactness": check.exactness,
        }

    # 1. Redis restart -----------------------------------------------------------------------

    async def redis_restart(self) -> RedisRestart:
        plan, bench = self.plan, self.bench
        self.progress.phase("resilience: Redis restart: setup")
        redis = infra.RedisServer(appendonly=True)
        hubs: list[infra.HubProcess] = []
        try:
            await redis.ready()
            hubs = await bench.start_hubs(2, redis_url=redis.url)
            room, users, start_seq = await self.setup_room(hubs, "rr", plan.res_members, 0)
            duration = plan.res_warm + plan.res_outage + plan.res_after
            self.progress.phase(
                f"resilience: Redis restart: {plan.res_rate:.0f} ops/s for {duration:.0f}s, "
                f"Redis stopped at {plan.res_warm:.0f}s for {plan.res_outage:.1f}s"
            )
            writing = self.start_writing(room, users, duration, base=10**9)
            await asyncio.sleep(plan.res_warm)
            t_stop = monotonic()
            redis.proc.terminate()  # SIGTERM: a clean shutdown (the AOF is written and synced)
            t_exit = await _exited(redis.proc)
            await asyncio.sleep(max(0.0, t_stop + plan.res_outage - monotonic()))
            t_start = monotonic()
            redis.start()
            await redis.ready()
            t_up = monotonic()
            attempts = await writing
            self.progress.update("checking the history", force=True)
            members, check = await self.finish(room, start_seq, attempts)
        finally:
            await bench.stop_hubs(hubs)
            redis.stop()
        sent_t, reply_t, result = attempts["sent_t"], attempts["reply_t"], attempts["result"]
        ok = [i for i, r in enumerate(result) if r > 0]
        failed = [i for i, r in enumerate(result) if r <= 0]
        acks_after = [reply_t[i] for i in ok if reply_t[i] >= t_up]
        fail_t = [reply_t[i] for i in failed]
        first_msgs = []
        for m in members:
            after = [t for _, _, t in m["delivered"] if t >= t_up]
            first_msgs.append(min(after) - t_up if after else None)
        out = RedisRestart(
            **self._common(users, attempts, check),
            redis_persistence="appendonly yes, appendfsync everysec",
            redis_stopped_after_s=round(t_stop - attempts["started"], 3),
            redis_shutdown_s=round(t_exit - t_stop, 3),
            redis_down_s=round(t_up - t_stop, 3),
            redis_restart_to_ready_s=round(t_up - t_start, 3),
            acks_while_redis_down=sum(1 for i in ok if t_stop <= reply_t[i] < t_up),
            failure_window_s=round(max(fail_t) - min(fail_t), 3) if fail_t else 0.0,
            first_failure_after_stop_ms=_ms(min(fail_t) - t_stop) if fail_t else None,
            last_ack_before_stop_ms=_ms(
                t_stop - max((reply_t[i] for i in ok if reply_t[i] < t_stop), default=t_stop)
            ),
            first_ack_after_redis_back_ms=_ms(min(acks_after) - t_up) if acks_after else None,
            ack_latency_ms=summary_ms(reply_t[i] - sent_t[i] for i in ok),
            first_message_after_redis_back_ms=summary_ms(t for t in first_msgs if t is not None),
            failed_but_applied=[
                FailedButApplied(
                    code=codes([result[i]]).popitem()[0],
                    sent_ms_after_stop=_ms(sent_t[i] - t_stop),
                    failed_ms_after_stop=_ms(reply_t[i] - t_stop),
                )
                for i in check.failed_but_in_history_attempts
            ],
        )
        tally, exact = out.tally, out.exactness
        self.progress.done(
            f"Redis down {out.redis_down_s:.2f}s; {tally.acknowledged} acked, "
            f"{tally.failed} failed {tally.failed_by_code}; first ack "
            f"{out.first_ack_after_redis_back_ms} ms after Redis was back; every ack in "
            f"history once: {exact.every_ack_in_history_exactly_once}; members got exactly "
            f"the history: {exact.every_member_got_history_exactly_once_in_order}"
        )
        return out

    # 2. node restart ------------------------------------------------------------------------

    async def node_restart(self) -> NodeRestart:
        plan, bench = self.plan, self.bench
        self.progress.phase("resilience: node restart: setup")
        hubs = await bench.start_hubs(2)
        victim, survivor = hubs
        room, users, start_seq = await self.setup_room(hubs, "nr", plan.node_members, 1)
        duration = plan.node_warm + plan.node_after
        self.progress.phase(
            f"resilience: node restart: {plan.res_rate:.0f} ops/s for {duration:.0f}s, "
            f"SIGTERM to one of 2 nodes at {plan.node_warm:.0f}s"
        )
        writing = self.start_writing(room, users, duration, base=2 * 10**9)
        await asyncio.sleep(plan.node_warm)
        t_kill = monotonic()
        victim.proc.send_signal(signal.SIGTERM)
        t_exit = await _exited(victim.proc)
        victim.stop()
        (restarted,) = await bench.start_hubs(1, ports=[victim.port])
        t_ready = monotonic()
        attempts = await writing
        self.progress.update("checking the history", force=True)
        members, check = await self.finish(room, start_seq, attempts)
        await bench.stop_hubs([victim, survivor, restarted])

        sent_t = attempts["sent_t"]
        sent_at = dict(zip(attempts["value"], sent_t))
        moved = [_moved(m, t_kill, sent_at) for m in members if m["first_url"] == _url(victim)]
        reopen = [c.open_again_ms for c in moved if c.open_again_ms is not None]
        first_live = [c.first_live_message_ms for c in moved if c.first_live_message_ms is not None]
        out = NodeRestart(
            **self._common(users, attempts, check),
            members_on_restarted_node=len(moved),
            writer_on="the node that stays up",
            node_stopped_after_s=round(t_kill - attempts["started"], 3),
            node_shutdown_s=round(t_exit - t_kill, 3),
            node_down_s=round(t_ready - t_kill, 3),
            ack_latency_ms=summary_ms(
                attempts["reply_t"][i] - sent_t[i]
                for i, r in enumerate(attempts["result"])
                if r > 0
            ),
            clients_closed=sum(1 for c in moved if c.closed),
            close_codes=sorted({c.close_code for c in moved if c.closed}, key=str),
            resume_open_ms=summary_ms(v / 1000 for v in reopen),
            resume_first_live_message_ms=summary_ms(v / 1000 for v in first_live),
            clients_without_live_message=sum(1 for c in moved if c.first_live_message_ms is None),
            clients=moved,
        )
        reopened, live = out.resume_open_ms, out.resume_first_live_message_ms
        self.progress.done(
            f"{out.clients_closed} clients closed ({out.close_codes}), OPEN again p50/max "
            f"{reopened.p50}/{reopened.max} ms, first live message {live.p50}/{live.max} ms; "
            f"{out.tally.acknowledged} acked; members got exactly the acked: "
            f"{out.exactness.delivered_equals_acknowledged}"
        )
        return out
