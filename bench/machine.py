"""The machine a bench ran on, for the report: CPU, memory, OS, Python, Redis, versions, the
git commit being measured."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import resource
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def redis_info(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
        return {"redis_version": info.get("redis_version"), "redis_pid": info.get("process_id")}
    finally:
        client.close()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _git() -> str | None:
    """The commit of the roomhub checkout being measured (+ "-dirty"), if it is one."""
    where = str(Path(__file__).resolve().parent.parent)  # the checkout, when run from one

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        head = git("-C", where, "rev-parse", "--short", "HEAD")
        status = git("--no-optional-locks", "-C", where, "status", "--porcelain", "-uno")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if status else "")


def machine(redis_url: str) -> dict[str, Any]:
    info = redis_info(redis_url)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_bytes": _memory_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "redis_version": info["redis_version"],
        "roomhub_version": _version("roomhub"),
        "roomhub_git": _git(),
        "websockets_version": _version("websockets"),
        "uvloop_version": _version("uvloop"),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
