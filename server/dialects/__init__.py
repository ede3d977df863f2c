"""The vendors' HTTP dialects (docs/dialects.md): IMKIT, Tencent Room Engine and NetEase Yunxin
routers on the HTTP port, each mapping its vendor's requests onto the op table through
`base.run_op` (the server API's own way in), with its vendor's auth and envelope.

A dialect module adds itself to ROUTERS: a function (hub, keys) -> its routes, called once per
node with the node's `DialectKeys` (the apps' vendor credentials, server/credentials.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from ..credentials import DialectKeys
from . import imkit, netease, tencent

if TYPE_CHECKING:
    from ..hub import Hub

Router = Callable[["Hub", DialectKeys], list[BaseRoute]]

# Each dialect's routes(hub, keys), in mount order (the dialects' paths do not overlap).
ROUTERS: list[Router] = [imkit.routes, tencent.routes, netease.routes]


def routes(hub: Hub) -> list[BaseRoute]:
    """Every dialect's routes for this node, mounted by server/http.py after the server API."""
    keys = DialectKeys(hub.settings.dialects)
    return [route for router in ROUTERS for route in router(hub, keys)]
