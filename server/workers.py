"""`roomhub serve --workers N`: a supervisor of N worker processes, each a full node.

The workers are spawned (multiprocessing "spawn": a fresh interpreter, no inherited event loop;
the settings travel pickled over the spawn pipe, so no secret is on a command line or in the
environment). Each is the node `roomhub serve` runs, with the same settings but `workers=1`,
`reuse_port=True` and its own node id (`<node_id>-w<i>`), on the same Redis: the kernel spreads
new connections over the workers' listening sockets (SO_REUSEPORT, on the WebSocket and the
HTTP port), and fan-out between them goes through Redis pub/sub as between any nodes.

The supervisor itself runs no event loop and serves nothing. It
- starts the workers and logs one line per start, exit and restart;
- restarts a worker that exits while not asked to (a crash, a SIGKILL), after a delay from
  `ExponentialBackoff` (0.5 s doubling to 30 s; back to 0.5 s once a worker ran 60 s);
- exits 2 if a worker cannot start at all (it exited before it listened: the worker has printed
  why, e.g. Redis unreachable), after stopping the others;
- on SIGTERM or SIGINT sends SIGTERM to every worker (each drains as a single node does: clients
  closed with 1001, running ops finished), SIGKILLs what is left after 30 s or on a second
  signal, and exits when all have exited: 0 if every worker exited 0;
- points `PROMETHEUS_MULTIPROC_DIR` at a fresh temporary directory for its workers (removed at
  exit), so /metrics on the shared HTTP port, whichever worker answers, is the sum over all.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from roomhub.protocol.backoff import ExponentialBackoff

from .settings import Settings

log = logging.getLogger("roomhub.workers")

STOP_GRACE = 30.0  # seconds the workers have to drain after SIGTERM before SIGKILL
STABLE_AFTER = 60.0  # a worker that ran this long restarts after the shortest delay again
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run as workers (None: they can)."""
    n = settings.workers
    if settings.embedded:
        return (
            f"--workers {n} needs --redis: the embedded in-memory store lives in one process "
            "and cannot be shared by several"
        )
    ports = (("--port", settings.port), ("--http-port", settings.http_port))
    zero = [flag for flag, port in ports if port == 0]
    if zero:
        return (
            f"--workers {n} needs a fixed {' and '.join(zero)}: 0 (any free port) would give "
            "each worker a port of its own instead of one shared port"
        )
    return None


def worker_settings(settings: Settings, index: int) -> Settings:
    """The settings of worker `index` (1-based)."""
    return settings.model_copy(
        update={"workers": 1, "reuse_port": True, "node_id": f"{settings.node_id}-w{index}"}
    )


# --- a worker process -------------------------------------------------------------------------


