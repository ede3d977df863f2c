"""What the bench hands back: the floors, the summary table, the JSON file (the chart is
chart.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# Measured by the author on this machine class; the hub is compared against them.
COMPARISON = {
    "node_socketio_redis_adapter": {
        "what": "Node socket.io + Redis adapter",
        "deliveries_per_s_100_member_rooms": 113_000,
        "deliveries_per_s_1000_member_rooms": 68_000,
        "us_per_delivery": 9,
    },
    "python_socketio_redis": {
        "what": "python-socketio + Redis",
        "deliveries_per_s_100_member_rooms": 27_000,
        "deliveries_per_s_1000_member_rooms": 16_000,
    },
    "frame_once_write_bytes": {
        "what": "Python: frame once, write the bytes to each transport",
        "deliveries_per_s": 200_000,
    },
}


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for name in ("throughput", "fanout", "nodes"):
        section = results.get(name)
        if isinstance(section, dict):
            runs.extend(section.get("runs", []))
            runs.extend(section.get("sweep", []))
    return runs


def _find(
    results: dict[str, Any],
    rooms: int,
    members: int,
    *,
    rate: float | None = None,
    prefer: str = "fanout",
) -> dict[str, Any] | None:
    """The best matching single-node run (from `prefer` first)."""
    matches = [
        r
        for r in _runs(results)
        if r.get("rooms") == rooms
        and r.get("members_per_room") == members
        and r.get("nodes") == 1
        and r.get("offered_ops_per_s") == rate
    ]
    # the preferred scenario first, then the run that delivered the most
    matches.sort(key=lambda r: (not r["label"].startswith(prefer), -(r["deliveries_per_s"] or 0)))
    return matches[0] if matches else None


def _get(run: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = run
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, int | float) else None


FloorSpec = tuple[str, str, str, float, str, Callable[[dict[str, Any]], float | None]]


def _full_http(results: dict[str, Any]) -> bool:
    """The http scenario ran its full size (not --quick)."""
    return _get(results.get("http"), "connections") == 16


FLOORS: list[FloorSpec] = [
    (
        "ops_10x10",
        "10 rooms x 10 members: member.update ops/s",
        ">=",
        3000,
        "ops/s",
        lambda r: _get(_find(r, 10, 10), "ops_per_s"),
    ),
    (
        "ops_10x100",
        "10 rooms x 100 members: ops/s",
        ">=",
        1000,
        "ops/s",
        lambda r: _get(_find(r, 10, 100), "ops_per_s"),
    ),
    (
        "deliveries_10x100",
        "10 rooms x 100 members: deliveries/s",
        ">=",
        100_000,
        "deliveries/s",
        lambda r: _get(_find(r, 10, 100), "deliveries_per_s"),
    ),
    (
        "ack_p99_10x100_at_200",
        "10 x 100: p99 ack latency at 200 ops/s offered",
        "<=",
        20,
        "ms",
        lambda r: _get(_find(r, 10, 100, rate=200.0), "ack_latency_ms", "p99"),
    ),
    (
        "deliveries_1x1000",
        "1 room x 1,000 members: deliveries/s",
        ">=",
        120_000,
        "deliveries/s",
        lambda r: _get(_find(r, 1, 1000), "deliveries_per_s"),
    ),
    (
        "cpu_per_delivery_10x100",
        "hub CPU per delivery, 10 x 100 at max",
        "<=",
        7,
        "us",
        lambda r: _get(_find(r, 10, 100), "hub_cpu_us_per_delivery"),
    ),
    (
        "cpu_per_delivery_1x1000",
        "hub CPU per delivery, 1 x 1,000 at max",
        "<=",
        7,
        "us",
        lambda r: _get(_find(r, 1, 1000), "hub_cpu_us_per_delivery"),
    ),
    (
        "idle_connection_memory",
        "10,000 idle connections: hub RSS per connection",
        "<=",
        32,
        "KiB",
        lambda r: (
            _get(r.get("connections"), "hub_kib_per_connection")
            if _get(r.get("connections"), "connections") == 10_000
            else None
        ),
    ),
    (
        "http_req_per_s",
        "server API: member.update over HTTP, closed loop, req/s",
        ">=",
        2000,
        "req/s",
        lambda r: _get(r.get("http"), "http_req_per_s") if _full_http(r) else None,
    ),
    (
        "http_cpu_ratio",
        "server API: hub CPU per HTTP request / per WebSocket request",
        "<=",
        2,
        "x",
        lambda r: _get(r.get("http"), "cpu_ratio") if _full_http(r) else None,
    ),
]


def floors(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each floor of the issue with what was measured; `met` is None when not measured
    (scenario not run, or --quick sizes that do not match the floor's configuration)."""
    out = []
    for key, what, op, threshold, unit, measure in FLOORS:
        value = measure(results)
        met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        out.append(
            {
                "id": key,
                "description": what,
                "comparison": op,
                "threshold": threshold,
                "unit": unit,
                "measured": value,
                "met": met,
            }
        )
    return out


