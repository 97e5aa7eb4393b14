"""A small Spotify-style dump built on the fly: valid tracks, convertible covers and many kinds of broken input.

Every cover's true pixels and every preview's true signal (a sum of known sines) are kept, so a test can check
what the importer wrote against the source independently of how the importer decodes or resizes.
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from core.data.prepared import ATTRIBUTES

SRC_RATE = 22050
SECONDS = 2.0
SIZE = 128
ATTRS = ATTRIBUTES
HEADER = ["track_id", "album_id", "artist_id", "artist_name", "album_name", "track_name", "genre", *ATTRS]


@dataclass
class Track:
    track_id: str
    album_id: str
    artist_id: str
    artist: str
    genre: str | None
    attrs: dict[str, object]
    expect: str = "ok"  # "ok" or the expected reason code
    cover_ref: np.ndarray | None = None  # float (S, S, 3) true pixels after centre crop
    freqs: tuple[tuple[float, ...], ...] = ()  # per channel: the sine frequencies of the preview


@dataclass
class Corpus:
    root: Path
    csv: Path
    tracks: list[Track] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # stems of files with no row
    rows: int = 0  # CSV data rows

    def expected(self) -> dict[str, str]:
        return {t.track_id: t.expect for t in self.tracks}


def smooth_image(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Random-ish but smooth RGB content (coarse noise upsampled plus a gradient), uint8 (h, w, 3)."""
    coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    up = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
    grad = np.linspace(-30, 30, w)[None, :, None]
    return np.clip(up * 0.8 + grad + 20, 0, 255).astype(np.uint8)


