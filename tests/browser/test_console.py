"""The live room console (GET /console) in headless chromium, on a real hub and Redis: a user
signs in, creates a room, adds members, changes a role, and a second page watching the room
sees the change arrive; errors show their code and message; the page is served with a strict
CSP and no request it makes carries a token in its URL."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urldefrag

import httpx
from playwright.async_api import BrowserContext, Page, Request, expect

from roomhub.bench.infra import free_port
from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import APP, token
from .conftest import http_base

CSP = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'none'",
}


class Watcher:
    """Everything a page requests (HTTP and WebSocket URLs) and every CSP violation it logs."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.console: list[str] = []
        page.on("request", self.on_request)
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("console", lambda msg: self.console.append(msg.text))
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))

    def on_request(self, request: Request) -> None:
        # What goes on the wire: a fragment (the dev URL's key and token) is never sent.
        self.urls.append(urldefrag(request.url).url)


async def signed_in(context: BrowserContext, hub: Hub, secret_token: str) -> tuple[Page, Watcher]:
    page = await context.new_page()
    watcher = Watcher(page)
    await page.goto(f"{http_base(hub)}/console")
    await page.fill("#key", APP)
    await page.fill("#token", secret_token)
    await page.click("#signin button[type=submit]")
    await expect(page.locator("#state")).to_have_text("open")
    return page, watcher


async def create_room(page: Page, room: str, owner: str, members: str = "") -> None:
    await page.fill("#create-room", room)
    await page.fill("#create-name", "Demo")
    await page.fill("#create-owner", owner)
    await page.fill("#create-members", members)
    await page.click("#create button[type=submit]")
    await expect(page.locator("#room-title")).to_have_text(f"{room} · Demo")


def member_row(page: Page, user: str) -> Any:
    return page.locator(f'#members tr[data-member="{user}"]')


async def test_console_flow_and_live_feed_of_a_second_page(
    node: Hub, browser: BrowserContext
) -> None:
    server_token = token("console", server=True)
    page, watcher = await signed_in(browser, node, server_token)
    await create_room(page, "demo", "alice")
    await expect(page.locator("#rooms li[data-room=demo]")).to_be_visible()
    await expect(page.locator('#feed li[data-type="createRoom"]')).to_have_count(0)  # watched after

    await page.fill("#add-users", "bob, carol")
    await page.click("#add button[type=submit]")
    await expect(member_row(page, "bob")).to_contain_text("member")
    await expect(member_row(page, "carol")).to_contain_text("member")
    await expect(page.locator('#feed li[data-type="addMember"]')).to_contain_text("bob, carol")

    # A second page, opened the dev way: key and token in the fragment, which it drops.
    second = await browser.new_page()
    second_watcher = Watcher(second)
    await second.goto(f"{http_base(node)}/console#key={APP}&token={server_token}")
    await expect(second.locator("#state")).to_have_text("open")
    assert "#" not in second.url and server_token not in second.url
    await second.fill("#prefix", "de")
    await second.click("#rooms li[data-room=demo] button")
    await expect(member_row(second, "carol")).to_contain_text("member")
    await expect(second.locator("#watching")).to_contain_text("demo")

    await page.fill("#role-user", "bob")
    await page.select_option("#role-value", "admin")
    await page.click("#role button[type=submit]")
    await expect(member_row(page, "bob")).to_contain_text("admin")
    change = second.locator('#feed li[data-type="assignAdmin"]')
    await expect(change).to_be_visible(timeout=1000)
    await expect(change).to_contain_text("bob")
    await expect(change).to_have_class(re.compile(r"\bfresh\b"))
    await expect(member_row(second, "bob")).to_contain_text("admin")

    # Properties, invitations accepted on behalf, a transfer: each lands in the live feed.
    await page.fill("#prop-user", "carol")
    await page.fill("#prop-name", "score")
    await page.fill("#prop-value", "42")
    await page.click("#prop button[type=submit]")
    await expect(member_row(second, "carol")).to_contain_text("score=42")
    await page.fill("#add-users", "dave")
    await page.check("#add-invite")
    await page.click("#add button[type=submit]")
    await expect(second.locator('#invitations li[data-invitee="dave"]')).to_be_visible()
    await page.click('#invitations li[data-invitee="dave"] button')
    await expect(member_row(second, "dave")).to_be_visible()
    await page.fill("#transfer-to", "bob")
    await page.click("#transfer button[type=submit]")
    await expect(second.locator("#room-meta")).to_contain_text("owner bob")
    await member_row(page, "dave").locator("button").click()
    await expect(member_row(second, "dave")).to_have_count(0)
    types = await second.locator("#feed li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert types == [
        "removeMember",
        "transferOwner",
        "acceptInvitation",
        "inviteMember",
        "updateMember",
        "assignAdmin",
    ]
    assert await page.locator("#error").is_hidden()

    for seen in (watcher, second_watcher):
        assert seen.urls, "no request recorded"
        assert not [u for u in seen.urls if server_token in u or "token" in u.lower()]
        assert not [m for m in seen.console if "Content Security Policy" in m or "pageerror" in m]


