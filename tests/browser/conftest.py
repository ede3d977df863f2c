"""Fixtures of the browser tests: Debian's chromium, headless, driven by Playwright (its async
API, in the test's event loop, beside the hub nodes the root conftest starts).

Never `playwright install`: the browser is /usr/bin/chromium (apt-get install -y chromium),
started with an empty user-data dir of the test's own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, async_playwright

from roomhub.server.hub import Hub

from ..conftest import HubFactory

CHROMIUM = os.environ.get("ROOMHUB_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # every Playwright action and expectation, unless a step says otherwise


def chromium_missing() -> bool:
    return shutil.which(CHROMIUM) is None


async def open_context(user_data_dir: Path, **options: Any) -> tuple[Any, BrowserContext]:
    """(playwright, context): chromium with a fresh profile; the caller stops both."""
    if chromium_missing():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium")
    playwright = await async_playwright().start()
    try:
        context = await playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            timeout=30_000,
            **options,
        )
    except BaseException:
        await playwright.stop()
        raise
    context.set_default_timeout(TIMEOUT_MS)
    return playwright, context


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A headless chromium context with an empty profile, closed at test end."""
    playwright, context = await open_context(tmp_path / "profile")
    try:
        yield context
    finally:
        await context.close()
        await playwright.stop()


@pytest.fixture
async def node(redis_url: str, start_hub: HubFactory) -> Hub:
    """One hub node on the session's real redis-server."""
    return await start_hub(redis=redis_url)


def http_base(hub: Hub) -> str:
    """The node's HTTP side, without the trailing slash."""
    return str(hub.http.url).rstrip("/")
