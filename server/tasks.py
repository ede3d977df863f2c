"""Background tasks of one component (fan-out, pub/sub, the script pipeline)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


class Background:
    """Tasks a component starts and does not await: kept referenced (the event loop holds
    only weak references to tasks), a failure logged as `what` failed, and all of them
    cancelled and awaited together when the component closes, so none outlives it."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("%s failed", self._what, exc_info=task.exception())

    async def close(self, *more: asyncio.Task[Any], timeout: float | None = None) -> None:
        """Cancel every task (and `more`), and wait for them, up to `timeout` seconds."""
        tasks = [*self._tasks, *more]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