async def test_forbidden_action_shows_code_and_message(node: Hub, browser: BrowserContext) -> None:
    page, _ = await signed_in(browser, node, token("console", server=True))
    await create_room(page, "locked", "alice", "bob, carol")
    await page.fill("#role-user", "bob")
    await page.select_option("#role-value", "guest")
    await page.fill("#role-operator", "carol")  # a member may not set roles
    await page.click("#role button[type=submit]")
    error = page.locator("#error")
    await expect(error).to_be_visible()
    await expect(error.locator(".code")).to_have_text("100006 FORBIDDEN")
    await expect(error).to_contain_text("not allowed")
    await expect(member_row(page, "bob")).to_contain_text("member")


async def test_bad_token_shows_the_auth_error(node: Hub, browser: BrowserContext) -> None:
    page = await browser.new_page()
    await page.goto(f"{http_base(node)}/console")
    await page.fill("#key", APP)
    await page.fill("#token", "not-a-token")
    await page.click("#signin button[type=submit]")
    await expect(page.locator("#error .code")).to_contain_text(re.compile(r"^1000\d\d"))
    await expect(page.locator("#app")).to_be_hidden()


async def test_csp_header_and_ws_url(node: Hub, browser: BrowserContext) -> None:
    page = await browser.new_page()
    response = await page.goto(f"{http_base(node)}/console")
    assert response is not None and response.status == 200
    ws = f"ws://127.0.0.1:{node.port}/ws"
    directives = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert directives == {**CSP, "connect-src": ws}
    assert await page.locator("body").get_attribute("data-ws-url") == ws
    # No inline script: every script is an external file of the console.
    scripts = await page.locator("script").evaluate_all(
        "els => els.map(e => [e.getAttribute('src'), e.textContent.trim()])"
    )
    assert scripts == [["/console/console.js", ""]]
    async with httpx.AsyncClient(base_url=http_base(node), timeout=5) as http:
        for path in ("/console/console.js", "/console/console.css", "/console/roomhub-client.js"):
            asset = await http.get(path)
            assert asset.status_code == 200, path
            assert asset.headers["content-security-policy"].startswith("default-src 'none'")
        assert (await http.get("/console/nothing.js")).status_code == 404


def test_ws_url_on_every_interface_uses_the_validated_request_host() -> None:
    """A node listening on 0.0.0.0 renders the hostname the browser came to, when it is a
    plain host name or address, else loopback: nothing from a Host header reaches the page
    or the CSP unchecked."""
    from types import SimpleNamespace

    from starlette.requests import Request as HttpRequest

    from roomhub.server import console

    hub = SimpleNamespace(settings=SimpleNamespace(host="0.0.0.0"), port=8765)

    def seen_as(host: str) -> str:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/console",
            "query_string": b"",
            "headers": [(b"host", host.encode())],
            "scheme": "http",
            "server": ("10.0.0.5", 8766),
        }
        return console.ws_url(hub, HttpRequest(scope))  # type: ignore[arg-type]

    assert seen_as("hub.example.com:8766") == "ws://hub.example.com:8765/ws"
    assert seen_as("10.1.2.3:8766") == "ws://10.1.2.3:8765/ws"
    assert seen_as("[::1]:8766") == "ws://[::1]:8765/ws"
    assert seen_as("evil.com; script-src *") == "ws://127.0.0.1:8765/ws"
    assert seen_as('x"><script>') == "ws://127.0.0.1:8765/ws"
    hub.settings.host = "127.0.0.1"
    assert seen_as("hub.example.com") == "ws://127.0.0.1:8765/ws"


async def test_allowed_origins_must_name_the_console(
    redis_url: str, start_hub: HubFactory, browser: BrowserContext
) -> None:
    """With --allowed-origin set, the console connects only if its own origin is listed."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    hub = await start_hub(redis=redis_url, http_port=port, allowed_origins=[origin])
    page, _ = await signed_in(browser, hub, token("console", server=True))
    await expect(page.locator("#rooms")).to_contain_text("no rooms")

    other = await start_hub(redis=redis_url, allowed_origins=["https://chat.example.com"])
    page = await browser.new_page()
    await page.goto(f"{http_base(other)}/console")
    await page.fill("#key", APP)
    await page.fill("#token", token("console", server=True))
    await page.click("#signin button[type=submit]")
    await expect(page.locator("#error")).to_contain_text("cannot connect")
    await expect(page.locator("#app")).to_be_hidden()
