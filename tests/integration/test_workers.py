"""`roomhub serve --workers 2` end to end, as an operator runs it: the real CLI as a subprocess
on a real Redis; clients on the shared port land on both workers (the node id of the auth
reply says which), a client on each gets every message of a room, /metrics on the shared HTTP
port counts both workers, a SIGKILLed worker is restarted and serves again, SIGTERM drains both
(clients get 1001), everything exits 0 and the metrics directory is gone; a worker that cannot
start stops the supervisor (exit 2), and the refusals of the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..support import RawClient, free_port
from .test_cli import KEY, SECRET, Serve, auth, clean_env, roomhub_command, run_token

STARTED = re.compile(r"worker (\d+) \((\S+)\) started, pid (\d+)")


@contextlib.contextmanager
def supervisor(redis_url: str) -> Iterator[tuple[Serve, int]]:
    http_port = free_port()
    node = Serve(
        "--workers",
        "2",
        "--redis",
        redis_url,
        "--app",
        f"{KEY}={SECRET}",
        "--http-port",
        str(http_port),
        "--rate-limit",
        "0",
        "--conn-rate-limit",
        "0",
        port=free_port(),
    )
    try:
        wait_for(node, "all 2 workers listening")
        yield node, http_port
    finally:
        node.stop(grace=30)


def wait_for(node: Serve, text: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while node.stderr.count(text) < count:
        if node.proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {count} x {text!r} in the supervisor's log:\n{node.stderr}")
        time.sleep(0.05)


def pids(node: Serve) -> dict[str, int]:
    """Worker node id -> pid of its latest start, from the supervisor's log lines."""
    return {m.group(2): int(m.group(3)) for m in STARTED.finditer(node.stderr)}


async def delivered_total(http_port: int) -> float:
    """roomhub_messages_delivered_total as /metrics on the shared HTTP port says."""
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"http://127.0.0.1:{http_port}/metrics")
    assert reply.status_code == 200, reply.text
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == "roomhub_messages_delivered_total":
                return float(sample.value)
    raise AssertionError("no roomhub_messages_delivered_total")


@contextlib.asynccontextmanager
async def spread(node: Serve, user: str, want: set[str]) -> AsyncIterator[dict[str, RawClient]]:
    """Authenticated connections of `user` until one landed on every worker of `want`:
    {node id: a client on it}; the extra connections are closed."""
    minted = run_token("--key", KEY, "--secret", SECRET, "--user", user)
    found: dict[str, RawClient] = {}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(64):
            client = await stack.enter_async_context(RawClient.connect(node.url))
            welcome = await auth(client, minted)
            found.setdefault(welcome["server"]["node"], client)
            if want <= set(found):
                break
        assert want <= set(found), f"64 connections, all on {set(found)}"
        yield found


async def test_two_workers_share_the_port_and_each_gets_every_message(redis_url: str) -> None:
    with supervisor(redis_url) as (node, http_port):
        workers = set(pids(node))
        assert len(workers) == 2 and all(w.endswith(("-w1", "-w2")) for w in workers)
        backend_token = run_token("--key", KEY, "--secret", SECRET, "--user", "ops", "--server")
        async with (
            spread(node, "alice", workers) as alice,
            spread(node, "bob", workers) as bob,
            RawClient.connect(node.url) as backend,
        ):
            await auth(backend, backend_token)
            await backend.call("user.upsert", {"id": "bob"})
            await backend.call("room.create", {"room": "w", "owner": "alice", "members": ["bob"]})
            for score in range(1, 6):
                await backend.call(
                    "member.update",
                    {"room": "w", "user": "bob", "properties": {"score": score}},
                )
            # every connection of both users, on either worker, gets seqs 1..6 in order
            for client in [*alice.values(), *bob.values()]:
                got = await client.events_until(6, room="w", timeout=10)
                assert [m["seq"] for m in got] == [1, 2, 3, 4, 5, 6]
            # one /metrics for both: each worker delivered the 6 messages to its members, and
            # whichever worker answers the scrape, it counts both workers' deliveries
            for _ in range(6):
                assert await delivered_total(http_port) == 12

            # SIGKILL one worker: its clients are cut off, the supervisor restarts it
            victim = next(w for w in workers if w.endswith("-w1"))
            old = pids(node)[victim]
            os.kill(old, signal.SIGKILL)
            await asyncio.to_thread(wait_for, node, "restarting it in")
            assert re.search(rf"worker 1 \(pid {old}\) was killed by SIGKILL", node.stderr)
            await asyncio.to_thread(wait_for, node, f"roomhub node {victim} listening", 2)
            assert pids(node)[victim] != old and ", restart 1" in node.stderr
            code, _ = await alice[victim].closed(timeout=10)
            assert code == 1006  # died, no closing handshake
        # the restarted worker serves again: a new client lands on it and gets messages
        async with spread(node, "alice", {victim}) as again:
            await again[victim].call(
                "member.update", {"room": "w", "user": "alice", "properties": {"score": 9}}
            )
            assert (await again[victim].event())["seq"] == 7

        # SIGTERM to the supervisor: both workers drain (1001) and exit 0, then it does
        async with spread(node, "bob", workers) as last:
            node.proc.send_signal(signal.SIGTERM)
            for client in last.values():
                code, _ = await client.closed(timeout=20)
                assert code == 1001
            assert await asyncio.to_thread(node.proc.wait, 30) == 0, node.stderr
    assert node.stderr.count("exited with code 0") == 2, node.stderr
    assert "all workers exited\n" in node.stderr
    metrics_dir = re.search(r"metrics aggregated in (\S+)", node.stderr)
    assert metrics_dir is not None
    assert not await asyncio.to_thread(os.path.exists, metrics_dir.group(1))


def serve_two(*args: str) -> subprocess.CompletedProcess[str]:
    """`roomhub serve --workers 2 ARGS` run to its end (it is expected to stop by itself)."""
    command = [*roomhub_command(), "serve", "--workers", "2", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=clean_env(), check=False
    )


def test_a_worker_that_cannot_start_stops_the_supervisor() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    done = serve_two(
        "--redis", nowhere, "--port", str(free_port()), "--http-port", str(free_port())
    )
    assert done.returncode == 2, done.stderr
    assert "cannot start: Redis at redis://127.0.0.1:" in done.stderr
    assert "before it listened; stopping the others" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "--workers 2 needs --redis"),
        (("--redis", "redis://127.0.0.1:1/0", "--port", "0"), "needs a fixed --port"),
    ],
)
def test_workers_need_redis_and_fixed_ports(args: tuple[str, ...], says: str) -> None:
    done = serve_two("--http-port", "0", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert done.stderr.startswith("roomhub: cannot start: ")
