"""`roomhub serve` in dev mode (no --app, embedded store) prints a console URL with the dev key
and a fresh server token in its fragment: opened as printed, the console signs in, drops the
fragment from the address bar, and no request carries the token."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from urllib.parse import urldefrag

from playwright.async_api import BrowserContext, expect

from roomhub.bench.infra import free_port

from ..support import wait_ready

LINE = re.compile(r"live console:\s+((http://127\.0\.0\.1:(\d+)/console)#key=dev&token=(\S+))")


async def test_dev_console_url_as_printed(browser: BrowserContext) -> None:
    port, http_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomhub.server", "serve",
        "--port", str(port), "--http-port", str(http_port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    printed: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()

    async def drain() -> None:  # read every line, so the node never blocks on a full pipe
        assert proc.stderr is not None
        async for raw in proc.stderr:
            found = LINE.search(raw.decode(errors="replace"))
            if found and not printed.done():
                printed.set_result(found)

    reader = asyncio.create_task(drain())
    try:
        found = await asyncio.wait_for(printed, 20)
        printed_url, url, shown_port, server_token = found[1], found[2], int(found[3]), found[4]
        assert shown_port == http_port
        await wait_ready(f"ws://127.0.0.1:{port}/ws")
        page = await browser.new_page()
        requested: list[str] = []
        page.on("request", lambda r: requested.append(urldefrag(r.url).url))
        page.on("websocket", lambda ws: requested.append(ws.url))
        await page.goto(printed_url)
        await expect(page.locator("#state")).to_have_text("open")
        assert page.url == url
        await expect(page.locator("#rooms")).to_contain_text("no rooms")
        assert f"ws://127.0.0.1:{port}/ws" in requested
        assert not [u for u in requested if server_token in u]
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
