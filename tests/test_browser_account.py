"""The account page in a real Chromium (SPEC §11): a new display name shows live on
another person's page (timeline, online list, DM name) without a reload; signing out
another device from /account sends that device to the login page at once. The page is
used with the keyboard alone once, and screenshotted (light, dark, phone).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .servers import Server
from .test_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
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

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
          " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def online_alice(page: Any) -> Any:
    return page.locator("#online-list .online-name", has_text="Alice Liddell")


async def test_rename_shows_live_and_another_device_is_signed_out(
    tmp_path: Path, chromium: Any, servers: list[Server],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    server = await start(Server(tmp_path / "data", {"CHATAPP_ENV": "development"}), servers)
    base = server.base
    watch = Watch(server.port)
    ctx_a = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    ctx_b = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    ctx_phone = await chromium.new_context(viewport=PHONE, user_agent=IPHONE,
                                           reduced_motion="reduce")
    alice, bob, phone = await ctx_a.new_page(), await ctx_b.new_page(), await ctx_phone.new_page()
    for page, who in ((alice, "alice"), (bob, "bob"), (phone, "alice-phone")):
        watch.attach(page, who)
    await fill_form(alice, "/register", "alice", base)
    await fill_form(bob, "/register", "bob", base)
    await fill_form(phone, "/login", "alice", base)
    for page in (alice, bob, phone):
        await expect(page.locator("body[data-connection=ready]")).to_have_count(1)
    await send(alice, "hello from alice")
    await expect_once(bob, "hello from alice")
    author = message(bob, "hello from alice").locator(".msg-author")
    await expect(author).to_have_text("alice")
    # bob opens a DM with alice: named after her.
    await bob.click("#new-dm-btn")
    await bob.locator("#new-dm-input").press_sequentially("ali", delay=5)
    await bob.locator("#new-dm-input").press("Enter")
    await bob.click("#new-dm-submit")
    await bob.wait_for_url(f"{base}/rooms/dm-*")
    await expect(bob.locator("#room-name")).to_have_text("alice")
    await bob.go_back()
    await expect_once(bob, "hello from alice")

    # alice renames herself on /account, with the keyboard alone: the skip to the
    # field is by Tab from the top of the page.
    account = await ctx_a.new_page()
    watch.attach(account, "alice-account")
    await account.goto(base + "/account")
    field = account.locator("#display_name")
    for _ in range(10):
        await account.keyboard.press("Tab")
        if await field.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the display name field")
    await account.keyboard.press("Control+A")
    await account.keyboard.type("Alice Liddell")
    await account.keyboard.press("Enter")
    await account.wait_for_url(re.compile(r".*/account\?done=profile"))
    await expect(account.locator("#notice")).to_have_text("Display name saved.")

    # bob's page follows without a reload: timeline, online list, DM name.
    await expect(author).to_have_text("Alice Liddell")
    await expect(author).to_have_attribute("title", "Alice Liddell (@alice)")
    await expect(online_alice(bob)).to_have_count(1)
    dm = bob.locator("#dm-list .room-name")
    await expect(dm).to_have_text("Alice Liddell")
    # alice's own chat tab shows her new name too.
    await expect(alice.locator(".me-username")).to_have_text("Alice Liddell")
    # A reload renders the same names from the server.
    await bob.reload()
    await expect(online_alice(bob)).to_have_count(1)
    await expect(bob.locator("#dm-list .room-name")).to_have_text("Alice Liddell")
    await expect(message(bob, "hello from alice").locator(".msg-author")).to_have_text(
        "Alice Liddell")

    # Sign out the phone from the desktop's account page: it lands on the login page.
    await account.reload()
    rows = account.locator("#sessions .account-row")
    await expect(rows).to_have_count(2)
    phone_row = rows.filter(has_text="Safari on iPhone")
    await expect(phone_row).to_have_count(1)
    await expect(rows.filter(has_text="This device")).to_have_count(1)
    await phone_row.get_by_role("button", name=re.compile("Sign out")).click()
    await expect(account.locator("#notice")).to_have_text("That session was signed out.")
    await expect(rows).to_have_count(1)
    await phone.wait_for_url(re.compile(re.escape(base) + r"/login.*"), timeout=WAIT_MS)
    await expect(alice.locator("body[data-connection=ready]")).to_have_count(1)

    # Screenshots: a token just created (shown once), light, dark and phone.
    await account.fill("#label", "deploy bot")
    await account.click(".token-form button[type=submit]")
    await expect(account.locator("#new-token")).to_have_value(re.compile(r"^chatapp_"))
    state = await ctx_a.storage_state()
    async def ready(page: Any) -> None:
        await expect(page.locator("#tokens .account-row")).to_have_count(1)

    await screenshot_looks(chromium, watch, state, base + "/account", "account", ready)
    assert watch.errors == [], watch.errors
    assert watch.dialogs == [], watch.dialogs
