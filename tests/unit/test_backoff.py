"""The shared backoff policy (protocol/backoff.py) and the client's async wrapper around it."""

from __future__ import annotations

import random

import pytest

from roomhub.clients import Backoff
from roomhub.protocol.backoff import ExponentialBackoff


def test_the_ceiling_doubles_from_base_up_to_cap() -> None:
    top = ExponentialBackoff(0.1, 5.0, random=lambda: 1.0)
    delays = [round(top.next_delay(), 6) for _ in range(9)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert top.failures == 9


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    draws = iter([0.0, 0.5, 0.25, 0.999, 0.5])
    backoff = ExponentialBackoff(0.5, 2.0, random=lambda: next(draws))
    assert [backoff.next_delay() for _ in range(5)] == [0.0, 0.5, 0.5, 0.999 * 2.0, 1.0]
    seeded = ExponentialBackoff(0.1, 5.0, random=random.Random(3).random)
    delays = [seeded.next_delay() for _ in range(50)]
    assert max(delays[10:]) < 5.0 and len(set(delays)) == 50  # capped, never a fixed schedule


def test_without_jitter_the_delay_is_the_ceiling() -> None:
    fixed = ExponentialBackoff(0.05, 1.0, jitter=False)
    assert [fixed.next_delay() for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_reset_starts_over() -> None:
    backoff = ExponentialBackoff(0.1, 5.0, random=lambda: 1.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == pytest.approx(0.1)


def test_no_overflow_however_long_it_retries() -> None:
    backoff = ExponentialBackoff(0.1, 5.0)
    assert backoff.ceiling(10_000) == 5.0
    backoff.failures = 10_000
    assert 0 <= backoff.next_delay() < 5.0


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1), (float("nan"), 1)])
def test_bad_bounds_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(base, cap)


async def test_the_client_backoff_sleeps_the_policys_delay() -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    backoff = Backoff(0.1, 1.0, random=lambda: 1.0, sleep=sleep)
    assert isinstance(backoff, ExponentialBackoff)
    for _ in range(3):
        await backoff.wait()
    assert [round(d, 6) for d in slept] == [0.1, 0.2, 0.4]
    assert backoff.attempt == backoff.failures == 3
    backoff.reset()
    await backoff.wait()
    assert slept[-1] == pytest.approx(0.1)
