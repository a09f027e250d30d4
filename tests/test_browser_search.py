"""Search and permalinks in a real Chromium (SPEC §12): a word fragment finds a
message far back in a room, the result opens the room at that message (highlighted,
with older and newer messages around it and the live stream going on), a permalink
does the same on a fresh page, and "Copy link" puts that permalink on the clipboard.
It also saves the search screenshots (docs/screenshots/search-*.png)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from .servers import ROOT, Browser, Server
from .test_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    WAIT_MS,
    Watch,
    api_post,
    chromium,
    chromium_path,
    expect_once,
    fill_form,
    message,
    messages,
    servers,
    start,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "docs" / "screenshots"
TARGET = "We deployed the Café build to staging 🚀 — deploy notes in the wiki"


def result_rows(page: Any) -> Any:
    return page.locator("#search-results .search-result")


async def test_search_finds_a_fragment_and_opens_the_message(
    tmp_path: Path, chromium: Any, servers: list[Server],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    server = await start(Server(tmp_path / "data", {"CHATAPP_ENV": "development"}), servers)
    base = server.base
    watch = Watch(server.port)

    carol = Browser(base)
    assert await asyncio.to_thread(carol.register, "carol") == 303
    # The target sits 250 messages back: past what the room opens on, its last page (a
    # newcomer starts with general read, so nothing pulls the view further back).
    await api_post(carol, "general", *(f"older note {i}" for i in range(40)))
    await api_post(carol, "general", "Déploiement prévu vendredi", TARGET)
    await api_post(carol, "general", *(f"later note {i}" for i in range(250)))

    context = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    watch.attach(page, "alice")
    await fill_form(page, "/register", "alice", base)
    await expect_once(page, "later note 249")
    await expect(message(page, "Café build")).to_have_count(0)

    # "/" focuses the box; a fragment finds both spellings, matched words marked.
    await page.locator("#messages").click()
    await page.keyboard.press("/")
    await expect(page.locator("#search-input")).to_be_focused()
    await page.keyboard.type("deplo", delay=30)
    await expect(result_rows(page)).to_have_count(2)
    first = result_rows(page).nth(0)
    await expect(first).to_contain_text("#general")
    await expect(first).to_contain_text("carol")
    marks = await first.locator("mark").all_inner_texts()
    assert marks == ["deployed", "deploy"], marks
    assert await result_rows(page).nth(1).locator("mark").all_inner_texts() == ["Déploiement"]
    # Text only: the body is text nodes and <mark> elements, nothing else.
    tags = await first.locator(".search-body *").evaluate_all(
        "els => els.map(e => e.tagName)")
    assert set(tags) == {"MARK"}
    await expect(first).to_have_attribute("aria-selected", "true")

    # Accents and case fold; a narrower query answers last even while typing fast.
    await page.locator("#search-input").fill("")
    await page.locator("#search-input").press_sequentially("CAFE from:carol", delay=5)
    await expect(result_rows(page)).to_have_count(1)
    assert await result_rows(page).locator("mark").all_inner_texts() == ["Café"]
    await page.locator("#search-input").fill("zzzz-nothing")
    await expect(page.locator("#search-results .search-status")).to_have_text(
        "No messages match.")
    await page.locator("#search-input").fill("from:carol")
    await expect(page.locator("#search-results .search-status")).to_contain_text(
        "Type a word")

    # Keyboard: Ctrl+K focuses, arrows move, Enter opens the room at the message.
    await page.locator("#composer-input").click()
    await page.keyboard.press("Control+k")
    await expect(page.locator("#search-input")).to_be_focused()
    await page.locator("#search-input").fill("deplo")
    await expect(result_rows(page)).to_have_count(2)
    await page.keyboard.press("ArrowDown")
    await expect(result_rows(page).nth(1)).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("ArrowUp")
    await expect(result_rows(page).nth(0)).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("Enter")
    await expect(page.locator("#search-results")).to_be_hidden()
    target = message(page, "Café build")
    await expect(target).to_have_count(1)
    await expect(target).to_have_class(re.compile(r"\bis-highlight\b"))
    await expect(target).to_be_in_viewport()
    # Both directions from there: messages before it and everything up to the newest.
    await expect_once(page, "older note 39")
    await expect_once(page, "later note 249")
    ids = await messages(page).evaluate_all("rows => rows.map(r => Number(r.dataset.id))")
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    # The live stream goes on after the jump, and older pages load on scroll.
    await api_post(carol, "general", "fresh after the jump")
    await expect_once(page, "fresh after the jump")
    for _ in range(20):
        if await message(page, "older note 0").count():
            break
        await page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        await asyncio.sleep(0.3)
    await expect_once(page, "older note 0")
    ids = await messages(page).evaluate_all("rows => rows.map(r => Number(r.dataset.id))")
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert len(ids) == 40 + 2 + 250 + 1  # every message, once

    # "Copy link" puts the permalink on the clipboard.
    target_id = await target.get_attribute("data-id")
    await target.hover()
    await target.locator(".msg-actions-btn").click()
    await page.get_by_role("menuitem", name="Copy link").click()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{base}/messages/{target_id}"

    # The permalink on a fresh page: the room, scrolled to the message, highlighted.
    fresh = await context.new_page()
    watch.attach(fresh, "alice-permalink")
    await fresh.goto(copied)
    await expect(fresh.locator("#room-name")).to_have_text("general")
    linked = message(fresh, "Café build")
    await expect(linked).to_have_class(re.compile(r"\bis-highlight\b"))
    await expect(linked).to_be_in_viewport()
    await expect_once(fresh, "fresh after the jump")
    missing = f"{base}/messages/999999"
    assert (await fresh.goto(missing)).status == 404  # type: ignore[union-attr]
    # (Chromium itself logs the 404 it was sent to: expected, and only that one.)
    expected_404 = f"alice-permalink: console.error: Failed to load resource: the server" \
        f" responded with a status of 404 (Not Found) ({missing})"
    watch.errors = [e for e in watch.errors if e.replace("404 ()", "404 (Not Found)")
                    != expected_404]

    # Screenshots of the results, light and dark, desktop and phone.
    state = await context.storage_state()
    for scheme in ("light", "dark"):
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            shot = await chromium.new_context(
                storage_state=state, viewport=viewport, color_scheme=scheme,
                reduced_motion="reduce", device_scale_factor=1)
            try:
                view = await shot.new_page()
                watch.attach(view, f"shot-{scheme}-{label}")
                await view.goto(base + "/")
                await expect_once(view, "fresh after the jump")
                await view.locator("#search-input").fill("deplo")
                await expect(result_rows(view)).to_have_count(2)
                overflow = await view.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, f"{scheme}-{label}: the page scrolls sideways"
                await view.wait_for_function("document.fonts.status === 'loaded'")
                await view.screenshot(path=str(SHOTS / f"search-{label}-{scheme}.png"))
            finally:
                await shot.close()

    await context.close()
    assert watch.errors == [], watch.errors
    assert watch.dialogs == []
