"""Take docs/console.png: the console with a populated room and its live feed, 1280x800.

Run by hand from the repository root (Debian's chromium at /usr/bin/chromium; an embedded
in-memory hub on free loopback ports, nothing else needed):

    .venv/bin/python -m tests.browser.screenshot [OUT.png]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import expect

from roomhub.server.node import running_hub
from roomhub.server.settings import Settings

from ..support import APP, SECRET, connect_backend, create_room, token, update_args, ws_url
from .conftest import http_base, open_context

OUT = Path(__file__).resolve().parents[2] / "docs" / "console.png"


async def take(out: Path) -> None:
    settings = Settings(port=0, http_port=0, apps={APP: SECRET}, rate_limit=0, rooms_per_hour=0)
    async with running_hub(settings) as hub:
        url = ws_url(hub)
        async with connect_backend(url) as backend:
            for room, name in [
                ("design-review", "Design review"),
                ("launch-week", "Launch week"),
                ("ops-oncall", "Ops on-call"),
                ("support-emea", "Support EMEA"),
            ]:
                await create_room(backend, room, "alice", ["bob"])
                await backend.call("room.update", {"room": room, "name": name})
            await create_room(backend, "demo", "alice", ["bob", "carol"])
            await backend.call(
                "room.update",
                {"room": "demo", "name": "Demo room", "custom": {"topic": "Q3 launch"}},
            )
            with tempfile.TemporaryDirectory() as profile:
                playwright, context = await open_context(
                    Path(profile), viewport={"width": 1280, "height": 800}
                )
                try:
                    page = await context.new_page()
                    server_token = token("console", server=True)
                    await page.goto(f"{http_base(hub)}/console#key={APP}&token={server_token}")
                    await expect(page.locator("#state")).to_have_text("open")
                    await page.click("#rooms li[data-room=demo] button")
                    await expect(page.locator("#watching")).to_contain_text("demo")
                    for user in ("dave", "erin"):
                        await backend.call("user.upsert", {"id": user})
                    await backend.call(
                        "member.add", {"room": "demo", "invitees": ["dave"], "system_message": True}
                    )
                    await backend.call(
                        "member.update",
                        update_args(
                            "demo", "bob", {"role": "admin", "nickname": "Bob"}, system_message=True
                        ),
                    )
                    await backend.call(
                        "member.update",
                        update_args("demo", "carol", {"score": 42, "team": "design"}),
                    )
                    await backend.call(
                        "member.add",
                        {
                            "room": "demo",
                            "invitees": ["erin"],
                            "invitation_required": True,
                            "system_message": True,
                        },
                    )
                    await backend.call(
                        "member.update",
                        update_args("demo", "dave", {"role": "guest"}, system_message=True),
                    )
                    await expect(page.locator("#feed li")).to_have_count(6)
                    await expect(page.locator('#members tr[data-member="dave"]')).to_contain_text(
                        "guest"
                    )
                    await page.fill("#role-user", "carol")
                    await page.wait_for_timeout(
                        600
                    )  # the arrival animation ends; still highlighted
                    await page.screenshot(path=str(out))
                finally:
                    await context.close()
                    await playwright.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(take(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
