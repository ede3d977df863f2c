"""The outage tier: Redis killed, restarted and hung mid-traffic with the DEFAULT settings
(app ceiling 200/s, 50/s per connection, 50/s per user: the admission path runs), the way a
user meets it. Every request gets exactly one reply, ok or 100001; no connection is dropped;
the same connections (and an `auth` that failed on the store) succeed once Redis is back;
members then see every acknowledged change once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import HubFactory
from ..support import (
    APP,
    SECRET,
    RawClient,
    RedisProcess,
    free_port,
    setup_room,
    token,
    update_args,
    wait_ready,
    ws_url,
)

DEFAULT_LIMITS = {"rate_limit": 200, "conn_rate_limit": 50, "user_rate_limit": 50}
FIGURES: list[str] = []  # printed at the end (run with -s): the closing note's numbers


@pytest.fixture
def persistent_redis() -> Iterator[RedisProcess]:
    """AOF with `appendfsync always`: what survives a SIGKILL is then exactly what was
    acknowledged. With `everysec`, a busy disk makes Redis postpone its AOF write (up to 2 s)
    while it still replies, and a kill then loses acknowledged changes (docs/operations.md §6):
    the test would be measuring the disk."""
    with RedisProcess("--appendfsync", "always", persistent=True) as server:
        yield server


async def _until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Traffic:
    """Steady requests on one connection, sent without waiting for replies (ids 't1'...),
    alternating a mutating op and a read; replies are counted per id from the raw frames."""

    def __init__(self, client: RawClient, user: str, field: str) -> None:
        self.client, self.user, self.field = client, user, field
        self.sent: dict[str, tuple[str, float, dict[str, Any]]] = {}  # id -> (op, t, changes)
        self._ids = itertools.count(1)
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            n = next(self._ids)
            request_id = f"t{n}"
            if n % 2:
                changes = {self.field: n}
                args = update_args("r", self.user, changes, reply="ack")
                frame = {"id": request_id, "op": "member.update", "args": args}
            else:
                changes = {}
                frame = {"id": request_id, "op": "room.get", "args": {"room": "r"}}
            self.sent[request_id] = (frame["op"], time.monotonic(), changes)
            await self.client.ws.send(self.client.encode(frame))
            await asyncio.sleep(0.05)  # 20/s: well under every default limit

    async def stop(self) -> None:
        self._stop.set()
        await self.task

    def replies(self) -> dict[str, list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {i: [] for i in self.sent}
        for frame in self.client.frames:
            if frame.get("re") in got:
                got[frame["re"]].append(frame)
        return got

    def ok_after(self, moment: float) -> bool:
        replies = self.replies()
        return any(
            t > moment and replies[i] and replies[i][0]["ok"] for i, (_, t, _) in self.sent.items()
        )

    def unavailable(self) -> int:
        return sum(1 for r in self.replies().values() for f in r if not f["ok"])


async def _auth_frame(client: RawClient, user: str, **extra: Any) -> dict[str, Any]:
    return await client.request("auth", {"key": APP, "token": token(user), **extra}, timeout=20)


async def _auth_until_ok(client: RawClient, user: str, **extra: Any) -> dict[str, Any]:
    """The same connection sends `auth` again until the store answers (still within the
    auth deadline)."""
    deadline = time.monotonic() + 20
    while True:
        reply = await _auth_frame(client, user, **extra)
        if reply["ok"]:
            return reply
        assert reply["error"]["code"] == 100001, reply
        assert time.monotonic() < deadline, reply
        await asyncio.sleep(0.1)


async def _scenario(
    url: str,
    encoding: str,
    begin: Callable[[], Awaitable[None]],
    end: Callable[[], Awaitable[None]],
    name: str,
) -> None:
    """One outage (begin .. end) in the middle of user and server-token traffic."""
    await setup_room(url, "r", "owner", ["alice"])
    async with contextlib.AsyncExitStack() as stack:

        async def open_client() -> RawClient:
            return await stack.enter_async_context(RawClient.connect(url, encoding))

        owner, backend, alice = await open_client(), await open_client(), await open_client()
        await owner.auth("owner")
        await backend.auth("backend", server=True)
        await alice.auth("alice")
        args = update_args("r", "owner", {"n": 0}, reply="ack")
        baseline = (await owner.call("member.update", args))["seq"]
        await alice.events_until(baseline)
        fresh, resumer = await open_client(), await open_client()

        flows = [Traffic(owner, "owner", "n"), Traffic(backend, "alice", "b")]
        await _until(lambda: all(f.ok_after(0) for f in flows), "traffic before the outage")

        await begin()
        await _until(lambda: all(f.unavailable() for f in flows), "100001 during the outage")
        auth_fresh = await _auth_frame(fresh, "carol")
        auth_resume = await _auth_frame(resumer, "alice", resume={"r": baseline})
        for reply in (auth_fresh, auth_resume):
            assert not reply["ok"] and reply["error"]["code"] == 100001, reply
            assert reply["error"]["message"] == "store unavailable; safe to retry", reply
        await end()
        back = time.monotonic()
        await _until(lambda: all(f.ok_after(back) for f in flows), "the same connections again")
        for flow in flows:
            await flow.stop()
        await _until(
            lambda: all(all(r) for f in flows for r in f.replies().values()), "every reply"
        )
        # one more round trip each: a duplicate reply would have arrived before it
        for client in (owner, backend):
            await client.call("room.get", {"room": "r"})

        acked: dict[int, dict[str, Any]] = {}
        unavailable = 0
        for flow in flows:
            for request_id, replies in flow.replies().items():
                assert len(replies) == 1, (request_id, replies)
                reply = replies[0]
                op, _, changes = flow.sent[request_id]
                if reply["ok"]:
                    if op == "member.update":
                        acked[reply["result"]["seq"]] = changes
                else:
                    assert reply["error"]["code"] == 100001, reply
                    assert reply["error"]["message"] == "store unavailable; safe to retry"
                    unavailable += 1

        await _auth_until_ok(fresh, "carol")
        welcome = await _auth_until_ok(resumer, "alice", resume={"r": baseline})
        assert welcome["result"]["rooms"] == ["r"]

        last = max(acked)
        for watcher in (alice, resumer):
            seen = await watcher.events_until(last, timeout=20)
            seqs = [m["seq"] for m in seen]
            assert seqs == sorted(set(seqs)), f"duplicated or out of order: {seqs}"
            by_seq = {m["seq"]: m["changes"] for m in seen}
            missing = [s for s in acked if by_seq.get(s) != acked[s]]
            assert not missing, f"acknowledged changes not delivered: {missing}"

        clients = [owner, backend, alice, fresh, resumer]
        dropped = sum(1 for c in clients if c.ws.close_code is not None)
        assert dropped == 0
        total = sum(len(f.sent) for f in flows)
        FIGURES.append(
            f"{name}: {total} requests, {unavailable} answered 100001 during the outage, "
            f"{len(acked)} changes acknowledged and delivered once in order, "
            f"connections dropped {dropped}"
        )
        print("OUTAGE " + FIGURES[-1])


def _killer(redis: RedisProcess) -> tuple[Callable[[], Awaitable[None]], ...]:
    async def kill() -> None:
        os.kill(redis.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(redis.proc.wait)

    async def restart() -> None:
        await asyncio.to_thread(redis.start)

    return kill, restart


def _hanger(redis: RedisProcess) -> tuple[Callable[[], Awaitable[None]], ...]:
    async def hang() -> None:
        os.kill(redis.proc.pid, signal.SIGSTOP)

    async def resume() -> None:
        os.kill(redis.proc.pid, signal.SIGCONT)

    return hang, resume


def _check_logs(text: str, warnings: list[str]) -> None:
    assert "connection handler failed" not in text
    assert "Traceback" not in text
    assert any("store unavailable" in w for w in warnings), warnings


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
@pytest.mark.parametrize("mode", ["kill-restart", "sigstop"])
async def test_an_outage_mid_traffic_drops_no_one_with_default_limits(
    mode: str,
    encoding: str,
    persistent_redis: RedisProcess,
    start_hub: HubFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    hub = await start_hub(
        redis=persistent_redis.url, redis_timeout=1.0, auth_timeout=30, **DEFAULT_LIMITS
    )
    begin, end = (_killer if mode == "kill-restart" else _hanger)(persistent_redis)
    try:
        await _scenario(ws_url(hub), encoding, begin, end, f"in-process {mode} {encoding}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(persistent_redis.proc.pid, signal.SIGCONT)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    _check_logs(caplog.text, warnings)
    assert not [r for r in caplog.records if r.name == "websockets.server" and r.exc_info]


@contextlib.asynccontextmanager
async def _cli(redis_url: str, stderr: Path) -> AsyncIterator[str]:
    """The real `roomhub serve`, no limit flags (the defaults); its log to `stderr`."""
    port = free_port()
    env = {**os.environ, "ROOMHUB_AUTH_TIMEOUT": "30"}
    with stderr.open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
            [sys.executable, "-m", "roomhub.server", "serve", "--port", str(port)]
            + ["--http-port", "0", "--redis", redis_url, "--app", f"{APP}={SECRET}"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        url = f"ws://127.0.0.1:{port}/ws"
        await wait_ready(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_the_real_cli_with_its_defaults_drops_no_one_when_redis_is_killed(
    encoding: str, persistent_redis: RedisProcess, tmp_path: Path
) -> None:
    stderr = tmp_path / "hub.log"
    async with _cli(persistent_redis.url, stderr) as url:
        begin, end = _killer(persistent_redis)
        await _scenario(url, encoding, begin, end, f"CLI kill-restart {encoding}")
    text = stderr.read_text()
    warnings = [line for line in text.splitlines() if "WARNING" in line]
    _check_logs(text, warnings)