def die_with_parent() -> None:
    """Linux: have the kernel send this (child) process SIGTERM when its parent dies, however
    it dies (PR_SET_PDEATHSIG). The bench's child processes use it too."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _die_with_parent(parent: int) -> None:
    """SIGTERM (a drain) when the supervisor dies; and if it is already gone, exit now."""
    die_with_parent()
    if os.getppid() != parent:
        sys.exit(1)


def worker_main(settings: Settings, ready: Connection, parent: int) -> None:
    """A worker: the node of `roomhub serve`; one byte on `ready` once it listens."""
    import asyncio

    from . import logs
    from .node import StartupError, serve_forever

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor forwards a Ctrl-C
    _die_with_parent(parent)
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    logging.getLogger("websockets.server").setLevel(logging.WARNING)

    async def node() -> None:
        listening = asyncio.Event()

        async def tell() -> None:
            await listening.wait()
            ready.send_bytes(b"1")

        told = asyncio.create_task(tell())
        try:
            await serve_forever(settings, listening)
        finally:
            told.cancel()

    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(node())
        else:
            uvloop.run(node())
    except StartupError as exc:
        print(f"roomhub: worker {settings.node_id} cannot start: {exc}", file=sys.stderr)
        sys.exit(2)


# --- the supervisor ---------------------------------------------------------------------------


@dataclass
class Slot:
    """One worker's place: the process now in it and its restart policy."""

    index: int
    settings: Settings
    backoff: ExponentialBackoff = field(
        default_factory=lambda: ExponentialBackoff(0.5, 30.0, jitter=False)
    )
    proc: Any = None  # multiprocessing.Process
    ready: Connection | None = None  # read end of the ready pipe, until it said so
    listened: bool = False  # this slot's worker has listened at least once
    started_at: float = 0.0
    restart_at: float | None = None  # when to start it again after an exit
    restarts: int = 0
    running: bool = False  # started, and its exit not handled yet

    @property
    def alive(self) -> bool:
        return self.running and self.proc.exitcode is None


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = multiprocessing.get_context("spawn")
        self.slots = [Slot(i, worker_settings(settings, i)) for i in range(1, settings.workers + 1)]
        self.stopping: float | None = None  # the monotonic time the stop began
        self.failed = False  # a worker could not start: exit 2
        self.signals: list[int] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self.metrics_dir = ""

    # processes --------------------------------------------------------------------------------

    def start(self, slot: Slot) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        slot.proc = self.ctx.Process(
            target=worker_main,
            args=(slot.settings, writer, os.getpid()),
            name=slot.settings.node_id,
        )
        slot.proc.start()
        slot.running = True
        writer.close()
        slot.ready, slot.started_at, slot.restart_at = reader, time.monotonic(), None
        again = f", restart {slot.restarts}" if slot.restarts else ""
        log.info(
            "worker %d (%s) started, pid %d%s",
            slot.index,
            slot.settings.node_id,
            slot.proc.pid,
            again,
        )

    def _exited(self, slot: Slot) -> None:
        slot.proc.join()
        slot.running = False
        code, pid = slot.proc.exitcode, slot.proc.pid
        self._close_ready(slot)
        self._forget_metrics(pid)
        what = f"worker {slot.index} (pid {pid}) {_describe_exit(code)}"
        if self.stopping is not None:
            log.info("%s", what)
            return
        if not slot.listened:
            log.error("%s before it listened; stopping the others", what)
            self.failed = True
            self.stop()
            return
        now = time.monotonic()
        if now - slot.started_at >= STABLE_AFTER:
            slot.backoff.reset()
        delay = slot.backoff.next_delay()
        slot.restart_at, slot.restarts = now + delay, slot.restarts + 1
        log.warning("%s; restarting it in %.1f s", what, delay)

    def _close_ready(self, slot: Slot) -> None:
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None

    def _heard(self, slot: Slot) -> None:
        assert slot.ready is not None
        try:
            slot.ready.recv_bytes()
        except (EOFError, OSError):
            pass  # it died first: its sentinel says so
        else:
            slot.listened = True
            if all(s.listened for s in self.slots) and slot.restarts == 0:
                log.info(
                    "all %d workers listening on ws://%s:%d/ws",
                    len(self.slots),
                    self.settings.host,
                    self.settings.port,
                )
        self._close_ready(slot)

    def _forget_metrics(self, pid: int) -> None:
        """A dead worker's live gauges leave the aggregate (its counters stay in the sums)."""
        with contextlib.suppress(Exception):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        if self.stopping is None:
            self.stopping = time.monotonic()
        for slot in self.slots:
            slot.restart_at = None
            if slot.alive:
                slot.proc.terminate()

    def kill(self) -> None:
        for slot in self.slots:
            if slot.alive:
                log.warning("worker %d (pid %d) did not stop: SIGKILL", slot.index, slot.proc.pid)
                slot.proc.kill()

    # the loop -------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals.append(signum)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    def _take_signals(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)
        while self.signals:
            signum = self.signals.pop(0)
            name = signal.Signals(signum).name
            if self.stopping is None:
                alive = sum(s.alive for s in self.slots)
                log.info("%s: stopping %d workers (they drain, then exit)", name, alive)
                self.stop()
            else:
                log.warning("%s again: killing the workers", name)
                self.kill()

    def _timeout(self) -> float | None:
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        if self.stopping is not None:
            due.append(self.stopping + STOP_GRACE)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _step(self) -> None:
        waits: dict[Any, tuple[str, Slot | None]] = {self._wake_r: ("signal", None)}
        for slot in self.slots:
            if slot.ready is not None:
                waits[slot.ready] = ("ready", slot)
            if slot.running:
                waits[slot.proc.sentinel] = ("exit", slot)
        fired = set(wait(list(waits), self._timeout()))
        for what in ("signal", "ready", "exit"):  # a worker that listened, then died
            for key in fired:
                kind, owner = waits[key]
                if kind != what:
                    continue
                if owner is None:
                    self._take_signals()
                elif kind == "ready":
                    self._heard(owner)
                else:
                    self._exited(owner)
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None and slot.restart_at <= now and self.stopping is None:
                self.start(slot)
        if self.stopping is not None and now >= self.stopping + STOP_GRACE:
            self.kill()

    def run(self) -> int:
        self.metrics_dir = tempfile.mkdtemp(prefix="roomhub-metrics-")
        previous_env = os.environ.get(METRICS_ENV)
        os.environ[METRICS_ENV] = self.metrics_dir  # the spawned workers inherit it
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        log.info(
            "supervising %d workers: ws port %d and HTTP port %d shared (SO_REUSEPORT), "
            "metrics aggregated in %s",
            len(self.slots),
            self.settings.port,
            self.settings.http_port,
            self.metrics_dir,
        )
        try:
            for slot in self.slots:
                self.start(slot)
            while any(s.running or s.restart_at is not None for s in self.slots):
                self._step()
        finally:
            self.stop()
            self.kill()
            for slot in self.slots:
                if slot.proc is not None:
                    slot.proc.join(5)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if previous_env is None:
                os.environ.pop(METRICS_ENV, None)
            else:
                os.environ[METRICS_ENV] = previous_env
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            self._wake_r.close()
            self._wake_w.close()
        if self.failed:
            return 2
        clean = all(s.proc is not None and s.proc.exitcode == 0 for s in self.slots)
        log.info("all workers exited%s", "" if clean else " (not all cleanly)")
        return 0 if clean else 1


def supervise(settings: Settings) -> int:
    """Run `settings.workers` workers until SIGTERM/SIGINT; the process's exit code."""
    return Supervisor(settings).run()
