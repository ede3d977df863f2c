"""A minimal asyncio WebSocket client for the load generator (RFC 6455, client side only).

The harness must not be the bottleneck, so this is a raw `asyncio.Protocol`: it writes the HTTP
upgrade itself (offering `roomhub.v1.msgpack`), masks every client frame with a fresh random key
as the RFC requires, and parses the server's (unmasked) frames straight out of `data_received`.
It decodes nothing beyond the msgpack map, and hands replies and system messages to callbacks
with one receive timestamp per read (time.monotonic, which is system-wide on Linux, so stamps
from different load processes compare).

Under load, a receiver does not even decode: see `sink`. Pings are answered with pongs (the
hub pings every 20 s); a close frame is echoed and the transport closed. Only what a roomhub
client needs: no extensions, no fragmentation on send.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable
from time import monotonic
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]

_apply_mask: Callable[[bytes, bytes], bytes] | None
try:  # the C helper that ships with `websockets` (a roomhub dependency)
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - pure-Python fallback
    _apply_mask = None

SUBPROTOCOL = "roomhub.v1.msgpack"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_unpackb = msgpack.unpackb
_packb = msgpack.packb

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the 4-byte `key` repeated (RFC 6455 §5.3)."""
    if _apply_mask is not None:
        return _apply_mask(payload, key)
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


def encode_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One complete, masked client frame (FIN set)."""
    if key is None:
        key = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + key + mask(payload, key)


def parse_frames(data: bytes) -> tuple[list[tuple[int, bool, bytes]], bytes]:
    """Split server frames out of `data`: ([(opcode, fin, payload)], leftover bytes).

    Used by the tests; the protocol below inlines the same loop for speed."""
    frames = []
    pos, n = 0, len(data)
    while n - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            if n - pos < 4:
                break
            length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if n - pos < 10:
                break
            length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        if b1 & 0x80:  # a masked server frame: not allowed, but unmask it anyway
            head += 4
        end = pos + head + length
        if end > n:
            break
        payload = data[pos + head : end]
        if b1 & 0x80:
            payload = mask(payload, data[pos + head - 4 : pos + head])
        frames.append((b0 & 0x0F, bool(b0 & 0x80), payload))
        pos = end
    return frames, data[pos:]


class HandshakeError(Exception):
    pass


class WSClient(asyncio.Protocol):
    """One roomhub connection. `on_reply(frame, t)` gets replies (maps with `re`),
    `on_event(frame, t)` gets events; both with the receive time of the read."""

    __slots__ = (
        "transport",
        "host",
        "port",
        "key",
        "_buf",
        "_upgraded",
        "_accept",
        "ready",
        "closed",
        "on_reply",
        "on_event",
        "_frag",
        "_frag_op",
        "close_code",
        "sink",
    )

    def __init__(
        self,
        host: str,
        port: int,
        on_reply: Callable[[dict[str, Any], float], None] | None = None,
        on_event: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.host, self.port = host, port
        self.key = base64.b64encode(os.urandom(16))
        self._accept = base64.b64encode(hashlib.sha1(self.key + _GUID).digest())
        self._buf = b""
        self._upgraded = False
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.on_reply = on_reply
        self.on_event = on_event
        self._frag: list[bytes] | None = None
        self._frag_op = 0
        self.close_code: int | None = None
        # Recording mode (receivers under load): binary payloads are not decoded at all but
        # counted in `sink`, payload bytes -> [times seen, last receive time]. The hub frames
        # each message once, so every member gets the same bytes: one entry per message,
        # decoded once when the records are collected.
        self.sink: dict[bytes, list[Any]] | None = None

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        request = (
            f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        )
        self.transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            self._handshake(data[:end])
            data = data[end + 4 :]
            if not self._upgraded:
                return
        t = monotonic()
        pos, n = 0, len(data)
        while n - pos >= 2:
            b1 = data[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = (data[pos + 2] << 8) | data[pos + 3], 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > n:
                break
            b0 = data[pos]
            payload = data[pos + head : end]
            pos = end
            opcode = b0 & 0x0F
            if opcode == OP_BINARY and b0 & 0x80:
                sink = self.sink
                if sink is None:
                    self._message(payload, t)
                else:
                    rec = sink.get(payload)
                    if rec is None:
                        sink[payload] = [1, t]
                    else:  # monotonic: the latest read is the last member so far
                        rec[0] += 1
                        rec[1] = t
            else:
                self._control(opcode, bool(b0 & 0x80), payload, t)
        if pos < n:
            self._buf = data[pos:]

    # internals ------------------------------------------------------------------------------

    def _handshake(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        problem = None
        if len(status) < 2 or status[1] != b"101":
            problem = f"upgrade refused: {lines[0].decode(errors='replace')}"
        elif headers.get(b"sec-websocket-accept") != self._accept:
            problem = "bad Sec-WebSocket-Accept"
        elif headers.get(b"sec-websocket-protocol", b"").decode() != SUBPROTOCOL:
            problem = "the server did not select roomhub.v1.msgpack"
        if problem:
            if not self.ready.done():
                self.ready.set_exception(HandshakeError(problem))
            assert self.transport is not None
            self.transport.close()
            return
        self._upgraded = True
        if not self.ready.done():
            self.ready.set_result(None)

    def _message(self, payload: bytes, t: float) -> None:
        frame = _unpackb(payload)
        if "re" in frame:
            if self.on_reply is not None:
                self.on_reply(frame, t)
        elif self.on_event is not None:
            self.on_event(frame, t)

    def _control(self, opcode: int, fin: bool, payload: bytes, t: float) -> None:
        if opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.transport is not None and not self.transport.is_closing():
                self._write(OP_CLOSE, payload[:2])
                self.transport.close()
        elif opcode in (OP_BINARY, OP_TEXT):  # first fragment of a fragmented message
            self._frag, self._frag_op = [payload], opcode
        elif opcode == OP_CONT and self._frag is not None:
            self._frag.append(payload)
            if fin:
                whole, self._frag = b"".join(self._frag), None
                if self._frag_op == OP_BINARY:
                    self._message(whole, t)

    def _write(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(opcode, payload))

    # API ------------------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Send one request map as a masked binary frame."""
        self._write(OP_BINARY, _packb(frame))

    def send_packed(self, payload: bytes) -> None:
        self._write(OP_BINARY, payload)

    def write_frame(self, opcode: int, payload: bytes) -> None:
        """Any frame (e.g. a ping), masked; nothing is sent once the transport is closing."""
        self._write(opcode, payload)

    def close(self) -> None:
        """Send a normal close (1000) and drop the transport; no waiting for the echo."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(OP_CLOSE, b"\x03\xe8"))
            transport.close()

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


async def connect(host: str, port: int, **callbacks: Any) -> WSClient:
    """Open the TCP connection and finish the WebSocket upgrade."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: WSClient(host, port, **callbacks), host, port)
    await proto.ready
    return proto


