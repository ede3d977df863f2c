"""Percentiles and the figures of one measured run."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values_s: Iterable[float]) -> dict[str, Any]:
    """count, p50/p90/p99/max and mean of durations given in seconds, in milliseconds."""
    values = sorted(v * 1000 for v in values_s)
    out: dict[str, Any] = {"count": len(values)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99)):
        v = percentile(values, p)
        out[name] = None if v is None else round(v, 3)
    out["max"] = round(values[-1], 3) if values else None
    out["mean"] = round(sum(values) / len(values), 3) if values else None
    return out


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