# --- the table on stdout ----------------------------------------------------------------------


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}"


def _pair(lat: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.1f}" if v < 100 else f"{v:,.0f}"

    return f"{one(lat.get('p50'))} / {one(lat.get('p99'))}"


def _other(run: dict[str, Any]) -> str:
    """Cores other programs used during the run (noise)."""
    other, wall = run.get("other_cpu_s"), run.get("measured_wall_s")
    return "-" if other is None or not wall else f"{other / wall:.2f}"


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"roomhub bench{' (--quick)' if report['quick'] else ''}: {m['cpu_model']}, "
        f"{m['cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB, Python {m['python']}, "
        f"Redis {m['redis_version']}, roomhub {m['roomhub_version']} "
        f"({m.get('roomhub_git') or 'no git'}), {m['date']}",
        f"other programs' CPU before the start: {m.get('background_cpu_util', 0):.0%} of the "
        "machine (column 'other': cores they used during each run)",
        "",
    ]
    results = report["results"]
    unique: list[dict[str, Any]] = []
    for name in ("throughput", "fanout", "nodes", "workers"):
        section = results.get(name)
        if not isinstance(section, dict):
            continue
        sweep = section.get("sweep", [])
        for run in section.get("runs", []):
            if sweep and run == sweep[-1]:
                unique.extend(sweep[:-1])  # the sweep leads up to its max run
            unique.append(run)
    if unique:
        header = (
            f"{'run':<34} {'ops/s':>8} {'deliv/s':>9} {'ack p50/p99 ms':>15} "
            f"{'deliv p50/p99 ms':>17} {'hub us/deliv':>12} {'hub CPU':>7} {'other':>5} "
            f"{'missing':>7}"
        )
        lines += [header, "-" * len(header)]
        for r in unique:
            util = r.get("hub_cpu_util")
            lines.append(
                f"{r['label']:<34} {_n(r['ops_per_s']):>8} {_n(r['deliveries_per_s']):>9} "
                f"{_pair(r['ack_latency_ms']):>15} {_pair(r['delivery_latency_ms']):>17} "
                f"{_n(r['hub_cpu_us_per_delivery'], 2):>12} "
                f"{('-' if util is None else f'{util:.0%}'):>7} {_other(r):>5} "
                f"{r['missing_deliveries']:>7}"
            )
        lines.append("")
    for name, key, render in SECTIONS:
        section = results.get(name)
        if isinstance(section, dict) and key in section:  # not failed, not skipped
            lines += [*render(section), ""]
    for name, section in results.items():
        if isinstance(section, dict) and "error" in section:
            lines.append(f"{name}: FAILED: {section['error'].splitlines()[-1]}")
        elif isinstance(section, dict):
            for check in section.get("failed_checks") or []:
                lines.append(f"{name}: FAILED CHECK: {check}")
    lines.append("floors (from the issue):")
    for f in report["floors"]:
        state = {True: "met", False: "NOT MET", None: "n/a"}[f["met"]]
        measured = "-" if f["measured"] is None else f"{f['measured']:,.2f}".rstrip("0").rstrip(".")
        lines.append(
            f"  [{state:>7}] {f['description']} {f['comparison']} "
            f"{f['threshold']:,} {f['unit']}: {measured}"
        )
    return "\n".join(lines)


def ceiling_lines(c: dict[str, Any]) -> list[str]:
    gapless = c["every_member_got_every_message"] and c["messages_gapless"]
    return [
        f"ceiling {c['ceiling_per_s']}/s, offered {c['offered_per_s']}/s for "
        f"{c['duration_s']:.0f} s from {c['sender_connections']} server connections on "
        f"{c['nodes']} nodes:",
        f"  admitted {c['admitted']} = {c['admitted_per_s']}/s "
        f"(within 5%: {'yes' if c['admitted_within_5pct'] else 'NO'}), rejected "
        f"{c['rejected']} with 100009, other errors {c['other_errors']}",
        f"  rejection latency p50/p99 {_pair(c['rejection_latency_ms'])} ms; admitted ack "
        f"p50/p99 {_pair(c['admitted_ack_latency_ms'])} ms",
        f"  room seq advanced {c['seq_advanced']} for {c['admitted']} admitted "
        f"({'exact' if c['seq_advanced_equals_admitted'] else 'MISMATCH'}); members got "
        f"every admitted message, gapless: {'yes' if gapless else 'NO'}",
    ]


