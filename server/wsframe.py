"""Frame a payload once as an unmasked server-to-client WebSocket frame (RFC 6455 §5.2).

A system message goes to many connections: framing it once and writing the same bytes to
every transport is what makes fan-out cheap. Valid because the hub negotiates no extension
(compression is off) and never fragments.
"""

from __future__ import annotations

import struct

_TEXT, _BINARY = 0x81, 0x82  # FIN + opcode


def frame(payload: bytes, *, text: bool) -> bytes:
    first = _TEXT if text else _BINARY
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload
