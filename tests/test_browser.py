"""Two people chatting in a real Chromium against a real Hypercorn process.

One long scenario rather than many small tests: a browser, a server and two
registered users are the expensive part, and the interesting bugs live between
the steps (a reconnect after a restart must not duplicate what a reload showed).
It also saves the screenshots the README shows (docs/screenshots/).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import need_service
from .servers import ROOT, Browser, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and off the network: no updater, sync, QUIC probes or first-run pings.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
WAIT_MS = 10_000
RECONNECT_MS = 30_000  # full-jitter backoff: a retry may be up to ~16 s away
XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Watch:
    """Every console error, page error and dialog of every page, for the whole run."""

    port: int
    server_down: bool = False
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # expected while the server is down
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Any, who: str) -> None:
        page.on("console", lambda msg: self._console(who, msg))
        page.on("pageerror", lambda exc: self.errors.append(f"{who}: pageerror: {exc}"))
        page.on("dialog", lambda dialog: self._dialog(who, dialog))

    def _dialog(self, who: str, dialog: Any) -> None:
        self.dialogs.append(f"{who}: {dialog.type}: {dialog.message}")
        asyncio.ensure_future(dialog.dismiss())

    def _console(self, who: str, msg: Any) -> None:
        if msg.type not in ("error", "assert"):
            return
        if self.server_down and self._expected_while_down(msg):
            self.ignored.append(f"{who}: {msg.text}")
            return
        where = msg.location.get("url", "") if msg.location else ""
        self.errors.append(f"{who}: console.{msg.type}: {msg.text} ({where})")

    def _expected_while_down(self, msg: Any) -> bool:
        # Chromium itself (not our code) logs every failed network attempt at level
        # "error": the websocket reconnects (reset while Hypercorn shuts down, then
        # refused) and the `HEAD /` probe the client makes after a refused handshake
        # (to tell "logged out" from "server down"). Page
        # script cannot silence these, so they are expected exactly while the server
        # is stopped and only for our own origin's /ws and /; anything else
        # (including these messages at any other time) is still an error.
        text = msg.text
        ws = f"WebSocket connection to 'ws://127.0.0.1:{self.port}/ws' failed"
        if text.startswith(ws):
            return True
        url = msg.location.get("url", "") if msg.location else ""
        return (
            text.startswith("Failed to load resource: net::ERR_CONNECTION_REFUSED")
            and url == f"http://127.0.0.1:{self.port}/"
        )


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server the test starts; whatever is still running is killed at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        need_service("Chromium", "apt-get install chromium")
    return CHROMIUM


@pytest.fixture
async def chromium(chromium_path: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        need_service("Playwright", "pip install -e '.[test]'")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


# ---------------------------------------------------------------- helpers


async def start(server: Server, started: list[Server]) -> Server:
    started.append(server)
    return await asyncio.to_thread(server.start)


async def fill_form(page: Any, path: str, username: str, base: str) -> None:
    """Register or log in through the real HTML form."""
    await page.goto(base + path)
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("form.form button[type=submit]")
    await page.wait_for_url(base + "/")


async def sign_out(page: Any, base: str) -> None:
    sidebar_hidden = not await page.locator(".logout-form button").is_visible()
    if sidebar_hidden:  # phone layout: the button lives in the rooms drawer
        await page.click("#sidebar-toggle")
    await page.click(".logout-form button")
    await page.wait_for_url(re.compile(re.escape(base) + r"/login.*"))


async def send(page: Any, text: str) -> None:
    """Type like a person (so typing events go out) and press Enter."""
    box = page.locator("#composer-input")
    await box.click()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        await box.press_sequentially(line, delay=2)
        if i < len(lines) - 1:
            await box.press("Shift+Enter")
    await box.press("Enter")
    await asyncio.sleep(0)


def messages(page: Any) -> Any:
    """Confirmed messages (the outbox list holds the unconfirmed ones)."""
    return page.locator("#timeline-host .msg-list:not(.outbox) > li.msg")


def message(page: Any, text: str) -> Any:
    return messages(page).filter(has=page.locator(".msg-body", has_text=text))


async def expect_once(page: Any, text: str) -> None:
    from playwright.async_api import expect

    await expect(message(page, text)).to_have_count(1)


async def shown_ids(page: Any) -> list[str]:
    ids = await messages(page).evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(ids) == len(set(ids)), f"a message is shown twice: {ids}"
    seqs = await messages(page).evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
    assert seqs == sorted(seqs), f"messages out of seq order: {seqs}"
    return ids


async def api_post(browser: Browser, room: str, *bodies: str) -> None:
    """Post messages as a third user through the JSON API."""
    def post() -> None:
        token = browser.csrf("/")
        for body in bodies:
            status, _, text = browser.request(
                f"/api/v1/rooms/{room}/messages", body={"body": body},
                headers={"X-CSRF-Token": token},
            )
            assert status == 201, text

    await asyncio.to_thread(post)


async def until(check: Any, what: str) -> None:
    """Poll an async check (what Playwright's expect cannot express)."""
    deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def at_bottom(page: Any) -> bool:
    return bool(await page.locator("#messages").evaluate(
        "el => el.scrollHeight - el.scrollTop - el.clientHeight <= 48"))


@contextlib.asynccontextmanager
async def websocket_user(server: Server, browser: Browser) -> AsyncIterator[None]:
    """Keep a third user online (a bare websocket that reads and ignores events)."""
    from websockets.asyncio.client import connect

    async with connect(server.ws_url, additional_headers=browser.ws_headers()) as ws:
        async def drain() -> None:
            with contextlib.suppress(Exception):
                async for _ in ws:
                    pass

        reader = asyncio.create_task(drain())
        try:
            yield
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), textarea, select, [tabindex]')]
  .filter((el) => {
    const byId = (ids) => (ids || '').split(' ')
      .map((id) => document.getElementById(id)?.textContent ?? '');
    const name = [el.getAttribute('aria-label'), el.title, el.textContent,
      ...byId(el.getAttribute('aria-labelledby')),
      ...[...(el.labels ?? [])].map((l) => l.textContent)].join('').trim();
    return !name;
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


LOOKS = (("desktop-light", DESKTOP, "light"), ("desktop-dark", DESKTOP, "dark"),
         ("phone-light", PHONE, "light"), ("phone-dark", PHONE, "dark"))


async def screenshot_looks(
    chromium: Any, watch: Watch, state: Any, url: str, prefix: str,
    ready: Callable[[Any], Awaitable[None]], *, full_page: bool = True,
) -> None:
    """Open ``url`` signed in as ``state`` in each look (desktop and phone, light and
    dark); once ``ready(page)``, nothing may scroll sideways and every control not hidden
    from assistive technology has a name; saved as docs/screenshots/<prefix>-<look>.png."""
    for look, viewport, scheme in LOOKS:
        name = f"{prefix}-{look}"
        context = await chromium.new_context(
            storage_state=state, viewport=viewport, color_scheme=scheme,
            reduced_motion="reduce", device_scale_factor=1,
        )
        try:
            page = await context.new_page()
            watch.attach(page, name)
            await page.goto(url)
            await ready(page)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name}: page scrolls sideways by {overflow}px"
            unlabelled = await page.evaluate(UNLABELLED_CONTROLS)
            assert [c for c in unlabelled if 'aria-hidden="true"' not in c] == [], name
            await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)
        finally:
            await context.close()