def connections_lines(c: dict[str, Any]) -> list[str]:
    return [
        f"connections: {c['connections']:,} idle authenticated connections in "
        f"{c['connect_time_s']} s ({_n(c['connections_per_s'])}/s, hub CPU "
        f"{c['hub_cpu_us_per_connection']} us each); hub RSS "
        f"{c['hub_rss_before_bytes'] / 2**20:.1f} -> {c['hub_rss_after_bytes'] / 2**20:.1f} "
        f"MiB = {c['hub_kib_per_connection']} KiB per connection"
    ]


def presence_lines(p: dict[str, Any]) -> list[str]:
    def each(key: str) -> str:
        return (
            ", ".join(_n(v, 1) for v in p[f"{key}_off"])
            + " -> "
            + ", ".join(_n(v, 1) for v in p[f"{key}_on"])
        )

    return [
        f"presence off -> on, {p['connections']:,} idle connections in {p['rooms']} rooms of "
        f"{p['room_members']} (fresh hub each, alternating, {p['rounds']} rounds; ratios: "
        "on / off of the medians):",
        f"  connections/s {each('connections_per_s')} (ratio {p['connect_rate_ratio']}); hub "
        f"KiB/connection {each('kib_per_connection')} (ratio {p['rss_ratio']}); hub "
        f"us/connection {each('hub_cpu_us_per_connection')} (ratio {p['cpu_ratio']}); target "
        f"within 20%: {_yes(p['within_20pct'])}",
        "  presence events received (on): "
        + ", ".join(_n(r["presence_events_received"]) for r in p["runs"] if r["presence"])
        + "; room.presence = connected: "
        + _yes(all(r["online_exact"] for r in p["runs"] if r["presence"])),
    ]


def churn_lines(c: dict[str, Any]) -> list[str]:
    return [
        f"churn: {c['users']:,} users ({c['users_with_two_connections']} with two connections) "
        f"over {c['nodes']} nodes for {c['duration_s']} s, {c['observers']} observers:",
        f"  {_n(c['connects_per_s'])} connects/s, {_n(c['disconnects_per_s'])} disconnects/s "
        f"({c['aborts']} of {c['disconnects']:,} aborts), connect failures "
        f"{c['connect_failures']}; auth p50/p99 {_pair(c['auth_latency_ms'])} ms",
        f"  presence events {_n(c['presence_events_per_s'])}/s to the observers "
        f"({_n(c['presence_events_per_s_per_observer'])}/s each)",
        f"  at the end {c['connected_at_end']} connected, room.presence {c['online_at_end']} "
        f"online: exact {_yes(c['online_set_exact'])} (after {c['settled_after_s']} s); Redis "
        f"online sets exact {_yes(c['redis_online_sets_exact'])}; observers' views exact "
        f"{_yes(c['observers_exact'])}",
        *(
            [
                f"  {c['late_auths']} auths around a node's auth deadline "
                f"({c['late_auth_deadline_s']} s; {c['late_auths_answered']} answered), every "
                f"connection closed: {c['late_auths_online_after_close']} users still online "
                f"{c['late_auth_users_online'][:5] if c['late_auths_online_after_close'] else ''}"
            ]
            if c["late_auths"]
            else []
        ),
    ]


def idempotency_lines(idem: dict[str, Any]) -> list[str]:
    return [
        "idempotency keys, hub us/op without -> with (alternating runs): "
        f"{idem['hub_us_per_op_without']} -> {idem['hub_us_per_op_with']}, median ratio "
        f"{idem['median_ratio']} (target <= 1.05: {_yes(idem['within_5pct'])})"
    ]


