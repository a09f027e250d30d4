"""Uploaded files: types from content, images re-encoded without metadata (SPEC §10)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from chatapp import files

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_with_exif(path: Path, size: tuple[int, int] = (60, 30), orientation: int = 6) -> None:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "SecretCam"  # Make
    exif[GPS_IFD] = {1: "N", 2: (52.0, 22.0, 12.0)}
    image.save(path, format="JPEG", exif=exif.tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge image (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7", "application/pdf"),
        (b"<html><script>alert(1)</script>", "text/plain; charset=utf-8"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>', "text/plain; charset=utf-8"),
        ("caf\u00e9 na\u00efve".encode()[:-1], "text/plain; charset=utf-8"),
        (b"\x00\x01\x02binary", "application/octet-stream"),
        (b"", "text/plain; charset=utf-8"),
    ],
)
def test_sniff_reads_the_bytes_not_the_name(head: bytes, expected: str) -> None:
    assert files.sniff(head) == expected


def test_only_the_four_image_types_are_inline() -> None:
    assert files.is_image("image/png")
    assert not files.is_image("image/svg+xml")
    assert not files.is_image("text/html")


def test_jpeg_loses_exif_and_gps_and_is_turned_upright(tmp_path: Path) -> None:
    src, dest, thumb = tmp_path / "in", tmp_path / "out", tmp_path / "thumb"
    jpeg_with_exif(src, (60, 30), orientation=6)  # 6: rotate 90° to show upright
    info = files.make_safe_image(src, dest, thumb)
    assert info == files.ImageInfo("image/jpeg", 30, 60)
    with Image.open(dest) as out:
        assert out.size == (30, 60)
        assert not out.getexif()
        assert "exif" not in out.info
    assert b"SecretCam" not in dest.read_bytes()
    assert dest.stat().st_mode & 0o777 == 0o600


def test_png_text_chunks_are_dropped_and_alpha_kept_in_the_thumbnail(tmp_path: Path) -> None:
    src, dest, thumb = tmp_path / "in", tmp_path / "out", tmp_path / "thumb"
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Author", "Jane Secret")
    Image.new("RGBA", (1000, 500), (0, 0, 255, 128)).save(src, format="PNG", pnginfo=meta)
    info = files.make_safe_image(src, dest, thumb)
    assert (info.width, info.height) == (1000, 500)
    assert b"Jane Secret" not in dest.read_bytes()
    with Image.open(thumb) as t:
        assert max(t.size) == files.THUMBNAIL_EDGE
        assert t.size == (400, 200)
        assert t.mode == "RGBA"
    assert files.thumbnail_type(thumb) == "image/png"


def test_animated_gif_keeps_its_frames_but_not_its_comment(tmp_path: Path) -> None:
    src, dest, thumb = tmp_path / "in", tmp_path / "out", tmp_path / "thumb"
    frames = [Image.new("RGB", (20, 20), (i * 90, 255 - i * 90, 0)) for i in range(3)]
    frames[0].save(src, format="GIF", save_all=True, append_images=frames[1:], duration=80,
                   comment=b"tracking-id-123")
    info = files.make_safe_image(src, dest, thumb)
    assert info.content_type == "image/gif"
    with Image.open(dest) as out:
        assert out.n_frames == 3
    assert b"tracking-id-123" not in dest.read_bytes()


def test_pixel_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    src = tmp_path / "bomb.png"
    src.write_bytes(png_declaring(100_000, 100_000))  # 10 gigapixels in ~100 bytes
    with pytest.raises(files.ImageRefusedError, match="megapixels|could not be read"):
        files.make_safe_image(src, tmp_path / "out", tmp_path / "thumb")
    assert not (tmp_path / "out").exists()


def test_just_over_the_cap_is_refused_without_decoding(tmp_path: Path) -> None:
    src = tmp_path / "big.png"
    src.write_bytes(png_declaring(8000, 5001))  # 40.008 MP: under Pillow's own warning
    with pytest.raises(files.ImageRefusedError, match="megapixels"):
        files.make_safe_image(src, tmp_path / "out", tmp_path / "thumb")


@pytest.mark.parametrize(
    "payload",
    [
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
        b"<html><body>not an image</body></html>",
        b"\xff\xd8\xff\xe0" + b"\x00" * 20,
    ],
)
def test_broken_or_disguised_images_are_refused(tmp_path: Path, payload: bytes) -> None:
    src = tmp_path / "x.png"
    src.write_bytes(payload)
    with pytest.raises(files.ImageRefusedError):
        files.make_safe_image(src, tmp_path / "out", tmp_path / "thumb")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "thumb").exists()


def test_truncated_png_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(buffer, format="PNG")
    src = tmp_path / "cut.png"
    src.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(files.ImageRefusedError):
        files.make_safe_image(src, tmp_path / "out", tmp_path / "thumb")
    assert not (tmp_path / "out").exists()


def test_webp_round_trip(tmp_path: Path) -> None:
    src, dest, thumb = tmp_path / "in", tmp_path / "out", tmp_path / "thumb"
    Image.new("RGB", (800, 900), (9, 9, 9)).save(src, format="WEBP")
    info = files.make_safe_image(src, dest, thumb)
    assert info == files.ImageInfo("image/webp", 800, 900)
    with Image.open(thumb) as t:
        assert t.size == (356, 400)
