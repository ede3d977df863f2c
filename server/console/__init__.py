"""The live room console: `GET /console` on the HTTP side, a single page (plain HTML, one ES
module and a style sheet, all in this package) that signs in with an app key and a server
token and drives the hub through the TypeScript client (`roomhub-client.js`, the committed
browser bundle of clients/js) over the node's own WebSocket port.

The page holds no secret: the key and token are typed in (or, in dev mode, read from the URL
fragment, which no request carries, and removed at once). The WebSocket URL is rendered into
the page (`data-ws-url`), from the node's settings; the Content-Security-Policy lets the page
connect to that URL only.
"""

from __future__ import annotations

import html
import ipaddress
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from ..hub import Hub

# The files served under /console/, by name, with their media type.
FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "roomhub-client.js": "text/javascript; charset=utf-8",
}
ANY_HOST = {"0.0.0.0", "::", ""}  # noqa: S104 - listening on every interface
HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?"
)


@cache
def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _host_literal(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def valid_host(host: str | None) -> str | None:
    """`host` if it is an IP address or a DNS name (no port, no path, nothing to inject into
    a header or an attribute), else None."""
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return host if HOSTNAME.fullmatch(host) else None


def request_host(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8766" -> "::1")."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def ws_url(hub: Hub, request: Request) -> str:
    """The hub's WebSocket URL as a browser that reached this HTTP side should use it: the
    node's host, or, when it listens on every interface, the hostname the request came to
    (validated), on the node's WebSocket port."""
    host = hub.settings.host
    if host in ANY_HOST:
        host = valid_host(request_host(request.headers.get("host", ""))) or "127.0.0.1"
    return f"ws://{_host_literal(host)}:{hub.port}/ws"


def csp(ws: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"connect-src {ws}; img-src 'self' data:; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'none'"
    )


def headers(ws: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(ws),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
    }


def page(ws: str) -> bytes:
    template = _read("console.html").decode()
    return template.replace("{{WS_URL}}", html.escape(ws, quote=True)).encode()


def routes(hub: Hub) -> list[BaseRoute]:
    async def console(request: Request) -> Response:
        ws = ws_url(hub, request)
        return Response(page(ws), media_type="text/html; charset=utf-8", headers=headers(ws))

    def static(name: str, media_type: str) -> Route:
        async def serve(request: Request) -> Response:
            try:
                body = _read(name)
            except FileNotFoundError:
                return Response(f"{name} is not built\n", 404, media_type="text/plain")
            return Response(body, media_type=media_type, headers=headers(ws_url(hub, request)))

        return Route(f"/console/{name}", serve, methods=["GET"])

    return [
        Route("/console", console, methods=["GET"]),
        *(static(name, media) for name, media in FILES.items()),
    ]
