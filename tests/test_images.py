"""Safe image decoding on images the tests make: every format, odd modes, animations and hostile input."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from ogasearch.ingest.images import DecodedImage, ImageError, decode_image, sniff_image

RNG = np.random.default_rng(7)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def raw_png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG written by hand, for what Pillow cannot write: 16-bit colour, lying headers."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sprite(size: int = 16, colours: int = 6) -> np.ndarray:
    """A small RGBA sprite: a few opaque colours, some half-transparent and fully transparent pixels."""
    palette = RNG.integers(0, 256, (colours, 4), dtype=np.uint8)
    palette[:, 3] = 255
    palette[0] = (0, 0, 0, 0)
    palette[1, 3] = 128
    return palette[RNG.integers(0, colours, (size, size))]


def only_frame(decoded: DecodedImage) -> np.ndarray:
    assert len(decoded.frames) == 1
    pixels = decoded.frames[0].pixels
    assert pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    assert pixels.shape == (decoded.height, decoded.width, 4)
    return pixels


def test_sniff_magic_bytes() -> None:
    rgb = Image.new("RGB", (2, 2))
    for fmt in ("PNG", "GIF", "BMP", "JPEG", "WEBP", "ICO"):
        assert sniff_image(encode(rgb, fmt)[:32]) == fmt
    assert sniff_image(b"<!DOCTYPE html><html>", name="x.png") is None
    assert sniff_image(b"") is None
    assert sniff_image(b"BM but not a bitmap header") is None


def test_sniff_tga_needs_name_and_plausible_header() -> None:
    tga = encode(Image.new("RGBA", (3, 2)), "TGA")
    assert sniff_image(tga[:32], name="dir/Tile.TGA") == "TGA"
    assert sniff_image(tga[:32]) is None
    assert sniff_image(b"<html><body>Not found</body></html>", name="x.tga") is None


def test_html_named_png_is_not_an_image() -> None:
    with pytest.raises(ImageError, match="HTML"):
        decode_image(b"<html><body>404 Not Found</body></html>", name="x.png")


def test_empty_file() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_palette_png_trns_becomes_alpha() -> None:
    im = Image.new("P", (3, 2), 0)
    im.putpalette([255, 0, 255, 10, 200, 30, 40, 50, 60])
    im.putpixel((1, 0), 1)
    im.putpixel((2, 1), 2)
    data = encode(im, "PNG", transparency=bytes([0, 255, 100]))
    decoded = decode_image(data)
    assert decoded.format == "PNG" and decoded.mode == "P"
    pixels = only_frame(decoded)
    assert pixels[0, 1].tolist() == [10, 200, 30, 255]
    assert pixels[1, 2].tolist() == [40, 50, 60, 100]
    # Transparent magenta key: alpha 0, and its hidden colour cleared.
    assert pixels[0, 0].tolist() == [0, 0, 0, 0]


def test_rgb_png_single_colour_transparency() -> None:
    rgb = np.full((2, 2, 3), 9, dtype=np.uint8)
    rgb[0, 0] = (1, 2, 3)
    pixels = only_frame(decode_image(encode(Image.fromarray(rgb), "PNG", transparency=(9, 9, 9))))
    assert pixels[..., 3].tolist() == [[255, 0], [0, 0]]


def test_one_by_one() -> None:
    decoded = decode_image(encode(Image.new("RGBA", (1, 1), (5, 6, 7, 200)), "PNG"))
    assert (decoded.width, decoded.height) == (1, 1)
    assert only_frame(decoded)[0, 0].tolist() == [5, 6, 7, 200]


def test_png_16_bit_grey_is_scaled_not_clipped() -> None:
    grey = np.array([[65535, 32768, 0, 256]], dtype=np.uint16)
    decoded = decode_image(encode(Image.fromarray(grey), "PNG"))
    assert decoded.mode.startswith("I")
    pixels = only_frame(decoded)
    assert pixels[0, :, 0].tolist() == [255, 128, 0, 1]
    assert pixels[0, :, 3].tolist() == [255] * 4


def test_png_16_bit_rgba() -> None:
    row = struct.pack(">8H", 65535, 32768, 0, 65535, 1000, 2000, 3000, 0)
    pixels = only_frame(decode_image(raw_png(2, 1, 16, 6, zlib.compress(b"\x00" + row))))
    assert pixels[0, 0].tolist() == [255, 128, 0, 255]
    assert pixels[0, 1].tolist() == [0, 0, 0, 0]


def test_png_16_bit_rgb() -> None:
    row = struct.pack(">3H", 65535, 32768, 512)
    pixels = only_frame(decode_image(raw_png(1, 1, 16, 2, zlib.compress(b"\x00" + row))))
    assert pixels[0, 0].tolist() == [255, 128, 2, 255]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("L", 77, [77, 77, 77, 255]), ("LA", (77, 30), [77, 77, 77, 30]), ("1", 1, [255, 255, 255, 255])],
)
def test_grey_modes(mode: str, value: object, expected: list[int]) -> None:
    decoded = decode_image(encode(Image.new(mode, (2, 3), value), "PNG"))
    assert decoded.mode == mode
    assert only_frame(decoded)[2, 1].tolist() == expected


def test_decompression_bomb_caught_by_pillow_guard() -> None:
    # 100000 x 100000 claimed by a 60-byte file: must fail from the header alone.
    data = raw_png(100_000, 100_000, 1, 0, zlib.compress(b"\x00" * 64))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        decode_image(data, max_pixels=10**12)
    assert time.perf_counter() - start < 1


def test_max_pixels_checked_before_decoding() -> None:
    # 9000 x 9000 is under Pillow's own limit but over the default max_pixels. The pixel data is garbage, so
    # a decode attempt would fail with a different message.
    data = raw_png(9000, 9000, 8, 0, b"garbage")
    with pytest.raises(ImageError, match="max_pixels"):
        decode_image(data)


def test_small_max_pixels() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="max_pixels"):
        decode_image(data, max_pixels=5000)
    assert decode_image(data, max_pixels=10_000).width == 100


def test_truncated_png() -> None:
    data = encode(Image.fromarray(RNG.integers(0, 256, (64, 64, 4), dtype=np.uint8)), "PNG")
    with pytest.raises(ImageError, match="truncated"):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ImageError):
        decode_image(data[:20])


def test_corrupt_png_data() -> None:
    data = raw_png(8, 8, 8, 6, b"this is not zlib data")
    with pytest.raises(ImageError, match="PNG"):
        decode_image(data)


def test_zero_size_png() -> None:
    with pytest.raises(ImageError):
        decode_image(raw_png(0, 5, 8, 0, zlib.compress(b"")))


def test_mislabelled_jpeg_decodes_by_content() -> None:
    data = encode(Image.new("RGB", (8, 8), (200, 10, 10)), "JPEG")
    assert decode_image(data, name="sprite.png").format == "JPEG"


def _gif_frames() -> list[Image.Image]:
    frames = []
    for shade in (40, 120, 200):
        im = Image.new("P", (8, 8), 0)
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, shade, shade, shade])
        im.paste(1, (0, 0, 4, 4))
        im.paste(3, (4, 4, 8, 8))
        frames.append(im)
    return frames


def test_animated_gif_drops_duplicate_frames() -> None:
    a, b, c = _gif_frames()
    data = encode(a, "GIF", save_all=True, append_images=[b, a, c, b], duration=[10, 20, 30, 40, 50], loop=0)
    decoded = decode_image(data)
    assert decoded.format == "GIF"
    assert [f.index for f in decoded.frames] == [0, 1, 3]
    assert [f.duration_ms for f in decoded.frames] == [10, 20, 40]
    assert decoded.frames[1].pixels[7, 7].tolist() == [120, 120, 120, 255]
    assert decoded.frames[2].pixels[7, 7].tolist() == [200, 200, 200, 255]


def test_too_many_frames() -> None:
    a, b, c = _gif_frames()
    data = encode(a, "GIF", save_all=True, append_images=[b, c])
    with pytest.raises(ImageError, match="frames"):
        decode_image(data, max_frames=2)


def test_gif_transparency_and_disposal() -> None:
    first = Image.new("P", (8, 8), 0)
    first.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])
    first.paste(1, (0, 0, 4, 8))
    second = first.copy()
    second.paste(0, (0, 0, 8, 8))
    second.paste(2, (4, 0, 8, 8))
    # disposal 2: the first frame's left half is cleared before the second shows its right half.
    data = encode(first, "GIF", save_all=True, append_images=[second], transparency=0, disposal=2)
    frames = decode_image(data).frames
    assert len(frames) == 2
    assert frames[0].pixels[0, 0].tolist() == [255, 0, 0, 255]
    assert frames[0].pixels[0, 7].tolist() == [0, 0, 0, 0]
    assert frames[1].pixels[0, 0].tolist() == [0, 0, 0, 0]
    assert frames[1].pixels[0, 7].tolist() == [0, 0, 255, 255]


def test_bmp_round_trip() -> None:
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(rgb), "BMP"))
    assert decoded.format == "BMP"
    pixels = only_frame(decoded)
    assert np.array_equal(pixels[..., :3], rgb) and (pixels[..., 3] == 255).all()


def test_jpeg_is_opaque_and_close() -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, 8:] = (200, 100, 50)
    decoded = decode_image(encode(Image.fromarray(rgb), "JPEG", quality=95))
    pixels = only_frame(decoded)
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    assert (pixels[..., 3] == 255).all()
    assert np.abs(pixels[..., :3].astype(int) - rgb).mean() < 3


def test_webp_lossless_round_trip() -> None:
    rgba = sprite()
    pixels = only_frame(decode_image(encode(Image.fromarray(rgba), "WEBP", lossless=True, exact=True)))
    expected = rgba.copy()
    expected[expected[..., 3] == 0] = 0
    assert np.array_equal(pixels, expected)


def test_animated_webp() -> None:
    frames = [Image.fromarray(sprite()) for _ in range(2)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=70)
    decoded = decode_image(data)
    assert decoded.format == "WEBP"
    assert [f.index for f in decoded.frames] == [0, 1]
    assert decoded.frames[1].duration_ms == 70


def test_animated_png() -> None:
    a, b = (Image.fromarray(sprite()) for _ in range(2))
    data = encode(a, "PNG", save_all=True, append_images=[b, a], duration=30)
    decoded = decode_image(data)
    assert [f.index for f in decoded.frames] == [0, 1]
    assert np.array_equal(decoded.frames[1].pixels[..., 3], np.asarray(b)[..., 3])


def test_tga_round_trip() -> None:
    rgba = sprite()
    rgba[rgba[..., 3] == 0] = 0
    decoded = decode_image(encode(Image.fromarray(rgba), "TGA"), name="tiles/grass.tga")
    assert decoded.format == "TGA"
    assert np.array_equal(only_frame(decoded), rgba)
    with pytest.raises(ImageError):
        decode_image(encode(Image.fromarray(rgba), "TGA"), name="grass.bin")


def test_ico_takes_largest_size() -> None:
    im = Image.new("RGBA", (48, 48), (10, 20, 30, 255))
    decoded = decode_image(encode(im, "ICO", sizes=[(16, 16), (48, 48), (32, 32)]))
    assert decoded.format == "ICO"
    assert (decoded.width, decoded.height) == (48, 48)
    assert only_frame(decoded)[47, 47].tolist() == [10, 20, 30, 255]


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "JPEG", "WEBP", "TGA", "ICO"])
def test_damaged_files_raise_only_image_error(fmt: str) -> None:
    im = Image.fromarray(sprite(12))
    if fmt in ("BMP", "JPEG"):
        im = im.convert("RGB")
    data = encode(im, fmt, save_all=True, append_images=[im.rotate(90)]) if fmt == "GIF" else encode(im, fmt)
    rng = np.random.default_rng(3)
    for _ in range(60):
        damaged = bytearray(data)
        for position in rng.integers(0, len(damaged), 4):
            damaged[position] = int(rng.integers(0, 256))
        damaged = damaged[: int(rng.integers(8, len(damaged) + 1))]
        try:
            decoded = decode_image(bytes(damaged), name="x.tga")
        except ImageError:
            continue
        assert decoded.frames and decoded.frames[0].pixels.ndim == 3
