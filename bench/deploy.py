"""Two scenarios about how a node is deployed rather than what it does per message.

`workers`: the 10 x 100 closed loop against one node (`--workers 1`), then against a
supervisor of 2 workers on one port (`--workers 2`: the members' and senders' connections
spread over the workers by the kernel, SO_REUSEPORT). Hub CPU is the sum over the
supervisor's processes, from /proc.

`metrics`: the 10 x 100 and 1 x 1,000 closed loops on a node with `ROOMHUB_METRICS=false` and
one with `true`, both up at once on their own rooms and connections, measured alternately
(off then on, then on then off, ...) so the two see the same machine: hub µs per delivery
each and the ratio of the medians (target <= 1.03).
"""

from __future__ import annotations

import statistics
from typing import cast

from . import infra
from .harness import Bench
from .measure import Todo, measure
from .results import MetricsConfig, MetricsCost, Run, Workers


def _window(bench: Bench, members: int) -> int:
    return bench.plan.window if members < 1000 else bench.plan.fanout_window


async def _start(bench: Bench, workers: int, env: dict[str, str] | None = None) -> infra.HubProcess:
    hub = infra.HubProcess(
        bench.redis_url,
        bench.app,
        bench.secret,
        log_dir=bench.log_dir,
        name=f"hub{len(bench.hubs)}-{bench.tag}",
        env=env,
        workers=workers,
    )
    bench.hubs.append(hub)  # stopped by bench.teardown
    await hub.wait_ready()
    return hub


async def workers(bench: Bench) -> Workers:
    plan = bench.plan
    rooms, members = plan.workers_config
    runs: list[Run] = []
    per_process: list[list[float]] = []
    for count in plan.workers_counts:
        label = f"workers {count}x {rooms}x{members}"
        bench.progress.phase(f"{label}: setup")
        hub = await _start(bench, count)
        layout = bench.layout(f"w{count}", rooms, members)
        sender, receivers = await bench.prepare([hub], layout, label)
        bench.progress.done(f"{rooms} rooms x {members} members connected to {count} worker(s)")
        bench.progress.phase(f"{label} @max")
        before = hub.cpus()
        todo = Todo(f"{label} @max", None, plan.run_duration, _window(bench, members))
        run = await measure(bench, [hub], sender, receivers, layout, todo)
        after = hub.cpus()
        spent = sorted((after[pid] - before.get(pid, 0.0) for pid in after), reverse=True)
        per_process.append([round(s, 3) for s in spent])
        bench.progress.done(
            f"{run.ops_per_s} ops/s, {run.deliveries_per_s} deliveries/s, hub "
            f"{run.hub_cpu_us_per_delivery} us/delivery, CPU by process {per_process[-1]}"
        )
        runs.append(run)
        await bench.teardown()
    first, last = runs[0], runs[-1]
    return Workers(
        workers=list(plan.workers_counts),
        runs=runs,
        hub_process_cpu_s=per_process,
        ops_speedup=_ratio(last.ops_per_s, first.ops_per_s),
        deliveries_speedup=_ratio(last.deliveries_per_s, first.deliveries_per_s),
        cpu_per_delivery_ratio=_ratio(last.hub_cpu_us_per_delivery, first.hub_cpu_us_per_delivery),
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


async def metrics(bench: Bench) -> MetricsCost:
    plan = bench.plan
    hubs = {
        on: await _start(bench, 1, env={"ROOMHUB_METRICS": "true" if on else "false"})
        for on in (False, True)
    }
    runs: list[Run] = []
    configs: list[MetricsConfig] = []
    for rooms, members in plan.metrics_configs:
        name = f"{rooms}x{members}"
        prepared = {}
        for on, hub in hubs.items():
            label = f"metrics {name} {'on' if on else 'off'}"
            bench.progress.phase(f"{label}: setup")
            layout = bench.layout(f"m{name}{int(on)}", rooms, members)
            prepared[on] = (layout, *await bench.prepare([hub], layout, label))
            bench.progress.done(f"{rooms} rooms x {members} members connected")
        cost: dict[bool, list[float | None]] = {False: [], True: []}
        for round_no in range(plan.metrics_rounds):
            order = (False, True) if round_no % 2 == 0 else (True, False)
            for on in order:
                layout, sender, receivers = prepared[on]
                label = f"metrics {name} @max metrics={'on' if on else 'off'}"
                bench.progress.phase(f"{label} (round {round_no + 1})")
                todo = Todo(label, None, plan.run_duration, _window(bench, members))
                run = await measure(bench, [hubs[on]], sender, receivers, layout, todo)
                bench.progress.done(
                    f"{run.deliveries_per_s} deliveries/s, hub {run.hub_cpu_us_per_delivery} "
                    "us/delivery"
                )
                runs.append(run)
                cost[on].append(run.hub_cpu_us_per_delivery)
        for _, sender, receivers in prepared.values():
            for proc in [sender, *receivers]:
                await proc.call("disconnect")
        # (a run that delivered nothing has no figure: the scenario fails here, as it should)
        ratio = statistics.median(cast(list[float], cost[True])) / statistics.median(
            cast(list[float], cost[False])
        )
        configs.append(
            MetricsConfig(
                rooms=rooms,
                members_per_room=members,
                hub_us_per_delivery_off=cost[False],
                hub_us_per_delivery_on=cost[True],
                median_ratio=round(ratio, 3),
                within_3pct=ratio <= 1.03,
            )
        )
    await bench.teardown()
    return MetricsCost(runs=runs, configs=configs)
