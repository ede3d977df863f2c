"""Fixtures of the contract tests that run on every store of the `hub` fixture.

The encoding alternates with the store (by the hub param's index), so every such test runs
with both JSON and msgpack. A module may set ENCODINGS to pair the stores the other way round.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ..support import Open, RawClient

ENCODINGS = ("json", "msgpack")


@pytest.fixture
def enc(request: pytest.FixtureRequest) -> str:
    """The connection encoding of this test: JSON or msgpack, by the store it runs on."""
    encodings = getattr(request.module, "ENCODINGS", ENCODINGS)
    return encodings[request.node.callspec.indices["hub"] % 2]  # type: ignore[no-any-return]


@pytest.fixture
async def open_as(connect: Any, enc: str) -> AsyncIterator[Open]:
    """open_as(user, server=False, encoding=enc) -> an authenticated RawClient."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_client(
            user: str, *, server: bool = False, encoding: str | None = None
        ) -> RawClient:
            client = await stack.enter_async_context(connect(encoding or enc))
            await client.auth(user, server=server)
            return client

        yield open_client


@pytest.fixture
async def srv(open_as: Open) -> RawClient:
    """A server-token connection (the app's backend)."""
    return await open_as("backend", server=True)
