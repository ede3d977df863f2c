"""Frames and error replies as the client reads them (pure: no I/O, no client state)."""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

from roomhub.protocol.codec import Encoding, decode
from roomhub.protocol.errors import ErrorCode, RoomError

__all__ = ["args", "decode_frame", "wire_error"]


def decode_frame(data: bytes | str, encoding: Encoding) -> dict[str, Any]:
    """Decode a server frame.

    JSON goes through the shared codec. msgpack does not: the codec's decoder caps (1,024 items
    per container, 4,096 containers per frame) guard the *server* against hostile requests,
    but a legitimate Room reply may list up to 10,000 members. The server is trusted here.
    """
    if encoding is Encoding.JSON:
        return decode(data, encoding)
    if not isinstance(data, bytes):
        raise TypeError("msgpack connection received a text frame")
    frame = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(frame, dict):
        raise TypeError(f"frame is not a map: {type(frame).__name__}")
    return frame


_KNOWN_CODES = frozenset(int(code) for code in ErrorCode)


def wire_error(error: Any) -> RoomError:
    """The wire error as a RoomError. A code this client does not know (a newer server)
    becomes INTERNAL, with the original code kept in the message for whoever debugs it."""
    if not isinstance(error, dict):
        return RoomError(ErrorCode.INTERNAL, f"malformed error reply: {error!r}")
    code = error.get("code")
    if type(code) is int and code in _KNOWN_CODES:
        return RoomError.from_wire(error)
    return RoomError(
        ErrorCode.INTERNAL,
        f"[{code}] {error.get('message', '')}",
        field=error.get("field"),
        retry_after_ms=error.get("retry_after_ms"),
    )


def args(**kwargs: Any) -> dict[str, Any]:
    """Only the arguments that are set: None means "not given" and is never put on the wire."""
    return {name: value for name, value in kwargs.items() if value is not None}
