"""Procedural album covers for the synthetic world.

A cover is a genre *style* (palette family + composition grammar + title-block habits) rendered with per-track
variation: energy drives saturation and contrast, valence warmth, tempo pattern frequency, danceability the
number of shapes, acousticness texture and edge softness; ``seed`` picks positions, sizes and optional elements.

Everything is drawn in normalised [0, 1] coordinates with analytic anti-aliasing (signed distances turned into
pixel coverage, exact box-filtered title glyphs, band-limited noise) on a canvas of at least 128 px that is
then area-downsampled, so one set of arguments gives the same artwork at every resolution. All random draws happen
before any resolution-dependent work, which keeps them independent of ``res``.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.errors import UserError

COVER_ATTRS = ("energy", "valence", "tempo", "danceability", "acousticness")

ARCHETYPES = ("sunset", "bauhaus", "opart", "clouds", "rings", "mountains", "dots", "minimal")
OVERLAYS = ("grain", "scatter", "frame", "vignette", "lines")
_BACKGROUNDS = ("flat", "linear", "radial", "noise")
_TITLE_POS = ("top", "bottom", "top-left", "bottom-right", "band")

_MIN_CANVAS = 64  # render small covers on at least this many px, then area-downsample
_MIN_RES, _MAX_RES = 16, 1024
_WARM_HUE, _COOL_HUE = 0.04, 0.62


# ----------------------------------------------------------------------------------------------- genre style
@dataclass(frozen=True)
class GenreStyle:
    """What stays fixed within a genre: palette family and composition habits."""

    archetype: str
    hues: tuple[float, float, float, float]  # background, primary, secondary, accent
    sats: tuple[float, float, float, float]
    vals: tuple[float, float, float, float]
    background: str
    angle: float  # preferred orientation (radians) of stripes and gradients
    title_pos: str
    title_prob: float
    overlay_probs: tuple[float, ...]  # independent probability of each entry of OVERLAYS
    softness: float  # preferred edge blur in normalised units (scaled by acousticness)


_DEFAULT_BG = {
    "sunset": "linear",
    "bauhaus": "flat",
    "opart": "flat",
    "clouds": "noise",
    "rings": "radial",
    "mountains": "linear",
    "dots": "flat",
    "minimal": "flat",
}
_DEFAULT_ANGLE = {
    "sunset": math.pi / 2,
    "bauhaus": 0.0,
    "opart": math.pi / 4,
    "clouds": math.pi / 2,
    "rings": 0.0,
    "mountains": math.pi / 2,
    "dots": 0.0,
    "minimal": 0.0,
}
_SOFTNESS = {
    "sunset": 0.002,
    "bauhaus": 0.0,
    "opart": 0.0,
    "clouds": 0.02,
    "rings": 0.002,
    "mountains": 0.004,
    "dots": 0.001,
    "minimal": 0.0,
}


@lru_cache(maxsize=256)
def genre_style(genre: int, n_genres: int) -> GenreStyle:
    """The style of ``genre`` among ``n_genres``: hues spread around the wheel, archetype = genre mod 8."""
    rng = np.random.default_rng([0xC0BE5, genre, n_genres])
    archetype = ARCHETYPES[genre % len(ARCHETYPES)]
    variant = (genre // len(ARCHETYPES)) % 2
    base = (genre / n_genres + 0.03 + rng.uniform(-0.15, 0.15) / n_genres) % 1.0
    near = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.09)
    accent = rng.uniform(0.25, 0.75)  # accent contrasts, but its offset is genre-specific
    hues = (
        (base + rng.uniform(-0.03, 0.03)) % 1.0,
        base,
        (base + near) % 1.0,
        (base + accent) % 1.0,
    )
    dark_bg = bool(rng.random() < 0.5)
    sat = rng.uniform(0.45, 0.95)
    sats = (
        _clamp(sat * rng.uniform(0.5, 1.0)),
        float(sat),
        _clamp(sat * rng.uniform(0.6, 1.1)),
        float(rng.uniform(0.6, 1.0)),
    )
    bg_val = rng.uniform(0.08, 0.22) if dark_bg else rng.uniform(0.82, 0.96)
    vals = (
        float(bg_val),
        float(rng.uniform(0.55, 0.95) if dark_bg else rng.uniform(0.35, 0.75)),
        float(rng.uniform(0.45, 0.9)),
        float(rng.uniform(0.7, 1.0)),
    )
    background = _DEFAULT_BG[archetype]
    angle = _DEFAULT_ANGLE[archetype]
    if variant:  # genres 8..15 reuse the archetypes with another background and orientation
        background = _BACKGROUNDS[(_BACKGROUNDS.index(background) + 1 + genre % 3) % len(_BACKGROUNDS)]
        angle = angle + math.pi / 2 if archetype in ("opart", "sunset", "mountains") else angle + math.pi / 4
    return GenreStyle(
        archetype=archetype,
        hues=tuple(float(h) for h in hues),
        sats=sats,
        vals=vals,
        background=background,
        angle=float(angle),
        title_pos=_TITLE_POS[int(rng.integers(len(_TITLE_POS)))],
        title_prob=1.0 if archetype == "minimal" else float(rng.uniform(0.3, 0.9)),
        overlay_probs=tuple(float(p) for p in rng.uniform(0.0, 0.6, len(OVERLAYS))),
        softness=_SOFTNESS[archetype],
    )


# ------------------------------------------------------------------------------------------------- palette
def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return float(min(hi, max(lo, x)))


def _hue_toward(h: float, target: float, w: float) -> float:
    d = (target - h + 0.5) % 1.0 - 0.5
    return (h + w * d) % 1.0


def _palette(genre: int, n_genres: int, a: _Attrs, rng: np.random.Generator, overlap: float) -> np.ndarray:
    """Four RGB colours (bg, primary, secondary, accent) for one track, float32 (4, 3) in [0, 1].

    Each slot comes from the track's own genre, or with probability ``overlap`` from a random genre's palette
    (the shared pool). Attributes then move the colours: valence pulls hues toward warm or cool and tints;
    energy scales saturation and the spread of values.
    """
    donors = rng.integers(n_genres, size=4)
    share = rng.random(4) < overlap
    jit = rng.uniform(-1.0, 1.0, size=(4, 3))
    out = np.empty((4, 3), np.float32)
    warm = 2.0 * a.valence - 1.0
    pull = 0.4 * abs(warm)
    target = _WARM_HUE if warm > 0 else _COOL_HUE
    sat_gain = 0.35 + 0.9 * a.energy
    for k in range(4):
        st = genre_style(int(donors[k]) if share[k] else genre, n_genres)
        h = (st.hues[k] + 0.035 * jit[k, 0]) % 1.0
        s = st.sats[k] + 0.12 * jit[k, 1]
        v = st.vals[k] + 0.08 * jit[k, 2]
        h = _hue_toward(h, target, pull)
        s = _clamp(s * sat_gain)
        v = _clamp(0.5 + (v - 0.5) * (0.75 + 0.4 * a.energy), 0.03, 0.98)
        out[k] = colorsys.hsv_to_rgb(h, s, v)
    out += np.array([0.06, 0.0, -0.06], np.float32) * warm
    np.clip(out, 0.0, 1.0, out=out)
    return out


# ------------------------------------------------------------------------------------------------ canvas
@lru_cache(maxsize=16)
def _axis(n: int) -> np.ndarray:
    ax = ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32)
    ax.setflags(write=False)
    return ax


@lru_cache(maxsize=16)
def _edges(n: int) -> np.ndarray:
    e = np.arange(n + 1, dtype=np.float64) / n
    e.setflags(write=False)
    return e


class _Canvas:
    """A channel-first float32 RGB image (3, n, n) in normalised coordinates, painted by coverage.

    Channel-first keeps numpy's inner loops long (a trailing axis of 3 makes every broadcast op crawl).
    """

    def __init__(self, n: int, soft: float):
        self.n = n
        self.ax = _axis(n)
        self.img = np.empty((3, n, n), np.float32)
        self.scratch = np.empty((3, n, n), np.float32)
        self.edge = max(1.0 / n, soft)

    def span(self, lo: float, hi: float) -> slice:
        n = self.n
        return slice(max(0, int(math.floor(lo * n)) - 1), min(n, int(math.ceil(hi * n)) + 1))

    def grid(self, x0: float, x1: float, y0: float, y1: float):
        ys, xs = self.span(y0, y1), self.span(x0, x1)
        return ys, xs, self.ax[xs][None, :], self.ax[ys][:, None]

    def coverage(self, d: np.ndarray, edge: float | None = None) -> np.ndarray:
        """Signed distance (negative inside) -> fraction of the pixel covered."""
        cov = d * np.float32(-1.0 / (edge or self.edge))
        cov += np.float32(0.5)
        return _clip01(cov)

    def paint(self, ys: slice, xs: slice, cov: np.ndarray, colour, alpha: float = 1.0) -> None:
        """Blend ``colour`` (RGB or an RGB field) over the pixels ``[ys, xs]`` with per-pixel ``cov``."""
        sub = self.img[:, ys, xs]
        if sub.size == 0:
            return
        diff = self.scratch[:, : sub.shape[1], : sub.shape[2]]
        colour = np.asarray(colour, np.float32)
        np.subtract(colour[:, None, None] if colour.ndim == 1 else colour, sub, out=diff)
        if alpha != 1.0:
            cov = cov * np.float32(alpha)
        diff *= cov
        sub += diff

    def fill_lerp(self, t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> None:
        np.multiply(t, (c1 - c0).astype(np.float32)[:, None, None], out=self.img)
        self.img += c0.astype(np.float32)[:, None, None]


def _clip01(x: np.ndarray) -> np.ndarray:
    """In-place clip to [0, 1] (np.clip's Python wrapper costs more than the work on small arrays)."""
    np.maximum(x, 0.0, out=x)
    np.minimum(x, 1.0, out=x)
    return x


def _box_d(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, hw: float, hh: float) -> np.ndarray:
    """Signed distance (Chebyshev-style, exact on the edges) to an axis-aligned box."""
    return np.maximum(np.abs(X - np.float32(cx)) - np.float32(hw), np.abs(Y - np.float32(cy)) - np.float32(hh))


def _alias(px_per_cycle: float) -> float:
    """How far a periodic pattern must fade to its mean: 0 at >= 3 px per cycle, 1 at <= 2 px."""
    return _clamp(3.0 - px_per_cycle)


def _stripe_cov(cv: _Canvas, t: np.ndarray, freq: float, duty: float, phase: float) -> np.ndarray:
    """Anti-aliased stripes along coordinate ``t`` (normalised units), fading to their mean when too fine."""
    p = t * np.float32(freq) + np.float32(phase)
    p -= np.floor(p)
    p -= np.float32(0.5)
    np.abs(p, out=p)
    p -= np.float32(duty / 2)
    p *= np.float32(1.0 / freq)
    cov = cv.coverage(p)
    alias = _alias(cv.n / freq)
    if alias > 0:
        cov *= np.float32(1 - alias)
        cov += np.float32(alias * duty)
    return cov


def _interp_weights(ax: np.ndarray, freq: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice index and smoothstep weight of each pixel centre for value noise with ``freq`` cells."""
    u = ax.astype(np.float64) * freq + offset
    i = np.floor(u).astype(np.intp)
    f = u - i
    return i, (f * f * (3.0 - 2.0 * f)).astype(np.float32)


@dataclass(frozen=True)
class _Noise:
    """Resolution-independent fBm value-noise recipe: lattices and offsets are drawn up front."""

    freqs: tuple[float, ...]
    amps: tuple[float, ...]
    lattices: tuple[np.ndarray, ...]
    offsets: tuple[tuple[float, float], ...]

    @staticmethod
    def draw(rng: np.random.Generator, base: float, octaves: int, gain: float = 0.5) -> _Noise:
        freqs = tuple(base * 2.0**k for k in range(octaves))
        lat = tuple((rng.random((int(f) + 3, int(f) + 3)) - 0.5).astype(np.float32) for f in freqs)
        offs = tuple((float(rng.random()), float(rng.random())) for _ in freqs)
        return _Noise(freqs, tuple(gain**k for k in range(octaves)), lat, offs)

    def field(self, n: int) -> np.ndarray:
        """Noise in roughly [0, 1] on an n x n grid; octaves finer than ~3 px fade to their mean."""
        ax = _axis(n)
        total = np.zeros((n, n), np.float32)
        norm = sum(self.amps)
        for f, amp, lat, (ox, oy) in zip(self.freqs, self.amps, self.lattices, self.offsets, strict=True):
            w = _clamp(0.5 * (n / f - 2.0))  # full at >= 4 px per lattice cell, gone at <= 2 px
            if w <= 0:
                continue
            iy, sy = _interp_weights(ax, f, oy)
            ix, sx = _interp_weights(ax, f, ox)
            k = np.float32(amp * w / norm * 2.2)
            rows = lat[iy] * ((1.0 - sy) * k)[:, None]
            rows += lat[iy + 1] * (sy * k)[:, None]
            total += rows[:, ix] * (1.0 - sx)
            total += rows[:, ix + 1] * sx
        total += np.float32(0.5)
        return _clip01(total)


def _box_overlap(n: int, lo: float, hi: float, cells: int, sl: slice) -> np.ndarray:
    """(pixels in ``sl``, cells): fraction of each pixel covered by each of ``cells`` equal cells on [lo, hi]."""
    e = _edges(n)[sl.start : sl.stop + 1]
    c = lo + (hi - lo) * np.arange(cells + 1) / cells
    ov = np.minimum(e[1:, None], c[None, 1:]) - np.maximum(e[:-1, None], c[None, :-1])
    np.maximum(ov, 0.0, out=ov)
    return (ov * n).astype(np.float32)


# -------------------------------------------------------------------------------------------- title glyphs
@lru_cache(maxsize=512)
def _glyph(ch: str) -> np.ndarray:
    """A 5x3 blocky pseudo-glyph per character (same character, same glyph), from a hash."""
    if ch.isspace():
        return np.zeros((5, 3), np.float32)
    h = int.from_bytes(hashlib.blake2b(ch.encode("utf-8"), digest_size=4).digest(), "little")
    bits = np.array([(h >> k) & 1 for k in range(15)], np.float32).reshape(5, 3)
    bits[:, 1 if h >> 20 & 1 else 0] = np.maximum(bits[:, 1 if h >> 20 & 1 else 0], (h >> 16) & 1)
    if bits.sum() < 5:
        bits[:, 0] = 1.0
    return bits


def _title_chars(title: str | None, rng: np.random.Generator) -> list[str]:
    if title is not None:
        return list(title.upper())
    n = int(rng.integers(4, 14))
    pool = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    chars = [pool[int(i)] for i in rng.integers(len(pool), size=n)]
    for k in range(2, n - 1, int(rng.integers(3, 7))):
        chars[k] = " "
    return chars


@dataclass(frozen=True)
class _TitleBlock:
    x0: float
    y0: float
    cell: float
    bitmap: np.ndarray  # (rows, cols) ink coverage in cell units
    box: bool
    box_colour: np.ndarray
    ink: np.ndarray

    def draw(self, cv: _Canvas) -> None:
        rows, cols = self.bitmap.shape
        x1, y1 = self.x0 + cols * self.cell, self.y0 + rows * self.cell
        ys, xs = cv.span(self.y0, y1), cv.span(self.x0, x1)
        oy = _box_overlap(cv.n, self.y0, y1, rows, ys)
        ox = _box_overlap(cv.n, self.x0, x1, cols, xs)
        if self.box:
            cv.paint(ys, xs, np.outer(oy.sum(1), ox.sum(1)), self.box_colour)
        cv.paint(ys, xs, (oy @ self.bitmap) @ ox.T, self.ink)


def _plan_title(
    style: GenreStyle, rng: np.random.Generator, title: str | None, pal: np.ndarray, big: bool
) -> _TitleBlock:
    chars = _title_chars(title, rng)
    lines = 3 if big else int(rng.integers(1, 3))
    cell = float(rng.uniform(0.018, 0.026) if big else rng.uniform(0.010, 0.016))
    max_w = 0.8 if big else 0.55
    per_line = max(1, int((max_w / cell - 1) // 4))
    text = chars[: per_line * lines]
    nl = max(1, min(lines, -(-len(text) // per_line)))
    width = min(per_line, max(1, len(text)))
    bitmap = np.zeros((nl * 6 + 1, width * 4 + 1), np.float32)
    for i, ch in enumerate(text):
        r, c = divmod(i, per_line)
        bitmap[1 + 6 * r : 6 + 6 * r, 1 + 4 * c : 4 + 4 * c] = _glyph(ch)
    w, h = bitmap.shape[1] * cell, bitmap.shape[0] * cell
    pos = "band" if big else style.title_pos
    m = 0.06
    if pos == "top":
        x0, y0 = 0.5 - w / 2, m
    elif pos == "bottom":
        x0, y0 = 0.5 - w / 2, 1 - m - h
    elif pos == "top-left":
        x0, y0 = m, m
    elif pos == "bottom-right":
        x0, y0 = 1 - m - w, 1 - m - h
    else:
        x0, y0 = m + 0.02, 0.62 - h / 2 if not big else 0.55
    lum = float(pal[0] @ np.array([0.3, 0.59, 0.11], np.float32))
    ink = np.full(3, 0.06 if lum > 0.5 else 0.95, np.float32)
    box = bool(rng.random() < 0.6)
    box_colour = pal[3] if box else pal[0]
    if box:
        ink = np.full(
            3, 0.06 if float(box_colour @ np.array([0.3, 0.59, 0.11], np.float32)) > 0.5 else 0.95, np.float32
        )
    return _TitleBlock(x0, y0, cell, bitmap, box, box_colour, ink)


# ----------------------------------------------------------------------------------------------- attributes
@dataclass(frozen=True)
class _Attrs:
    energy: float
    valence: float
    tempo: float
    danceability: float
    acousticness: float

    @property
    def freq(self) -> float:
        """Pattern-frequency multiplier from tempo: 0.5 at 60 BPM, 1 at 120, ~2.5 at 200."""
        return 2.0 ** ((self.tempo - 120.0) / 60.0)


def _attrs(attrs: Mapping[str, float]) -> _Attrs:
    missing = [k for k in COVER_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"render_cover: attrs is missing {', '.join(missing)}")
    vals = {}
    for k in COVER_ATTRS:
        v = float(attrs[k])
        if not math.isfinite(v):
            raise ValueError(f"render_cover: attribute {k} is not finite ({v})")
        vals[k] = _clamp(v, 30.0, 250.0) if k == "tempo" else _clamp(v)
    return _Attrs(**vals)


# ------------------------------------------------------------------------------------------------- grammar
# Each planner draws everything it needs from ``rng`` (resolution-free) and returns a drawing closure.


def _plan_background(kind: str, style: GenreStyle, rng, pal, a: _Attrs):
    ang = style.angle + rng.normal(0, 0.25)
    c0, c1 = pal[0], (0.55 * pal[0] + 0.45 * pal[2]).astype(np.float32)
    if kind == "flat":

        def draw(cv: _Canvas):
            cv.img[:] = pal[0][:, None, None]
    elif kind == "linear":
        ca, sa = math.cos(ang), math.sin(ang)

        def draw(cv: _Canvas):
            t = (cv.ax[None, :] - 0.5) * np.float32(ca) + (cv.ax[:, None] - 0.5) * np.float32(sa)
            t += np.float32(0.5)
            _clip01(t)
            cv.fill_lerp(t, c1, c0)
    elif kind == "radial":
        cx, cy = rng.uniform(0.2, 0.8, 2)
        rad = rng.uniform(0.6, 1.0)

        def draw(cv: _Canvas):
            t = np.sqrt((cv.ax[None, :] - cx) ** 2 + (cv.ax[:, None] - cy) ** 2) * np.float32(1 / rad)
            _clip01(t)
            cv.fill_lerp(t, c1, c0)
    else:  # noise
        noise = _Noise.draw(rng, base=2.0 * a.freq, octaves=4)
        c2 = pal[1] * 0.5 + pal[0] * 0.5

        def draw(cv: _Canvas):
            cv.fill_lerp(noise.field(cv.n), c0, c2.astype(np.float32))

    return draw


def _plan_sunset(style, rng, pal, a):
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.5), rng.uniform(0.18, 0.3)
    horizon = cy + r * rng.uniform(0.3, 0.8)
    n_cut = 1.5 + 2.5 * a.freq  # cuts per sun diameter
    grid_f = 4.0 * a.freq
    dark = (pal[0] * 0.35).astype(np.float32)
    sun_top, sun_bot = pal[3], pal[1]
    vertical = math.cos(style.angle) ** 2 < 0.5

    def draw(cv: _Canvas):
        ys, xs, X, Y = cv.grid(cx - r, cx + r, cy - r, cy + r)
        d = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - np.float32(r)
        cov = cv.coverage(d)
        t = _clip01((Y - (cy - r)) / np.float32(2 * r))
        col = sun_top[:, None, None] + t * (sun_bot - sun_top)[:, None, None]
        # horizontal cuts through the lower half of the sun, thicker toward the bottom
        cut = _stripe_cov(cv, Y if vertical else X, n_cut / r / 2, 0.3, 0.0) * (Y > np.float32(cy))
        cov = cov * (1 - cut)
        cv.paint(ys, xs, cov, col)
        # ground with a perspective grid
        ys, xs, X, Y = cv.grid(0, 1, horizon, 1)
        ground = cv.coverage(np.float32(horizon) - Y + np.zeros_like(X))
        cv.paint(ys, xs, ground, dark)
        depth = np.maximum(Y - np.float32(horizon), np.float32(1e-3))
        lines_x = _stripe_cov(cv, (X - np.float32(cx)) / depth * np.float32(0.1), grid_f, 0.025, 0.5)
        lines_y = _stripe_cov(cv, np.log(depth) + np.zeros_like(X), grid_f * 0.7, 0.12, 0.0)
        cv.paint(ys, xs, np.maximum(lines_x, lines_y) * ground * _clip01(depth * 6), pal[2], 0.8)

    return draw


def _plan_bauhaus(style, rng, pal, a):
    n = 3 + int(round(5 * a.danceability)) + int(rng.integers(0, 2))
    shapes = []
    for _ in range(n):
        kind = rng.choice(["rect", "circle", "half", "bar"], p=[0.35, 0.3, 0.15, 0.2])
        cx, cy = (np.round(rng.uniform(0.1, 0.9, 2) * 8) / 8).tolist()
        s = float(rng.uniform(0.08, 0.3))
        aspect = float(rng.uniform(0.4, 2.5))
        ci = 1 + int(rng.integers(0, 3))
        striped = bool(rng.random() < 0.5)
        shapes.append((kind, cx, cy, s, aspect, pal[ci], pal[1 + ci % 3] if striped else None))
    stripe_f = 6.0 * a.freq

    def draw(cv: _Canvas):
        for kind, cx, cy, s, aspect, col, stripe_col in shapes:
            if kind == "circle" or kind == "half":
                ys, xs, X, Y = cv.grid(cx - s, cx + s, cy - s, cy + s)
                d = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - np.float32(s)
                if kind == "half":
                    d = np.maximum(d, np.float32(cy) - Y)
            else:
                hw, hh = (s * aspect, s / aspect) if kind == "rect" else (0.5, 0.012 + s * 0.06)
                bx = 0.5 if kind == "bar" else cx
                ys, xs, X, Y = cv.grid(bx - hw, bx + hw, cy - hh, cy + hh)
                d = _box_d(X, Y, bx, cy, hw, hh)
            cov = cv.coverage(d)
            cv.paint(ys, xs, cov, col)
            if stripe_col is not None:
                cv.paint(ys, xs, cov * _stripe_cov(cv, X + Y, stripe_f, 0.4, 0.0), stripe_col)

    return draw


def _plan_opart(style, rng, pal, a):
    ang = style.angle + rng.normal(0, 0.2)
    ang2 = ang + math.pi / 2 + rng.normal(0, 0.3)
    f = 7.0 * a.freq * rng.uniform(0.8, 1.25)
    duty = float(rng.uniform(0.35, 0.6))
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.18, 0.35)
    col, col2 = pal[1], pal[3]

    def draw(cv: _Canvas):
        X, Y = cv.ax[None, :], cv.ax[:, None]
        s1 = _stripe_cov(cv, X * np.float32(math.cos(ang)) + Y * np.float32(math.sin(ang)), f, duty, 0.0)
        s2 = _stripe_cov(cv, X * np.float32(math.cos(ang2)) + Y * np.float32(math.sin(ang2)), f, duty, 0.25)
        disk = cv.coverage(np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - np.float32(r))
        full = slice(0, cv.n)
        cv.paint(full, full, s1 * (1 - disk), col)
        cv.paint(full, full, disk, pal[0])
        cv.paint(full, full, s2 * disk, col2)

    return draw


def _plan_clouds(style, rng, pal, a):
    noise = _Noise.draw(rng, base=2.5 * a.freq, octaves=3, gain=0.5)
    glow = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.45))
    moon = rng.random() < 0.5
    mx, my, mr = rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.4), rng.uniform(0.04, 0.1)

    def draw(cv: _Canvas):
        n = noise.field(cv.n)
        cv.paint(slice(0, cv.n), slice(0, cv.n), n, pal[1], 0.85)
        hi = _clip01(n * 3.0 - 1.8)
        cv.paint(slice(0, cv.n), slice(0, cv.n), hi, pal[2], 0.7)
        gx, gy, gr = glow
        g = np.sqrt((cv.ax[None, :] - gx) ** 2 + (cv.ax[:, None] - gy) ** 2) * np.float32(1 / gr)
        g = _clip01(1 - g)
        cv.paint(slice(0, cv.n), slice(0, cv.n), g * g, pal[3], 0.6)
        if moon:
            ys, xs, X, Y = cv.grid(mx - mr, mx + mr, my - mr, my + mr)
            cv.paint(ys, xs, cv.coverage(np.sqrt((X - mx) ** 2 + (Y - my) ** 2) - np.float32(mr)), pal[3])

    return draw


def _plan_rings(style, rng, pal, a):
    cx, cy = rng.uniform(0.25, 0.75, 2)
    outer = rng.uniform(0.3, 0.48)
    f = 6.0 * a.freq * rng.uniform(0.8, 1.25)
    duty = float(rng.uniform(0.3, 0.6))
    inner = outer * rng.uniform(0.15, 0.35)

    def draw(cv: _Canvas):
        ys, xs, X, Y = cv.grid(cx - outer, cx + outer, cy - outer, cy + outer)
        r = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2)
        disk = cv.coverage(r - np.float32(outer))
        cv.paint(ys, xs, disk, pal[2])
        cv.paint(ys, xs, _stripe_cov(cv, r, f, duty, 0.0) * disk, pal[1])
        cv.paint(ys, xs, cv.coverage(r - np.float32(inner)), pal[3])
        cv.paint(ys, xs, cv.coverage(r - np.float32(inner * 0.18)), pal[0])

    return draw


def _plan_mountains(style, rng, pal, a):
    layers = 2 + int(round(3 * a.danceability))
    far, near = pal[1], (pal[1] * 0.25 + pal[0] * 0.1).astype(np.float32)
    plan = []
    for li in range(layers):
        base = 0.55 + 0.45 * (li + 1) / (layers + 1)
        peaks = max(1, int(round(1.5 * a.freq * (1 + li * 0.5) + rng.uniform(0, 1.5))))
        tris = []
        for _ in range(peaks):
            px_ = float(rng.uniform(-0.1, 1.1))
            w = float(rng.uniform(0.15, 0.45) / (1 + 0.3 * li) / a.freq**0.5)
            h = float(rng.uniform(0.15, 0.4))
            tris.append((px_, base - h, w, base))
        t = li / max(1, layers - 1)
        plan.append(((far * (1 - t) + near * t).astype(np.float32), base, tris))
    sun = (rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.35), rng.uniform(0.05, 0.12))
    hatch_f, hatch_a = 8.0 * a.freq, float(rng.uniform(0.25, 0.45))

    def draw(cv: _Canvas):
        ys, xs, X, Y = cv.grid(0, 1, 0, 0.8)
        cv.paint(ys, xs, _stripe_cov(cv, Y, hatch_f, 0.3, 0.0) * _clip01(3.0 - 4.0 * Y), pal[2], hatch_a)
        sx, sy, sr = sun
        ys, xs, X, Y = cv.grid(sx - sr, sx + sr, sy - sr, sy + sr)
        cv.paint(ys, xs, cv.coverage(np.sqrt((X - sx) ** 2 + (Y - sy) ** 2) - np.float32(sr)), pal[3])
        for col, base, tris in plan:
            ys, xs, X, Y = cv.grid(0, 1, base - 0.01, 1)
            cv.paint(ys, xs, cv.coverage(np.float32(base) - Y + np.zeros_like(X)), col)
            for px_, top, w, b in tris:
                ys, xs, X, Y = cv.grid(px_ - w, px_ + w, top, b + 0.01)
                # isosceles triangle: max of two slanted edges and the base
                slope = (b - top) / w
                k = 1.0 / math.sqrt(1 + slope * slope)
                d1 = ((X - np.float32(px_)) * np.float32(slope) - (Y - np.float32(top))) * np.float32(k)
                d2 = (-(X - np.float32(px_)) * np.float32(slope) - (Y - np.float32(top))) * np.float32(k)
                d = np.maximum(np.maximum(d1, d2), Y - np.float32(b))
                cv.paint(ys, xs, cv.coverage(d), col)

    return draw


def _plan_dots(style, rng, pal, a):
    n = 5.0 * a.freq * rng.uniform(0.8, 1.25)
    rad = float(rng.uniform(0.18, 0.4))
    rot = style.angle + (math.pi / 4 if rng.random() < 0.4 else 0.0)
    ox, oy = rng.random(2)
    win = rng.uniform(0.15, 0.45, 2), rng.uniform(0.2, 0.35, 2)

    def draw(cv: _Canvas):
        X, Y = cv.ax[None, :], cv.ax[:, None]
        c, s = np.float32(math.cos(rot)), np.float32(math.sin(rot))
        u = (X * c + Y * s) * np.float32(n) + np.float32(ox)
        v = (Y * c - X * s) * np.float32(n) + np.float32(oy)
        u -= np.floor(u) + np.float32(0.5)
        v -= np.floor(v) + np.float32(0.5)
        d = (np.sqrt(u * u + v * v) - np.float32(rad)) * np.float32(1 / n)
        cov = cv.coverage(d)
        alias = _alias(cv.n / n)
        if alias > 0:
            cov = cov * np.float32(1 - alias) + np.float32(alias * math.pi * rad * rad)
        (wx, wy), (hw, hh) = win
        wd = _box_d(X, Y, wx + hw, wy + hh, hw, hh)
        wcov = cv.coverage(wd)
        full = slice(0, cv.n)
        cv.paint(full, full, cov * (1 - wcov), pal[1])
        cv.paint(full, full, wcov, pal[2])
        cv.paint(full, full, cov * wcov, pal[3])

    return draw


def _plan_minimal(style, rng, pal, a):
    band_y = float(rng.uniform(0.12, 0.3))
    band_h = float(rng.uniform(0.008, 0.016))
    n_bands = 2 + int(round(2 * a.freq))
    gap = float(rng.uniform(0.08, 0.12)) / a.freq
    shape = (rng.uniform(0.6, 0.85), rng.uniform(0.12, 0.3), rng.uniform(0.04, 0.09))
    square = rng.random() < 0.5

    def draw(cv: _Canvas):
        for k in range(n_bands):
            by = band_y + k * gap
            ys, xs, X, Y = cv.grid(0, 1, by - band_h, by + band_h)
            cv.paint(ys, xs, cv.coverage(_box_d(X, Y, 0.5, by, 0.5, band_h)), pal[1])
        sx, sy, sr = shape
        ys, xs, X, Y = cv.grid(sx - sr, sx + sr, sy - sr, sy + sr)
        if square:
            d = np.maximum(np.abs(X - np.float32(sx)), np.abs(Y - np.float32(sy))) - np.float32(sr)
        else:
            d = np.sqrt((X - sx) ** 2 + (Y - sy) ** 2) - np.float32(sr)
        cv.paint(ys, xs, cv.coverage(d), pal[3])

    return draw


_MOTIFS = {
    "sunset": _plan_sunset,
    "bauhaus": _plan_bauhaus,
    "opart": _plan_opart,
    "clouds": _plan_clouds,
    "rings": _plan_rings,
    "mountains": _plan_mountains,
    "dots": _plan_dots,
    "minimal": _plan_minimal,
}


def _plan_overlay(kind: str, style: GenreStyle, rng, pal, a: _Attrs):
    if kind == "grain":
        noise = _Noise.draw(rng, base=40.0, octaves=2, gain=0.7)
        amount = 0.05 + 0.15 * a.acousticness

        def draw(cv: _Canvas):
            g = noise.field(cv.n) - np.float32(0.5)
            cv.img += g * np.float32(amount)
    elif kind == "scatter":
        k = 3 + int(round(10 * a.danceability))
        pts = rng.uniform(0.05, 0.95, (k, 2))
        rs = rng.uniform(0.01, 0.035, k) / max(a.freq, 0.5) ** 0.3
        cols = rng.integers(1, 4, k)

        def draw(cv: _Canvas):
            for (x, y), r, ci in zip(pts, rs, cols, strict=True):
                ys, xs, X, Y = cv.grid(x - r, x + r, y - r, y + r)
                cv.paint(ys, xs, cv.coverage(np.sqrt((X - x) ** 2 + (Y - y) ** 2) - np.float32(r)), pal[ci])
    elif kind == "frame":
        m, w = rng.uniform(0.03, 0.07), rng.uniform(0.008, 0.02)
        col = pal[3] if rng.random() < 0.5 else pal[0]

        def draw(cv: _Canvas):  # four thin bars, each painted only on its own strip
            lo, hi = m - w, 1 - m + w
            for horizontal, at in ((True, m), (True, 1 - m), (False, m), (False, 1 - m)):
                if horizontal:
                    ys, xs, X, Y = cv.grid(lo, hi, at - w, at + w)
                    d = _box_d(X, Y, 0.5, at, 0.5 - lo, w)
                else:
                    ys, xs, X, Y = cv.grid(at - w, at + w, lo, hi)
                    d = _box_d(X, Y, at, 0.5, w, 0.5 - lo)
                cv.paint(ys, xs, cv.coverage(d, 1.0 / cv.n), col)
    elif kind == "vignette":
        strength = rng.uniform(0.3, 0.6)

        def draw(cv: _Canvas):
            r2 = (cv.ax[None, :] - 0.5) ** 2 + (cv.ax[:, None] - 0.5) ** 2
            cv.img *= 1 - np.float32(strength) * _clip01(r2 * 2.2)
    else:  # lines: thin parallel hairlines across the frame
        ang = style.angle + math.pi / 2 + rng.normal(0, 0.1)
        f = 10.0 * a.freq
        col = pal[3]

        def draw(cv: _Canvas):
            t = cv.ax[None, :] * np.float32(math.cos(ang)) + cv.ax[:, None] * np.float32(math.sin(ang))
            full = slice(0, cv.n)
            cv.paint(full, full, _stripe_cov(cv, t, f, 0.08, 0.0), col, 0.5)

    return draw


# ------------------------------------------------------------------------------------------------- public
def _downsample(img: np.ndarray, ss: int) -> np.ndarray:
    """Area-average ss x ss blocks with strided adds (faster than a float32 mean over a 5-d view)."""
    if ss == 1:
        return img
    n = img.shape[1] // ss
    rows = img.reshape(3, n, ss, n * ss)
    acc = rows[:, :, 0].copy()
    for k in range(1, ss):
        acc += rows[:, :, k]
    cols = acc.reshape(3, n, n, ss)
    out = cols[..., 0].copy()
    for k in range(1, ss):
        out += cols[..., k]
    out *= np.float32(1.0 / (ss * ss))
    return out


def _seed_key(seed: int) -> int:
    return int(seed) % (1 << 63)


def render_cover(
    genre: int,
    n_genres: int,
    attrs: Mapping[str, float],
    seed: int,
    res: int,
    *,
    palette_overlap: float = 0.25,
    title: str | None = None,
) -> np.ndarray:
    """Render one cover: uint8 (res, res, 3), C-contiguous, deterministic in its arguments.

    ``attrs`` needs the keys of COVER_ATTRS (extra keys are ignored): energy, valence, danceability and
    acousticness in [0, 1], tempo in BPM. ``title`` sets the glyphs of the title block (same character, same
    glyph); without it a pseudo-title is drawn from ``seed``. A given title always gets a title block; without
    one, the genre decides how often a block appears.
    """
    if not 1 <= n_genres:
        raise UserError(f"covers need at least one genre, got n_genres={n_genres}")
    if not 0 <= genre < n_genres:
        raise UserError(f"genre {genre} is outside [0, {n_genres})")
    if not _MIN_RES <= res <= _MAX_RES:
        raise UserError(f"cover resolution {res} px is outside [{_MIN_RES}, {_MAX_RES}]")
    if not 0.0 <= palette_overlap <= 1.0:
        raise UserError(f"palette_overlap must be in [0, 1], got {palette_overlap}")
    a = _attrs(attrs)
    style = genre_style(int(genre), int(n_genres))
    rng = np.random.default_rng([0x5EED, _seed_key(seed), int(genre), int(n_genres)])

    # --- plan: every random draw happens here, before the resolution enters
    pal = _palette(int(genre), int(n_genres), a, rng, float(palette_overlap))
    background = _plan_background(style.background, style, rng, pal, a)
    motif = _MOTIFS[style.archetype](style, rng, pal, a)
    overlay_draws = rng.random(len(OVERLAYS))
    overlays = [
        _plan_overlay(kind, style, rng, pal, a)
        for kind, p, u in zip(OVERLAYS, style.overlay_probs, overlay_draws, strict=True)
        if u < p and kind != "grain"
    ]
    grain = None
    if overlay_draws[0] < style.overlay_probs[0] or rng.random() < a.acousticness * 0.5:
        grain = _plan_overlay("grain", style, rng, pal, a)
    has_title = style.archetype == "minimal" or rng.random() < style.title_prob or title is not None
    block = _plan_title(style, rng, title, pal, big=style.archetype == "minimal") if has_title else None
    soft = style.softness * (0.5 + 1.5 * a.acousticness)

    # --- draw on a canvas of at least _MIN_CANVAS px, then area-downsample
    ss = max(1, -(-_MIN_CANVAS // res))
    cv = _Canvas(res * ss, soft)
    background(cv)
    motif(cv)
    for draw in overlays:
        draw(cv)
    if block is not None:
        block.draw(cv)
    if grain is not None:
        grain(cv)
    img = _downsample(cv.img, ss)

    # energy -> contrast around the cover's mean luminance
    mean = np.float32(img.mean())
    img = (img - mean) * np.float32(0.6 + 0.8 * a.energy) + mean
    img *= np.float32(255.0)
    img += np.float32(0.5)
    np.clip(img, 0.0, 255.0, out=img)
    return np.ascontiguousarray(img.astype(np.uint8).transpose(1, 2, 0))


def render_sheet(
    n_genres: int = 8, per_genre: int = 8, res: int = 64, seed: int = 0, palette_overlap: float = 0.25
) -> np.ndarray:
    """A contact sheet (genre per row) of covers with random attributes, for eyeballing the world."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_genres):
        row = []
        for _ in range(per_genre):
            attrs = dict(zip(COVER_ATTRS, rng.random(5).tolist(), strict=True))
            attrs["tempo"] = float(rng.uniform(60, 200))
            row.append(
                render_cover(g, n_genres, attrs, int(rng.integers(1 << 31)), res, palette_overlap=palette_overlap)
            )
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)
