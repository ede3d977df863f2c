"""The HTTP side of a node: /healthz, /readyz (with Redis killed and stopped), /metrics
scraped with prometheus-client's parser while real traffic moves the counters."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from roomhub.protocol.errors import ErrorCode
from roomhub.server import __version__

from ..conftest import HubFactory
from ..support import APP, RawClient, RedisProcess, token, ws_url
from .test_cli import Serve, clean_env, roomhub_command
from .test_limits import SLOW_LIMIT, flood, read_until_closed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def base(hub: Any) -> str:
    return f"http://127.0.0.1:{hub.http_port}"


async def get(url: str, timeout: float = 10) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.get(url)


async def scrape(hub: Any) -> Samples:
    reply = await get(f"{base(hub)}/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# --- health and routes ------------------------------------------------------------------------


async def test_health_names_the_node_and_version_and_other_paths_are_404(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(node_id="node-h")
    assert hub.http_port not in (0, hub.port)
    reply = await get(f"{base(hub)}/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "node": "node-h", "version": __version__}
    assert reply.headers["server"] == f"roomhub/{__version__}"
    ready = await get(f"{base(hub)}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    for path in ("/", "/ws", "/health", "/metrics/x"):
        assert (await get(f"{base(hub)}{path}")).status_code == 404, path
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{base(hub)}/healthz")).status_code == 405
    hub.http.draining = True  # what node.running_hub sets while the node stops
    draining = await get(f"{base(hub)}/readyz")
    assert draining.status_code == 503 and draining.json()["failed"] == ["draining"]


async def test_two_hubs_in_one_process_have_their_own_ports_and_registries(
    start_hub: HubFactory,
) -> None:
    one, two = await start_hub(), await start_hub()
    assert one.http_port != two.http_port
    async with RawClient.connect(ws_url(one)) as client:
        await client.auth("alice")
        await client.call("room.list", {})
    first, second = await scrape(one), await scrape(two)
    assert value(first, "roomhub_ops_total", op="room.list", code="ok") == 1
    assert value(second, "roomhub_ops_total", op="room.list", code="ok") == 0


async def test_with_metrics_off_nothing_is_counted_and_metrics_is_404(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(metrics=False)
    assert hub.metrics is None
    async with RawClient.connect(ws_url(hub)) as client:
        await client.auth("alice")
        await client.call("room.list", {})
    reply = await get(f"{base(hub)}/metrics")
    assert reply.status_code == 404 and "--metrics false" in reply.text
    assert (await get(f"{base(hub)}/healthz")).status_code == 200


# --- metrics ---------------------------------------------------------------------------------


async def test_counters_move_with_real_traffic(redis_url: str, start_hub: HubFactory) -> None:
    hub = await start_hub(redis=redis_url, conn_rate_limit=2)
    before = await scrape(hub)
    assert value(before, "roomhub_ops_total", op="room.create", code="ok") == 0
    assert ("process_cpu_seconds_total", frozenset()) in before
    assert ("roomhub_send_buffer_bytes", frozenset()) in before

    async with (
        RawClient.connect(ws_url(hub)) as backend,
        RawClient.connect(ws_url(hub), "json") as alice,
        RawClient.connect(ws_url(hub)) as intruder,
    ):
        await backend.auth("backend", server=True)
        await alice.auth("alice")
        for user in ("owner", "alice"):
            await backend.call("user.upsert", {"id": user})
        room = await backend.call(
            "room.create", {"room": "r", "owner": "owner", "members": ["alice"]}
        )
        await alice.events_until(room["seq"], room="r")
        # The per-connection limit (2/s): a burst of mutating ops, the last ones refused.
        replies = await asyncio.gather(
            *(alice.request("room.leave", {"room": "nowhere"}) for _ in range(5))
        )
        refused = [r for r in replies if r["error"]["code"] == ErrorCode.RATE_LIMITED]
        assert refused
        await alice.request("no.such.op", {})
        await intruder.send_raw(
            intruder.encode(
                {"id": 1, "op": "auth", "args": {"key": APP, "token": token("x", secret="no" * 20)}}
            )
        )
        code, _ = await intruder.closed()
        assert code == 4401

        during = await scrape(hub)
        assert value(during, "roomhub_connections_open", encoding="msgpack", kind="server") == 1
        assert value(during, "roomhub_connections_open", encoding="json", kind="user") == 1
        assert value(during, "roomhub_connections_open", encoding="msgpack", kind="user") == 0

    after = await scrape(hub)
    assert value(after, "roomhub_connections_opened_total", encoding="msgpack") == 2
    assert value(after, "roomhub_connections_opened_total", encoding="json") == 1
    assert value(after, "roomhub_connections_closed_total", code="4401") == 1
    reason = ErrorCode.UNAUTHENTICATED.reason
    assert value(after, "roomhub_auth_failures_total", reason=reason) == 1
    assert value(after, "roomhub_ops_total", op="user.upsert", code="ok") == 2
    assert value(after, "roomhub_ops_total", op="room.create", code="ok") == 1
    assert value(after, "roomhub_op_duration_seconds_count", op="room.create") == 1
    assert value(after, "roomhub_op_duration_seconds_sum", op="room.create") > 0
    limited = str(int(ErrorCode.RATE_LIMITED))
    assert value(after, "roomhub_ops_total", op="room.leave", code=limited) == len(refused)
    not_found = str(int(ErrorCode.ROOM_NOT_FOUND))
    assert value(after, "roomhub_ops_total", op="room.leave", code=not_found) == 5 - len(refused)
    assert value(after, "roomhub_rate_limit_rejections_total", limit="connection") == len(refused)
    unknown = str(int(ErrorCode.UNKNOWN_OP))
    assert value(after, "roomhub_ops_total", op="unknown", code=unknown) == 1
    assert value(after, "roomhub_messages_published_total") == 1
    assert value(after, "roomhub_messages_received_total") >= 1
    assert value(after, "roomhub_messages_delivered_total") >= 1
    assert value(after, "roomhub_socket_writes_total") > 0
    await until(lambda: _gauge_zero(hub, "roomhub_connections_open", encoding="json", kind="user"))


async def _gauge_zero(hub: Any, name: str, **labels: str) -> bool:
    return value(await scrape(hub), name, **labels) == 0


async def test_a_slow_consumer_drop_is_counted(redis_url: str, start_hub: HubFactory) -> None:
    hub = await start_hub(redis=redis_url, send_buffer_limit=SLOW_LIMIT)
    async with flood(hub) as (slow, _bob, _backend, _last):
        await read_until_closed(slow, timeout=15)
        assert slow.close_code == 4008
    samples = await scrape(hub)
    assert value(samples, "roomhub_slow_consumer_drops_total") == 1
    await until(lambda: _closed_with(hub, "4008"))


async def _closed_with(hub: Any, code: str) -> bool:
    return value(await scrape(hub), "roomhub_connections_closed_total", code=code) >= 1


# --- readiness ---------------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


async def readyz(hub: Any) -> httpx.Response:
    return await get(f"{base(hub)}/readyz")


async def test_readiness_follows_redis_stopped_and_killed(
    own_redis: RedisProcess, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=own_redis.url, redis_timeout=1.0, pubsub_probe_interval=0.3)
    await until(lambda: _ready(hub))

    os.kill(own_redis.proc.pid, signal.SIGSTOP)  # hung: the sockets stay open
    try:
        started = time.monotonic()
        reply = await readyz(hub)
        took = time.monotonic() - started
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert reply.status_code == 503, reply.text
    assert "redis" in reply.json()["failed"]
    assert "within 1s" in reply.json()["checks"]["redis"]
    assert took < 1.0 + 0.5  # within the redis timeout
    await until(lambda: _ready(hub))

    own_redis.stop()  # killed: the connections drop
    try:
        reply = await readyz(hub)
        assert reply.status_code == 503
        assert "redis" in reply.json()["failed"]
        await until(lambda: _failed(hub, "pubsub"), timeout=5)
    finally:
        own_redis.start()
    await until(lambda: _ready(hub), timeout=15)


async def _ready(hub: Any) -> bool:
    return (await readyz(hub)).status_code == 200


async def _failed(hub: Any, check: str) -> bool:
    reply = await readyz(hub)
    return reply.status_code == 503 and check in reply.json()["failed"]


# --- the real command --------------------------------------------------------------------------


def _http_url(node: Serve, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in node.lines:
            if "HTTP side" in line:
                return line.rsplit(" on ", 1)[1].strip()
        if node.proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"no HTTP side logged:\n{node.stderr}")


async def test_serve_logs_the_bound_http_port_and_serves_it(tmp_path: Path) -> None:
    node = Serve("--app", "k=" + "s" * 40, "--http-port", "0", port=_free())
    try:
        url = _http_url(node)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        reply = await get(f"{url}healthz")
        assert reply.status_code == 200 and reply.json()["status"] == "ok"
        assert (await get(f"{url}readyz")).status_code == 200
        metrics = await get(f"{url}metrics")
        assert "roomhub_connections_open" in metrics.text
    finally:
        assert node.stop() == 0, node.stderr


def _free() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_http_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*roomhub_command(), "serve", "--port", "0", "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert f"cannot listen on 127.0.0.1:{port} (HTTP)" in last, done.stderr
    assert "Traceback" not in done.stderr


async def test_multiprocess_mode_serves_the_values_from_the_directory(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (set for worker processes), values go to that
    directory and /metrics serves them aggregated."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    try:
        node = Serve("--app", f"{APP}=" + "s" * 40, "--http-port", "0", port=_free())
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        url = _http_url(node)
        async with RawClient.connect(node.url) as client:
            await client.call("auth", {"key": APP, "token": token("alice", secret="s" * 40)})
            await client.call("room.list", {})
        text = (await get(f"{url}metrics")).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        ops = families["roomhub_ops"].samples
        assert any(s.labels == {"op": "room.list", "code": "ok"} and s.value == 1 for s in ops)
        assert any(n.endswith(".db") for n in os.listdir(tmp_path)), "nothing written there"
    finally:
        assert node.stop() == 0, node.stderr
