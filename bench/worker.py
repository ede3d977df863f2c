"""A load process: holds connections (receivers and/or senders) and runs send plans.

The orchestrator drives each load process over a multiprocessing pipe with small commands
(`connect`, `reset`, `count`, `collect`, `send`, `call`, `disconnect`, `res`, `http`,
`close`), in the protocol of `pipe.py`. `res` commands go to the resilience scenario's load
side (`worker_res.LoadSide`), `http` ones to the server API's (`worker_http.HttpLoad`).

Receivers record, for every system message, per room and seq: how many of this process's
connections got it and when the last of them did. Senders record, per op, the send and reply
times and the reply's seq or error code. Nothing is decoded beyond the msgpack map.
"""

from __future__ import annotations

import asyncio
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
    ) -> dict[str, Any]:
        """Open and authenticate one connection per (host, port, user, server) target."""
        started = monotonic()
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
                        session = await open_session(host, port, key, token)
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

    async def cmd_close(self) -> dict[str, Any]:
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