async def screenshot_chat(
    chromium: Any, watch: Watch, state: Any, base: str, name: str, viewport: dict[str, int],
    scheme: str, wait_for: str,
) -> None:
    from playwright.async_api import expect

    context = await chromium.new_context(
        storage_state=state, viewport=viewport, color_scheme=scheme,
        reduced_motion="reduce", device_scale_factor=1,
    )
    try:
        page = await context.new_page()
        watch.attach(page, name)
        await page.goto(base + "/")
        await expect(message(page, wait_for)).to_have_count(1, timeout=WAIT_MS)
        await expect(page.locator("#online-list")).to_contain_text("carol", timeout=WAIT_MS)
        await page.wait_for_function("document.fonts.status === 'loaded'")
        # Nothing may stick out sideways on a 360 px phone.
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: page scrolls sideways by {overflow}px"
        assert await page.evaluate(UNLABELLED_CONTROLS) == [], f"{name}: controls without a name"
        await page.locator("#composer-input").blur()
        await page.screenshot(path=str(SHOTS / f"{name}.png"))
    finally:
        await context.close()


# ---------------------------------------------------------------- the scenario


async def test_two_people_chat_through_a_restart(
    tmp_path: Path, chromium: Any, servers: list[Server]
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    overrides = {"CHATAPP_ENV": "development"}
    server = await start(Server(tmp_path / "data", overrides), servers)
    base = server.base
    watch = Watch(server.port)

    # carol only ever uses the HTTP API (a bot-like third user).
    carol = Browser(base)
    assert await asyncio.to_thread(carol.register, "carol") == 303
    await api_post(carol, "general", "Morning all! The 2.4 release branch is cut.",
                   "Draft release notes: https://example.com/notes/2.4 — comments before noon,"
                   " please.")

    ctx_a = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    ctx_b = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    alice, bob = await ctx_a.new_page(), await ctx_b.new_page()
    watch.attach(alice, "alice")
    watch.attach(bob, "bob")

    # Register both through the forms; bob also signs out and back in through them.
    await fill_form(alice, "/register", "alice", base)
    await fill_form(bob, "/register", "bob", base)
    await sign_out(bob, base)
    await fill_form(bob, "/login", "bob", base)
    await expect(alice.locator("#room-name")).to_have_text("general")
    await expect_once(alice, "release branch is cut")

    # Presence: each sees the other in the online list, with a presence dot.
    await expect(alice.locator("#online-list .online-user", has_text="bob")).to_have_count(1)
    await expect(bob.locator("#online-list .online-user", has_text="alice")).to_have_count(1)
    assert await alice.locator("#online-list .online-user .presence-dot").count() == 2

    # Live both ways (bob's reply reaching alice also proves bob's socket is up).
    await send(alice, "Nice work! I'll go through the migration section now.")
    await expect_once(bob, "migration section")
    await send(bob, "Thanks @alice. Still chasing the flaky reconnect test, fix after lunch.")
    await expect_once(alice, "flaky reconnect test")
    await expect(alice.locator(".msg.is-mention", has_text="flaky reconnect")).to_have_count(1)

    # Typing shows for the other person, then goes away with the message.
    # (The client sends at most one typing event per 2 s, and alice's last one went
    # out with her previous message: type for a little longer than that.)
    await alice.locator("#composer-input").press_sequentially("Shout if", delay=300)
    await expect(bob.locator("#typing")).to_have_text("alice is typing…")
    await alice.locator("#composer-input").press_sequentially(
        " you want a second pair of eyes on it.", delay=1)
    await alice.locator("#composer-input").press("Enter")
    await expect_once(bob, "second pair of eyes")
    await expect(bob.locator("#typing")).to_have_text("")
    await expect(alice.locator("#composer-input")).to_have_value("")

    # Shift+Enter is a new line, Enter sends.
    await send(bob, "Will do.\nFirst guess: the backoff timer isn't cleared on logout.")
    row = message(alice, "First guess")
    await expect(row).to_have_count(1)
    assert "Will do.\nFirst guess" in (await row.locator(".msg-body").text_content() or "")
    # Grouped by author and minute: bob's two lines in a row share one header
    # (unless the minute turned in between).
    assert await alice.locator(".day-sep").count() >= 1
    rel = row.locator("time").first
    assert await rel.get_attribute("title"), "no exact time on hover"

    # The counter appears near the 4000 limit, and the send button refuses over it.
    box = bob.locator("#composer-input")
    await box.fill("x" * 3990)
    await expect(bob.locator("#composer-count")).to_have_text("10 characters left")
    await box.fill("x" * 4001)
    await expect(bob.locator("#composer-count")).to_have_text("1 characters over the limit")
    await expect(bob.locator("#send-btn")).to_be_disabled()
    await box.fill("")

    # Create a room (alice), join it from the directory (bob), and try an XSS there.
    await alice.click("#new-room-btn")
    await alice.fill("#new-room-name", "design")
    await alice.click("#new-room-form button[type=submit]")
    await expect(alice.locator("#room-name")).to_have_text("design")
    await expect(alice).to_have_url(base + "/rooms/design")
    await bob.click("#browse-rooms-btn")
    await bob.locator("#directory .directory-item", has_text="design").get_by_role(
        "button", name="Join").click()
    await expect(bob.locator("#room-name")).to_have_text("design")
    await send(bob, f"Does the sanitizer hold up? {XSS}")
    for page in (alice, bob):
        await expect_once(page, "sanitizer hold up")
        assert XSS in (await message(page, "sanitizer").locator(".msg-body").text_content() or "")
        assert await page.locator("#timeline-host img").count() == 0
    await asyncio.sleep(0.3)  # an onerror handler would have fired by now
    assert watch.dialogs == []

    # Back to #general; a reload keeps the history, exactly once each.
    await alice.click("#room-list a[data-slug=general]")
    await bob.click("#room-list a[data-slug=general]")
    await expect_once(alice, "First guess")
    before_reload = await shown_ids(alice)
    await alice.reload()
    await expect_once(alice, "First guess")
    assert await shown_ids(alice) == before_reload
    await expect(alice.locator("#online-list .online-user", has_text="bob")).to_have_count(1)

    # Stop the server. Both pages say so; bob writes anyway: the message waits.
    watch.server_down = True
    await asyncio.to_thread(server.terminate)
    for page in (alice, bob):
        await expect(page.locator("#conn-banner")).to_be_visible()
    queued = "Looks like the server restarted — this one was typed while offline."
    await send(bob, queued)
    pending = bob.locator("#timeline-host .outbox > li.msg.is-pending",
                          has_text="typed while offline")
    await expect(pending).to_have_count(1)
    await asyncio.sleep(1.0)
    await expect(pending).to_have_count(1)
    await expect(pending.locator(".msg-state")).to_have_text("Sending…")

    # A new process on the same data and port; carol posts before the pages are back.
    server = await start(Server(tmp_path / "data", overrides, port=server.port), servers)
    await api_post(carol, "general", "Deploy finished, we're back up. Sorry for the blip!")
    await asyncio.to_thread(carol.request, "/api/v1/rooms/design/join", body={},
                            method="POST", headers={"X-CSRF-Token": carol.csrf("/")})
    await api_post(carol, "design", "New mockups for the room sidebar are in Figma.")

    for page in (alice, bob):
        await expect(page.locator("body[data-connection=ready]")).to_have_count(
            1, timeout=RECONNECT_MS)
        await expect(page.locator("#conn-banner")).to_be_hidden()
    watch.server_down = False
    await expect(pending).to_have_count(0)
    for page in (alice, bob):
        await expect_once(page, "typed while offline")
        await expect_once(page, "Deploy finished")
        badge = page.locator("#room-list a[data-slug=design] .badge")
        await expect(badge).to_be_visible()
        await expect(badge.locator(".badge-count")).to_have_text("1")
        await expect(page).to_have_title("(1) #general · chatapp")
        assert await page.locator("#timeline-host .outbox > li").count() == 0
    ids_a, ids_b = await shown_ids(alice), await shown_ids(bob)
    assert ids_a == ids_b
    for text in ("release branch", "migration section", "flaky reconnect", "second pair",
                 "First guess", "typed while offline", "Deploy finished"):
        for page in (alice, bob):
            await expect_once(page, text)

    # Screenshots: alice's view, with carol online too.
    SHOTS.mkdir(parents=True, exist_ok=True)
    state = await ctx_a.storage_state()
    async with websocket_user(server, carol):
        await expect(alice.locator("#online-list")).to_contain_text("carol")
        await asyncio.gather(*(
            screenshot_chat(chromium, watch, state, base, f"chat-{size}-{scheme}",
                            viewport, scheme, "Deploy finished")
            for size, viewport in (("desktop", DESKTOP), ("phone", PHONE))
            for scheme in ("light", "dark")
        ))
    for name, viewport, scheme in (("login-desktop-light", DESKTOP, "light"),
                                   ("login-phone-dark", PHONE, "dark")):
        login = await chromium.new_context(viewport=viewport, color_scheme=scheme)
        try:
            page = await login.new_page()
            watch.attach(page, name)
            await page.goto(base + "/login")
            assert await page.evaluate(UNLABELLED_CONTROLS) == []
            await page.screenshot(path=str(SHOTS / f"{name}.png"))
        finally:
            await login.close()

    # #design gets a long backlog. Opening it starts where alice left off: the latest
    # page, then older pages (keyset API) until the first unread message is on screen
    # under "New messages"; the badge clears once she has scrolled to the bottom.
    await api_post(carol, "design", *(f"Backlog item {i:02d}" for i in range(70)))
    await expect(alice.locator("#room-list a[data-slug=design] .badge-count")).to_have_text("71")
    await alice.click("#room-list a[data-slug=design]")
    await expect_once(alice, "Backlog item 69")
    await expect(messages(alice)).to_have_count(72)
    divider = alice.locator("#timeline-host .new-divider")
    await expect(divider).to_be_in_viewport()
    assert not await at_bottom(alice)
    first_unread = await divider.evaluate("d => d.nextElementSibling.innerText")
    assert "New mockups" in first_unread
    for _ in range(20):
        await alice.locator("#messages").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        if await at_bottom(alice):
            break
        await asyncio.sleep(0.2)
    await until(lambda: at_bottom(alice), "alice's view at the bottom")
    await alice.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
    await expect(alice.locator(".room-intro")).to_contain_text("Welcome to #design")
    await expect_once(alice, "New mockups")
    await shown_ids(alice)
    # Reading old messages: a new one does not yank the view down, a pill appears.
    await alice.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
    await api_post(carol, "design", "Ping while you read the backlog")
    await expect_once(alice, "Ping while you read")
    await expect(alice.locator("#new-pill")).to_be_visible()
    assert not await at_bottom(alice)
    await alice.click("#new-pill")
    await expect(alice.locator("#new-pill")).to_be_hidden()
    await until(lambda: at_bottom(alice), "alice's view at the bottom")

    # Then alice signs out and goes offline for bob.
    await expect(alice.locator("#room-list a[data-slug=design] .badge")).to_be_hidden()
    await expect(alice).to_have_title("#design · chatapp")
    # A second tab of alice's follows her out to the login page by itself.
    other_tab = await ctx_a.new_page()
    watch.attach(other_tab, "alice-tab2")
    await other_tab.goto(base + "/rooms/design")
    await expect_once(other_tab, "Ping while you read")
    await expect(other_tab.locator("body[data-connection=ready]")).to_have_count(1)
    await sign_out(alice, base)
    await expect(other_tab).to_have_url(re.compile(re.escape(base) + r"/login"))
    await expect(bob.locator("#online-list .online-user", has_text="alice")).to_have_count(0)
    await alice.goto(base + "/")
    await expect(alice).to_have_url(re.compile(re.escape(base) + r"/login"))

    await ctx_a.close()
    await ctx_b.close()
    assert watch.dialogs == []
    assert watch.errors == [], "\n".join(watch.errors)
    assert watch.ignored, "the server stop was never noticed: is the filter window right?"
