"""Edit, delete, react and reply between two people in a real Chromium (SPEC §9).

alice and bob use two real Hypercorn processes on one PostgreSQL database and Redis,
so bob's server can be stopped while alice goes on: what she edits, deletes and
reacts to meanwhile reaches bob through `sync` when his page reconnects, and both
pages must then show exactly the same room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import ROOT, Server
from .test_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    RECONNECT_MS,
    WAIT_MS,
    Watch,
    chromium,
    chromium_path,
    expect_once,
    fill_form,
    message,
    messages,
    send,
    servers,
    start,
)
from .test_scaleout import database, shared_redis  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

SHOTS = ROOT / "docs" / "screenshots"

ROOM_STATE = """rows => rows.map(r => ({
  id: r.dataset.id,
  body: r.querySelector('.msg-body')?.innerText ?? '',
  quote: r.querySelector('.msg-quote')?.innerText ?? null,
  reactions: [...r.querySelectorAll('.reaction')].map(b => b.innerText.replace(/\\s+/g, '')),
}))"""


@pytest.fixture
def overrides(database: str) -> Iterator[dict[str, str]]:  # noqa: F811
    yield {
        "CHATAPP_ENV": "development",
        "CHATAPP_DATABASE_URL": database,
        "CHATAPP_BROKER_URL": shared_redis(),
    }


class AcceptingWatch(Watch):
    """A Watch that says yes to our own delete confirmation (and records it)."""

    def _dialog(self, who: str, dialog: Any) -> None:
        self.dialogs.append(f"{who}: {dialog.type}: {dialog.message}")
        if dialog.type == "confirm" and dialog.message.startswith("Delete this message"):
            asyncio.ensure_future(dialog.accept())
        else:
            asyncio.ensure_future(dialog.dismiss())


async def open_menu(page: Any, text: str) -> None:
    row = message(page, text)
    await row.hover()
    await row.locator(".msg-actions-btn").click()


async def room_state(page: Any) -> list[dict[str, Any]]:
    return await messages(page).evaluate_all(ROOM_STATE)  # type: ignore[no-any-return]


async def test_edit_delete_react_reply_live_and_after_a_reconnect(
    tmp_path: Path, chromium: Any, servers: list[Server], overrides: dict[str, str],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    server_a = await start(Server(tmp_path / "a", overrides), servers)
    server_b = await start(Server(tmp_path / "b", overrides), servers)
    watch_a, watch_b = AcceptingWatch(server_a.port), AcceptingWatch(server_b.port)

    ctx_a = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    ctx_b = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    alice, bob = await ctx_a.new_page(), await ctx_b.new_page()
    watch_a.attach(alice, "alice")
    watch_b.attach(bob, "bob")
    await fill_form(alice, "/register", "alice", server_a.base)
    await fill_form(bob, "/register", "bob", server_b.base)
    for page in (alice, bob):
        await expect(page.locator("body[data-connection=ready]")).to_have_count(1)

    # Edit: Up in the empty box edits my last message; Esc leaves edit mode untouched.
    await send(alice, "helo team, the *new* build is `v2.4.1`")
    await expect_once(bob, "helo team")
    box = alice.locator("#composer-input")
    await box.press("ArrowUp")
    await expect(alice.locator(".composer-mode")).to_contain_text("Editing")
    await expect(box).to_have_value("helo team, the *new* build is `v2.4.1`")
    await box.press("Escape")
    await expect(alice.locator(".composer-mode")).to_be_hidden()
    await expect(box).to_have_value("")
    await box.press("ArrowUp")
    await box.fill("hello team, the *new* build is `v2.4.1`")
    await box.press("Enter")
    for page in (alice, bob):
        row = message(page, "hello team")
        await expect(row).to_have_count(1)
        await expect(row.locator(".msg-edited")).to_have_count(1)
        # Safe formatting: bold and inline code as elements, built from text.
        await expect(row.locator(".msg-body strong")).to_have_text("new")
        await expect(row.locator(".msg-body code")).to_have_text("v2.4.1")
    await expect(message(bob, "helo team")).to_have_count(0)

    # The edit history opens from "(edited)".
    await message(bob, "hello team").locator(".msg-edited").click()
    await expect(bob.locator("#edits-list li")).to_have_count(1)
    await expect(bob.locator("#edits-list")).to_contain_text("helo team")
    await bob.keyboard.press("Escape")

    # React from the actions menu; the count and who reacted show on both sides.
    await open_menu(bob, "hello team")
    await bob.get_by_role("menuitem", name="React with 👍").click()
    for page in (alice, bob):
        reaction = message(page, "hello team").locator(".reaction")
        await expect(reaction).to_have_count(1)
        await expect(reaction).to_contain_text("👍")
        await expect(reaction).to_contain_text("1")
    title = await message(alice, "hello team").locator(".reaction").get_attribute("title")
    assert "bob" in (title or "")
    mine = message(bob, "hello team").locator(".reaction")
    await expect(mine).to_have_attribute("aria-pressed", "true")

    # Reply: the quote names the author and the start of the original.
    await open_menu(bob, "hello team")
    await bob.get_by_role("menuitem", name="Reply").click()
    await expect(bob.locator(".composer-mode")).to_contain_text("Replying to alice")
    await send(bob, "welcome aboard!")
    for page in (alice, bob):
        quote = message(page, "welcome aboard").locator(".msg-quote")
        await expect(quote).to_contain_text("alice")
        await expect(quote).to_contain_text("hello team")

    await send(alice, "typo mesage, please ignore")
    await expect_once(bob, "typo mesage")

    # bob's server goes away; alice edits, reacts and deletes meanwhile.
    watch_b.server_down = True
    await asyncio.to_thread(server_b.terminate)
    await expect(bob.locator("#conn-banner")).to_be_visible()

    await open_menu(alice, "typo mesage")
    await alice.get_by_role("menuitem", name="Delete…").click()
    await expect(message(alice, "typo mesage")).to_have_count(0)
    await open_menu(alice, "welcome aboard")
    await alice.get_by_role("menuitem", name="React with 🎉").click()
    await expect(message(alice, "welcome aboard").locator(".reaction")).to_contain_text("🎉")
    await open_menu(alice, "hello team")
    await alice.get_by_role("menuitem", name="Edit").click()
    await box.fill("hello everyone")
    await box.press("Enter")
    await expect(message(alice, "hello everyone")).to_have_count(1)
    quote = message(alice, "welcome aboard").locator(".msg-quote")
    await expect(quote).to_contain_text("hello everyone")

    # bob's server is back: his page syncs and shows what alice sees.
    server_b = await start(Server(tmp_path / "b", overrides, port=server_b.port), servers)
    await expect(bob.locator("body[data-connection=ready]")).to_have_count(1, timeout=RECONNECT_MS)
    watch_b.server_down = False
    await expect(message(bob, "typo mesage")).to_have_count(0)
    await expect(message(bob, "hello everyone")).to_have_count(1)
    await expect(message(bob, "welcome aboard").locator(".reaction")).to_contain_text("🎉")
    quote = message(bob, "welcome aboard").locator(".msg-quote")
    await expect(quote).to_contain_text("hello everyone")
    assert await room_state(alice) == await room_state(bob)

    # And live again in both directions after the reconnect.
    await open_menu(bob, "hello everyone")
    await bob.get_by_role("menuitem", name="Remove your 👍").click()
    await expect(message(alice, "hello everyone").locator(".reaction")).to_have_count(0)
    assert await room_state(alice) == await room_state(bob)

    # A reload shows the same room as the live stream did.
    before = await room_state(bob)
    await bob.reload()
    await expect_once(bob, "welcome aboard")
    assert await room_state(bob) == before

    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        await alice.emulate_media(color_scheme=scheme)
        await alice.locator("#composer-input").blur()
        await alice.screenshot(path=str(SHOTS / f"conversation-desktop-{scheme}.png"))

    errors = watch_a.errors + watch_b.errors
    assert errors == [], errors
    unexpected = [d for d in watch_a.dialogs + watch_b.dialogs if "Delete this message" not in d]
    assert unexpected == []
    await ctx_a.close()
    await ctx_b.close()
