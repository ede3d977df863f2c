"""The load harness (`python -m roomhub.bench`), run on its tiny --quick configuration so it
never rots: real redis-server, real hub processes, real load processes, every scenario. It
checks the shape of the JSON report and the correctness checks the bench makes (every member
got every message, rejected ops changed nothing), never a timing or a rate.

Also the harness's own WebSocket client: framing, masking and parsing split frames.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from roomhub.bench import wsclient
from roomhub.bench.cli import SCENARIOS
from roomhub.bench.report import FLOORS
from roomhub.bench.results import to_json
from roomhub.bench.verify import verify
from roomhub.bench.worker_http import HttpConnection

NUM = (int, float)
LATENCY = {"count": int, "p50": NUM, "p90": NUM, "p99": NUM, "max": NUM, "mean": NUM}
MACHINE = {
    "cpu_model": str,
    "cores": int,
    "memory_bytes": int,
    "python": str,
    "redis_version": str,
    "roomhub_version": str,
    "date": str,
    "background_cpu_util": NUM,
}
RUN = {
    "label": str,
    "rooms": int,
    "members_per_room": int,
    "nodes": int,
    "mode": str,
    "duration_s": NUM,
    "sender_connections": int,
    "sent": int,
    "shed": int,
    "ok": int,
    "errors": dict,
    "unanswered": int,
    "ops_per_s": NUM,
    "deliveries": int,
    "expected_deliveries": int,
    "missing_deliveries": int,
    "incomplete_ops": int,
    "deliveries_per_s": NUM,
    "ack_latency_ms": LATENCY,
    "delivery_latency_ms": LATENCY,
    "hub_cpu_s": NUM,
    "hub_cpu_util": NUM,
    "hub_cpu_us_per_delivery": NUM,
    "hub_cpu_us_per_op": NUM,
    "ops_per_hub_core_s": NUM,
    "deliveries_per_hub_core_s": NUM,
    "load_cpu_s": NUM,
    "load_cpu_us_per_delivery": NUM,
    "redis_cpu_s": NUM,
    "other_cpu_s": NUM,
    "machine_cpu_util": NUM,
    "measured_wall_s": NUM,
}
CEILING = {
    "ceiling_per_s": int,
    "offered_per_s": int,
    "duration_s": NUM,
    "nodes": int,
    "sender_connections": int,
    "sent": int,
    "admitted": int,
    "rejected": int,
    "other_errors": int,
    "unanswered": int,
    "admitted_per_s": NUM,
    "admitted_within_5pct": bool,
    "rejection_latency_ms": LATENCY,
    "admitted_ack_latency_ms": LATENCY,
    "seq_before": int,
    "seq_after": int,
    "seq_advanced": int,
    "seq_advanced_equals_admitted": bool,
    "messages_delivered": int,
    "messages_gapless": bool,
    "every_member_got_every_message": bool,
    "hub_cpu_s": NUM,
}
CONNECTIONS = {
    "connections": int,
    "load_processes": int,
    "still_open_after_idle": int,
    "connect_time_s": NUM,
    "connections_per_s": NUM,
    "hub_cpu_us_per_connection": NUM,
    "hub_rss_before_bytes": int,
    "hub_rss_after_bytes": int,
    "hub_rss_after_connect_bytes": int,
    "hub_bytes_per_connection": int,
    "hub_kib_per_connection": NUM,
    "nofile_limit": int,
}
OPT_NUM = (int, float, type(None))
PRESENCE_RUN = {
    **CONNECTIONS,
    "presence": bool,
    "round": int,
    "presence_events_received": int,
    "online_counted": (int, type(None)),
    "online_exact": (bool, type(None)),
    "other_cpu_cores": NUM,
}
PRESENCE = {
    "connections": int,
    "room_members": int,
    "rooms": int,
    "rounds": int,
    "runs": list,
    "connections_per_s_off": list,
    "connections_per_s_on": list,
    "connect_rate_ratio": NUM,
    "kib_per_connection_off": list,
    "kib_per_connection_on": list,
    "rss_ratio": NUM,
    "hub_cpu_us_per_connection_off": list,
    "hub_cpu_us_per_connection_on": list,
    "cpu_ratio": NUM,
    "within_20pct": bool,
    "failed_checks": list,
}
CHURN = {
    "nodes": int,
    "users": int,
    "users_with_two_connections": int,
    "rooms": int,
    "observers": int,
    "duration_s": NUM,
    "connects": int,
    "disconnects": int,
    "aborts": int,
    "connect_failures": int,
    "connect_errors": list,
    "connects_per_s": NUM,
    "disconnects_per_s": NUM,
    "auth_latency_ms": LATENCY,
    "presence_events": int,
    "presence_events_per_s": NUM,
    "presence_events_per_s_per_observer": NUM,
    "connected_at_end": int,
    "online_at_end": int,
    "settled_after_s": OPT_NUM,
    "online_set_exact": bool,
    "redis_online_sets_exact": bool,
    "live_node_instances": int,
    "observers_exact": bool,
    "observer_views": list,
    "mismatches": list,
    "late_auths": int,
    "late_auth_deadline_s": NUM,
    "late_auths_answered": int,
    "late_auths_online_after_close": int,
    "late_auth_users_online": list,
    "failed_checks": list,
}
RES_MEMBER = {
    "user": str,
    "received": int,
    "duplicates": int,
    "gaps": int,
    "not_in_history": int,
    "in_order": bool,
    "wire_duplicates_dropped_by_client": int,
    "equals_history": bool,
    "equals_acknowledged": bool,
    "resyncs": int,
}
RES_EXACTNESS = {  # the comparison of acks, history and deliveries, in both restart parts
    "nodes": int,
    "members": int,
    "rate_per_s": NUM,
    "duration_s": NUM,
    "ops": int,
    "ops_unfinished": int,
    "shed": int,
    "attempts": int,
    "acknowledged": int,
    "failed": int,
    "failed_by_code": dict,
    "ack_latency_ms": LATENCY,
    "history_messages": int,
    "history_gapless": bool,
    "acknowledged_in_history_once": int,
    "acknowledged_missing_from_history": int,
    "acknowledged_repeated_in_history": int,
    "failed_but_in_history": int,
    "failed_but_in_history_codes": dict,
    "history_not_from_writer": int,
    "per_member": list,
    "every_ack_in_history_exactly_once": bool,
    "every_member_got_history_exactly_once_in_order": bool,
    "members_missing_messages": int,
    "delivered_equals_acknowledged": bool,
}
RES_REDIS = {
    **RES_EXACTNESS,
    "redis_persistence": str,
    "redis_stopped_after_s": NUM,
    "redis_shutdown_s": NUM,
    "redis_down_s": NUM,
    "redis_restart_to_ready_s": NUM,
    "acks_while_redis_down": int,
    "failure_window_s": NUM,
    "first_failure_after_stop_ms": OPT_NUM,
    "last_ack_before_stop_ms": NUM,
    "first_ack_after_redis_back_ms": NUM,
    "first_message_after_redis_back_ms": LATENCY,
    "failed_but_applied": list,
}
RES_NODE = {
    **RES_EXACTNESS,
    "members_on_restarted_node": int,
    "writer_on": str,
    "node_stopped_after_s": NUM,
    "node_shutdown_s": NUM,
    "node_down_s": NUM,
    "clients_closed": int,
    "close_codes": list,
    "resume_open_ms": LATENCY,
    "resume_first_live_message_ms": dict,
    "clients_without_live_message": int,
    "clients": list,
}
RES_CLIENT = {
    "user": str,
    "closed": bool,
    "close_code": OPT_NUM,
    "closed_after_sigterm_ms": OPT_NUM,
    "open_again_ms": OPT_NUM,
    "first_live_message_ms": OPT_NUM,
    "reconnected_to": str,
}
RES_STALL = {
    "send_buffer_limit_bytes": int,
    "send_buffer_limit_is_default": bool,
    "ops": int,
    "window": int,
    "pad_bytes": int,
    "message_bytes": int,
    "message_bytes_total": int,
    "acknowledged": int,
    "errors": dict,
    "elapsed_s": NUM,
    "ops_per_s": NUM,
    "ack_latency_ms": LATENCY,
    "hub_rss_before_bytes": int,
    "hub_rss_peak_bytes": int,
    "hub_rss_end_of_ops_bytes": int,
    "hub_rss_after_bytes": int,
    "hub_rss_growth_peak_bytes": int,
    "hub_kernel_send_queue_peak_bytes": int,
    "hub_kernel_send_queue_end_of_ops_bytes": int,
    "rss_samples": int,
    "stalled_dropped": bool,
    "stalled_dropped_after_s": OPT_NUM,
    "stalled_dropped_after_acked_ops": OPT_NUM,
    "stalled_released_after_drop_s": OPT_NUM,
    "stalled_connection_open_at_end": bool,
    "stalled_kernel_queued_bytes": OPT_NUM,
    "stalled_received_when_reading_again": int,
    "stalled_received_in_order": bool,
    "stalled_close_code": OPT_NUM,
    "reader_received": int,
    "reader_in_order": bool,
    "reader_got_every_ack_in_order": bool,
}


def check(obj: Any, schema: dict[str, Any], where: str) -> None:
    assert isinstance(obj, dict), f"{where} is not a map: {obj!r}"
    for key, kind in schema.items():
        assert key in obj, f"{where}.{key} is missing"
        if isinstance(kind, dict):
            check(obj[key], kind, f"{where}.{key}")
        else:
            assert isinstance(obj[key], kind) and not (
                kind is NUM and isinstance(obj[key], bool)
            ), f"{where}.{key} = {obj[key]!r}, expected {kind}"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.Popen(
        [sys.executable, "-m", "roomhub.bench", "all", "--quick", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the bench stops what it started
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail(f"the quick bench did not finish in 200 s:\n{stderr[-5000:]}")
    assert proc.returncode == 0, f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-5000:]}"
    files = sorted(out.glob("roomhub-bench-*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text()), stdout, out


@pytest.mark.timeout(240)
def test_quick_bench_report_has_every_figure(
    quick_report: tuple[dict[str, Any], str, Path],
) -> None:
    data, stdout, out = quick_report
    assert data["schema_version"] == 1
    assert data["quick"] is True
    assert data["scenarios"] == list(SCENARIOS)
    check(data["machine"], MACHINE, "machine")
    results = data["results"]
    for name in data["scenarios"]:
        assert "error" not in results[name], results[name].get("error")

    check(results["ceiling"], CEILING, "ceiling")
    check(results["connections"], CONNECTIONS, "connections")
    throughput = results["throughput"]
    assert len(throughput["runs"]) == 3 and len(throughput["sweep"]) >= 2
    fanout_runs = 1 + len(data["plan"]["fanout_windows"])  # paced, then one per window
    for section, count in (("throughput", None), ("fanout", fanout_runs), ("nodes", 2)):
        runs = results[section]["runs"] + results[section].get("sweep", [])
        if count is not None:
            assert len(results[section]["runs"]) == count
        for run in runs:
            check(run, RUN, f"{section}[{run.get('label')}]")
    assert [run["nodes"] for run in results["nodes"]["runs"]] == [1, 2]
    resilience = results["resilience"]
    check(resilience["redis_restart"], RES_REDIS, "resilience.redis_restart")
    check(resilience["node_restart"], RES_NODE, "resilience.node_restart")
    for part in ("redis_restart", "node_restart"):
        for member in resilience[part]["per_member"]:
            check(member, RES_MEMBER, f"resilience.{part}.per_member")
    for client in resilience["node_restart"]["clients"]:
        check(client, RES_CLIENT, "resilience.node_restart.clients")
    stalled = resilience["stalled_client"]["runs"]
    assert len(stalled) == len(data["plan"]["stall_runs"])
    for run in stalled:
        check(run, RES_STALL, "resilience.stalled_client")
    assert "resilience: Redis restart" in stdout and "resilience: stalled client" in stdout
    idem = results["idempotency"]
    assert [run["idempotency_keys"] for run in idem["runs"]] == [False, True]
    for run in idem["runs"]:
        check(run, RUN, f"idempotency[{run['label']}]")
    assert isinstance(idem["median_ratio"], NUM) and "idempotency keys, hub us/op" in stdout
    hostile = results["hostile"]
    assert [f["authenticated"] for f in hostile["ping_flood"]] == [False, True]
    assert [s["members"] for s in hostile["resume_storm"]] == [False, True]
    assert len(hostile["stalled_reader"]) == 2 and "hostile clients:" in stdout
    workers = results["workers"]
    assert workers["workers"] == [1, 2] and len(workers["runs"]) == 2
    for run in workers["runs"]:
        check(run, RUN, f"workers[{run['label']}]")
        assert f"\n{run['label']} " in stdout, run["label"]  # a row in the table
    assert len(workers["hub_process_cpu_s"][0]) == 1  # one node
    assert len(workers["hub_process_cpu_s"][1]) >= 3  # the supervisor and its 2 workers
    assert isinstance(workers["ops_speedup"], NUM) and "workers, 1 -> 2 on one port" in stdout
    metrics = results["metrics"]
    sizes = [tuple(size) for size in data["plan"]["metrics_configs"]]
    assert [(c["rooms"], c["members_per_room"]) for c in metrics["configs"]] == sizes
    assert len(metrics["runs"]) == 2 * len(sizes) * data["plan"]["metrics_rounds"]
    for run in metrics["runs"]:
        check(run, RUN, f"metrics[{run['label']}]")
    for config in metrics["configs"]:
        assert isinstance(config["median_ratio"], NUM) and isinstance(config["within_3pct"], bool)
    assert "metrics cost, hub us/delivery" in stdout
    assert stdout.count(", median ratio ") == 1 + len(sizes)  # idempotency's, then these
    assert throughput["sweep"][-1]["mode"] == "max"
    for run in throughput["sweep"] + results["fanout"]["runs"]:  # every run has its row
        assert f"\n{run['label']} " in stdout, run["label"]
    assert all(run["mode"] == "paced" for run in throughput["sweep"][:-1])

    assert {f["id"] for f in data["floors"]} == {spec[0] for spec in FLOORS}
    for floor in data["floors"]:
        assert floor["comparison"] in (">=", "<=")
        assert isinstance(floor["threshold"], NUM)
        assert floor["met"] in (True, False, None)
    assert isinstance(data["comparison"], dict)

    if data["chart"] is None:
        assert isinstance(data["chart_note"], str) and data["chart_note"]
        assert "chart: skipped" in stdout
    else:
        assert Path(data["chart"]).stat().st_size > 0
    assert (out / "latest.json").exists()
    assert "floors (from the issue)" in stdout


@pytest.mark.timeout(240)
def test_quick_bench_correctness_checks_hold(
    quick_report: tuple[dict[str, Any], str, Path],
) -> None:
    """What the bench verifies besides timing: no lost or extra message, ever."""
    results = quick_report[0]["results"]
    ceiling = results["ceiling"]
    assert ceiling["admitted"] > 0 and ceiling["rejected"] > 0
    assert ceiling["other_errors"] == 0 and ceiling["unanswered"] == 0
    assert ceiling["seq_advanced_equals_admitted"] is True
    assert ceiling["messages_gapless"] is True
    assert ceiling["every_member_got_every_message"] is True
    for section in ("throughput", "fanout", "nodes", "idempotency", "workers", "metrics"):
        for run in results[section]["runs"] + results[section].get("sweep", []):
            assert run["ok"] > 0 and not run["errors"] and run["unanswered"] == 0, run
            assert run["missing_deliveries"] == 0 and run["incomplete_ops"] == 0, run
            assert run["deliveries"] == run["ok"] * run["members_per_room"], run
    connections = results["connections"]
    assert connections["connections"] == connections["still_open_after_idle"] > 0

    hostile = results["hostile"]
    for flood in hostile["ping_flood"]:  # dropped once its pongs pass the send buffer limit
        assert flood["dropped_after_s"] is not None, flood
        assert flood["hub_rss_peak_mib"] - flood["hub_rss_before_mib"] < 32, flood
    for storm in hostile["resume_storm"]:  # non-members: one resync 0 each; members: replays
        assert storm["frames_received"] == storm["frames_expected"] > 0, storm
    for stall in hostile["stalled_reader"]:  # keepalive drops it, whatever its backlog
        assert stall["dropped_after_s"] is not None, stall

    resilience = results["resilience"]
    redis = resilience["redis_restart"]
    assert redis["acknowledged"] > 0 and redis["ops_unfinished"] == 0
    assert set(redis["failed_by_code"]) <= {"100001"}, redis["failed_by_code"]
    # Redis restarted with its AOF: every acknowledged op survived, exactly once; the only
    # other messages are ops that failed with 100001 although Redis had applied them
    assert redis["every_ack_in_history_exactly_once"] is True
    assert redis["history_gapless"] is True and redis["history_not_from_writer"] == 0
    assert redis["history_messages"] == redis["acknowledged"] + redis["failed_but_in_history"]
    assert redis["every_member_got_history_exactly_once_in_order"] is True, redis["per_member"]
    node = resilience["node_restart"]
    assert node["acknowledged"] > 0 and node["failed"] == 0 and node["ops_unfinished"] == 0
    assert node["clients_closed"] == node["members_on_restarted_node"] > 0
    assert node["close_codes"] == [1001]
    assert all(c["open_again_ms"] is not None for c in node["clients"])
    assert node["every_ack_in_history_exactly_once"] is True
    assert node["history_messages"] == node["acknowledged"]
    for run in resilience["stalled_client"]["runs"]:
        assert run["acknowledged"] == run["ops"] and not run["errors"], run
        assert run["reader_got_every_ack_in_order"] is True, run
        if not run["stalled_dropped"]:  # it kept everything: reading again, it gets it all
            assert run["stalled_received_when_reading_again"] == run["acknowledged"], run
        assert run["stalled_received_in_order"] is True


@pytest.mark.timeout(240)
def test_quick_bench_presence_is_exact(quick_report: tuple[dict[str, Any], str, Path]) -> None:
    """The presence scenarios, tiny: idle connections with presence off and on (events flow,
    room.presence counts every connection), and the churn over 2 nodes, after which
    room.presence, Redis's online sets and every observer's events all say who is connected,
    and users whose auth met the auth deadline are not left online."""
    data, stdout, _ = quick_report
    results = data["results"]
    presence = results["presence"]
    check(presence, PRESENCE, "presence")
    assert presence["failed_checks"] == []
    rounds = data["plan"]["presence_rounds"]
    order = [on for r in range(rounds) for on in ((False, True) if r % 2 == 0 else (True, False))]
    assert [r["presence"] for r in presence["runs"]] == order  # alternating, off first
    for run in presence["runs"]:
        check(run, PRESENCE_RUN, f"presence[{run['presence']}]")
        assert run["connections"] == run["still_open_after_idle"] == data["plan"]["connections"]
        if run["presence"]:
            assert run["online_exact"] is True and run["presence_events_received"] > 0, run
        else:
            assert run["online_counted"] is None and run["presence_events_received"] == 0, run
    assert "presence off -> on" in stdout

    churn = results["churn"]
    check(churn, CHURN, "churn")
    assert churn["failed_checks"] == [], churn["failed_checks"]
    assert churn["connects"] > 0 and churn["disconnects"] > 0 and churn["aborts"] > 0
    assert churn["connect_failures"] == 0, churn["connect_errors"]
    assert churn["online_set_exact"] is True and churn["mismatches"] == []
    assert churn["online_at_end"] == churn["connected_at_end"]
    assert churn["redis_online_sets_exact"] is True and churn["live_node_instances"] == 2
    assert churn["observers_exact"] is True and churn["presence_events"] > 0
    assert len(churn["observer_views"]) == churn["observers"]
    assert all(view["view_exact"] for view in churn["observer_views"])
    # auths sent around a node's auth deadline, then closed: nobody may stay online
    assert churn["late_auths"] == data["plan"]["churn_late_auths"] > 0
    assert churn["late_auths_online_after_close"] == 0, churn["late_auth_users_online"]
    assert "churn: " in stdout and "FAILED CHECK" not in stdout


@pytest.mark.timeout(240)
def test_quick_bench_node_restart_delivers_every_message_once(
    quick_report: tuple[dict[str, Any], str, Path],
) -> None:
    node = quick_report[0]["results"]["resilience"]["node_restart"]
    assert node["every_member_got_history_exactly_once_in_order"] is True, node["per_member"]
    assert node["delivered_equals_acknowledged"] is True
    assert node["clients_without_live_message"] == 0


# --- the harness's WebSocket client ---------------------------------------------------------


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def test_client_frames_are_masked_and_round_trip() -> None:
    payload = msgpack.packb({"id": 1, "op": "room.get", "args": {"room": "r" * 300}})
    frame = wsclient.encode_frame(wsclient.OP_BINARY, payload, key=b"\x01\x02\x03\x04")
    assert frame[0] == 0x82 and frame[1] == 0x80 | 126
    assert struct.unpack("!H", frame[2:4])[0] == len(payload)
    assert frame[4:8] == b"\x01\x02\x03\x04"
    assert frame[8:] != payload
    assert wsclient.mask(frame[8:], b"\x01\x02\x03\x04") == payload
    frames, rest = wsclient.parse_frames(frame)  # a masked frame parses back too
    assert frames == [(wsclient.OP_BINARY, True, payload)] and rest == b""


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_client_parses_frames_split_anywhere() -> None:
    client = wsclient.WSClient("127.0.0.1", 1)
    transport = FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    request = transport.written[0].decode()
    assert request.startswith("GET /ws HTTP/1.1\r\n")
    assert "Sec-WebSocket-Protocol: roomhub.v1.msgpack\r\n" in request
    replies: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    client.on_reply = lambda frame, t: replies.append(frame)
    client.on_event = lambda frame, t: events.append(frame)
    accept = client._accept.decode()
    handshake = (
        f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
        f"Sec-WebSocket-Protocol: roomhub.v1.msgpack\r\n\r\n"
    ).encode()
    big = {"event": "system", "message": {"room": "r", "seq": 2, "x": "y" * 70_000}}
    stream = handshake + b"".join(
        [
            server_frame(wsclient.OP_BINARY, msgpack.packb({"re": 1, "ok": True, "result": {}})),
            server_frame(wsclient.OP_PING, b"hi"),
            server_frame(
                wsclient.OP_BINARY,
                msgpack.packb({"event": "system", "message": {"room": "r", "seq": 1}}),
            ),
            server_frame(wsclient.OP_BINARY, msgpack.packb(big)),
        ]
    )
    for size in (1, 7, 1000):  # deliver the same stream in chunks of every size
        replies.clear()
        events.clear()
        client._buf, client._upgraded = b"", False
        client.ready = asyncio.get_running_loop().create_future()
        for start in range(0, len(stream), size):
            client.data_received(stream[start : start + size])
        assert client.ready.done() and client.ready.exception() is None
        assert replies == [{"re": 1, "ok": True, "result": {}}]
        assert [e["message"]["seq"] for e in events] == [1, 2]
        assert events[1] == big
    pongs = [wsclient.parse_frames(w)[0] for w in transport.written[1:]]
    assert all(p == [(wsclient.OP_PONG, True, b"hi")] for p in pongs) and pongs
    assert all(w[1] & 0x80 for w in transport.written[1:])  # client frames are masked

    # recording mode: payloads are counted, not decoded
    client.sink = {}
    payload = msgpack.packb({"event": "system", "message": {"room": "r", "seq": 3}})
    client.data_received(server_frame(wsclient.OP_BINARY, payload) * 3)
    assert list(client.sink) == [payload] and client.sink[payload][0] == 3


async def test_client_refuses_a_bad_handshake() -> None:
    client = wsclient.WSClient("127.0.0.1", 1)
    transport = FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    client.data_received(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(wsclient.HandshakeError):
        await client.ready
    assert transport.closed


# --- the resilience scenario's comparison -----------------------------------------------------


def test_verify_compares_acks_history_and_deliveries() -> None:
    """Attempts 0-3 (values 100-103): 0, 1 and 3 acknowledged as seqs 11, 12, 14; attempt 2
    failed with 100001 but was applied (seq 13). Member a got everything once, in order;
    member b missed 13 and got 14 twice (one of them on the wire only)."""
    attempts = {"value": [100, 101, 102, 103], "result": [11, 12, -100001, 14]}
    history = [(10, "createRoom", None)] + [(11 + i, "updateMember", 100 + i) for i in range(4)]
    a = {
        "user": "a",
        "delivered": [(s, None, 0.0) for s in (11, 12, 13, 14)],
        "wire": [(s, 0.0) for s in (11, 12, 13, 14)],
        "resyncs": [],
    }
    b = {
        "user": "b",
        "delivered": [(s, None, 0.0) for s in (11, 12, 14, 14)],
        "wire": [(s, 0.0) for s in (11, 12, 14, 14, 14)],
        "resyncs": [],
    }
    verdict = verify(attempts, history, [a, b], start_seq=10)
    assert verdict.failed_but_in_history_attempts == [2]
    out = to_json(verdict.tally) | to_json(verdict.exactness)  # as in the report
    assert out["acknowledged"] == 3 and out["failed"] == 1
    assert out["failed_by_code"] == {"100001": 1}
    assert out["history_messages"] == 4 and out["history_gapless"] is True
    assert out["every_ack_in_history_exactly_once"] is True
    assert out["failed_but_in_history"] == 1
    assert out["history_not_from_writer"] == 0
    ma, mb = out["per_member"]
    assert ma["equals_history"] is True and ma["equals_acknowledged"] is False
    assert ma["duplicates"] == 0 and ma["gaps"] == 0 and ma["in_order"] is True
    assert mb["gaps"] == 1 and mb["duplicates"] == 1 and mb["in_order"] is False
    assert mb["wire_duplicates_dropped_by_client"] == 2
    assert out["every_member_got_history_exactly_once_in_order"] is False
    assert out["members_missing_messages"] == 1
    assert out["delivered_equals_acknowledged"] is False

    exact = verify({"value": [100], "result": [11]}, [(11, "updateMember", 100)], [], 10).exactness
    assert exact.every_ack_in_history_exactly_once is True
    assert exact.every_member_got_history_exactly_once_in_order is False  # nobody checked


API_RUN = {
    "label": str,
    "transport": str,
    "mode": str,
    "round": int,
    "connections": int,
    "sent": int,
    "shed": int,
    "ok": int,
    "errors": dict,
    "unanswered": int,
    "req_per_s": NUM,
    "latency_ms": LATENCY,
    "hub_cpu_s": NUM,
    "hub_cpu_us_per_request": NUM,
    "load_cpu_us_per_request": NUM,
    "other_cpu_s": NUM,
    "machine_cpu_util": NUM,
}
API_SUMMARY = {
    "transport": str,
    "mode": str,
    "rounds": int,
    "req_per_s": NUM,
    "latency_p50_ms": NUM,
    "latency_p99_ms": NUM,
    "hub_cpu_us_per_request": NUM,
    "hub_cpu_us_per_request_rounds": list,
}


@pytest.mark.timeout(120)
def test_quick_http_scenario_answers_every_request(tmp_path: Path) -> None:
    """The `http` scenario alone, tiny: member.update over the server API and the WebSocket,
    closed loop and paced; every HTTP request answered 200, every WebSocket one ok."""
    proc = subprocess.run(
        [sys.executable, "-m", "roomhub.bench", "http", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    data = json.loads((tmp_path / "latest.json").read_text())
    http = data["results"]["http"]
    assert "error" not in http, http.get("error")
    runs = http["runs"]
    assert {(r["transport"], r["mode"]) for r in runs} == {
        (t, m) for t in ("http", "websocket") for m in ("max", "paced")
    }
    for run in runs:
        check(run, API_RUN, f"http[{run['label']}]")
        assert run["ok"] == run["sent"] > 0 and not run["errors"], run
        assert run["unanswered"] == 0, run
        if run["transport"] == "http":
            assert run["http_statuses"] == {"200": run["sent"]}, run
        else:
            assert run["http_statuses"] is None
    assert [(s["transport"], s["mode"]) for s in http["summary"]] == [
        ("websocket", "max"),
        ("websocket", "paced"),
        ("http", "max"),
        ("http", "paced"),
    ]
    for summary in http["summary"]:
        check(summary, API_SUMMARY, f"http.summary[{summary['transport']}]")
    assert isinstance(http["cpu_ratio"], NUM) and isinstance(http["cpu_ratio_paced"], NUM)
    assert isinstance(http["http_req_per_s"], NUM) and isinstance(http["within_2x"], bool)
    assert {"http_req_per_s", "http_cpu_ratio"} <= {f["id"] for f in data["floors"]}
    assert "hub CPU per request, http / websocket" in proc.stdout


def test_http_load_client_parses_replies_split_anywhere() -> None:
    """The bench's HTTP client: a reply in any number of pieces, two replies in one read."""
    got: list[tuple[int, bytes]] = []
    conn = HttpConnection(lambda status, body, _t: got.append((status, body)))
    one = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": '
    one += b'"bc"}'
    two = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\nretry-after: 1\r\n\r\n{}"
    for cut in range(1, len(one)):
        conn.data_received(one[:cut])
        conn.data_received(one[cut:])
    assert got == [(200, b'{"a": "bc"}')] * (len(one) - 1)
    got.clear()
    conn.data_received(one + two)
    assert got == [(200, b'{"a": "bc"}'), (429, b"{}")] and not conn.buf