def hostile_lines(h: dict[str, Any]) -> list[str]:
    lines = ["hostile clients:"]
    for f in h["ping_flood"]:
        lines.append(
            f"  ping flood ({'after' if f['authenticated'] else 'before'} auth, never reading): "
            f"hub RSS {f['hub_rss_before_mib']} -> peak {f['hub_rss_peak_mib']} -> "
            f"{f['hub_rss_after_mib']} MiB, dropped after {f['dropped_after_s']} s"
        )
    for s in h["resume_storm"]:
        who = "members" if s["members"] else "non-members"
        lines.append(
            f"  {s['clients']} {who} resume a {s['room_messages']:,}-message room from seq "
            f"{s['resumed_from_seq']:,} at once: hub CPU {s['hub_cpu_ms_per_resume']} ms each, "
            f"frames {s['frames_received']:,}/{s['frames_expected']:,}, a member's request "
            f"waited p50/max {_p50max(s['member_request_wait_ms'])} ms"
        )
    for s in h["stalled_reader"]:
        lines.append(
            f"  reader stalled under the send-buffer limit ({s['ops_while_stalled']} messages "
            f"of +{s['message_pad_bytes']} B): dropped after {s['dropped_after_s']} s "
            f"(ping interval + timeout = {s['bound_s']} s)"
        )
    return lines


def workers_lines(w: dict[str, Any]) -> list[str]:
    return [
        f"workers, {w['workers'][0]} -> {w['workers'][-1]} on one port (the rows above): ops/s "
        f"x{w['ops_speedup']}, deliveries/s x{w['deliveries_speedup']}, hub us/delivery "
        f"x{w['cpu_per_delivery_ratio']}; hub CPU s by process "
        + " -> ".join(str(p) for p in w["hub_process_cpu_s"])
    ]


def metrics_lines(m: dict[str, Any]) -> list[str]:
    def size(c: dict[str, Any]) -> str:
        off, on, ratio = (
            c["hub_us_per_delivery_off"],
            c["hub_us_per_delivery_on"],
            c["median_ratio"],
        )
        where = f"{c['rooms']} x {c['members_per_room']}"
        return f"  {where}: {off} -> {on}, median ratio {ratio} (<= 1.03: {_yes(c['within_3pct'])})"

    head = "metrics cost, hub us/delivery with metrics off -> on (alternating runs):"
    return [head, *(size(c) for c in m["configs"])]


def http_lines(h: dict[str, Any]) -> list[str]:
    rounds = max((s["rounds"] for s in h["summary"]), default=0)
    lines = [
        f"server API (http) and WebSocket, member.update, {h['connections']} connections each, "
        f"one request in flight on each (medians of {rounds} alternating rounds):"
    ]
    for s in h["summary"]:
        mode = "max" if s["mode"] == "max" else "paced"
        each = ", ".join(_n(v) for v in s["hub_cpu_us_per_request_rounds"])
        lines.append(
            f"  {s['transport']:<9} {mode:<5} {_n(s['req_per_s']):>7} req/s, p50/p99 "
            f"{_pair({'p50': s['latency_p50_ms'], 'p99': s['latency_p99_ms']})} ms, hub "
            f"{_n(s['hub_cpu_us_per_request'])} us/request ({each})"
        )
    lines.append(
        f"  hub CPU per request, http / websocket: {_n(h['cpu_ratio'], 2)} closed loop, "
        f"{_n(h['cpu_ratio_paced'], 2)} paced"
    )
    return lines


def _yes(value: Any) -> str:
    return "yes" if value is True else "NO" if value is False else "-"


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _members_line(r: dict[str, Any]) -> str:
    members = r["per_member"]
    text = (
        f"  members: received {min(m['received'] for m in members):,}–"
        f"{max(m['received'] for m in members):,} messages each of {r['history_messages']:,} "
        f"in history; duplicates {sum(m['duplicates'] for m in members)}, missing "
        f"{sum(m['gaps'] for m in members)}, in order {_yes(all(m['in_order'] for m in members))}"
        f", resyncs {sum(m['resyncs'] for m in members)}; replayed twice on the wire (dropped by "
        f"the client) {sum(m['wire_duplicates_dropped_by_client'] for m in members)}"
    )
    short = [f"{m['user']} missed {m['gaps']}" for m in members if m["gaps"]]
    return text + (f"\n  MISSING: {', '.join(short)}" if short else "")


def _exactness(r: dict[str, Any]) -> str:
    return (
        f"  every acked op in history exactly once: {_yes(r['every_ack_in_history_exactly_once'])}"
        f" ({r['acknowledged_in_history_once']:,}/{r['acknowledged']:,}); failed ops in history "
        f"anyway: {r['failed_but_in_history']}; every member got the history exactly once, in "
        f"order: {_yes(r['every_member_got_history_exactly_once_in_order'])}; delivered = "
        f"acknowledged: {_yes(r['delivered_equals_acknowledged'])}"
    )


