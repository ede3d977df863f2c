"""The NetEase CheckSum (server/dialects/netease.py, study §3.2): the study's two computed
vectors, either hex case, and the 5-minute CurTime window both ways; and the idempotency keys
an X-custom-traceid becomes."""

from __future__ import annotations

import pytest

from roomhub.protocol import ops
from roomhub.protocol.limits import IDEMPOTENCY_KEY_PATTERN
from roomhub.server.dialects.netease import (
    WINDOW_S,
    Call,
    checksum,
    checksum_matches,
    nonce_ttl_ms,
    trace_base,
    window_error,
)
from roomhub.server.service import Caller

VECTORS = [
    ("abcdef123456", "1", "1451207708", "ebbdabfd10a4a45b8ebb702cdfec4510f9cba4fe"),
    ("0123456789ab", "8dfdb33d2840", "1700000000", "3d1ebcdabe520dc0bb2a352a85e697100cd7b4b0"),
]


@pytest.mark.parametrize(("secret", "nonce", "cur_time", "expected"), VECTORS)
def test_the_studys_vectors(secret: str, nonce: str, cur_time: str, expected: str) -> None:
    assert checksum(secret, nonce, cur_time) == expected
    assert checksum_matches(secret, nonce, cur_time, expected)
    assert checksum_matches(secret, nonce, cur_time, expected.upper())


@pytest.mark.parametrize(("secret", "nonce", "cur_time", "expected"), VECTORS)
def test_any_other_input_does_not_match(
    secret: str, nonce: str, cur_time: str, expected: str
) -> None:
    assert not checksum_matches(secret + "x", nonce, cur_time, expected)
    assert not checksum_matches(secret, nonce + "x", cur_time, expected)
    assert not checksum_matches(secret, nonce, str(int(cur_time) + 1), expected)
    assert not checksum_matches(secret, nonce, cur_time, expected[:-1])
    assert not checksum_matches(secret, nonce, cur_time, "")
    assert not checksum_matches(secret, nonce, cur_time, "é" * 40)  # not hex, not ASCII


def test_the_window_is_five_minutes_either_way() -> None:
    now = 1_700_000_000.0
    for skew in (0, 1, -1, WINDOW_S, -WINDOW_S):
        assert window_error(str(int(now) + skew), now) is None, skew
    for skew in (WINDOW_S + 1, -(WINDOW_S + 1), 86_400, -86_400):
        assert "more than 300 s" in (window_error(str(int(now) + skew), now) or ""), skew


@pytest.mark.parametrize("cur_time", ["", "abc", "-1", "1.5", " 1700000000", "１７００"])
def test_cur_time_must_be_decimal_seconds(cur_time: str) -> None:
    assert "Unix time in seconds" in (window_error(cur_time, 1_700_000_000.0) or "")


def test_milliseconds_are_named() -> None:
    error = window_error("1700000000000", 1_700_000_000.0)
    assert error is not None and "not milliseconds" in error


def test_a_nonce_is_kept_until_its_cur_time_leaves_the_window() -> None:
    now = 1_700_000_000.0
    # a CurTime 5 minutes ahead stays replayable for 10 minutes: kept at least that long
    assert nonce_ttl_ms(int(now) + WINDOW_S, now) >= 2 * WINDOW_S * 1000
    assert nonce_ttl_ms(int(now) - WINDOW_S, now) > 0


def test_a_traceid_makes_valid_keys_per_call_and_op() -> None:
    body = {"room_id": 1, "member_role": 0}
    base = trace_base("t" * 500 + "é", "POST", "/nimserver/im/v2/room_members/a", "", body)
    call = Call(Caller("app", "@netease", True), "POST /x", {}, {}, body, base)
    for op in ops.OPS:
        key = call.key(op)
        assert key is not None and IDEMPOTENCY_KEY_PATTERN.fullmatch(key), key
    # the /nimserver prefix and the body's layout do not matter; the call and traceid do
    reordered = {"member_role": 0, "room_id": 1}
    assert trace_base("t" * 500 + "é", "POST", "/im/v2/room_members/a", "", reordered) == base
    assert trace_base("t", "POST", "/im/v2/room_members/b", "", body) != trace_base(
        "t", "POST", "/im/v2/room_members/a", "", body
    )
    assert trace_base("t", "POST", "/im/v2/room_members/a", "", {"room_id": 2}) != trace_base(
        "t", "POST", "/im/v2/room_members/a", "", body
    )
    assert trace_base("u", "POST", "/im/v2/room_members/a", "", body) != trace_base(
        "t", "POST", "/im/v2/room_members/a", "", body
    )
