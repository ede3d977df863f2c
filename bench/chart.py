"""The chart of a bench run: latency percentiles against offered load (the latency sweep of
the `throughput` scenario), as a PNG, when matplotlib is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chart(report: dict[str, Any], path: Path) -> str | None:
    """Latency percentiles against offered load (the sweep) as a PNG; returns a note instead
    when matplotlib is missing or there is no sweep."""
    sweep = (report["results"].get("throughput") or {}).get("sweep") or []
    if not sweep:
        return "no latency sweep in this run (the throughput scenario draws it)"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "matplotlib is not installed: no PNG chart "
            "(pip install 'roomhub[bench]' or pip install matplotlib)"
        )
    xs, labels = [], []
    for run in sweep:
        if run["offered_ops_per_s"] is None:
            x = run["ops_per_s"] or 0
            labels.append(f"max\n({x:,.0f})")
        else:
            x = run["offered_ops_per_s"]
            labels.append(f"{x:,.0f}\n({run['ops_per_s'] or 0:,.0f})")
        xs.append(x)
    positions = list(range(len(xs)))  # categories: the max point may land near a paced one
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    series = [
        ("ack_latency_ms", "p50", "ack p50", "tab:blue", "--"),
        ("ack_latency_ms", "p99", "ack p99", "tab:blue", "-"),
        ("delivery_latency_ms", "p50", "delivery p50 (last member)", "tab:orange", "--"),
        ("delivery_latency_ms", "p99", "delivery p99 (last member)", "tab:orange", "-"),
    ]
    for key, pct, label, color, style in series:
        ys = [run[key][pct] for run in sweep]
        ax.plot(positions, ys, style, marker="o", color=color, label=label)
    first = sweep[0]
    noise = sum(r.get("other_cpu_s") or 0 for r in sweep) / sum(
        r.get("measured_wall_s") or 1 for r in sweep
    )
    ax.set_yscale("log")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels)
    ax.set_xlabel("offered member.update ops/s (achieved ops/s); max: closed loop")
    ax.set_ylabel("latency (ms, log scale)")
    m = report["machine"]
    ax.set_title(
        f"roomhub, {first['rooms']} rooms x {first['members_per_room']} members, "
        f"1 node: latency vs offered load\n{m['cpu_model']}, {m['cores']} cores, "
        f"{m['date'][:10]}; other programs used {noise:.2f} cores meanwhile",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None
