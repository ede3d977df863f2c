"""The NetEase Yunxin IM v2 dialect (docs/dialects.md): not built yet, so it serves no route."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from ..credentials import DialectKeys

if TYPE_CHECKING:
    from ..hub import Hub


def routes(hub: Hub, keys: DialectKeys) -> list[BaseRoute]:
    """The NetEase Yunxin IM v2 routes (ROUTERS of server/dialects/__init__.py)."""
    return []
