"""The one retry-delay policy of roomhub: exponential backoff, with full jitter by default.

Pure (no asyncio, no clock): it only says how long to wait, so the client, the pub/sub link
and the bench share one policy and each keeps its own way of waiting. The n-th delay since
the last `reset()` (n = 0, 1, 2 …) is uniform in `[0, min(cap, base * 2**n))`, or exactly
`min(cap, base * 2**n)` with `jitter=False`.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

__all__ = ["ExponentialBackoff"]

# 2.0 ** 64 is far above any cap, and stops the float overflowing however long one retries.
_MAX_EXPONENT = 64


class ExponentialBackoff:
    """Delays for consecutive failed attempts; `reset()` after a success.

    `random` (a float in [0, 1)) is replaceable, for tests. One instance per retrying thing:
    it counts that thing's failures.
    """

    __slots__ = ("base", "cap", "jitter", "random", "failures")

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 5.0,
        *,
        jitter: bool = True,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not base > 0 or not cap >= base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.random = random
        self.failures = 0  # delays handed out since the last reset()

    def ceiling(self, failures: int) -> float:
        """The largest delay after `failures` failures (0-based: the first delay's is base)."""
        return min(self.cap, self.base * 2.0 ** min(failures, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        ceiling = self.ceiling(self.failures)
        self.failures += 1
        return self.random() * ceiling if self.jitter else ceiling

    def reset(self) -> None:
        """After a success: the next delay is drawn from `[0, base)` again."""
        self.failures = 0
