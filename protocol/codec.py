"""The two wire encodings (docs/protocol.md §1.2): msgpack in binary frames, JSON in text frames.

Decoding is where hostile input bites first, so the msgpack decoder runs with explicit caps on
string, container and total sizes: a frame of nested empty maps cannot balloon into heap.
JSON has no such hooks in orjson; there the frame size limit (64 KiB by default) bounds what
a frame can become (about 2 MB of objects at worst, freed with the request).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson

from .errors import ErrorCode, RoomError
from .limits import DEFAULT_MAX_FRAME_BYTES, MAX_ARRAY_LEN, MAX_CONTAINERS_PER_FRAME, MAX_MAP_LEN


class Encoding(str, Enum):
    MSGPACK = "roomhub.v1.msgpack"
    JSON = "roomhub.v1.json"

    @property
    def binary(self) -> bool:
        return self is Encoding.MSGPACK


SUBPROTOCOLS: tuple[str, ...] = (Encoding.MSGPACK.value, Encoding.JSON.value)


class _ContainerBudget:
    """Counts maps and arrays while msgpack builds them; aborts past the budget."""

    __slots__ = ("left",)

    def __init__(self, budget: int) -> None:
        self.left = budget

    def _spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ValueError("too many containers in frame")

    def on_map(self, pairs: dict[Any, Any]) -> dict[Any, Any]:
        self._spend()
        return pairs

    def on_list(self, items: list[Any]) -> list[Any]:
        self._spend()
        return items


def _malformed(message: str) -> RoomError:
    return RoomError(ErrorCode.MALFORMED_FRAME, message)


def decode(
    data: bytes | str,
    encoding: Encoding,
    *,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_containers: int = MAX_CONTAINERS_PER_FRAME,
) -> dict[str, Any]:
    """Decode one frame into a map, or raise RoomError(MALFORMED_FRAME)."""
    if encoding is Encoding.MSGPACK:
        if isinstance(data, str):
            raise _malformed("this connection speaks msgpack: send binary frames")
        budget = _ContainerBudget(max_containers)
        try:
            obj = msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=True,
                max_str_len=max_bytes,
                max_bin_len=max_bytes,
                max_array_len=MAX_ARRAY_LEN,
                max_map_len=MAX_MAP_LEN,
                max_ext_len=max_bytes,
                object_hook=budget.on_map,
                list_hook=budget.on_list,
            )
        except Exception as exc:  # msgpack raises many types; all mean "not decodable"
            raise _malformed(f"frame is not valid msgpack: {exc}") from None
    else:
        if not isinstance(data, str):
            raise _malformed("this connection speaks JSON: send text frames")
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise _malformed(f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _malformed(f"frame must be a map, got {type(obj).__name__}")
    return obj


def encode(obj: Any, encoding: Encoding) -> bytes:
    """Encode one frame; JSON comes out as UTF-8 bytes, to be sent in a text frame."""
    if encoding is Encoding.MSGPACK:
        return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]
    return orjson.dumps(obj)


def event_frame_from_json(message_json: bytes, encoding: Encoding) -> bytes:
    """Frame a system message that the store already holds as JSON text.

    JSON connections get the stored bytes spliced in unparsed; msgpack connections get them
    parsed once and re-packed. Callers cache the result per message so every connection of a
    codec is written the same bytes.
    """
    if encoding is Encoding.JSON:
        return b'{"event":"system","message":' + message_json + b"}"
    return msgpack.packb({"event": "system", "message": orjson.loads(message_json)})  # type: ignore[no-any-return]


def to_json_value(value: Any) -> bytes:
    """Canonical JSON for a custom property value; raises TypeError/ValueError if not JSON."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
