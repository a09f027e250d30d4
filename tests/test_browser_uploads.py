"""Files in a real Chromium (SPEC §10): alice pastes an image into the message box, bob
sees its thumbnail in the timeline and opens it full size; an upload in progress shows
its progress bar and can be cancelled. Saves the screenshots of docs/screenshots/
(composer-upload-*, timeline-image-*), light and dark."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from .servers import Server
from .test_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    RECONNECT_MS,
    SHOTS,
    WAIT_MS,
    Watch,
    chromium,
    chromium_path,
    fill_form,
    message,
    servers,
    start,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASTE = """async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new File([bytes], name, { type: 'image/png' });
  const data = new DataTransfer();
  data.items.add(file);
  const box = document.querySelector('#composer-input');
  box.focus();
  box.dispatchEvent(new ClipboardEvent('paste',
    { clipboardData: data, bubbles: true, cancelable: true }));
}"""


def picture() -> bytes:
    """A 900 x 600 PNG that looks like something (a chart on a card)."""
    image = Image.new("RGB", (900, 600), (246, 247, 251))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 860, 560), fill=(255, 255, 255), outline=(210, 212, 224), width=3)
    for i, height in enumerate((180, 260, 220, 340, 300, 420, 380)):
        x = 90 + i * 110
        draw.rectangle((x, 500 - height, x + 70, 500), fill=(91, 91, 214))
    draw.line((70, 500, 830, 500), fill=(120, 120, 140), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def noise_png(side: int) -> bytes:
    import os

    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        out, format="PNG", compress_level=0)
    return out.getvalue()


async def test_paste_an_image_and_the_other_person_sees_it(
    tmp_path: Path, chromium: Any, servers: list[Server],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    overrides = {"CHATAPP_ENV": "development"}
    server = await start(Server(tmp_path / "data", overrides), servers)
    base = server.base
    watch = Watch(server.port)
    ctx_a = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce",
                                       device_scale_factor=1)
    ctx_b = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce",
                                       device_scale_factor=1)
    alice, bob = await ctx_a.new_page(), await ctx_b.new_page()
    watch.attach(alice, "alice")
    watch.attach(bob, "bob")
    await fill_form(alice, "/register", "alice", base)
    await fill_form(bob, "/register", "bob", base)
    await expect(alice.locator("#online-list")).to_contain_text("bob")

    # alice pastes a picture: it uploads at once, then goes with her words.
    await alice.evaluate(PASTE, [base64.b64encode(picture()).decode(), "chart.png"])
    tray = alice.locator(".attach-tray .attach-item")
    await expect(tray).to_have_count(1)
    await expect(tray).to_have_class("attach-item is-done")
    await expect(tray.locator(".attach-name")).to_have_text("chart.png")
    box = alice.locator("#composer-input")
    await box.press_sequentially("Numbers for the week", delay=2)
    await box.press("Enter")
    await expect(alice.locator(".attach-tray")).to_be_hidden()

    # bob sees the thumbnail (loaded, not a broken image) in his timeline.
    row = message(bob, "Numbers for the week")
    image = row.locator(".msg-image img")
    await expect(image).to_have_count(1)
    await expect(image).to_have_attribute("alt", "chart.png")
    await bob.wait_for_function(
        "img => img.complete && img.naturalWidth === 400 && img.naturalHeight === 267",
        arg=await image.element_handle())
    link = row.locator("a.msg-image")
    href = await link.get_attribute("href")
    assert href is not None and href.endswith("/chart.png")
    assert await link.get_attribute("target") == "_blank"
    # The link opens the full-size image for him (his cookie), not for a stranger.
    async with ctx_b.expect_page() as opened:
        await link.click()
    full = await opened.value
    await full.wait_for_load_state()
    size = await full.evaluate(
        "[document.images[0].naturalWidth, document.images[0].naturalHeight]")
    assert size == [900, 600]
    await full.close()
    stranger = await chromium.new_context()
    try:
        response = await stranger.request.get(base + href)
        assert response.status == 404
    finally:
        await stranger.close()

    # A message of files alone: a card with the name and size, sent with an empty box.
    await alice.locator("#composer input[type=file]").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"agenda\n" * 300}])
    await expect(tray).to_have_class("attach-item is-done")
    await box.press("Enter")
    card = bob.locator(".file-card", has_text="notes.txt")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text("2.1 KB")

    # A file dropped on the page lands in the tray too (and can be taken out again).
    await alice.evaluate("""() => {
      const data = new DataTransfer();
      data.items.add(new File(['dropped'], 'dropped.txt', { type: 'text/plain' }));
      const main = document.querySelector('#timeline-host');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        main.dispatchEvent(new DragEvent(type,
          { dataTransfer: data, bubbles: true, cancelable: true }));
      }
    }""")
    dropped = alice.locator(".attach-item", has_text="dropped.txt")
    await expect(dropped).to_have_class("attach-item is-done")
    await dropped.locator(".attach-remove").click()
    await expect(alice.locator(".attach-tray")).to_be_hidden()

    for scheme in ("light", "dark"):
        await bob.emulate_media(color_scheme=scheme)
        await bob.locator("#composer-input").blur()
        await bob.mouse.move(5, 790)  # no hover state on a message
        await bob.screenshot(path=str(SHOTS / f"timeline-image-{scheme}.png"))

    # A slow upload shows its progress; cancelling it leaves nothing behind.
    cdp = await ctx_a.new_cdp_session(alice)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 20, "downloadThroughput": -1,
        "uploadThroughput": 128 * 1024})
    big = noise_png(1000)  # ~3 MB: about 23 s at this pace, cancelled long before
    await alice.locator("#composer input[type=file]").set_input_files(
        files=[{"name": "holiday-photo.png", "mimeType": "image/png", "buffer": big}])
    await box.press_sequentially("Photos from the offsite", delay=2)
    uploading = alice.locator(".attach-item.is-uploading")
    await expect(uploading).to_have_count(1)
    await alice.wait_for_function(
        "() => (document.querySelector('.attach-progress')?.value ?? 0) >= 30",
        timeout=30_000)
    await expect(alice.locator("#send-btn")).to_be_disabled()
    for scheme in ("light", "dark"):
        await alice.emulate_media(color_scheme=scheme)
        await alice.screenshot(path=str(SHOTS / f"composer-upload-{scheme}.png"))
    await uploading.locator(".attach-remove").click()
    await expect(alice.locator(".attach-item")).to_have_count(0)
    await expect(alice.locator("#send-btn")).to_be_enabled()
    await cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    uploads = tmp_path / "data" / "instance" / "uploads"

    def parts() -> list[str]:
        return [p.name for p in uploads.iterdir() if p.name.endswith(".part")]

    for _ in range(100):  # the server sees the aborted request end, then cleans up
        if not parts():
            break
        await asyncio.sleep(0.1)
    assert parts() == []

    # Too large: the server says so while the file is on its way (its connection
    # closes), the tray shows why, and the next upload goes through.
    too_large = await alice.evaluate("""async () => {
      const { uploadFile } = await import('/static/attachments.js');
      const file = new File([new Uint8Array(26 * 1024 * 1024)], 'huge.bin');
      try { await uploadFile(file).promise; return 'accepted'; } catch (e) { return e.message; }
    }""")
    assert too_large == "the file is larger than 25 MB"
    # (Chromium logs every 4xx answer to a request as a console error.)
    refused = "the server responded with a status of 413"
    watch.errors = [e for e in watch.errors if refused not in e or "/api/v1/uploads" not in e]
    await alice.locator("#composer input[type=file]").set_input_files(
        files=[{"name": "after.txt", "mimeType": "text/plain", "buffer": b"fine"}])
    await expect(alice.locator(".attach-item")).to_have_class("attach-item is-done")

    # The server goes away: a message with a file waits in the outbox, showing its file,
    # and goes out with it once the page has reconnected to a new process.
    watch.server_down = True
    await asyncio.to_thread(server.terminate)
    await expect(alice.locator("#conn-banner")).to_be_visible()
    await box.press_sequentially("Sent while the server was away", delay=2)
    await box.press("Enter")
    pending = alice.locator("#timeline-host .outbox > li.msg.is-pending",
                            has_text="server was away")
    await expect(pending.locator(".file-card", has_text="after.txt")).to_have_count(1)
    server = await start(Server(tmp_path / "data", overrides, port=server.port), servers)
    for page in (alice, bob):
        await expect(page.locator("body[data-connection=ready]")).to_have_count(
            1, timeout=RECONNECT_MS)
    watch.server_down = False
    await expect(pending).to_have_count(0)
    delivered = message(bob, "server was away")
    await expect(delivered.locator(".file-card", has_text="after.txt")).to_have_count(1)
    assert watch.errors == [], watch.errors
