"""A load process: holds connections (receivers and/or senders) and runs send plans.

The orchestrator drives each load process over a multiprocessing pipe with small commands
(`connect`, `reset`, `count`, `collect`, `send`, `call`, `disconnect`, `res`, `http`,
`presence`, `close`), in the protocol of `pipe.py`. `res` commands go to the resilience
scenario's load side (`worker_res.LoadSide`), `http` ones to the server API's
(`worker_http.HttpLoad`), `presence` ones to the churn scenario's (`ChurnLoad`, below).

Receivers record, for every system message, per room and seq: how many of this process's
connections got it and when the last of them did. Senders record, per op, the send and reply
times and the reply's seq or error code. Nothing is decoded beyond the msgpack map.
"""

from __future__ import annotations

import asyncio
import random
from multiprocessing.connection import Connection
from time import monotonic
from typing import Any

import msgpack  # type: ignore[import-untyped]

from roomhub.protocol.backoff import ExponentialBackoff
from roomhub.server.auth import mint_token
from roomhub.server.workers import die_with_parent

from . import pipe
from .worker_http import HttpLoad, drive_load
from .worker_res import LoadSide
from .wsclient import Session, WSClient, open_session

_packb = msgpack.packb
CONNECT_ATTEMPTS = 3


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.receivers: list[WSClient] = []
        self.senders: list[Session] = []
        # While recording: every binary payload the receivers got -> [count, last time]
        self.sink: dict[bytes, list[Any]] = {}
        self.res: LoadSide | None = None  # the resilience scenario's load side, made on first use
        self.http: HttpLoad | None = None  # the http scenario's, likewise
        self.churn: ChurnLoad | None = None  # the churn scenario's, likewise
        self.presence_events = 0  # presence events the receivers got (connected with presence)

    def progress(self, info: dict[str, Any]) -> None:
        pipe.progress(self.conn, info)

    async def handle(self, command: str, args: dict[str, Any]) -> Any:
        return await getattr(self, f"cmd_{command}")(**args)

    # commands -------------------------------------------------------------------------------

    async def cmd_connect(
        self,
        targets: list[tuple[str, int, str, bool]],
        key: str,
        secret: str,
        concurrency: int = 32,
        presence: bool = False,
    ) -> dict[str, Any]:
        """Open and authenticate one connection per (host, port, user, server) target;
        `presence`: with `presence: true`, the events they get counted in `presence_events`."""
        started = monotonic()
        on_event = self._count_presence if presence else None
        gate = asyncio.Semaphore(concurrency)
        done = failed = 0
        errors: list[str] = []

        async def one(host: str, port: int, user: str, server: bool) -> None:
            nonlocal done, failed
            async with gate:
                token = mint_token(secret, user, server=server)
                backoff = ExponentialBackoff(0.2, 1.0)
                for attempt in range(CONNECT_ATTEMPTS):
                    try:
                        session = await open_session(
                            host, port, key, token, on_event, presence=presence
                        )
                    except Exception as exc:
                        if attempt == CONNECT_ATTEMPTS - 1:
                            failed += 1
                            if len(errors) < 5:
                                errors.append(f"{user}: {exc!r}")
                            return
                        await asyncio.sleep(backoff.next_delay())
                        continue
                    if server:
                        self.senders.append(session)
                    else:
                        self.receivers.append(session.client)
                    done += 1
                    return

        async def report() -> None:
            while True:
                await asyncio.sleep(0.25)
                self.progress({"connected": done, "failed": failed})

        reporter = asyncio.create_task(report())
        try:
            await asyncio.gather(*(one(*target) for target in targets))
        finally:
            reporter.cancel()
        return {
            "connected": done,
            "failed": failed,
            "errors": errors,
            "elapsed_s": monotonic() - started,
            "finished_at": monotonic(),
        }

    def _count_presence(self, frame: dict[str, Any], _t: float) -> None:
        if frame.get("event") == "presence":
            self.presence_events += 1

    async def cmd_reset(self) -> dict[str, Any]:
        """Start recording what the receivers get (from scratch)."""
        self.sink = {}
        for client in self.receivers:
            client.sink = self.sink
        return {"open": sum(1 for c in self.receivers if c.open)}

    async def cmd_count(self) -> dict[str, Any]:
        return {
            "events": sum(rec[0] for rec in self.sink.values()),
            "open": sum(1 for c in self.receivers if c.open),
            "presence_events": self.presence_events,
        }

    async def cmd_collect(self) -> dict[str, Any]:
        """Stop recording; per room and seq of each system message: how many receivers got
        it and when the last one did."""
        for client in self.receivers:
            client.sink = None
        sink, self.sink = self.sink, {}
        recs: dict[str, dict[int, tuple[int, float]]] = {}
        for payload, (count, last) in sink.items():
            frame = msgpack.unpackb(payload)
            message = frame.get("message") if isinstance(frame, dict) else None
            if not isinstance(message, dict) or frame.get("event") != "system":
                continue
            seqs = recs.setdefault(message["room"], {})
            prev = seqs.get(message["seq"])
            seqs[message["seq"]] = (
                (count, last) if prev is None else (prev[0] + count, max(prev[1], last))
            )
        return {"recs": recs}

    async def cmd_send(
        self,
        rooms: list[tuple[str, list[str]]],
        duration: float,
        rate: float | None = None,
        window: int = 16,
        cap: int = 4096,
        base: int = 0,
        prop: str = "score",
        drain_timeout: float = 15.0,
        keys: bool = False,
    ) -> dict[str, Any]:
        """member.update ops (reply "ack", one small custom prop) round-robin over `rooms`
        and their members, spread over this process's sender connections.

        rate None: closed loop, `window` ops in flight per connection, for `duration` s.
        rate R: open loop, R ops/s paced on a 1 ms tick; an op that would exceed `cap` in
        flight is not sent (counted as `shed`).
        keys: every op carries a fresh idempotency key (what the Python client sends)."""
        senders = [s.client for s in self.senders]
        if not senders:
            raise RuntimeError("no sender connections")
        loop = asyncio.get_running_loop()
        n_rooms = len(rooms)
        room_ids = [r for r, _ in rooms]
        room_users = [u for _, u in rooms]
        sent_t: list[float] = []
        reply_t: list[float] = []
        room_of: list[int] = []
        result: list[int] = []  # seq if ok, else -error code
        inflight = [0] * len(senders)
        state = {"outstanding": 0, "replies": 0, "stop": False, "shed": 0}
        all_replied = loop.create_future()

        def send_one(c: int) -> None:
            i = len(sent_t)
            r = i % n_rooms
            users = room_users[r]
            user = users[(i // n_rooms) % len(users)]
            args: dict[str, Any] = {
                "room": room_ids[r],
                "user": user,
                "properties": {prop: base + i},
                "reply": "ack",
            }
            if keys:
                args["idempotency_key"] = f"k{base + i}"
            payload = _packb({"id": i, "op": "member.update", "args": args})
            room_of.append(r)
            reply_t.append(0.0)
            result.append(0)
            sent_t.append(monotonic())
            senders[c].send_packed(payload)
            inflight[c] += 1
            state["outstanding"] += 1

        def on_reply(c: int) -> Any:
            def handle(frame: dict[str, Any], t: float) -> None:
                i = frame.get("re")
                if not isinstance(i, int) or i >= len(reply_t) or reply_t[i]:
                    return
                reply_t[i] = t
                if frame.get("ok"):
                    result[i] = int(frame["result"]["seq"])
                else:
                    result[i] = -int(frame["error"]["code"])
                inflight[c] -= 1
                state["outstanding"] -= 1
                state["replies"] += 1
                if rate is None and not state["stop"]:
                    send_one(c)
                elif state["stop"] and state["outstanding"] == 0 and not all_replied.done():
                    all_replied.set_result(None)

            return handle

        saved = [c.on_reply for c in senders]
        for c, client in enumerate(senders):
            client.on_reply = on_reply(c)

        def start() -> None:
            for _ in range(window):
                for c in range(len(senders)):
                    send_one(c)

        turn = [0]  # the sender connection of the next paced request, round robin

        def paced_send() -> bool:
            if state["outstanding"] >= cap:
                return False
            send_one(turn[0])
            turn[0] = (turn[0] + 1) % len(senders)
            return True

        try:
            await drive_load(
                rate=rate,
                duration=duration,
                drain_timeout=drain_timeout,
                state=state,
                sent=sent_t,
                all_replied=all_replied,
                progress=self.progress,
                start=start,
                paced_send=paced_send,
            )
        finally:
            for client, handler in zip(senders, saved):
                client.on_reply = handler
        return {
            "sent_t": sent_t,
            "reply_t": reply_t,
            "room_of": room_of,
            "result": result,
            "shed": state["shed"],
            "unanswered": state["outstanding"],
        }

    async def cmd_call(self, op: str, args: dict[str, Any]) -> Any:
        """One request on the first sender connection (e.g. room.get)."""
        return await self.senders[0].call(op, args)

    async def cmd_disconnect(self) -> dict[str, Any]:
        """Close every connection of this process (it stays up for more commands)."""
        closed = len(self.receivers) + len(self.senders)
        await self.cmd_close()
        self.receivers, self.senders = [], []
        return {"closed": closed}

    async def cmd_res(self, action: str, **args: Any) -> Any:
        """A command of the resilience scenario's load side (`resilience.LoadSide`)."""
        if self.res is None:
            self.res = LoadSide(self.progress)
        return await getattr(self.res, action)(**args)

    async def cmd_http(self, action: str, **args: Any) -> Any:
        """A command of the http scenario's load side (`worker_http.HttpLoad`)."""
        if self.http is None:
            self.http = HttpLoad(self.progress)
        return await getattr(self.http, action)(**args)

    async def cmd_presence(self, action: str, **args: Any) -> Any:
        """A command of the churn scenario's load side (`ChurnLoad`)."""
        if self.churn is None:
            self.churn = ChurnLoad(self.progress)
        return await getattr(self.churn, action)(**args)

    async def cmd_close(self) -> dict[str, Any]:
        if self.churn is not None:
            await self.churn.close()
        if self.res is not None:
            await self.res.close()
        if self.http is not None:
            await self.http.close()
        for client in self.receivers:
            client.close()
        for session in self.senders:
            session.client.close()
        await asyncio.sleep(0.05)
        return {}


class ChurnLoad:
    """The churn scenario's load side: users connecting and disconnecting in a loop (`churn`,
    then `state`: who holds which connection now), and observers that follow presence events
    (`observe`, then `views`: what each observer believes is online)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.slots: list[tuple[str, int, WSClient] | None] = []  # user, port, open client
        self.observers: list[Session] = []
        self.seen: list[dict[tuple[str, str], bool]] = []  # per observer: (room, user) -> online
        self.event_times: list[list[float]] = []  # per observer: when each event came

    async def churn(
        self,
        slots: list[tuple[str, list[int]]],
        host: str,
        key: str,
        secret: str,
        duration: float,
        hold: float,
        gap: float,
        concurrency: int,
        abort_every: int,
        seed: int,
    ) -> dict[str, Any]:
        """Each slot (a user and the ports it takes turns on) connects, stays `hold` s on
        average (uniform 0..2x), disconnects (a close frame; every `abort_every`-th time a
        TCP abort without one), waits `gap` s on average, and again, for `duration` s; at
        most `concurrency` handshakes in flight. At the end each slot stays as it is: open
        in a hold, closed in a gap (a handshake under way is finished)."""
        rng = random.Random(seed)
        gate = asyncio.Semaphore(concurrency)
        started = monotonic()
        stop_at = started + duration
        self.slots = [None] * len(slots)
        tally = {"connects": 0, "disconnects": 0, "aborts": 0, "failed": 0}
        auth_s: list[float] = []
        errors: list[str] = []
        tokens = {user: mint_token(secret, user) for user, _ in slots}

        async def nap(seconds: float) -> bool:
            """Sleep `seconds`, or until the end; False if the end came first."""
            left = stop_at - monotonic()
            await asyncio.sleep(max(0.0, min(seconds, left)))
            return seconds < left

        async def run(index: int, user: str, ports: list[int]) -> None:
            turn = 0
            if not await nap(rng.uniform(0, 2 * gap)):  # not all at once
                return
            while monotonic() < stop_at:
                port = ports[turn % len(ports)]
                turn += 1
                async with gate:
                    if monotonic() >= stop_at:
                        return
                    t = monotonic()
                    try:
                        session = await open_session(host, port, key, tokens[user])
                    except Exception as exc:
                        tally["failed"] += 1
                        if len(errors) < 5:
                            errors.append(f"{user}: {exc!r}")
                        session = None
                if session is None:
                    if not await nap(gap):
                        return
                    continue
                auth_s.append(monotonic() - t)
                tally["connects"] += 1
                client = session.client
                self.slots[index] = (user, port, client)
                if not await nap(rng.uniform(0, 2 * hold)):
                    return  # the end: it stays connected
                self.slots[index] = None
                tally["disconnects"] += 1
                if abort_every and tally["disconnects"] % abort_every == 0 and client.transport:
                    tally["aborts"] += 1
                    client.transport.abort()
                else:
                    client.close()
                if not await nap(rng.uniform(0, 2 * gap)):
                    return  # the end: it stays disconnected

        async def report() -> None:
            while True:
                await asyncio.sleep(0.25)
                self.progress({**tally, "open": sum(1 for s in self.slots if s is not None)})

        reporter = asyncio.create_task(report())
        try:
            await asyncio.gather(*(run(i, user, ports) for i, (user, ports) in enumerate(slots)))
        finally:
            reporter.cancel()
        return {
            **tally,
            "errors": errors,
            "auth_s": auth_s,
            "started_at": started,
            "finished_at": monotonic(),
        }

    async def state(self) -> dict[str, list[int]]:
        """Each user with a connection open now -> the ports of its open connections."""
        held: dict[str, list[int]] = {}
        for slot in self.slots:
            if slot is not None and slot[2].open:
                held.setdefault(slot[0], []).append(slot[1])
        return held

    async def observe(
        self,
        targets: list[tuple[str, int, str]],
        key: str,
        secret: str,
        rooms: list[str],
        users: list[str],
    ) -> dict[str, Any]:
        """Connect each observer (host, port, user) with `presence: true`, then read
        `room.presence` of every room: its view of `users`, which the events then update."""
        watched = set(users)

        def follow(index: int) -> Any:
            seen, times = self.seen[index], self.event_times[index]

            def on_event(frame: dict[str, Any], t: float) -> None:
                if frame.get("event") != "presence":
                    return
                times.append(t)
                if frame["user"] in watched:
                    seen[(frame["room"], frame["user"])] = bool(frame["online"])

            return on_event

        for index, (host, port, user) in enumerate(targets):
            self.seen.append({})
            self.event_times.append([])
            token = mint_token(secret, user)
            session = await open_session(host, port, key, token, follow(index), presence=True)
            self.observers.append(session)
        for index, session in enumerate(self.observers):
            for room in rooms:
                result = await session.call("room.presence", {"room": room})
                for user in result["online"]:
                    if user in watched:
                        self.seen[index].setdefault((room, user), True)
        return {"observers": len(self.observers)}

    async def views(self, since: float, until: float) -> list[dict[str, Any]]:
        """Per observer: the users of `users` it believes online, the events it got, and
        how many of them came between `since` and `until` (monotonic)."""
        return [
            {
                "online": sorted({user for (_, user), on in seen.items() if on}),
                "events": len(times),
                "events_in_window": sum(1 for t in times if since <= t <= until),
                "open": session.client.open,
            }
            for session, seen, times in zip(self.observers, self.seen, self.event_times)
        ]

    async def close(self) -> None:
        for slot in self.slots:
            if slot is not None:
                slot[2].close()
        for session in self.observers:
            session.client.close()
        self.slots, self.observers = [], []


def main(conn: Connection) -> None:
    """Entry point of a load process (multiprocessing target)."""
    die_with_parent()
    worker = Worker(conn)
    try:
        import uvloop
    except ImportError:
        asyncio.run(pipe.serve(conn, worker.handle))
    else:
        uvloop.run(pipe.serve(conn, worker.handle))
