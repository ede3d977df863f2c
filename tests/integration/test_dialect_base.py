"""server/dialects/base.py: a dialect-style route built with `run_op` is a server-API call
(the same app ceiling as the WebSocket, the same errors), and its body reader has the cap."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.server import dialects
from roomhub.server.dialects.base import read_body, run_op, server_caller

from ..conftest import HubFactory
from ..support import APP, connect_backend, ws_url


def vendor_app(hub: Any) -> Starlette:
    """A toy dialect: POST /vendor/{op} runs the op as the app's server, in its own envelope."""

    async def endpoint(request: Request) -> Response:
        try:
            args = await read_body(hub, request)
            result = await run_op(hub, server_caller(APP, "toy"), request.path_params["op"], args)
        except RoomError as exc:
            return JSONResponse({"code": int(exc.code), "msg": exc.message})
        return JSONResponse({"code": 0, "data": result})

    return Starlette(routes=[Route("/vendor/{op}", endpoint, methods=["POST"])])


async def test_a_run_op_route_shares_the_app_ceiling_with_the_websocket(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(rate_limit=3, max_frame_bytes=1024)
    assert dialects.routes(hub) == [] or dialects.ROUTERS  # mounted by server/http.py
    transport = httpx.ASGITransport(app=vendor_app(hub))
    async with (
        connect_backend(ws_url(hub)) as ws,
        httpx.AsyncClient(transport=transport, base_url="http://dialect") as vendor,
    ):
        await ws.call("user.upsert", {"id": "alice"})  # the WebSocket's 1 of 3 this second
        codes = []
        for user in ("bob", "carol", "dave"):
            reply = await vendor.post("/vendor/user.upsert", json={"id": user})
            codes.append(reply.json()["code"])
        assert codes == [0, 0, int(ErrorCode.RATE_LIMITED)]  # 3 admitted across both doors
        refused = await ws.request("user.upsert", {"id": "erin"})
        assert refused["error"]["code"] == ErrorCode.RATE_LIMITED
        # a read is not admitted; a bad arg is the op table's 100002; no such op is 100011
        got = await vendor.post("/vendor/room.get", json={"room": "none"})
        assert got.json()["code"] == ErrorCode.ROOM_NOT_FOUND  # a read: run, not admitted
        bad = await vendor.post("/vendor/room.get", json={"room": "none", "nope": 1})
        assert bad.json()["code"] == ErrorCode.INVALID_PARAMETER
        unknown = await vendor.post("/vendor/no.such", json={})
        assert unknown.json()["code"] == ErrorCode.UNKNOWN_OP
        big = await vendor.post("/vendor/room.get", content=b" " * 2048)
        assert big.json()["code"] == ErrorCode.MALFORMED_FRAME
