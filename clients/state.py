"""A client's connection states and the error of a lost connection: the vocabulary every
other client module shares (imports nothing of the client, so nothing cycles)."""

from __future__ import annotations

import enum


class State(enum.Enum):
    """A RoomClient's connection state (`client.state`, `on_state`)."""

    CONNECTING = "connecting"  # the first connection is being opened
    OPEN = "open"  # authenticated: calls go out
    RECONNECTING = "reconnecting"  # dropped; retrying with backoff (calls fail at once)
    CLOSED = "closed"  # final: close() was called, or the client gave up


class ConnectionLost(ConnectionError):
    """The connection closed (by either side) before a reply arrived, or a call was made while
    the client was not connected (RECONNECTING, or CLOSED after close()).

    Deliberately not a RoomError: the server may or may not have applied the op, so it is not
    "safe to retry" like INTERNAL; re-read the room (or pass `reply="ack"` and compare seqs)
    after reconnecting. `code`/`reason` are the WebSocket close code and reason when known
    (e.g. 4401 unauthenticated, 4008 slow consumer, 1001 server going away).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason

    def fresh(self) -> ConnectionLost:
        """A new instance per raise, so tracebacks of unrelated calls do not pile up."""
        return ConnectionLost(str(self), code=self.code, reason=self.reason)
