"""The `http` scenario: member.update over the server API (`POST /api/v1/member.update`,
keep-alive connections) against the same op over the WebSocket, on one node.

One load process holds both: `http_connections` HTTP connections and as many WebSocket
sender connections, all with a server token, one request in flight on each (HTTP/1.1 has no
more without pipelining, so the WebSocket gets no more either). Each round runs the closed
loop, then `http_rate`/s paced, on one transport and then on the other, the order alternating
from round to round, so both see the same machine; the figures are the medians over the
rounds. No member is connected: hub CPU per request is the request's own path (parse,
authenticate, admit, run the Lua script, reply, publish), where the two transports differ.
"""

from __future__ import annotations

import os
import statistics
from time import monotonic
from typing import Any

from roomhub.server.auth import mint_token

from . import infra
from .harness import Bench, Layout, LoadProcess
from .infra import HOST
from .results import ApiRun, ApiSummary, HttpApi
from .stats import summary_ms

TRANSPORTS = ("websocket", "http")


async def _offer(
    bench: Bench, load: LoadProcess, layout: Layout, transport: str, rate: float | None, d: float
) -> dict[str, Any]:
    bench.run_no += 1
    plan = bench.plan

    def sending(info: dict[str, Any]) -> None:
        bench.progress.update(
            f"{info['elapsed']:.1f}/{d:.0f}s sent {info['sent']} answered {info['replies']}"
        )

    args: dict[str, Any] = {
        "on_progress": sending,
        "rooms": layout.rooms,
        "duration": d,
        "rate": rate,
        "base": bench.run_no * 10**8,
        "drain_timeout": plan.drain_timeout,
    }
    if transport == "http":
        await load.call("http", action="reopen")
        return dict(await load.call("http", action="send", **args))
    return dict(await load.call("send", window=1, cap=plan.paced_cap, **args))


async def _measure(
    bench: Bench,
    hub: infra.HubProcess,
    load: LoadProcess,
    layout: Layout,
    transport: str,
    rate: float | None,
    round_no: int,
) -> ApiRun:
    plan = bench.plan
    mode = "max" if rate is None else "paced"
    label = f"http api {transport} @{'max' if rate is None else f'{rate:.0f}/s'}"
    bench.progress.phase(f"{label} (round {round_no + 1})")
    waited = await bench.wait_quiet()
    if transport == "http":  # not on the clock: those the hub closed while idle
        await load.call("http", action="reopen")
    hub0, load0, redis0 = hub.cpu(), load.cpu(), bench.redis_cpu()
    busy0, wall0 = infra.system_busy_seconds(), monotonic()
    sent = await _offer(bench, load, layout, transport, rate, plan.http_duration)
    hub_cpu, load_cpu, redis1 = hub.cpu() - hub0, load.cpu() - load0, bench.redis_cpu()
    busy, wall = infra.system_busy_seconds() - busy0, monotonic() - wall0
    redis_cpu = None if redis0 is None or redis1 is None else redis1 - redis0
    results, sent_t, reply_t = sent["result"], sent["sent_t"], sent["reply_t"]
    ok = [i for i, r in enumerate(results) if r > 0]
    errors: dict[str, int] = {}
    for r in results:
        if r < 0:
            errors[str(-r)] = errors.get(str(-r), 0) + 1
    span = max((reply_t[i] for i in ok), default=0.0) - sent_t[0] if ok else 0.0
    run = ApiRun(
        label=label,
        transport=transport,
        mode=mode,
        round=round_no + 1,
        connections=plan.http_connections,
        offered_per_s=rate,
        duration_s=plan.http_duration,
        sent=len(sent_t),
        shed=sent["shed"],
        ok=len(ok),
        errors=errors,
        http_statuses=sent.get("statuses"),
        unanswered=sent["unanswered"],
        req_per_s=round(len(ok) / span, 1) if span > 0 else None,
        latency_ms=summary_ms(reply_t[i] - sent_t[i] for i in ok),
        hub_cpu_s=round(hub_cpu, 3),
        hub_cpu_util=round(hub_cpu / span, 3) if span > 0 else None,
        hub_cpu_us_per_request=round(hub_cpu / len(ok) * 1e6, 1) if ok else None,
        load_cpu_us_per_request=round(load_cpu / len(ok) * 1e6, 1) if ok else None,
        redis_cpu_s=None if redis_cpu is None else round(redis_cpu, 3),
        measured_wall_s=round(wall, 3),
        waited_for_quiet_s=waited,
        other_cpu_s=round(max(0.0, busy - hub_cpu - load_cpu - (redis_cpu or 0.0)), 3),
        machine_cpu_util=round(busy / wall / (os.cpu_count() or 1), 3),
    )
    bench.progress.done(
        f"{run.req_per_s} req/s, p50/p99 {run.latency_ms.p50}/{run.latency_ms.p99} ms, "
        f"hub {run.hub_cpu_us_per_request} us/request"
    )
    return run


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def _summary(runs: list[ApiRun], transport: str, mode: str) -> ApiSummary:
    mine = [r for r in runs if r.transport == transport and r.mode == mode]
    cpu = [r.hub_cpu_us_per_request for r in mine]
    return ApiSummary(
        transport=transport,
        mode=mode,
        rounds=len(mine),
        req_per_s=_median([r.req_per_s for r in mine]),
        latency_p50_ms=_median([r.latency_ms.p50 for r in mine]),
        latency_p99_ms=_median([r.latency_ms.p99 for r in mine]),
        hub_cpu_us_per_request=_median(cpu),
        hub_cpu_us_per_request_rounds=cpu,
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


async def http(bench: Bench) -> HttpApi:
    plan = bench.plan
    rooms, members = plan.http_config
    n = plan.http_connections
    bench.progress.phase("http api: setup")
    (hub,) = await bench.start_hubs(1)
    http_port = hub.http_port()
    layout = bench.layout("http", rooms, members)
    await bench.populate(hub, layout)
    (load,) = bench.spawn(1, "load-http-")
    senders = [(HOST, hub.port, f"bench-sender{c}", True) for c in range(n)]
    await bench.connect([load], [senders], what="WebSocket senders")
    token = mint_token(bench.secret, "bench-http", server=True)
    await load.call(
        "http", action="connect", host=HOST, port=http_port, key=bench.app, token=token, count=n
    )
    bench.progress.done(f"{n} WebSocket and {n} HTTP connections to {hub.name}")
    for transport in TRANSPORTS:  # warm-up: first-use costs on neither side's figures
        await _offer(bench, load, layout, transport, None, min(1.0, plan.http_duration))
    runs: list[ApiRun] = []
    for round_no in range(plan.http_rounds):
        order = TRANSPORTS if round_no % 2 == 0 else TRANSPORTS[::-1]
        for transport in order:
            for rate in (None, float(plan.http_rate)):
                runs.append(await _measure(bench, hub, load, layout, transport, rate, round_no))
    await bench.teardown()
    summary = [_summary(runs, t, m) for t in TRANSPORTS for m in ("max", "paced")]
    cpu = {(s.transport, s.mode): s.hub_cpu_us_per_request for s in summary}
    ratio = _ratio(cpu["http", "max"], cpu["websocket", "max"])
    return HttpApi(
        rooms=rooms,
        members_per_room=members,
        connections=n,
        runs=runs,
        summary=summary,
        http_req_per_s=next(s.req_per_s for s in summary if s.transport == "http"),
        cpu_ratio=ratio,
        cpu_ratio_paced=_ratio(cpu["http", "paced"], cpu["websocket", "paced"]),
        within_2x=None if ratio is None else ratio <= 2,
    )