class Session:
    """An authenticated connection with request/reply matching, for setup work (not hot)."""

    def __init__(self, client: WSClient) -> None:
        self.client = client
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 1
        client.on_reply = self._reply

    def _reply(self, frame: dict[str, Any], _t: float) -> None:
        future = self.pending.pop(frame.get("re"), None)  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(frame)

    async def request(self, op: str, args: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        request_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.client.send({"id": request_id, "op": op, "args": args})
        return await asyncio.wait_for(future, timeout)

    async def call(self, op: str, args: dict[str, Any], timeout: float = 30) -> Any:
        reply = await self.request(op, args, timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"{op} failed: {reply.get('error')}")
        return reply.get("result")


async def open_session(
    host: str,
    port: int,
    key: str,
    token: str,
    on_event: Callable[[dict[str, Any], float], None] | None = None,
    timeout: float = 30,
    presence: bool = False,
) -> Session:
    """Connect and authenticate (`presence`: asking for presence events); raises if `auth`
    fails."""
    client = await asyncio.wait_for(connect(host, port, on_event=on_event), timeout)
    session = Session(client)
    args: dict[str, Any] = {"key": key, "token": token}
    if presence:
        args["presence"] = True
    try:
        await session.call("auth", args, timeout)
    except BaseException:
        client.close()
        raise
    return session
