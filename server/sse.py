"""room.watch on the server API: the room's messages as a stream of Server-Sent Events.

The stream is an Inbox like a WebSocket connection, so the same feed writes it, in the same
order, with the same hold-until-the-reply rule; each event's `data` is the WebSocket's event
frame in JSON, unframed. A reader that falls more than the send buffer behind is cut off, as a
slow WebSocket client is (it reconnects with Last-Event-ID and resumes from there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from roomhub.protocol.codec import Encoding

from .delivery.inbox import Inbox

KEEPALIVE_SECONDS = 15.0  # a comment line, so proxies do not time an idle stream out
_END = b""  # queued after the last event


def unframe(framed: bytes) -> bytes:
    """The payload of an unmasked, unfragmented server frame (server/wsframe.py's)."""
    size = framed[1] & 0x7F
    return framed[2 + {126: 2, 127: 8}.get(size, 0) :]


def sse_event(kind: str, data: bytes, event_id: int | None = None) -> bytes:
    """One event in the text/event-stream format (the data is one line of JSON)."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


class EventStream(Inbox):
    """What one watch stream is written, queued for the response body."""

    __slots__ = ("_queue", "_queued", "ended", "limit")

    def __init__(self, limit: int) -> None:
        super().__init__(Encoding.JSON)
        self.opening = None  # no auth to wait for: the request was authenticated
        self.limit = limit  # bytes queued and not yet sent, at most
        self.ended = False
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued = 0

    def begin(self, room: dict[str, Any]) -> None:
        """The first event: the room as the watch read it (the reply of room.watch)."""
        self._put(sse_event("room", orjson.dumps(room)))

    def write(self, framed: bytes) -> None:
        if self.ended:
            return
        payload = unframe(framed)
        frame = orjson.loads(payload)
        if frame.get("event") == "system":
            message = frame["message"]
            self._put(sse_event("system", payload, message["seq"]))
            if message["type"] == "dismissRoom":
                self._end()
        else:  # resync: re-read the room; with seq 0 it is gone and the watch is over
            self._put(sse_event(frame["event"], payload))
            if frame.get("seq") == 0:
                self._end()

    def _put(self, chunk: bytes) -> None:
        self._queued += len(chunk)
        if self._queued > self.limit:
            self._end()  # too far behind: cut off, as a slow WebSocket client is
            return
        self._queue.put_nowait(chunk)

    def _end(self) -> None:
        self.ended = True
        self._queue.put_nowait(_END)

    async def body(self) -> AsyncIterator[bytes]:
        """The response body: the events as they come, a keepalive comment when idle."""
        while True:
            try:
                chunk = await asyncio.wait_for(self._queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if chunk == _END:
                return
            self._queued -= len(chunk)
            yield chunk
