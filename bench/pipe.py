"""The one pipe protocol between the orchestrator and a load process.

Over a `multiprocessing` pipe (pickled tuples):

- the orchestrator sends a request `(command, args)`: a command name and its keyword
  arguments (`Worker.cmd_<command>` in the load process);
- the load process answers each request with exactly one final message, `("ok", result)` or
  `("error", traceback text)`, and may send any number of `("progress", info)` before it;
- `close` is the last request: answered `ok`, then the load process exits (a closed pipe counts
  as `close` too).

A request is answered before the next one is read, so the orchestrator has at most one
request in flight per load process (`LoadProcess` holds a lock around `call`). Both ends read
the pipe without blocking their event loop (`recv`). Nothing here is on a measured path: a run
is one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

OK, ERROR, PROGRESS = "ok", "error", "progress"
CLOSE = "close"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def recv(pipe: Connection) -> Any:
    """The next message, waiting in the event loop (EOFError once the other end is gone)."""
    loop = asyncio.get_running_loop()
    fd = pipe.fileno()
    while not pipe.poll():
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _wake, ready)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
    os.set_blocking(fd, True)  # uvloop's add_reader made it non-blocking
    return pipe.recv()


# --- the orchestrator's end ---------------------------------------------------------------------


async def call(
    pipe: Connection,
    name: str,
    command: str,
    args: dict[str, Any],
    on_progress: Callable[[Any], None] | None = None,
) -> Any:
    """Send one request to the load process `name` and return its result; its progress
    messages go to `on_progress`. Raises RuntimeError if it failed or died."""
    pipe.send((command, args))
    while True:
        try:
            kind, payload = await recv(pipe)
        except EOFError:
            raise RuntimeError(f"load process {name} died") from None
        if kind == PROGRESS:
            if on_progress is not None:
                on_progress(payload)
            continue
        if kind == ERROR:
            raise RuntimeError(f"load process {name} failed:\n{payload}")
        return payload


# --- the load process's end ---------------------------------------------------------------------


def progress(pipe: Connection, info: Any) -> None:
    pipe.send((PROGRESS, info))


async def serve(pipe: Connection, handle: Callable[[str, dict[str, Any]], Awaitable[Any]]) -> None:
    """Answer requests with `handle(command, args)` until `close` (or the pipe closes)."""
    while True:
        try:
            command, args = await recv(pipe)
        except EOFError:
            command, args = CLOSE, {}
        try:
            result = await handle(command, args)
        except Exception:
            pipe.send((ERROR, traceback.format_exc()))
            continue
        if command == CLOSE:
            with contextlib.suppress(OSError):  # the orchestrator may be gone already
                pipe.send((OK, result))
            return
        pipe.send((OK, result))