def centre_crop(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return a[top : top + s, left : left + s]


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (PIL cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def sines(freqs: tuple[float, ...], rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return sum(0.25 * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


def write_mp3(path: Path, chans: tuple[tuple[float, ...], ...], seconds: float = SECONDS) -> None:
    data = np.stack([sines(c, SRC_RATE, seconds) for c in chans], axis=1)
    sf.write(path, data, SRC_RATE, format="MP3")


def _attrs(rng: np.random.Generator) -> dict[str, object]:
    return {
        "danceability": round(float(rng.uniform()), 3),
        "energy": round(float(rng.uniform()), 3),
        "loudness": round(float(rng.uniform(-20, 0)), 2),
        "speechiness": round(float(rng.uniform(0, 0.3)), 3),
        "acousticness": round(float(rng.uniform()), 3),
        "instrumentalness": round(float(rng.uniform()), 3),
        "liveness": round(float(rng.uniform(0, 0.5)), 3),
        "valence": round(float(rng.uniform()), 3),
        "tempo": round(float(rng.uniform(70, 170)), 2),
        "key": int(rng.integers(0, 12)),
        "mode": int(rng.integers(0, 2)),
        "duration_ms": int(rng.integers(120_000, 300_000)),
    }


def build_corpus(root: Path, seed: int = 0, n_valid: int = 14, genre: bool = True) -> Corpus:
    """Write the dump under ``root`` (covers/, previews/, misc/, tracks.csv in cp1252 with an extra column)."""
    rng = np.random.default_rng(seed)
    covers, previews, misc = root / "covers", root / "previews", root / "misc" / "deep"
    for d in (covers, previews, misc):
        d.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(root=root, csv=root / "tracks.csv")
    rows: list[dict[str, object]] = []
    freq_pool = iter(np.linspace(180.0, 3000.0, 80)[rng.permutation(80)])

    def new_track(i: int, expect: str = "ok", album: str | None = None) -> Track:
        artist = i // 3  # three tracks per artist
        t = Track(
            track_id=f"t{i:03d}",
            album_id=album or f"a{i:03d}",
            artist_id=f"ar{artist:02d}",
            artist=["Motörhead", "Beyoncé", "Sigur Rós", "Plain Band"][artist % 4] + f" {artist}",
            genre=["rock", "pop", "jazz"][artist % 3] if genre else None,
            attrs=_attrs(rng),
            expect=expect,
        )
        corpus.tracks.append(t)
        rows.append(_row(t))
        return t

    def cover(t: Track, img: np.ndarray, *, name: str | None = None, where: Path = covers, ext: str = ".jpg") -> Path:
        path = where / f"{name or t.album_id}{ext}"
        Image.fromarray(img).save(path, quality=95) if ext in (".jpg", ".jpeg") else Image.fromarray(img).save(path)
        t.cover_ref = centre_crop(img).astype(np.float64)
        return path

    def preview(t: Track, stereo: bool = False, seconds: float = SECONDS) -> Path:
        chans = ((next(freq_pool), next(freq_pool)),)
        if stereo:
            chans = (*chans, (next(freq_pool),))
        t.freqs = chans
        path = previews / f"{t.track_id}.mp3"
        write_mp3(path, chans, seconds)
        return path

    i = 0
    # --- valid, plain RGB JPEG covers named by album id; two tracks share album a000
    for k in range(n_valid):
        t = new_track(i, album="a000" if k == 1 else None)
        if k != 1:
            cover(t, smooth_image(rng, SIZE, SIZE))
        else:
            t.cover_ref = corpus.tracks[0].cover_ref
        preview(t, stereo=(k % 4 == 0))
        i += 1
    # a cover named by track id (album cover absent), in an odd subfolder, .jpeg
    t = new_track(i)
    cover(t, smooth_image(rng, SIZE, SIZE), name=t.track_id, where=misc, ext=".jpeg")
    preview(t)
    i += 1
    # --- convertible covers (kept, RGB)
    base = smooth_image(rng, SIZE, SIZE)
    t = new_track(i)  # grayscale JPEG
    gray = np.asarray(Image.fromarray(base).convert("L"))
    Image.fromarray(gray).save(covers / f"{t.album_id}.jpg", quality=95)
    t.cover_ref = np.repeat(gray[..., None], 3, axis=2).astype(np.float64)
    preview(t)
    i += 1
    t = new_track(i)  # CMYK JPEG
    img = smooth_image(rng, SIZE, SIZE)
    Image.fromarray(img).convert("CMYK").save(covers / f"{t.album_id}.jpg", quality=95)
    t.cover_ref = img.astype(np.float64)
    preview(t)
    i += 1
    t = new_track(i)  # RGBA PNG, right half transparent -> white
    img = smooth_image(rng, SIZE, SIZE)
    alpha = np.full((SIZE, SIZE, 1), 255, np.uint8)
    alpha[:, SIZE // 2 :] = 0
    Image.fromarray(np.concatenate([img, alpha], axis=2), "RGBA").save(covers / f"{t.album_id}.png")
    ref = img.astype(np.float64)
    ref[:, SIZE // 2 :] = 255.0
    t.cover_ref = ref
    preview(t)
    i += 1
    t = new_track(i)  # palette PNG
    pal = Image.fromarray(smooth_image(rng, SIZE, SIZE)).quantize(64)
    pal.save(covers / f"{t.album_id}.png")
    t.cover_ref = np.asarray(pal.convert("RGB"), dtype=np.float64)
    preview(t)
    i += 1
    t = new_track(i)  # 16-bit grayscale PNG
    g16 = (np.asarray(Image.fromarray(smooth_image(rng, SIZE, SIZE)).convert("L"), dtype=np.uint16) * 257).astype(
        np.uint16
    )
    Image.fromarray(g16).save(covers / f"{t.album_id}.png")
    t.cover_ref = np.repeat((g16 / 257.0)[..., None], 3, axis=2)
    preview(t)
    i += 1
    t = new_track(i)  # 16-bit RGB PNG
    img = smooth_image(rng, SIZE, SIZE)
    (covers / f"{t.album_id}.png").write_bytes(png16_rgb(img.astype(np.uint16) * 257))
    t.cover_ref = img.astype(np.float64)
    preview(t)
    i += 1
    t = new_track(i)  # slightly wide: centre-cropped
    img = smooth_image(rng, SIZE + 24, SIZE)
    cover(t, img)
    preview(t)
    i += 1

    # --- broken inputs, one per kind
    def broken(expect: str) -> Track:
        nonlocal i
        t = new_track(i, expect=expect)
        i += 1
        return t

    t = broken("corrupt-cover")  # random bytes named .jpg
    (covers / f"{t.album_id}.jpg").write_bytes(rng.bytes(3000))
    preview(t)
    t = broken("corrupt-cover")  # truncated JPEG
    buf = io.BytesIO()
    Image.fromarray(smooth_image(rng, SIZE, SIZE)).save(buf, "JPEG", quality=95)
    (covers / f"{t.album_id}.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    preview(t)
    t = broken("corrupt-audio")  # random bytes named .mp3
    cover(t, smooth_image(rng, SIZE, SIZE))
    (previews / f"{t.track_id}.mp3").write_bytes(rng.bytes(5000))
    t = broken("truncated-audio")  # half an mp3
    cover(t, smooth_image(rng, SIZE, SIZE))
    p = preview(t)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    t = broken("short-audio")
    cover(t, smooth_image(rng, SIZE, SIZE))
    preview(t, seconds=0.5)
    t = broken("tiny-cover")
    cover(t, smooth_image(rng, 40, 40))
    preview(t)
    t = broken("non-square")
    cover(t, smooth_image(rng, 2 * SIZE, SIZE))
    preview(t)
    t = broken("decompression-bomb")  # tiny file, huge header size (tests set max_pixels low)
    Image.new("1", (3000, 3000)).save(covers / f"{t.album_id}.png")
    preview(t)
    t = broken("empty-file")
    (covers / f"{t.album_id}.jpg").write_bytes(b"")
    preview(t)
    t = broken("missing-cover")
    preview(t)
    t = broken("missing-preview")
    cover(t, smooth_image(rng, SIZE, SIZE))
    t = broken("bad-attribute")  # NaN
    t.attrs["energy"] = ""
    rows[-1] = _row(t)
    cover(t, smooth_image(rng, SIZE, SIZE))
    preview(t)
    t = broken("bad-attribute")  # not a number
    t.attrs["tempo"] = "fast"
    rows[-1] = _row(t)
    cover(t, smooth_image(rng, SIZE, SIZE))
    preview(t)
    # duplicate id: a later row repeating the first track's id (must be rejected, first kept)
    dup = dict(rows[0])
    dup["energy"] = 0.123456
    rows.append(dup)
    # empty track id
    rows.append({**rows[1], "track_id": ""})
    # orphan files: a cover and a preview with no row
    Image.fromarray(smooth_image(rng, SIZE, SIZE)).save(covers / "nobody.jpg")
    write_mp3(previews / "nobody2.mp3", ((440.0,),))
    corpus.orphans = ["nobody", "nobody2"]

    header = HEADER if genre else [h for h in HEADER if h != "genre"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*header, "popularity"], extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "popularity": 50})
    corpus.csv.write_bytes(buf.getvalue().encode("cp1252"))
    corpus.rows = len(rows)
    return corpus


def _row(t: Track) -> dict[str, object]:
    return {
        "track_id": t.track_id,
        "album_id": t.album_id,
        "artist_id": t.artist_id,
        "artist_name": t.artist,
        "album_name": f"Album {t.album_id}",
        "track_name": f"Track {t.track_id}",
        "genre": t.genre,
        **t.attrs,
    }
