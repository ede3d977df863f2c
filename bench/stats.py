"""Percentiles and the figures of one measured run."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Latency:
    """Percentiles of durations, in milliseconds (None when there were none)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summary_ms(values_s: Iterable[float]) -> Latency:
    """count, p50/p90/p99/max and mean of durations given in seconds, in milliseconds."""
    values = sorted(v * 1000 for v in values_s)
    return Latency(
        count=len(values),
        p50=_ms(percentile(values, 50)),
        p90=_ms(percentile(values, 90)),
        p99=_ms(percentile(values, 99)),
        max=_ms(values[-1]) if values else None,
        mean=_ms(sum(values) / len(values)) if values else None,
    )


def merge_recs(
    parts: list[dict[str, dict[int, tuple[int, float]]]],
) -> dict[str, dict[int, tuple[int, float]]]:
    """Receiver records of several load processes: counts add up, the last time wins."""
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, dict[int, tuple[int, float]]] = {}
    for part in parts:
        for room, seqs in part.items():
            into = merged.setdefault(room, {})
            for seq, (count, last) in seqs.items():
                prev = into.get(seq)
                into[seq] = (count, last) if prev is None else (prev[0] + count, max(prev[1], last))
    return merged
