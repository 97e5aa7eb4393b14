"""Cover decoding: any common image in, square RGB uint8 at each requested resolution out.

Order matters for safety and speed: the size is read from the header and checked (decompression bomb, tiny,
too far from square) before any pixel is decoded. Convertible modes are converted (grayscale, palette, CMYK,
16-bit, alpha composited on white); the image is centre-cropped to a square and resized with Lanczos. JPEGs are
first reduced in the DCT (``draft``) to no less than twice the largest target, which is lossless in practice for
downscaling and saves most of the decode time for 640 px covers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.data.importer.reject import Reject, nonempty_size

EXTENSIONS = (".jpg", ".jpeg", ".png")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white, 16/32-bit values are rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.min() >= 0 and a.max() <= 65535 and a.max() > 255):
            a = a / 257.0
        elif mode == "F" and a.max() <= 1.0:
            a = a * 255.0
        gray = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block is no reason to lose a good cover."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - Pillow raises several types on broken EXIF
        return img


def _square_box(w: int, h: int) -> tuple[int, int, int, int]:
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


def load_cover(
    path: Path,
    resolutions: Sequence[int],
    *,
    min_px: int,
    max_aspect: float,
    max_pixels: int,
) -> dict[int, np.ndarray]:
    """Decode ``path`` into {res: uint8 (res, res, 3)}; raises Reject with the reason otherwise."""
    path = Path(path)
    nonempty_size(path, "cover")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise Reject("decompression-bomb", f"{w}x{h} px exceeds max_pixels={max_pixels}")
                if min(w, h) < min_px:
                    raise Reject("tiny-cover", f"{w}x{h} px, short side below min_cover_px={min_px}")
                aspect = max(w, h) / max(1, min(w, h))
                if aspect > max_aspect:
                    raise Reject("non-square", f"{w}x{h} px, aspect {aspect:.2f} above max_aspect={max_aspect:g}")
                if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
                    target = 2 * max(resolutions)
                    img.draft(
                        img.mode,
                        (max(target, round(target * w / min(w, h))), max(target, round(target * h / min(w, h)))),
                    )
                img.load()
                rgb = _to_rgb(_upright(img))
        except Reject:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise Reject("decompression-bomb", str(e)) from e
        except UnidentifiedImageError as e:
            raise Reject("corrupt-cover", "not a recognisable image") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise Reject("corrupt-cover", f"{type(e).__name__}: {e}") from e
    square = rgb.crop(_square_box(*rgb.size))
    out = {}
    for r in resolutions:
        resized = square if square.size == (r, r) else square.resize((r, r), Image.Resampling.LANCZOS)
        out[int(r)] = np.asarray(resized, dtype=np.uint8).copy()
    return out
