"""Error codes of docs/protocol.md §7 and the one exception type that carries them.

Raised anywhere (validation, store, hub); turned into a wire error reply in exactly one
place (the hub's dispatcher), so every failure a client sees has a code and a reason.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    INTERNAL = 100001
    INVALID_PARAMETER = 100002
    ROOM_EXISTS = 100003
    ROOM_NOT_FOUND = 100004
    NOT_A_MEMBER = 100005
    FORBIDDEN = 100006
    USER_NOT_FOUND = 100007
    NO_INVITATION = 100008
    RATE_LIMITED = 100009
    UNAUTHENTICATED = 100010
    UNKNOWN_OP = 100011
    ROOM_FULL = 100012
    MALFORMED_FRAME = 100013

    @property
    def reason(self) -> str:
        return self.name


class CloseCode(IntEnum):
    """WebSocket close codes the server sends (docs/protocol.md §1.5). The 1xxx ones come
    from RFC 6455 and are mostly sent by the WebSocket layer itself."""

    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011  # keepalive ping timeout
    SLOW_CONSUMER = 4008
    GARBAGE = 4400  # too many malformed frames in a row
    UNAUTHENTICATED = 4401


# Where several errors apply, the first in this order wins (docs/protocol.md §7).
PRECEDENCE: tuple[ErrorCode, ...] = (
    ErrorCode.MALFORMED_FRAME,
    ErrorCode.UNAUTHENTICATED,
    ErrorCode.UNKNOWN_OP,
    ErrorCode.RATE_LIMITED,
    ErrorCode.INVALID_PARAMETER,
    ErrorCode.ROOM_NOT_FOUND,
    ErrorCode.USER_NOT_FOUND,
    ErrorCode.NOT_A_MEMBER,
    ErrorCode.FORBIDDEN,
    ErrorCode.ROOM_EXISTS,
    ErrorCode.ROOM_FULL,
    ErrorCode.NO_INVITATION,
)


# The HTTP status of each error code on the server API (docs/http.md §3): the one table.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INTERNAL: 503,  # the store was unavailable or the op failed: safe to retry
    ErrorCode.INVALID_PARAMETER: 400,
    ErrorCode.ROOM_EXISTS: 409,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.NOT_A_MEMBER: 403,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.USER_NOT_FOUND: 404,
    ErrorCode.NO_INVITATION: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.UNKNOWN_OP: 404,
    ErrorCode.ROOM_FULL: 409,
    ErrorCode.MALFORMED_FRAME: 400,
}


class RoomError(Exception):
    """A failure with a wire error code; the message is shown to the client."""

    def __init__(
        self,
        code: ErrorCode | int,
        message: str,
        *,
        field: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.field = field
        self.retry_after_ms = retry_after_ms

    @property
    def reason(self) -> str:
        return self.code.reason

    def to_wire(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": int(self.code),
            "reason": self.code.reason,
            "message": self.message,
        }
        if self.field is not None:
            error["field"] = self.field
        if self.retry_after_ms is not None:
            error["retry_after_ms"] = self.retry_after_ms
        return error

    @classmethod
    def from_wire(cls, error: dict[str, Any]) -> RoomError:
        code = error.get("code")
        return cls(
            code
            if isinstance(code, int) and code in ErrorCode._value2member_map_
            else ErrorCode.INTERNAL,
            str(error.get("message", "")),
            field=error.get("field"),
            retry_after_ms=error.get("retry_after_ms"),
        )

    def __repr__(self) -> str:
        extra = f", field={self.field!r}" if self.field else ""
        return f"RoomError({self.code.reason}, {self.message!r}{extra})"


def invalid(field: str, message: str) -> RoomError:
    return RoomError(ErrorCode.INVALID_PARAMETER, message, field=field)
