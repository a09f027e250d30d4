"""Uploaded files (SPEC §10): what a file really is, and images made safe to show.

The type comes from the bytes, never from the name or the declared type. The four
image types are decoded with Pillow, but only after the header's size is checked
against a pixel cap (a 50 KB PNG can declare 100,000 x 100,000 pixels); the stored copy
is re-encoded from pixels, so EXIF, GPS and text chunks do not survive, and its
orientation is applied. Everything here blocks: callers run it in a worker thread.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

MAX_PIXELS = 40_000_000
THUMBNAIL_EDGE = 400
SNIFF_BYTES = 512

# Pillow's format name -> the content type we store and serve.
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
INLINE_TYPES = frozenset(IMAGE_TYPES.values())


class ImageRefusedError(Exception):
    """An image that is too large to decode, or that does not decode (refused: SPEC §10)."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def sniff(head: bytes) -> str:
    """The content type the first bytes of a file show (never trusted from outside)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if head.startswith((b"\x1f\x8b",)):
        return "application/gzip"
    if _is_text(head):
        # HTML and SVG included: they are served as plain text, as an attachment.
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the sniff window is still text.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def is_image(content_type: str) -> bool:
    return content_type in INLINE_TYPES


def make_safe_image(source: Path, dest: Path, thumbnail: Path) -> ImageInfo:
    """Re-encode ``source`` without metadata into ``dest``, plus a thumbnail.

    Raises ImageRefusedError for an image over MAX_PIXELS (checked from the header,
    before any pixel is decoded) or one that does not decode.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own cap raises) on huge images at open
            # time; both mean "refuse", and neither may escape as a warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, OSError, ValueError) as exc:
        raise ImageRefusedError("the image could not be read") from exc
    with image:
        content_type = IMAGE_TYPES.get(image.format or "")
        if content_type is None:
            raise ImageRefusedError("not a PNG, JPEG, GIF or WebP image")
        width, height = image.size
        if width * height > MAX_PIXELS or width <= 0 or height <= 0:
            raise ImageRefusedError(
                f"the image is {width} x {height} pixels; at most {MAX_PIXELS // 1_000_000} "
                "megapixels are accepted"
            )
        frames = getattr(image, "n_frames", 1)
        if width * height * frames > MAX_PIXELS * 4:
            raise ImageRefusedError("the animation has too many frames")
        try:
            info = _reencode(image, content_type, dest, thumbnail)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            _remove(dest, thumbnail)
            raise ImageRefusedError("the image could not be decoded") from exc
    return info


def _reencode(image: Image.Image, content_type: str, dest: Path, thumbnail: Path) -> ImageInfo:
    fmt = image.format
    animated = getattr(image, "is_animated", False) and fmt in ("GIF", "WEBP")
    if animated:
        frames = [frame.copy() for frame in ImageSequence.Iterator(image)]
        durations = [frame.info.get("duration", 100) for frame in frames]
        for frame in frames:
            _pixels_only(frame)
        first = frames[0]
        first.save(dest, format=fmt, save_all=True, append_images=frames[1:],
                   duration=durations, loop=image.info.get("loop", 0), disposal=2)
        shown = first
    else:
        image.load()
        shown = ImageOps.exif_transpose(image)
        options: dict[str, object] = {}
        if fmt == "JPEG":
            options = {"quality": 90, "optimize": True}
            if shown.mode not in ("RGB", "L", "CMYK"):
                shown = shown.convert("RGB")
        # No exif=, pnginfo= or comment=: the new file carries pixels only (plus the
        # colour profile, which changes how it looks and says nothing about anyone).
        icc = image.info.get("icc_profile")
        if icc:
            options["icc_profile"] = icc
        _pixels_only(shown)
        shown.save(dest, format=fmt, **options)
    os.chmod(dest, 0o600)
    _save_thumbnail(shown, thumbnail)
    return ImageInfo(content_type=content_type, width=shown.width, height=shown.height)


def _pixels_only(image: Image.Image) -> None:
    # Some encoders write what ``info`` holds (a GIF's comment, for one): keep only
    # what drawing the pixels needs.
    image.info = {k: v for k, v in image.info.items() if k in ("transparency", "background")}


def _save_thumbnail(image: Image.Image, path: Path) -> None:
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
    if thumb.mode in ("RGBA", "LA") or (thumb.mode == "P" and "transparency" in thumb.info):
        thumb.convert("RGBA").save(path, format="PNG", optimize=True)
    else:
        thumb.convert("RGB").save(path, format="JPEG", quality=82, optimize=True)
    os.chmod(path, 0o600)


def thumbnail_type(path: Path) -> str:
    with path.open("rb") as f:
        return sniff(f.read(16))


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
