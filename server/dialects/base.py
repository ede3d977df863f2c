"""What every dialect shares: running an op exactly as the server API does (`run_op`), the
body reader with the frame cap (`read_body`), request ids, and the server-scope `Caller` a
vendor's platform credentials act as (`server_caller`).

A dialect authenticates with its vendor's scheme, maps the request onto op args, calls
`run_op`, and renders the result or the RoomError in its vendor's envelope. Every failure
reaching the dialect is a RoomError (its `code` picks the vendor's error)."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from roomhub.protocol import ops
from roomhub.protocol.limits import RESERVED_USER_PREFIX

from ..api import TooLarge, read_json
from ..service import Caller

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["Caller", "TooLarge", "read_body", "request_id", "run_op", "server_caller"]


async def run_op(hub: Hub, caller: Caller, op: str, args: Any) -> dict[str, Any]:
    """Run op `op` (a name of the op table) with `args` (a dict of its args, as the
    WebSocket's frame would carry them) as `caller`: a mutating op is admitted first through
    `Hub.run` (the user's and the app's ceilings, shared with the WebSocket, the server API
    and every node), which then validates and runs it, counted in the metrics. The same
    rules, ceiling and metrics as a server-API call. Returns the op's result; raises only
    RoomError (anything else comes out as `Hub.internal`'s 100001)."""
    started = time.perf_counter()
    return await hub.run(caller, ops.lookup(op), args, started)


async def read_body(hub: Hub, request: Request) -> Any:
    """The request's JSON body ({} when empty) at most max_frame_bytes, as the server API
    reads it (server/api.py read_json): past the cap a TooLarge (100013, before the rest is
    read), not JSON a 100013. Any JSON value: the dialect checks its shape."""
    return await read_json(request, hub.settings.max_frame_bytes)


def request_id() -> str:
    """A fresh id for one request (Tencent's RequestId, a log line's): 32 hex characters."""
    return secrets.token_hex(16)


def server_caller(app: str, dialect: str) -> Caller:
    """The server-scope caller a vendor's platform credentials act as (IMKIT's IM-API-KEY, a
    Tencent admin's UserSig, a NetEase CheckSum): no operator, so not rule-checked, like a
    server token. Its user, `@<dialect>`, is a reserved id (no real user has it); it names
    the caller in logs and keys its derived room ids apart from the server tokens'."""
    return Caller(app=app, user=f"{RESERVED_USER_PREFIX}{dialect}", server=True)
