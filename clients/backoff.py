"""The client's reconnect backoff: the shared policy of `roomhub.protocol.backoff` (pure
delays) plus the one thing the protocol layer may not do, waiting."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from roomhub.protocol.backoff import ExponentialBackoff

__all__ = ["Backoff"]


class Backoff(ExponentialBackoff):
    """Exponential backoff with full jitter: the n-th wait (n = 0, 1, 2 … since the last
    `reset()`) is uniform in `[0, min(cap, base * 2**n))`.

    `random` (returning a float in [0, 1)) and `sleep` are replaceable, for tests. One instance
    per client: it counts that client's attempts.
    """

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 5.0,
        *,
        random: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        super().__init__(base, cap, random=random)
        self.sleep = sleep

    @property
    def attempt(self) -> int:
        """Failed attempts since the last reset() (the policy's `failures`)."""
        return self.failures

    @attempt.setter
    def attempt(self, value: int) -> None:
        self.failures = value

    async def wait(self) -> None:
        await self.sleep(self.next_delay())
