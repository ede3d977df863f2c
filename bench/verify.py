"""The resilience scenario's comparison, pure: the writer's attempts, the room's history and
what each member received (the test suite runs it on made-up records)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .results import Exactness, MemberCheck, Tally, Verdict
from .worker_res import LOST, TIMEOUT


def codes(outcomes: Iterable[int]) -> dict[str, int]:
    """How many of each failed outcome (an error code, or connection_lost / timeout)."""
    names = {LOST: "connection_lost", TIMEOUT: "timeout"}
    counts: dict[str, int] = {}
    for r in outcomes:
        name = names.get(r, str(-r))
        counts[name] = counts.get(name, 0) + 1
    return counts


def _member(
    m: dict[str, Any], start_seq: int, hist_seqs: list[int], acked_seqs: list[int]
) -> MemberCheck:
    expected = set(range(start_seq + 1, (hist_seqs[-1] if hist_seqs else start_seq) + 1))
    seqs = [s for s, _, _ in m["delivered"] if s > start_seq]
    unique = set(seqs)
    wire = [s for s, _ in m["wire"] if s > start_seq]
    return MemberCheck(
        user=m["user"],
        received=len(seqs),
        duplicates=len(seqs) - len(unique),
        gaps=len(expected - unique),
        not_in_history=len(unique - set(hist_seqs)),
        in_order=all(a < b for a, b in zip(seqs, seqs[1:])),
        wire_duplicates_dropped_by_client=len(wire) - len(set(wire)),
        equals_history=seqs == hist_seqs,
        equals_acknowledged=seqs == acked_seqs,
        resyncs=len(m["resyncs"]),
    )


def verify(
    attempts: dict[str, Any],
    history: list[tuple[int, str, Any]],
    members: list[dict[str, Any]],
    start_seq: int,
) -> Verdict:
    """Compare the writer's attempts (`value`, `result` of each), the room's history after
    `start_seq` ((seq, type, score) of each message), and each member's records."""
    values, results = attempts["value"], attempts["result"]
    acked = {values[i]: r for i, r in enumerate(results) if r > 0}
    failed = [i for i, r in enumerate(results) if r <= 0]
    hist = [h for h in history if h[0] > start_seq]
    hist_seqs = [seq for seq, _, _ in hist]
    last = hist_seqs[-1] if hist_seqs else start_seq
    seqs_of: dict[Any, list[int]] = {}
    for seq, kind, score in hist:
        if kind == "updateMember":
            seqs_of.setdefault(score, []).append(seq)
    known = set(values)
    acked_seqs = sorted(acked.values())
    per_member = [_member(m, start_seq, hist_seqs, acked_seqs) for m in members]
    in_history = [i for i in failed if values[i] in seqs_of]
    once = sum(1 for v, s in acked.items() if seqs_of.get(v) == [s])
    return Verdict(
        tally=Tally(
            attempts=len(results),
            acknowledged=len(acked),
            failed=len(failed),
            failed_by_code=codes(results[i] for i in failed),
        ),
        exactness=Exactness(
            history_messages=len(hist),
            history_gapless=hist_seqs == list(range(start_seq + 1, last + 1)),
            acknowledged_in_history_once=once,
            acknowledged_missing_from_history=sum(1 for v in acked if v not in seqs_of),
            acknowledged_repeated_in_history=sum(1 for v in acked if len(seqs_of.get(v, ())) > 1),
            failed_but_in_history=len(in_history),
            failed_but_in_history_codes=codes(results[i] for i in in_history),
            history_not_from_writer=sum(
                1 for _, kind, score in hist if kind != "updateMember" or score not in known
            ),
            per_member=per_member,
            every_ack_in_history_exactly_once=once == len(acked),
            every_member_got_history_exactly_once_in_order=bool(members)
            and all(m.equals_history for m in per_member),
            members_missing_messages=sum(1 for m in per_member if m.gaps),
            delivered_equals_acknowledged=bool(members)
            and all(m.equals_acknowledged for m in per_member),
        ),
        failed_but_in_history_attempts=in_history,
    )
