"""Safe decoding of untrusted image bytes into RGBA frames.

Files come from arbitrary uploads and archives: HTML error pages saved as .png, truncated downloads,
decompression bombs. The format is taken from magic bytes and Pillow may only use that one plugin; size and
frame limits are checked from the header before any pixel is decoded; every failure becomes an ImageError
whose message says what is wrong.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ogasearch.ingest.canonical import clear_transparent

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\xff\xd8\xff", "JPEG"),
)
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # the DIB header variants
_TGA_SUFFIXES = (".tga", ".icb", ".vda", ".vst")
_TGA_TYPES = (1, 2, 3, 9, 10, 11)  # colour-mapped, true-colour, grey; raw or RLE
_TGA_DEPTHS = (1, 8, 15, 16, 24, 32)


class ImageError(Exception):
    """Why an image could not be decoded, in words a user can act on."""


class ImageTooLarge(ImageError):
    """Over a pixel, frame or memory limit: the bytes may be a fine image, just more than is allowed."""


@dataclass
class Frame:
    index: int  # frame number in the source file
    pixels: np.ndarray  # (H, W, 4) uint8 RGBA, C-contiguous; fully transparent pixels have RGB 0
    duration_ms: int | None


@dataclass
class DecodedImage:
    format: str  # Pillow format: PNG, GIF, BMP, JPEG, WEBP, TGA, ICO
    width: int
    height: int
    mode: str  # original Pillow mode (P, RGBA, I;16, ...)
    frames: list[Frame]  # distinct frames only: repeated animation frames keep their first occurrence


def _looks_like_tga(head: bytes) -> bool:
    """TGA has no magic number; its header fields still have few legal values, which text never matches."""
    if len(head) < 18:
        return False
    colormap, kind, depth = head[1], head[2], head[16]
    width = int.from_bytes(head[12:14], "little")
    height = int.from_bytes(head[14:16], "little")
    return colormap in (0, 1) and kind in _TGA_TYPES and depth in _TGA_DEPTHS and width > 0 and height > 0


def sniff_image(head: bytes, name: str = "") -> str | None:
    """The Pillow format of an image from its first bytes (32 are enough), or None if it is not one.

    Only TGA, which has no magic number, needs the file name: a .tga suffix and a plausible header.
    """
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:4] == b"\x00\x00\x01\x00" and int.from_bytes(head[4:6], "little") > 0:
        return "ICO"
    if name.lower().endswith(_TGA_SUFFIXES) and _looks_like_tga(head):
        return "TGA"
    return None


def _describe(data: bytes) -> str:
    if not data:
        return "the file is empty"
    if data.lstrip()[:1] == b"<":
        return "it looks like HTML or XML"
    return f"unrecognised leading bytes {data[:8].hex(' ')}"


def _pixel_limit(max_pixels: int) -> int:
    """Pillow's own bomb threshold still applies when the caller allows more, as an error not a warning."""
    if Image.MAX_IMAGE_PIXELS is None:
        return max_pixels
    return min(max_pixels, Image.MAX_IMAGE_PIXELS)


def _check_size(width: int, height: int, frames: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"zero-size image ({width}x{height})")
    if width * height * frames > limit:
        what = f"{frames} frames of {width}x{height}" if frames > 1 else f"{width}x{height}"
        raise ImageTooLarge(
            f"image too large: {what} is {width * height * frames} pixels, over the limit of {limit}"
            " (raise max_pixels to allow it)"
        )


def _to_rgba(im: Image.Image) -> np.ndarray:
    """RGBA uint8 pixels of the current frame, with 16-bit grey scaled down rather than clipped."""
    if im.mode.startswith("I;16") or im.mode == "I":
        # Pillow clips 16-bit grey to 255 on convert; PNG is the only source here and holds 0..65535
        # (older Pillow opened it as mode I).
        grey = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        alpha = np.full(grey.shape, 255, dtype=np.uint8)
        transparent = im.info.get("transparency")
        if isinstance(transparent, int):
            alpha[grey == transparent] = 0
        value = (grey >> 8).astype(np.uint8)
        rgba = np.stack([value, value, value, alpha], axis=-1)
    else:
        rgba = np.asarray(im.convert("RGBA"))
    return clear_transparent(rgba)


def _decode(data: bytes, fmt: str, max_pixels: int, max_frames: int) -> DecodedImage:
    limit = _pixel_limit(max_pixels)
    with Image.open(io.BytesIO(data), formats=[fmt]) as im:
        # Image.open reads headers only: check every limit before the first pixel is decoded.
        width, height = im.size
        mode = im.mode
        _check_size(width, height, 1, limit)
        n_frames = getattr(im, "n_frames", 1)
        if n_frames > max_frames:
            raise ImageTooLarge(f"too many frames: {n_frames}, over the limit of {max_frames}")
        _check_size(width, height, n_frames, limit)
        frames: list[Frame] = []
        seen: set[bytes] = set()
        for index in range(n_frames):
            im.seek(index)
            im.load()
            # Some formats (ICO holding a PNG) only learn their real size when loading.
            _check_size(im.width, im.height, 1, limit)
            pixels = _to_rgba(im)
            key = hashlib.blake2b(repr(pixels.shape).encode() + pixels.tobytes(), digest_size=16).digest()
            if key in seen:
                continue
            seen.add(key)
            duration = im.info.get("duration")
            frames.append(Frame(index, pixels, None if duration is None else int(duration)))
        return DecodedImage(format=fmt, width=width, height=height, mode=mode, frames=frames)


def decode_image(data: bytes, *, name: str = "", max_pixels: int = 64_000_000, max_frames: int = 256) -> DecodedImage:
    """Decode every distinct frame of an image file to RGBA, or raise ImageError saying why not.

    `name` is only a hint for TGA, which has no magic number. `max_pixels` bounds the pixels decoded over
    all frames; Pillow's decompression-bomb limit applies too.
    """
    fmt = sniff_image(data[:32], name)
    if fmt is None:
        raise ImageError(f"not a supported image: {_describe(data)}")
    try:
        return _decode(data, fmt, max_pixels, max_frames)
    except ImageError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"corrupt or truncated {fmt} header") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image too large, possibly a decompression bomb: {exc}") from exc
    except MemoryError as exc:
        raise ImageTooLarge("image too large to decode in the memory available") from exc
    except EOFError as exc:
        raise ImageError(f"truncated {fmt} data: {exc or 'unexpected end of file'}") from exc
    except Exception as exc:  # Pillow plugins raise many exception types on hostile input
        raise ImageError(f"corrupt or unsupported {fmt} data: {exc}") from exc
