"""Rate limits of docs/protocol.md §8: at most N admissions in any sliding one-second window.

The per-app ceiling lives in Redis (lua/rate_limit.lua) so all nodes together admit N; the
per-connection limit is local to the connection's node, so it is kept here, in memory.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW = 1.0


class SlidingWindow:
    """An exact sliding-window log: the times of the admissions of the last second."""

    __slots__ = ("_admitted", "ceiling", "clock")

    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = ceiling
        self.clock = clock
        self._admitted: deque[float] = deque()

    def admit(self) -> int:
        """0 if admitted (and recorded), else milliseconds until a slot frees up."""
        now = self.clock()
        admitted = self._admitted
        while admitted and admitted[0] <= now - WINDOW:
            admitted.popleft()
        if len(admitted) < self.ceiling:
            admitted.append(now)
            return 0
        return max(1, math.ceil((admitted[0] + WINDOW - now) * 1000))

    def refund(self) -> None:
        """Undo the latest admission (the app ceiling rejected the op after all)."""
        if self._admitted:
            self._admitted.pop()
