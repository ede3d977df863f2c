"""The TypeScript client's browser bundle (/console/roomhub-client.js, as the hub serves it)
imported by a page (served on loopback by the test) in headless chromium and driven against
a real hub and Redis, with JSON and with msgpack: it connects, creates a room, watches it and
receives its system events."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from roomhub.server.hub import Hub

from ..support import APP, token, ws_url
from .conftest import http_base

HERE = Path(__file__).parent


@contextlib.contextmanager
def page_server(bundle: bytes) -> Iterator[str]:
    """A loopback HTTP server of the test page: client_page.html and .js from this directory,
    and /console/roomhub-client.js with the bytes the hub served. (A page the test fulfils
    through Playwright's routing has no address, and chromium's local network access checks
    then refuse its WebSocket to loopback; a real loopback page is what a user opens.)"""
    files = {
        "/test/client_page.html": ((HERE / "client_page.html").read_bytes(), "text/html"),
        "/test/client_page.js": ((HERE / "client_page.js").read_bytes(), "text/javascript"),
        "/console/roomhub-client.js": (bundle, "text/javascript"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body, media = files.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/test/client_page.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_client_bundle_in_a_page(node: Hub, browser: BrowserContext, encoding: str) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    async with httpx.AsyncClient(timeout=5) as http:
        bundle = await http.get(f"{http_base(node)}/console/roomhub-client.js")
    assert bundle.status_code == 200
    room = f"page-{encoding}"
    with page_server(bundle.content) as url:
        await page.goto(url)
        await expect(page.locator("#status")).to_have_text("ready")
        seen = await page.evaluate(
            "args => window.scenario(args)",
            {
                "url": ws_url(node),
                "key": APP,
                "token": token("backend", server=True),
                "encoding": encoding,
                "room": room,
            },
        )
    assert errors == []
    assert sockets == [ws_url(node)]
    assert seen["created"] == {
        "id": room,
        "seq": 1,
        "members": [["alice", "owner"], ["bob", "member"]],
    }
    assert seen["watchedSeq"] == 1
    types = [(m["seq"], m["type"]) for m in seen["events"]]
    assert types == [
        (2, "inviteMember"),
        (3, "acceptInvitation"),
        (4, "assignAdmin"),
        (5, "updateMember"),
    ]
    assert [list(pair) for pair in types] == seen["iterated"]
    invite, accept, admin, update = seen["events"]
    assert (
        invite["targets"] == ["carol"]
        and invite["sender"] == "@server"
        and invite["notify"] is True
    )
    assert accept["sender"] == "carol"
    assert admin["changes"] == {"role": "admin"}
    assert update["changes"] == {"score": 7} and update["room"] == room
    assert seen["appRooms"] == [room]
    assert seen["members"] == [
        ["alice", "owner", {}],
        ["bob", "admin", {"score": 7}],
        ["carol", "member", {}],
    ]
    assert seen["error"] == {
        "isRoomError": True,
        "code": 100003,
        "reason": "ROOM_EXISTS",
        "message": seen["error"]["message"],
    }
    assert seen["error"]["message"]
