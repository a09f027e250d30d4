"""Direct messages, mentions, unread and notifications in a real Chromium (SPEC §9).

bob starts a DM with alice from "New message", mentions her with the @ type-ahead
while her tab is hidden: she gets one desktop notification per message (after she
allowed them with the button; captured by an init script), the badges, the tab title
and the favicon follow, a notification's click opens the room at that message under
a "New messages" divider, and "Mark unread" brings the badge back, also after a reload.
The DM view is screenshotted for the README (light, dark, phone).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .servers import ROOT, Server
from .test_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    WAIT_MS,
    Watch,
    chromium,
    chromium_path,
    expect_once,
    fill_form,
    message,
    screenshot_looks,
    send,
    servers,
    start,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "docs" / "screenshots"

# Desktop notifications and the tab's visibility, under the test's control: every
# `new Notification` is recorded; permission starts at "default" (nothing may ask on
# its own) and becomes "granted" only through requestPermission (the page's button).
CAPTURE = """
(() => {
  const notes = [];
  let permission = 'default';
  let asked = 0;
  class FakeNotification {
    constructor(title, options = {}) {
      this.title = title;
      this.body = options.body;
      this.tag = options.tag;
      this.onclick = null;
      notes.push(this);
    }
    close() {}
    static get permission() { return permission; }
    static requestPermission() {
      asked += 1;
      permission = 'granted';
      return Promise.resolve(permission);
    }
  }
  window.Notification = FakeNotification;
  window.__notes = notes;
  window.__asked = () => asked;
  let hidden = false;
  Object.defineProperty(document, 'hidden', { get: () => hidden });
  Object.defineProperty(document, 'visibilityState', {
    get: () => (hidden ? 'hidden' : 'visible'),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
})();
"""
NOTES = "() => window.__notes.map(n => ({title: n.title, body: n.body, tag: n.tag}))"


def link(page: Any, name: str, section: str = "#room-list") -> Any:
    return page.locator(f"{section} a.room-link", has=page.locator(".room-name", has_text=name))


async def test_dm_mentions_notifications_and_unread(
    tmp_path: Path, chromium: Any, servers: list[Server],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    server = await start(Server(tmp_path / "data", {"CHATAPP_ENV": "development"}), servers)
    base = server.base
    watch = Watch(server.port)
    ctx_a = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    ctx_b = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    await ctx_a.add_init_script(CAPTURE)
    alice, bob = await ctx_a.new_page(), await ctx_b.new_page()
    watch.attach(alice, "alice")
    watch.attach(bob, "bob")
    await fill_form(alice, "/register", "alice", base)
    await fill_form(bob, "/register", "bob", base)
    for page in (alice, bob):
        await expect(page.locator("body[data-connection=ready]")).to_have_count(1)
    await expect(alice.locator("#dm-empty")).to_be_visible()

    # Notifications only after alice asks for them with the button.
    assert await alice.evaluate("window.__asked()") == 0
    await alice.click("#notify-btn")
    await expect(alice.locator("#notify-btn")).to_be_hidden()
    assert await alice.evaluate("Notification.permission") == "granted"

    # bob: "New message", type-ahead over the people, Enter picks alice.
    await bob.click("#new-dm-btn")
    await bob.locator("#new-dm-input").press_sequentially("ali", delay=5)
    await expect(bob.locator("#new-dm-options [role=option]")).to_have_count(1)
    await bob.locator("#new-dm-input").press("Enter")
    await expect(bob.locator("#new-dm-chips .chip")).to_have_text("alice×")
    await bob.click("#new-dm-submit")
    await bob.wait_for_url(f"{base}/rooms/dm-*")
    await expect(bob.locator("#room-name")).to_have_text("alice")
    await expect(bob.locator("#leave-btn")).to_be_hidden()
    await expect(link(bob, "alice", "#dm-list")).to_have_attribute("aria-current", "page")
    # alice's page gets the DM live, named after bob, with his online dot.
    dm_link = link(alice, "bob", "#dm-list")
    await expect(dm_link).to_have_count(1)
    await expect(dm_link).to_have_class(re.compile(r"\bis-online\b"))
    await send(bob, "hi alice, got a minute?")
    await expect(dm_link.locator(".badge")).to_have_text("1 unread")
    await expect(alice).to_have_title("(1) #general · chatapp")

    # alice opens the DM (read), then her tab goes to the background.
    await dm_link.click()
    await expect_once(alice, "got a minute")
    dm_url = alice.url
    await expect(dm_link.locator(".badge")).to_be_hidden()
    await expect(alice).to_have_title("bob · chatapp")
    await alice.evaluate("window.__setHidden(true)")

    # bob mentions her with the type-ahead: "@al", Tab.
    box = bob.locator("#composer-input")
    await box.press_sequentially("@al", delay=5)
    await expect(bob.locator("#mention-suggest [role=option]")).to_have_count(1)
    await box.press("Tab")
    await expect(box).to_have_value("@alice ")
    await box.press_sequentially("are you there?", delay=2)
    await box.press("Enter")
    await expect_once(alice, "are you there?")
    await expect(message(alice, "are you there?")).to_have_class(re.compile(r"\bis-mention\b"))

    # In general: one mention and one plain message; the room is set to "mentions".
    await link(bob, "general").click()
    await expect(bob.locator("#notify-select-wrap")).to_be_visible()
    await send(bob, "@alice standup in 5")
    await send(bob, "lunch anyone?")
    general = link(alice, "general")
    await expect(general.locator(".badge")).to_have_text("2 unread")
    await expect(general.locator(".mention-badge")).to_have_text("@1 mentioning you")
    await expect(alice).to_have_title("(3) bob · chatapp")
    assert await alice.locator('link[rel="icon"]').get_attribute("href") == (
        "/static/favicon-unread.svg")
    notes = await alice.evaluate(NOTES)
    assert [(n["title"], n["body"]) for n in notes] == [
        ("bob", "@alice are you there?"),
        ("bob in #general", "@alice standup in 5"),
        ("bob in #general", "lunch anyone?"),
    ]
    assert len({n["tag"] for n in notes}) == 3  # one per message

    # Back in the tab: the DM on screen is read; the click on a notification opens
    # general at that message, below "New messages", and does not mark it read yet.
    await alice.evaluate("window.__setHidden(false)")
    await expect(alice).to_have_title("(2) bob · chatapp")
    await alice.evaluate("window.__notes[1].onclick()")
    await expect(alice.locator("#room-name")).to_have_text("general")
    divider = alice.locator("#timeline-host .new-divider")
    await expect(divider).to_have_count(1)
    following = await divider.evaluate("d => d.nextElementSibling.innerText")
    assert "standup in 5" in following

    # Reading clears both badges on every tab; "Mark unread" brings them back.
    await expect(alice).to_have_title("#general · chatapp")  # all on screen: read
    await link(alice, "bob", "#dm-list").click()
    await expect(general.locator(".mention-badge")).to_be_hidden()
    await general.click()
    row = message(alice, "standup in 5")
    await row.hover()
    await row.locator(".msg-actions-btn").click()
    await alice.get_by_role("menuitem", name="Mark unread").click()
    await expect(divider).to_have_count(1)
    second = await ctx_a.new_page()
    watch.attach(second, "alice-2")
    await second.goto(dm_url)
    await expect(link(second, "general").locator(".mention-badge")).to_have_text(
        "@1 mentioning you")
    await expect(link(second, "general").locator(".badge")).to_have_text(
        "2 unread")
    await link(alice, "bob", "#dm-list").click()  # leaving general keeps it unread
    await expect(general.locator(".mention-badge")).to_have_text("@1 mentioning you")
    await alice.reload()
    await expect(link(alice, "general").locator(".badge")).to_have_text(
        "2 unread")
    await expect(link(alice, "general").locator(".mention-badge")).to_have_text(
        "@1 mentioning you")
    await alice.locator("#composer-input").blur()
    await alice.screenshot(path=str(SHOTS / "dm-unread-desktop-light.png"))

    # The DM view for the README, light and dark, desktop and phone.
    await link(bob, "alice", "#dm-list").click()
    await send(bob, "See you at standup :)")
    state = await ctx_b.storage_state()
    async def ready(page: Any) -> None:
        await expect_once(page, "See you at standup")
        await page.wait_for_function("document.fonts.status === 'loaded'")
        await page.locator("#composer-input").blur()

    await screenshot_looks(chromium, watch, state, dm_url, "dm", ready, full_page=False)
    assert watch.errors == [], watch.errors
    assert watch.dialogs == [], watch.dialogs
