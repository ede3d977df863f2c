"""The two wire encodings (PROTOCOL.md §1) and the decoder's defences against hostile frames."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomhub.protocol import limits
from roomhub.protocol.codec import (
    SUBPROTOCOLS,
    Encoding,
    decode,
    encode,
    event_frame_from_json,
    to_json_value,
)
from roomhub.protocol.errors import ErrorCode, RoomError

MSGPACK = Encoding.MSGPACK
JSON = Encoding.JSON

# Decoding one hostile frame of at most 64 KiB must stay well under 2 MB of heap.
MEMORY_CEILING = 1024 * 1024


def _wire(obj: Any, encoding: Encoding) -> bytes | str:
    """What arrives in a WebSocket frame: bytes for msgpack, text for JSON."""
    data = encode(obj, encoding)
    return data if encoding.binary else data.decode("utf-8")


def _malformed(data: bytes | str, encoding: Encoding, **kwargs: Any) -> RoomError:
    with pytest.raises(RoomError) as info:
        decode(data, encoding, **kwargs)
    assert info.value.code == ErrorCode.MALFORMED_FRAME
    assert info.value.reason == "MALFORMED_FRAME"
    return info.value


def _peak_bytes(data: bytes | str, encoding: Encoding) -> tuple[int, Exception | None]:
    """Peak traced heap while decoding `data` (the frame itself is allocated beforehand)."""
    error: Exception | None = None
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            decode(data, encoding)
        except RoomError as exc:
            error = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, error


# --- subprotocols ------------------------------------------------------------------------


def test_subprotocol_names() -> None:
    assert MSGPACK.value == "roomhub.v1.msgpack"
    assert JSON.value == "roomhub.v1.json"
    assert SUBPROTOCOLS == ("roomhub.v1.msgpack", "roomhub.v1.json")
    assert MSGPACK.binary is True
    assert JSON.binary is False


# --- round trips -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_maps = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


@settings(max_examples=80, deadline=None)
@given(json_maps)
def test_msgpack_round_trip(obj: dict[str, Any]) -> None:
    data = encode(obj, MSGPACK)
    assert isinstance(data, bytes)
    assert decode(data, MSGPACK) == obj


@settings(max_examples=80, deadline=None)
@given(json_maps)
def test_json_round_trip(obj: dict[str, Any]) -> None:
    data = encode(obj, JSON)
    assert isinstance(data, bytes)  # UTF-8, sent as a text frame
    assert decode(data.decode("utf-8"), JSON) == obj


def test_round_trip_of_a_request_frame() -> None:
    frame = {"id": 7, "op": "member.add", "args": {"room": "demo-room", "invitees": ["ccc", "bbb"]}}
    for encoding in Encoding:
        assert decode(_wire(frame, encoding), encoding) == frame


def test_msgpack_keeps_str_and_bytes_apart() -> None:
    obj = {"s": "héllo", "b": b"\x00\xff"}
    assert decode(encode(obj, MSGPACK), MSGPACK) == obj


# --- malformed frames --------------------------------------------------------------------


@pytest.mark.parametrize("value", [[], [1, 2], 1, -1, 1.5, "op", None, True, b"bytes"], ids=repr)
def test_msgpack_non_map_frames(value: Any) -> None:
    error = _malformed(msgpack.packb(value, use_bin_type=True), MSGPACK)
    assert "map" in error.message


@pytest.mark.parametrize("text", ["[]", "[1,2]", "1", "1.5", '"op"', "null", "true"])
def test_json_non_map_frames(text: str) -> None:
    error = _malformed(text, JSON)
    assert "map" in error.message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # the one byte msgpack never uses
        b"\x81",  # a map header with nothing after it
        b"\x81\xa2op",  # a key without its value
        b"\x81\xa1\xff\x01",  # a str key that is not UTF-8
        b"\x80\x80",  # two frames in one: trailing data
        msgpack.packb({1: "int key"}),  # map keys must be strings
        b"\xdb\x00\x10\x00\x00" + b"a" * 100,  # a 1 MiB str header over 100 bytes
        b"\xff" * 32,
    ],
    ids=repr,
)
def test_msgpack_garbage(data: bytes) -> None:
    _malformed(data, MSGPACK)


@pytest.mark.parametrize(
    "text", ["", "{", '{"op":}', "{'op': 1}", '{"a":1}{"b":2}', "NaN", '{"x": NaN}', "\x00"]
)
def test_json_garbage(text: str) -> None:
    _malformed(text, JSON)


def test_text_frame_on_msgpack_connection() -> None:
    text = encode({"op": "room.list"}, JSON).decode()
    _malformed(text, MSGPACK)


def test_binary_frame_on_json_connection() -> None:
    _malformed(encode({"op": "room.list"}, JSON), JSON)  # valid JSON, but in bytes
    _malformed(encode({"op": "room.list"}, MSGPACK), JSON)


# --- decoder caps ------------------------------------------------------------------------


def test_array_of_5000_empty_maps_is_rejected() -> None:
    _malformed(msgpack.packb([{}] * 5000), MSGPACK)
    _malformed(msgpack.packb({"args": [{}] * 5000}), MSGPACK)
    _malformed(orjson.dumps([{}] * 5000).decode(), JSON)  # not a map


def test_container_length_cap() -> None:
    arrays, maps = limits.MAX_ARRAY_LEN, limits.MAX_MAP_LEN
    assert decode(msgpack.packb({"a": [0] * arrays}), MSGPACK) == {"a": [0] * arrays}
    _malformed(msgpack.packb({"a": [0] * (arrays + 1)}), MSGPACK)
    wide = {str(i): 0 for i in range(maps)}
    assert decode(msgpack.packb(wide), MSGPACK) == wide
    _malformed(msgpack.packb({str(i): 0 for i in range(maps + 1)}), MSGPACK)
    # a header claiming 2^32-1 items is refused before anything is allocated
    _malformed(b"\xdd\xff\xff\xff\xff", MSGPACK)
    _malformed(b"\xdf\xff\xff\xff\xff", MSGPACK)


def test_container_budget() -> None:
    ok = {"a": [[] for _ in range(100)]}
    assert decode(msgpack.packb(ok), MSGPACK, max_containers=102) == ok
    _malformed(msgpack.packb(ok), MSGPACK, max_containers=101)
    # the default budget (4096): 10 x 450 empty lists, each list within the array cap
    many = {"a": [[[] for _ in range(450)] for _ in range(10)]}
    _malformed(msgpack.packb(many), MSGPACK)


def test_deeply_nested_arrays_are_rejected() -> None:
    # beyond msgpack's own recursion stack
    _malformed(b"\x81\xa1a" + b"\x91" * 5000 + b"\x80", MSGPACK)
    _malformed('{"a":' + "[" * 5000 + "]" * 5000 + "}", JSON)


def _nested(depth: int) -> dict[str, Any]:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return {"a": value}


def test_json_frames_are_bounded_by_the_frame_size() -> None:
    """orjson has no container hooks: a JSON frame full of empty maps decodes, but the 64 KiB
    frame limit keeps what it becomes small, and pydantic rejects it at validation."""
    text = orjson.dumps({"a": [{}] * 20000}).decode()
    assert len(text) <= limits.DEFAULT_MAX_FRAME_BYTES
    peak, error = _peak_bytes(text, JSON)
    assert error is None
    assert peak < 4 * MEMORY_CEILING, f"{peak} bytes peak for a {len(text)}-byte frame"
    _malformed(msgpack.packb({"a": [{}] * 5000}), MSGPACK)  # msgpack: capped at decode


def test_oversize_strings_are_rejected() -> None:
    big = "x" * (limits.DEFAULT_MAX_FRAME_BYTES + 1)
    _malformed(msgpack.packb({"a": big}), MSGPACK)
    _malformed(msgpack.packb({"a": big.encode()}, use_bin_type=True), MSGPACK)
    _malformed(msgpack.packb({"a": msgpack.ExtType(1, big.encode())}), MSGPACK)
    small = {"a": "x" * 100}
    assert decode(msgpack.packb(small), MSGPACK, max_bytes=100) == small
    _malformed(msgpack.packb(small), MSGPACK, max_bytes=99)


def _fill(unit: bytes, size: int = limits.DEFAULT_MAX_FRAME_BYTES) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


HOSTILE_MSGPACK: dict[str, bytes] = {
    "array of 5000 empty maps": msgpack.packb([{}] * 5000),
    "map holding 5000 empty maps": msgpack.packb({"a": [{}] * 5000}),
    "64 KiB of empty maps (\\x80)": _fill(b"\x80"),
    "map then 64 KiB of empty maps": b"\x81\xa1a\xdc\xff\xff" + _fill(b"\x80", 65530),
    "64 KiB of nested [] (\\x91)": b"\x81\xa1a" + _fill(b"\x91", 65533),
    "64 KiB of nested {} claiming 1024 pairs": _fill(b"\xde\x04\x00\xa1a"),
    "64 KiB of str32 headers": _fill(b"\xdb\x00\x00\xff\xff"),
    "1 MiB bin header": b"\xc6\x00\x10\x00\x00" + _fill(b"\x00", 60000),
}


@pytest.mark.parametrize("name", list(HOSTILE_MSGPACK))
def test_hostile_msgpack_frame_memory(name: str) -> None:
    data = HOSTILE_MSGPACK[name]
    assert len(data) <= limits.DEFAULT_MAX_FRAME_BYTES
    peak, error = _peak_bytes(data, MSGPACK)
    assert isinstance(error, RoomError) and error.code == ErrorCode.MALFORMED_FRAME
    assert peak < MEMORY_CEILING, f"{name}: {peak} bytes peak for a {len(data)}-byte frame"


@pytest.mark.parametrize(
    "text",
    [
        orjson.dumps([{}] * 5000).decode(),
        '{"a":' + "[" * 20000 + "]" * 20000 + "}",
        "[" * 65536,
    ],
    ids=["array of 5000 maps", "nested 20000 deep", "64 KiB of ["],
)
def test_hostile_json_frame_memory(text: str) -> None:
    peak, error = _peak_bytes(text, JSON)
    assert isinstance(error, RoomError) and error.code == ErrorCode.MALFORMED_FRAME
    assert peak < MEMORY_CEILING, f"{peak} bytes peak for a {len(text)}-byte frame"


@pytest.mark.parametrize("size", [3000, limits.DEFAULT_MAX_FRAME_BYTES], ids=["3KB", "64KiB"])
def test_nested_preallocated_arrays_memory_is_bounded(size: int) -> None:
    """msgpack reserves each array's declared length before its items arrive; the array cap
    (512) bounds that to ~4 KiB a level, ~4 MiB at msgpack's depth limit — transient, and
    the same for a 3 KB frame as for a 64 KiB one."""
    data = _fill(b"\xdc\x02\x00", size)  # array headers claiming 512 items each
    peak, error = _peak_bytes(data, MSGPACK)
    assert isinstance(error, RoomError) and error.code == ErrorCode.MALFORMED_FRAME
    assert peak < 5 * MEMORY_CEILING, f"{peak} bytes peak for a {len(data)}-byte frame"
    over_cap = _fill(b"\xdc\x04\x00", size)  # claiming 1024: refused at the first header
    peak, error = _peak_bytes(over_cap, MSGPACK)
    assert isinstance(error, RoomError) and peak < MEMORY_CEILING


# --- system message events ---------------------------------------------------------------

SAMPLE_MESSAGES = [
    # as the Lua prelude's emit() writes them
    (
        b'{"room":"demo-room","seq":1,"type":"createRoom","sender":"aaa","targets":["aaa","bbb"],'
        b'"changes":{},"notify":true,"extension":null,"time_ms":1700000000000}'
    ),
    (
        b'{"room":"r","seq":42,"type":"updateMember","sender":"@server","targets":["b"],'
        b'"changes":{"score":{"a":[1,2.5,null,true]},"nickname":"\xc3\xa9\\u00e9","gone":null},'
        b'"notify":false,"extension":"x\\"y","time_ms":1}'
    ),
]


@pytest.mark.parametrize("message_json", SAMPLE_MESSAGES)
@pytest.mark.parametrize("encoding", list(Encoding), ids=lambda e: e.name)
def test_event_frame_from_json(message_json: bytes, encoding: Encoding) -> None:
    frame = event_frame_from_json(message_json, encoding)
    assert isinstance(frame, bytes)
    wire = frame if encoding.binary else frame.decode("utf-8")
    assert decode(wire, encoding) == {"event": "system", "message": orjson.loads(message_json)}


def test_event_frame_json_splices_the_stored_bytes() -> None:
    message_json = SAMPLE_MESSAGES[0]
    assert event_frame_from_json(message_json, JSON) == (
        b'{"event":"system","message":' + message_json + b"}"
    )


@settings(max_examples=40, deadline=None)
@given(json_maps)
def test_event_frame_from_json_any_message(message: dict[str, Any]) -> None:
    message_json = orjson.dumps(message)
    for encoding in Encoding:
        frame = event_frame_from_json(message_json, encoding)
        wire = frame if encoding.binary else frame.decode("utf-8")
        assert decode(wire, encoding) == {"event": "system", "message": message}


# --- canonical JSON for property values --------------------------------------------------


def test_to_json_value_is_canonical() -> None:
    assert to_json_value({"b": 1, "a": {"d": 2, "c": [3, {"f": 0, "e": 1}]}}) == (
        b'{"a":{"c":[3,{"e":1,"f":0}],"d":2},"b":1}'
    )
    assert to_json_value("é") == '"é"'.encode()
    assert to_json_value(None) == b"null"


@pytest.mark.parametrize("value", [b"bytes", {1: 2}, object(), 2**64], ids=repr)
def test_to_json_value_rejects_non_json(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_json_value(value)
