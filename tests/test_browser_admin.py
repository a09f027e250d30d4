"""The admin page in a real Chromium (SPEC §11): the owner invites a colleague by link
(a second browser registers through it), makes them a reset link (their open tab is
signed out; the link sets a new password once), and deactivates them while their tab
is open: the tab loses access at once. /admin is screenshotted (light, dark, phone).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .servers import Server
from .test_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PASSWORD,
    WAIT_MS,
    Watch,
    chromium,
    chromium_path,
    fill_form,
    screenshot_looks,
    servers,
    start,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_PASSWORD = "colleague's new password"


def row(page: Any, username: str) -> Any:
    return page.locator(f'#users .admin-user[data-user="{username}"]')


async def test_invite_reset_and_deactivate_a_colleague(
    tmp_path: Path, chromium: Any, servers: list[Server],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    server = await start(Server(tmp_path / "data", {
        "CHATAPP_ENV": "development", "CHATAPP_REGISTRATION": "invite"}), servers)
    base = server.base
    watch = Watch(server.port)
    ctx_owner = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    ctx_colleague = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    owner, colleague = await ctx_owner.new_page(), await ctx_colleague.new_page()
    watch.attach(owner, "owner")
    watch.attach(colleague, "colleague")
    await fill_form(owner, "/register", "owner", base)  # the first account: always
    # invite mode: a stranger's /register has no form
    await colleague.goto(base + "/register")
    await expect(colleague.locator("#registration-closed")).to_contain_text("invitation")
    await expect(colleague.locator("#password")).to_have_count(0)

    admin = await ctx_owner.new_page()
    watch.attach(admin, "owner-admin")
    await admin.goto(base + "/admin")
    await admin.fill("#uses", "1")
    await admin.fill("#expires_days", "3")
    await admin.click("#invites button[type=submit]:text('Create invite link')")
    link = await admin.locator("#new-link").input_value()
    assert link.startswith(base + "/join/"), link

    # The colleague registers through the link in another browser.
    await colleague.goto(link)
    await colleague.fill("#username", "colleague")
    await colleague.fill("#password", PASSWORD)
    await colleague.click("form.form button[type=submit]")
    await colleague.wait_for_url(base + "/")
    await expect(colleague.locator("body[data-connection=ready]")).to_have_count(1)
    await colleague.goto(link)  # used up: no form
    await expect(colleague.locator("#invite-unusable")).to_have_count(1)
    await expect(colleague.locator("#password")).to_have_count(0)
    await colleague.goto(base + "/")
    await expect(colleague.locator("body[data-connection=ready]")).to_have_count(1)

    # A reset link: the page shows it once; the colleague's tab is not touched yet.
    await admin.goto(base + "/admin")
    await expect(row(admin, "colleague")).to_contain_text("1 session")
    await row(admin, "colleague").get_by_role("button", name=re.compile("Reset link")).click()
    reset = await admin.locator("#new-link").input_value()
    assert reset.startswith(base + "/reset/"), reset
    reset_page = await ctx_colleague.new_page()
    watch.attach(reset_page, "colleague-reset")
    await reset_page.goto(reset)
    await reset_page.fill("#password", NEW_PASSWORD)
    await reset_page.click("form.form button[type=submit]")
    await reset_page.wait_for_url(re.compile(re.escape(base) + r"/login.*"))
    # every session ended: the open chat tab is sent to the login page at once
    await colleague.wait_for_url(re.compile(re.escape(base) + r"/login.*"), timeout=WAIT_MS)
    await reset_page.goto(reset)  # used: no form
    await expect(reset_page.locator("#reset-unusable")).to_have_count(1)
    await expect(reset_page.locator("#password")).to_have_count(0)
    await reset_page.close()
    await colleague.fill("#username", "colleague")
    await colleague.fill("#password", NEW_PASSWORD)
    await colleague.click("form.form button[type=submit]")
    await colleague.wait_for_url(base + "/")
    await expect(colleague.locator("body[data-connection=ready]")).to_have_count(1)

    # Deactivated while the tab is open: it loses access at once.
    await admin.goto(base + "/admin")
    await row(admin, "colleague").get_by_role("button", name=re.compile("Deactivate")).click()
    await expect(admin.locator("#notice")).to_contain_text("Account deactivated")
    await expect(row(admin, "colleague")).to_contain_text("Deactivated")
    await colleague.wait_for_url(re.compile(re.escape(base) + r"/login.*"), timeout=WAIT_MS)
    await colleague.fill("#username", "colleague")
    await colleague.fill("#password", NEW_PASSWORD)
    await colleague.click("form.form button[type=submit]")
    await expect(colleague.locator("#form-error")).to_contain_text("deactivated")
    response = await colleague.request.get(base + "/api/v1/me")
    assert response.status == 401
    await expect(admin.locator('#audit [data-action="deactivate"]')).to_have_count(1)

    state = await ctx_owner.storage_state()
    async def ready(page: Any) -> None:
        await expect(page.locator("#users .admin-user")).to_have_count(2)

    await screenshot_looks(chromium, watch, state, base + "/admin", "admin", ready)
    # The refusals this test asks for are pages with an error status; nothing else.
    expected = re.compile(r"status of (403|404) \(\) \(" + re.escape(base)
                          + r"/(register|login|join/[^)]+|reset/[^)]+)\)$")
    errors = [e for e in watch.errors if not expected.search(e)]
    assert len(watch.errors) - len(errors) == 4, watch.errors
    assert errors == [], errors
    assert watch.dialogs == [], watch.dialogs