def _p50max(lat: dict[str, Any]) -> str:
    return _pair({"p50": lat.get("p50"), "p99": lat.get("max")})


def resilience_lines(res: dict[str, Any]) -> list[str]:
    """The resilience section of the summary."""
    r, n = res["redis_restart"], res["node_restart"]
    first_msg = r["first_message_after_redis_back_ms"]
    lines = [
        f"resilience: Redis restart ({r['redis_persistence']}), {r['nodes']} nodes, "
        f"{r['members']} members, {r['rate_per_s']:.0f} member.update/s for "
        f"{r['duration_s']:.1f} s:",
        f"  Redis down {r['redis_down_s']:.2f} s (SIGTERM -> PONG; shutdown "
        f"{r['redis_shutdown_s']:.2f} s); ops acked {r['acknowledged']:,}, failed "
        f"{r['failed']:,} {r['failed_by_code'] or ''} over {r['failure_window_s']:.2f} s, "
        f"retried; unfinished {r['ops_unfinished']}",
        f"  first ack {r['first_ack_after_redis_back_ms']} ms after Redis was back; first message "
        f"to the members p50/max {_p50max(first_msg)} ms "
        "after",
        _exactness(r),
        *(
            [
                "  failed but applied (sent / failed, ms after the SIGTERM): "
                + ", ".join(
                    f"{f['sent_ms_after_stop']}/{f['failed_ms_after_stop']} ({f['code']})"
                    for f in r["failed_but_applied"]
                )
            ]
            if r["failed_but_applied"]
            else []
        ),
        _members_line(r),
        f"resilience: node restart, {n['nodes']} nodes, {n['members']} members "
        f"({n['members_on_restarted_node']} on the restarted node), writer on the other, "
        f"{n['rate_per_s']:.0f} member.update/s for {n['duration_s']:.1f} s:",
        f"  node exited {n['node_shutdown_s']:.2f} s after SIGTERM, listening again after "
        f"{n['node_down_s']:.2f} s; {n['clients_closed']} clients closed with "
        f"{', '.join(str(c) for c in n['close_codes']) or '-'}; ops acked {n['acknowledged']:,}, "
        f"failed {n['failed']}",
        f"  resume (connection closed -> OPEN) p50/max {_p50max(n['resume_open_ms'])} ms; "
        f"-> first live message p50/max {_p50max(n['resume_first_live_message_ms'])} ms"
        f" (clients with no live message after the move: {n['clients_without_live_message']})",
        _exactness(n),
        _members_line(n),
    ]
    for s in res["stalled_client"]["runs"]:
        limit = f"{s['send_buffer_limit_bytes'] // 1024} KiB"
        if s["send_buffer_limit_is_default"]:
            limit += " (default)"
        dropped = (
            f"yes, 4008 after {s['stalled_dropped_after_acked_ops']:,} ops"
            if s["stalled_dropped"]
            else "no"
        )
        lines += [
            f"resilience: stalled client, 1 node, send buffer limit {limit}, "
            f"{s['acknowledged']:,} ops of {s['message_bytes']:,} B messages "
            f"({s['message_bytes_total'] / 2**20:.1f} MiB) at {_n(s['ops_per_s'])}/s:",
            f"  hub RSS {_mib(s['hub_rss_before_bytes'])} -> peak {_mib(s['hub_rss_peak_bytes'])} "
            f"-> after {_mib(s['hub_rss_after_bytes'])} MiB; kernel send queue to the stalled "
            f"client peak {_mib(s['hub_kernel_send_queue_peak_bytes'])} MiB",
            f"  stalled client dropped: {dropped}; when it read again it got "
            f"{s['stalled_received_when_reading_again']:,} messages (in order "
            f"{_yes(s['stalled_received_in_order'])}); the reading member got every message in "
            f"order: {_yes(s['reader_got_every_ack_in_order'])} ({s['reader_received']:,})",
        ]
    return lines


# The sections after the runs' table, in order: (scenario, a key its result has, lines).
SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], list[str]]]] = [
    ("ceiling", "admitted", ceiling_lines),
    ("connections", "connections", connections_lines),
    ("presence", "connect_rate_ratio", presence_lines),
    ("churn", "online_set_exact", churn_lines),
    ("resilience", "redis_restart", resilience_lines),
    ("idempotency", "runs", idempotency_lines),
    ("hostile", "ping_flood", hostile_lines),
    ("workers", "runs", workers_lines),
    ("metrics", "configs", metrics_lines),
    ("http", "summary", http_lines),
]


# --- files ------------------------------------------------------------------------------------


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
