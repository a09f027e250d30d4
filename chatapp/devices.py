"""What the account page says about a session's device: "Firefox on Linux".

A user agent string is a pile of historical tokens (every browser claims to be
Mozilla, Chrome claims Safari, Edge claims Chrome), so the order of the checks below
matters: the most specific token first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (pattern, name): the first that matches names the browser.
BROWSERS = (
    (r"\bEdg(e|A|iOS)?/", "Edge"),
    (r"\b(OPR|Opera)/", "Opera"),
    (r"\bSamsungBrowser/", "Samsung Internet"),
    (r"\b(Firefox|FxiOS)/", "Firefox"),
    (r"\bHeadlessChrome/", "Chrome (headless)"),
    (r"\bChromium/", "Chromium"),
    (r"\b(Chrome|CriOS)/", "Chrome"),
    (r"\bVersion/[\d.]+.*\bSafari/", "Safari"),
    (r"^curl/", "curl"),
    (r"^python-|^Python|\baiohttp/|\bhttpx/", "Python"),
)
SYSTEMS = (
    (r"\biPhone\b", "iPhone"),
    (r"\biPad\b", "iPad"),
    (r"\bAndroid\b", "Android"),
    (r"\bCrOS\b", "ChromeOS"),
    (r"\bWindows\b", "Windows"),
    (r"\bMac OS X\b|\bMacintosh\b", "macOS"),
    (r"\bLinux\b|\bX11\b", "Linux"),
)
_BROWSERS = [(re.compile(p), name) for p, name in BROWSERS]
_SYSTEMS = [(re.compile(p), name) for p, name in SYSTEMS]
MAX_USER_AGENT = 512  # kept per session; longer ones are cut


@dataclass(frozen=True, slots=True)
class Device:
    browser: str | None
    system: str | None
    mobile: bool

    def __str__(self) -> str:
        if self.browser and self.system:
            return f"{self.browser} on {self.system}"
        return self.browser or self.system or "Unknown device"


def describe(user_agent: str) -> Device:
    """The browser and operating system a user agent names (None when unknown)."""
    user_agent = user_agent[:MAX_USER_AGENT]
    browser = next((name for pattern, name in _BROWSERS if pattern.search(user_agent)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(user_agent)), None)
    mobile = system in ("iPhone", "Android") or "Mobile" in user_agent
    return Device(browser, system, mobile)
