"""`python -m roomhub.bench SCENARIO... [--quick] [--out DIR] [--redis URL]`

Starts a redis-server (unless --redis is given) and hub nodes as subprocesses, drives real
WebSocket clients from separate load processes over 127.0.0.1, and writes a summary table
(stdout), a JSON file and a PNG chart (--out). Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import monotonic
from typing import Any

from . import chart, deploy, httpapi, infra, machine, probes, report, resilience, scenarios
from .harness import Bench
from .plan import Plan, Progress
from .results import to_json

# The registry: every scenario, in the order `all` runs them. Nothing else imports a scenario.
SCENARIOS: dict[str, Callable[[Bench], Awaitable[Any]]] = {
    "ceiling": scenarios.ceiling,
    "throughput": scenarios.throughput,
    "fanout": scenarios.fanout,
    "idempotency": probes.idempotency,
    "connections": scenarios.connections,
    "presence": scenarios.presence,
    "churn": scenarios.churn,
    "nodes": scenarios.nodes,
    "resilience": resilience.run,
    "hostile": probes.hostile,
    "workers": deploy.workers,
    "metrics": deploy.metrics,
    "http": httpapi.http,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m roomhub.bench",
        description="Load-test roomhub: real redis-server, real hub processes, real WebSocket "
        "clients on loopback.",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)}, or all (the default)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny configuration (seconds, a few members), for tests",
    )
    parser.add_argument(
        "--out",
        default="bench/results",
        metavar="DIR",
        help="where the JSON and PNG go (default: bench/results)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="use this Redis instead of starting a redis-server (the bench "
        "writes under a fresh app key and deletes those keys at the end)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on a shared machine: before each measured run, wait up to SECONDS for other "
        "programs to use less than 0.15 CPU (default 0: do not wait)",
    )
    ns = parser.parse_args(argv)
    chosen = ns.scenarios or ["all"]
    unknown = [s for s in chosen if s not in (*SCENARIOS, "all")]
    if unknown:
        parser.error(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)} or all"
        )
    ns.scenarios = (
        list(SCENARIOS) if "all" in chosen else [s for s in SCENARIOS if s in chosen]
    )  # canonical order
    return ns


async def run(bench: Bench, scenarios: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in scenarios:
        try:
            results[name] = to_json(await SCENARIOS[name](bench))
        except Exception:
            bench.progress.note(f"scenario {name} failed:\n{traceback.format_exc()}")
            results[name] = {"error": traceback.format_exc()}
            await bench.teardown()
    return results


def background_load(seconds: float = 1.0) -> float:
    """Share of the machine's CPU that other programs use right now (before we start)."""
    busy0, t0 = infra.system_busy_seconds(), monotonic()
    time.sleep(seconds)
    busy1, t1 = infra.system_busy_seconds(), monotonic()
    return round((busy1 - busy0) / (t1 - t0) / (os.cpu_count() or 1), 3)


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    log_dir.mkdir(exist_ok=True)
    plan = Plan.quick() if ns.quick else Plan()
    infra.raise_nofile()  # the hubs and load processes inherit it
    progress = Progress()
    bench = Bench(plan, ns.redis, str(log_dir), progress)
    bench.quiet_wait = ns.wait_quiet
    # SIGTERM: unwind like Ctrl-C, so everything started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = datetime.datetime.now(datetime.UTC)
    t0 = monotonic()
    try:
        bench.start_redis()
        about = machine.machine(bench.redis_url)
        about["background_cpu_util"] = background_load()
        if about["background_cpu_util"] > 0.1:
            progress.note(
                f"warning: other programs keep {about['background_cpu_util']:.0%} "
                "of the machine busy; the figures will be lower and noisier"
            )
        try:
            import uvloop
        except ImportError:
            results = asyncio.run(run(bench, ns.scenarios))
        else:
            results = uvloop.run(run(bench, ns.scenarios))
    finally:
        bench.close()
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    data: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "tool": "roomhub.bench",
        "command": " ".join(
            ["python -m roomhub.bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        "quick": ns.quick,
        "scenarios": ns.scenarios,
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_s": round(monotonic() - t0, 1),
        "machine": about,
        "redis": {
            "started_by_bench": ns.redis is None,
            "url": None if ns.redis is None else "(given with --redis)",
        },
        "plan": {k: v for k, v in vars(plan).items()},
        "results": results,
        "comparison": report.COMPARISON,
    }
    data["floors"] = report.floors(results)
    png = out / f"roomhub-bench-{stamp}.png"
    note = chart.chart(data, png)
    data["chart"] = None if note else str(png)
    data["chart_note"] = note
    path = out / f"roomhub-bench-{stamp}.json"
    report.write_json(data, path)
    shutil.copyfile(path, out / "latest.json")
    if note is None:
        shutil.copyfile(png, out / "latest.png")
    if not any(log_dir.iterdir()):
        log_dir.rmdir()
    print(report.table(data))
    print()
    if note:
        print(f"chart: skipped: {note}")
    else:
        print(f"chart: {png}")
    print(f"results: {path}")
    # A scenario that raised, or one whose correctness checks failed (`failed_checks`: e.g.
    # presence not exact after the churn): a figure of a wrong result is no figure.
    failed = [
        name
        for name, section in results.items()
        if isinstance(section, dict) and ("error" in section or section.get("failed_checks"))
    ]
    return 1 if failed else 0
