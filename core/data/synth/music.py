"""Genre music profiles and a fast, vectorised synthesiser for the synthetic album world.

A genre is a *style*: a vector of normalised parameters in [0, 1] (tempo range, drum timbres, 16-step onset
probabilities for kick/snare/hat/bass/chords/lead, timbres, envelopes, effects, mode, loudness) plus a set of
chord progressions. Styles are continuous so that tracks can be blended between genres (``genre_overlap``).
``realise`` turns a style into a concrete ``Song`` (tempo, key, mode, patterns, notes) with a track's RNG, and
``render`` turns a song into mono float32 audio.

Speed matters (>= 100 tracks/s per core at 10 s): audio is laid out as a (steps, samples-per-step) matrix so
per-step quantities broadcast instead of being gathered per sample; pitched voices are wavetables read with
32-bit wrapping phase accumulators; chords are one voice whose wavetable holds a just-intonation chord
(e.g. 4:5:6); the pitched parts run at half the sample rate (band-limited tables) and are interpolated up;
drums are pre-rendered hits placed into a 4-bar block that is tiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np

GENRE_NAMES: tuple[str, ...] = (
    "rock",
    "electronic",
    "hiphop",
    "jazz",
    "classical",
    "folk",
    "metal",
    "pop",
    "ambient",
    "reggae",
    "blues",
    "country",
    "funk",
    "latin",
    "soul",
    "punk",
)
MAX_GENRES = len(GENRE_NAMES)
N_HANDMADE = 8

# Scalar style fields: name -> (low, high) in real units; the style vector stores (value - low) / (high - low).
SCALARS: dict[str, tuple[float, float]] = {
    "tempo_lo": (55.0, 190.0),
    "tempo_hi": (55.0, 190.0),
    "swing": (0.0, 0.6),
    "drum_level": (0.0, 1.0),
    "kick_pitch": (40.0, 90.0),
    "kick_decay": (0.04, 0.45),
    "snare_tone": (0.0, 1.0),
    "snare_decay": (0.04, 0.35),
    "hat_decay": (0.01, 0.25),
    "hat_level": (0.0, 1.0),
    "bass_level": (0.0, 1.0),
    "bass_bright": (0.0, 1.0),
    "bass_gate": (0.2, 1.0),
    "bass_walk": (0.0, 1.0),
    "chord_level": (0.0, 1.0),
    "chord_bright": (0.0, 1.0),
    "chord_attack": (0.002, 0.4),
    "chord_decay": (0.05, 2.5),
    "chord_sustain": (0.0, 1.0),
    "chord_gate": (0.2, 1.0),
    "sevenths": (0.0, 1.0),
    "power": (0.0, 1.0),
    "lead_level": (0.0, 1.0),
    "lead_bright": (0.0, 1.0),
    "lead_odd": (0.0, 1.0),
    "lead_attack": (0.002, 0.2),
    "lead_decay": (0.05, 1.5),
    "lead_sustain": (0.0, 1.0),
    "lead_gate": (0.2, 1.0),
    "lead_octave": (-1.0, 1.0),
    "lead_leap": (0.0, 1.0),
    "pentatonic": (0.0, 1.0),
    "drive": (0.0, 1.0),
    "reverb": (0.0, 1.0),
    "reverb_time": (0.0, 1.0),
    "noise": (0.0, 1.0),
    "major": (0.0, 1.0),
    "loudness": (-22.0, -3.0),
    "duration": (100.0, 480.0),
}
PATTERNS = ("kick", "snare", "hat", "bass", "chord", "lead")
STEPS = 16
SCALAR_INDEX = {name: i for i, name in enumerate(SCALARS)}
PATTERN_OFFSET = {name: len(SCALARS) + k * STEPS for k, name in enumerate(PATTERNS)}
STYLE_DIM = len(SCALARS) + STEPS * len(PATTERNS)

_LO = np.array([lo for lo, _ in SCALARS.values()])
_HI = np.array([hi for _, hi in SCALARS.values()])

# Chord progressions as scale degrees (0 = tonic), one chord per bar.
Progression = tuple[int, ...]


@dataclass(frozen=True)
class GenreProfile:
    """A genre's musical style (normalised vector) and its chord progressions."""

    index: int
    name: str
    style: np.ndarray
    progressions: tuple[Progression, ...]

    def value(self, name: str) -> float:
        return style_value(self.style, name)


def style_values(style: np.ndarray) -> np.ndarray:
    """All scalar fields in real units, in ``SCALARS`` order."""
    return _LO + style[: len(SCALARS)] * (_HI - _LO)


def style_value(style: np.ndarray, name: str) -> float:
    i = SCALAR_INDEX[name]
    return float(_LO[i] + style[i] * (_HI[i] - _LO[i]))


def style_pattern(style: np.ndarray, name: str) -> np.ndarray:
    o = PATTERN_OFFSET[name]
    return style[o : o + STEPS]


def _pattern(text: str) -> list[float]:
    """'x' a sure hit, 'o' a likely one, '-' an occasional one, '.' a rare one."""
    table = {"x": 0.95, "o": 0.55, "-": 0.2, ".": 0.03}
    if len(text) != STEPS:
        raise ValueError(f"pattern {text!r} must have {STEPS} steps")
    return [table[c] for c in text]


def _style(scalars: dict[str, float], patterns: dict[str, str]) -> np.ndarray:
    vec = np.zeros(STYLE_DIM)
    missing = set(SCALARS) - set(scalars)
    if missing:
        raise ValueError(f"style lacks {sorted(missing)}")
    for name, value in scalars.items():
        i = SCALAR_INDEX[name]
        vec[i] = (value - _LO[i]) / (_HI[i] - _LO[i])
    for name in PATTERNS:
        o = PATTERN_OFFSET[name]
        vec[o : o + STEPS] = _pattern(patterns[name])
    return np.clip(vec, 0.0, 1.0)


# The eight hand-made genres: musically distinct on purpose (tempo, groove, timbre, effects, harmony).
_HANDMADE: list[tuple[str, dict[str, float], dict[str, str], tuple[Progression, ...]]] = [
    (
        "rock",
        dict(tempo_lo=105, tempo_hi=140, swing=0.05, drum_level=0.8, kick_pitch=55, kick_decay=0.22,
             snare_tone=0.45, snare_decay=0.2, hat_decay=0.05, hat_level=0.5, bass_level=0.65, bass_bright=0.55,
             bass_gate=0.8, bass_walk=0.2, chord_level=0.7, chord_bright=0.75, chord_attack=0.004,
             chord_decay=0.5, chord_sustain=0.6, chord_gate=0.9, sevenths=0.05, power=0.6, lead_level=0.45,
             lead_bright=0.65, lead_odd=0.35, lead_attack=0.01, lead_decay=0.4, lead_sustain=0.6, lead_gate=0.8,
             lead_octave=0.0, lead_leap=0.4, pentatonic=0.8, drive=0.55, reverb=0.25, reverb_time=0.3,
             noise=0.08, major=0.65, loudness=-7.0, duration=250),
        dict(kick="x.....x.x.....o.", snare="....x.......x...", hat="x.x.x.x.x.x.x.x.", bass="x.x.x.x.x.x.x.x.",
             chord="x.....x.x.....x.", lead="x..-x..-o.-.x..-"),
        ((0, 4, 5, 3), (0, 3, 4, 3), (0, 6, 3, 0), (5, 3, 0, 4)),
    ),
    (
        "electronic",
        dict(tempo_lo=120, tempo_hi=132, swing=0.0, drum_level=0.9, kick_pitch=48, kick_decay=0.3,
             snare_tone=0.2, snare_decay=0.15, hat_decay=0.09, hat_level=0.7, bass_level=0.7, bass_bright=0.7,
             bass_gate=0.5, bass_walk=0.1, chord_level=0.5, chord_bright=0.35, chord_attack=0.25,
             chord_decay=2.0, chord_sustain=0.9, chord_gate=1.0, sevenths=0.3, power=0.0, lead_level=0.5,
             lead_bright=0.9, lead_odd=0.95, lead_attack=0.003, lead_decay=0.12, lead_sustain=0.2, lead_gate=0.5,
             lead_octave=0.5, lead_leap=0.7, pentatonic=0.1, drive=0.1, reverb=0.45, reverb_time=0.6,
             noise=0.0, major=0.3, loudness=-6.0, duration=360),
        dict(kick="x...x...x...x...", snare="....x.......x...", hat="..x...x...x...x.", bass="..x...x...x...x.",
             chord="x...............", lead="xoxoxoxoxoxoxoxo"),
        ((0, 5, 2, 6), (0, 0, 5, 6), (0, 3, 5, 4)),
    ),
    (
        "hiphop",
        dict(tempo_lo=80, tempo_hi=98, swing=0.45, drum_level=0.95, kick_pitch=45, kick_decay=0.4,
             snare_tone=0.3, snare_decay=0.22, hat_decay=0.025, hat_level=0.55, bass_level=0.9, bass_bright=0.1,
             bass_gate=1.0, bass_walk=0.1, chord_level=0.4, chord_bright=0.3, chord_attack=0.01,
             chord_decay=0.9, chord_sustain=0.3, chord_gate=0.9, sevenths=0.6, power=0.0, lead_level=0.35,
             lead_bright=0.4, lead_odd=0.5, lead_attack=0.004, lead_decay=0.1, lead_sustain=0.1, lead_gate=0.3,
             lead_octave=-0.5, lead_leap=0.2, pentatonic=0.7, drive=0.15, reverb=0.12, reverb_time=0.2,
             noise=0.35, major=0.25, loudness=-7.0, duration=215),
        dict(kick="x......x..x.....", snare="....x.......x...", hat="x-x-x-x-x-x-x-x-", bass="x.........x.....",
             chord="x.......x.......", lead="x.o.-.o.x.o.-.o."),
        ((0, 0, 5, 5), (0, 3, 0, 4), (0, 5)),
    ),
    (
        "jazz",
        dict(tempo_lo=110, tempo_hi=175, swing=0.6, drum_level=0.45, kick_pitch=60, kick_decay=0.15,
             snare_tone=0.2, snare_decay=0.12, hat_decay=0.18, hat_level=0.55, bass_level=0.7, bass_bright=0.3,
             bass_gate=0.9, bass_walk=0.9, chord_level=0.45, chord_bright=0.45, chord_attack=0.008,
             chord_decay=0.5, chord_sustain=0.2, chord_gate=0.6, sevenths=1.0, power=0.0, lead_level=0.6,
             lead_bright=0.5, lead_odd=0.6, lead_attack=0.02, lead_decay=0.6, lead_sustain=0.6, lead_gate=0.85,
             lead_octave=0.0, lead_leap=0.55, pentatonic=0.1, drive=0.0, reverb=0.3, reverb_time=0.4,
             noise=0.12, major=0.6, loudness=-14.0, duration=330),
        dict(kick="x.........-.....", snare="..-...-...-..-..", hat="x...x.x.x...x.x.", bass="x...x...x...x...",
             chord="..o...x...o....x", lead="x.ox.x.ox.o.x.xo"),
        ((1, 4, 0, 5), (1, 4, 0, 0), (0, 5, 1, 4)),
    ),
    (
        "classical",
        dict(tempo_lo=58, tempo_hi=96, swing=0.0, drum_level=0.0, kick_pitch=50, kick_decay=0.2,
             snare_tone=0.5, snare_decay=0.2, hat_decay=0.05, hat_level=0.0, bass_level=0.5, bass_bright=0.3,
             bass_gate=1.0, bass_walk=0.3, chord_level=0.55, chord_bright=0.25, chord_attack=0.18,
             chord_decay=2.0, chord_sustain=0.8, chord_gate=1.0, sevenths=0.1, power=0.0, lead_level=0.65,
             lead_bright=0.35, lead_odd=0.2, lead_attack=0.06, lead_decay=1.0, lead_sustain=0.7, lead_gate=1.0,
             lead_octave=0.3, lead_leap=0.3, pentatonic=0.0, drive=0.0, reverb=0.75, reverb_time=0.8,
             noise=0.03, major=0.6, loudness=-19.0, duration=420),
        dict(kick="................", snare="................", hat="................", bass="x.......x.......",
             chord="x...............", lead="x...x...x.x.x..."),
        ((0, 3, 4, 0), (0, 5, 1, 4), (0, 4, 5, 2)),
    ),
    (
        "folk",
        dict(tempo_lo=85, tempo_hi=115, swing=0.2, drum_level=0.3, kick_pitch=65, kick_decay=0.12,
             snare_tone=0.6, snare_decay=0.1, hat_decay=0.03, hat_level=0.15, bass_level=0.45, bass_bright=0.35,
             bass_gate=0.7, bass_walk=0.4, chord_level=0.7, chord_bright=0.6, chord_attack=0.002,
             chord_decay=0.3, chord_sustain=0.15, chord_gate=1.0, sevenths=0.05, power=0.0, lead_level=0.55,
             lead_bright=0.45, lead_odd=0.15, lead_attack=0.008, lead_decay=0.5, lead_sustain=0.4, lead_gate=0.9,
             lead_octave=0.0, lead_leap=0.25, pentatonic=0.5, drive=0.0, reverb=0.3, reverb_time=0.35,
             noise=0.15, major=0.8, loudness=-12.0, duration=230),
        dict(kick="x.......x.......", snare="....o.......o...", hat="................", bass="x...x...x...x...",
             chord="x.x.x.x.x.x.x.x.", lead="x...x..x.x..x..."),
        ((0, 3, 0, 4), (0, 4, 3, 0), (0, 5, 3, 4)),
    ),
    (
        "metal",
        dict(tempo_lo=140, tempo_hi=188, swing=0.0, drum_level=0.85, kick_pitch=58, kick_decay=0.1,
             snare_tone=0.4, snare_decay=0.16, hat_decay=0.15, hat_level=0.7, bass_level=0.7, bass_bright=0.75,
             bass_gate=0.9, bass_walk=0.05, chord_level=0.8, chord_bright=0.95, chord_attack=0.003,
             chord_decay=0.3, chord_sustain=0.8, chord_gate=0.9, sevenths=0.0, power=1.0, lead_level=0.35,
             lead_bright=0.95, lead_odd=0.5, lead_attack=0.005, lead_decay=0.3, lead_sustain=0.7, lead_gate=0.9,
             lead_octave=0.5, lead_leap=0.6, pentatonic=0.4, drive=1.0, reverb=0.2, reverb_time=0.25,
             noise=0.1, major=0.1, loudness=-4.0, duration=300),
        dict(kick="xxxxxxxxxxxxxxxx", snare="....x.......x...", hat="x.x.x.x.x.x.x.x.", bass="xxxxxxxxxxxxxxxx",
             chord="x.x.x.x.x.x.x.x.", lead="x...o...x...o..."),
        ((0, 5, 6, 0), (0, 1, 0, 6), (0, 0, 5, 4)),
    ),
    (
        "pop",
        dict(tempo_lo=95, tempo_hi=125, swing=0.08, drum_level=0.7, kick_pitch=52, kick_decay=0.25,
             snare_tone=0.35, snare_decay=0.18, hat_decay=0.04, hat_level=0.45, bass_level=0.6, bass_bright=0.45,
             bass_gate=0.7, bass_walk=0.3, chord_level=0.55, chord_bright=0.55, chord_attack=0.02,
             chord_decay=0.7, chord_sustain=0.5, chord_gate=0.9, sevenths=0.15, power=0.0, lead_level=0.7,
             lead_bright=0.55, lead_odd=0.4, lead_attack=0.01, lead_decay=0.35, lead_sustain=0.5, lead_gate=0.8,
             lead_octave=0.2, lead_leap=0.35, pentatonic=0.3, drive=0.12, reverb=0.3, reverb_time=0.35,
             noise=0.02, major=0.85, loudness=-6.5, duration=205),
        dict(kick="x.......x.x.....", snare="....x.......x...", hat="x.x.x.x.x.x.x.x.", bass="x..x..x.x..x..x.",
             chord="x...x...x...x...", lead="x.x.x...x.x.x..."),
        ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4)),
    ),
]


@cache
def genre_profile(g: int) -> GenreProfile:
    """Profile of genre ``g``: hand-made for the first eight, procedural (fixed seed) beyond."""
    if not 0 <= g < MAX_GENRES:
        raise ValueError(f"genre index {g} outside 0..{MAX_GENRES - 1}")
    if g < N_HANDMADE:
        name, scalars, patterns, progs = _HANDMADE[g]
        return GenreProfile(g, name, _style(scalars, patterns), progs)
    rng = np.random.default_rng([20240917, g])
    a, b = rng.choice(N_HANDMADE, size=2, replace=False)
    pa, pb = genre_profile(int(a)), genre_profile(int(b))
    w = rng.uniform(0.3, 0.7)
    style = (1 - w) * pa.style + w * pb.style + rng.normal(0.0, 0.18, STYLE_DIM)
    # a procedural genre gets its own groove: re-draw a few pattern steps
    for name in PATTERNS:
        o = PATTERN_OFFSET[name]
        flip = rng.random(STEPS) < 0.2
        style[o : o + STEPS][flip] = rng.choice([0.03, 0.55, 0.95], size=int(flip.sum()))
    style[SCALAR_INDEX["tempo_hi"]] = max(style[SCALAR_INDEX["tempo_hi"]], style[SCALAR_INDEX["tempo_lo"]] + 0.05)
    progs = (pa.progressions[0], pb.progressions[-1], tuple(int(x) for x in rng.integers(0, 7, 4)))
    return GenreProfile(g, GENRE_NAMES[g], np.clip(style, 0.0, 1.0), progs)


@cache
def mean_style(n_genres: int) -> np.ndarray:
    """The average style of the first ``n_genres`` genres (cached: treat as read-only)."""
    return np.mean([genre_profile(g).style for g in range(n_genres)], axis=0)


# ----------------------------------------------------------------------------------------------------------
# A concrete song


@dataclass
class Voice:
    """A pitched part on the step grid: per note its onset step, length in steps, MIDI pitch and velocity."""

    onset: np.ndarray
    length: np.ndarray
    pitch: np.ndarray  # MIDI note (float; chords: the root)
    velocity: np.ndarray
    quality: np.ndarray | None = None  # chords only: index into CHORD_RATIOS


@dataclass
class Song:
    """Everything ``render`` needs, all decided: the realised style of one track."""

    style: np.ndarray
    tempo: float  # BPM really synthesised (a whole number of samples per 16th step)
    step_samples: int
    key: int
    mode: int  # 1 major, 0 minor
    n_steps: int
    drums: dict[str, np.ndarray]  # kick/snare/hat: (2, 16) velocities for a normal bar and a fill bar
    bass: Voice
    chords: Voice
    lead: Voice
    noise_offset: int
    extras: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._values = style_values(self.style)

    def value(self, name: str) -> float:
        return float(self._values[SCALAR_INDEX[name]])


MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Just-intonation chord shapes: frequency ratios over a common base (root = first ratio).
CHORD_RATIOS: tuple[tuple[int, ...], ...] = (
    (4, 5, 6),  # 0 major
    (10, 12, 15),  # 1 minor
    (5, 6, 7),  # 2 diminished (septimal)
    (2, 3, 4),  # 3 power chord
    (4, 5, 6, 7),  # 4 dominant seventh
    (8, 10, 12, 15),  # 5 major seventh
    (10, 12, 15, 18),  # 6 minor seventh
)


def _chord_quality(scale: np.ndarray, degree: int, seventh: bool, power: bool) -> int:
    if power:
        return 3
    third = (scale[(degree + 2) % 7] - scale[degree]) % 12
    fifth = (scale[(degree + 4) % 7] - scale[degree]) % 12
    if fifth == 6:
        return 2
    if third == 4:
        if seventh:
            return 5 if (scale[(degree + 6) % 7] - scale[degree]) % 12 == 11 else 4
        return 0
    return 6 if seventh else 1


def _onsets_to_notes(hits: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per bar (rows of 16 booleans) -> global onset steps and lengths (held to the next onset in the same bar,
    times ``gate``, at least one step)."""
    steps = hits.shape[1]
    on = np.flatnonzero(hits)
    bar_end = (on // steps + 1) * steps
    nxt = np.minimum(np.append(on[1:], np.iinfo(np.int64).max), bar_end)
    length = np.maximum(1, np.round((nxt - on) * gate)).astype(np.int64)
    return on.astype(np.int64), length


def realise(style: np.ndarray, progressions: tuple[Progression, ...], seconds: float, sr: int,
            rng: np.random.Generator) -> Song:
    """Decide tempo, key, mode, drum/bass/chord/lead parts of one track from a style vector."""
    values = style_values(style)
    v = lambda name: float(values[SCALAR_INDEX[name]])  # noqa: E731 - local shorthand
    lo, hi = sorted((v("tempo_lo"), v("tempo_hi")))
    bpm = rng.uniform(lo, hi)
    step_samples = 2 * max(4, int(round(sr * 60.0 / bpm / 8)))  # even: bass and chords render at half rate
    tempo = sr * 60.0 / (4 * step_samples)
    n_steps = -(-int(round(seconds * sr)) // step_samples)
    bars = -(-n_steps // STEPS)
    key = int(rng.integers(0, 12))
    mode = int(rng.random() < v("major"))
    scale = MAJOR if mode else MINOR
    if rng.random() < v("pentatonic"):
        lead_scale = scale[[0, 1, 2, 4, 5]] if mode else scale[[0, 2, 3, 4, 6]]
    else:
        lead_scale = scale

    def hits(name: str, n_bars: int) -> np.ndarray:
        return rng.random((n_bars, STEPS)) < style_pattern(style, name)

    # drums: one normal bar and one fill bar, velocities jittered
    drums = {}
    for name in ("kick", "snare", "hat"):
        bar = hits(name, 1)[0]
        fill = bar.copy()
        if name == "snare":
            fill[12:] |= rng.random(4) < 0.5
        vel = rng.uniform(0.75, 1.0, (2, STEPS)).astype(np.float32)
        vel[1, bar] = vel[0, bar]  # the fill bar is the normal bar plus extra hits
        drums[name] = vel * np.stack([bar, fill]).astype(np.float32)

    prog = progressions[int(rng.integers(0, len(progressions)))]
    degrees = np.array([prog[b % len(prog)] for b in range(bars)])
    seventh = rng.random() < v("sevenths")
    power = rng.random() < v("power")
    root_pc = key + scale[degrees]  # pitch class of each bar's chord root (may exceed 11)
    qualities = np.array([_chord_quality(scale, int(d), seventh, power) for d in degrees])

    # bass: one rhythm per track, the bar's root, sometimes walking to other chord/scale tones
    bass_rhythm = hits("bass", 1)
    bass_rhythm[0, 0] = True
    b_on, b_len = _onsets_to_notes(np.repeat(bass_rhythm, bars, axis=0), v("bass_gate"))
    bar_of = b_on // STEPS
    walk = rng.random(len(b_on)) < v("bass_walk")
    offsets = np.where(walk, scale[rng.integers(0, 7, len(b_on))], 0)
    offsets[b_on % STEPS == 0] = 0
    bass_pitch = 36 + (root_pc[bar_of] % 12) + offsets
    bass = Voice(b_on, b_len, bass_pitch.astype(float), rng.uniform(0.8, 1.0, len(b_on)))

    # chords: one rhythm per track; a bar always starts with its chord
    c_rhythm = hits("chord", 1)
    c_rhythm[0, 0] = True
    c_on, c_len = _onsets_to_notes(np.repeat(c_rhythm, bars, axis=0), v("chord_gate"))
    c_bar = c_on // STEPS
    chords = Voice(c_on, c_len, (48 + root_pc[c_bar] % 12).astype(float), rng.uniform(0.8, 1.0, len(c_on)),
                   qualities[c_bar])

    # lead: a fresh rhythm per bar (two bars alternating), a random walk on the scale
    l_rhythm = hits("lead", 2)
    l_on, l_len = _onsets_to_notes(l_rhythm[np.arange(bars) % 2], v("lead_gate"))
    leap = v("lead_leap")
    steps = rng.choice([-1, 1], len(l_on)) * (1 + (rng.random(len(l_on)) < leap) * rng.integers(1, 4, len(l_on)))
    pos = np.clip(np.cumsum(steps), -len(lead_scale), 2 * len(lead_scale) - 1)
    octave, idx = np.divmod(pos, len(lead_scale))
    base = 60 + 12 * int(round(v("lead_octave")))
    lead_pitch = base + key + 12 * octave + lead_scale[idx]
    lead = Voice(l_on, l_len, lead_pitch.astype(float), rng.uniform(0.6, 1.0, len(l_on)))

    noise_offset = int(rng.integers(0, _NOISE_LEN))
    return Song(style, tempo, step_samples, key, mode, n_steps, drums, bass, chords, lead, noise_offset,
                extras={"seventh": float(seventh), "power": float(power)})


# ----------------------------------------------------------------------------------------------------------
# Rendering

TABLE_BITS = 13
TABLE_SIZE = 1 << TABLE_BITS
_SHIFT = np.uint32(32 - TABLE_BITS)
_NOISE_LEN = 1 << 20


@lru_cache(maxsize=1)
def _noise() -> tuple[np.ndarray, np.ndarray]:
    """Shared white and high-passed noise (fixed seed), read at a per-track offset."""
    white = np.random.default_rng(7).standard_normal(2 * _NOISE_LEN).astype(np.float32)
    high = np.empty_like(white)
    high[1:] = np.diff(white) * np.float32(0.7)
    high[0] = 0.0
    return white, high


def _noise_slice(which: int, start: int, n: int) -> np.ndarray:
    buf = _noise()[which]
    start %= _NOISE_LEN
    if start + n <= len(buf):
        return buf[start : start + n]
    return np.resize(buf[start:], n)


def _harmonics(bright: float, odd: float, n: int) -> np.ndarray:
    """Harmonic amplitudes 1..n: brightness sets the roll-off, ``odd`` damps even harmonics (square-like)."""
    h = np.arange(1, n + 1)
    amp = h ** -(3.2 - 2.6 * bright)
    amp[1::2] *= 1.0 - 0.9 * odd
    return amp


def _wavetable(partials: dict[int, float]) -> np.ndarray:
    spec = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    for k, a in partials.items():
        if 0 < k < TABLE_SIZE // 2:
            spec[k] += -1j * a
    wave = np.fft.irfft(spec, n=TABLE_SIZE)
    rms = np.sqrt(np.mean(wave**2))
    return (wave / max(rms, 1e-9) * 0.5).astype(np.float32)


_TIMBRE_LEVELS = 32  # timbre parameters are quantised so wavetables can be cached


def _q(x: float) -> float:
    return round(float(x) * _TIMBRE_LEVELS) / _TIMBRE_LEVELS


def _tone_table(bright: float, odd: float, n: int) -> np.ndarray:
    return _tone_table_q(_q(bright), _q(odd), n)


@lru_cache(maxsize=4096)
def _tone_table_q(bright: float, odd: float, n: int) -> np.ndarray:
    return _wavetable({int(h): float(a) for h, a in zip(range(1, n + 1), _harmonics(bright, odd, n), strict=True)})


def _chord_table(quality: int, bright: float, n: int) -> np.ndarray:
    return _chord_table_q(int(quality), _q(bright), n)


@lru_cache(maxsize=1024)
def _chord_table_q(quality: int, bright: float, n: int) -> np.ndarray:
    partials: dict[int, float] = {}
    for r in CHORD_RATIOS[quality]:
        for h, a in zip(range(1, n + 1), _harmonics(bright, 0.0, n), strict=True):
            partials[r * h] = partials.get(r * h, 0.0) + float(a)
    return _wavetable(partials)


def _midi_inc(midi: np.ndarray, sr: int, divisor: float | np.ndarray = 1.0) -> np.ndarray:
    """Per-sample phase increment of a 32-bit accumulator (one cycle = 2**32) for MIDI pitches."""
    freq = 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0) / divisor
    return np.round(freq / sr * 2.0**32).astype(np.uint64).astype(np.uint32)


@lru_cache(maxsize=256)
def _release_ramp(s: int, r: int) -> np.ndarray:
    ramp = np.ones(s, dtype=np.float32)
    ramp[s - r :] = np.linspace(1.0, 0.0, r, dtype=np.float32)
    return ramp


@dataclass(frozen=True)
class Envelope:
    """Attack (linear), then exponential decay towards a sustain level; a short release at each note's end."""

    attack: float
    decay: float
    sustain: float


def _render_voice(out: np.ndarray, voice: Voice, tables: list[np.ndarray], table_of_note: np.ndarray,
                  inc_of_note: np.ndarray, env: Envelope, sr: int, level: float) -> None:
    """Add a voice into ``out`` (steps x samples-per-step).

    The envelope is separable, exp(-(row*S + col)/tau) = exp(-row*S/tau) * exp(-col/tau), so it costs one
    outer product instead of a per-sample lookup; the attack and the release ramp touch only their own rows.
    """
    n_steps, s = out.shape
    if len(voice.onset) == 0 or level <= 0:
        return
    lengths = np.minimum(voice.length, n_steps - voice.onset)
    keep = lengths > 0
    if not keep.any():
        return
    onset, lengths = voice.onset[keep], lengths[keep]
    note = np.repeat(np.flatnonzero(keep), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.repeat(onset, lengths) + (np.arange(len(note)) - starts)
    since = rows - voice.onset[note]
    last = since == voice.length[note] - 1
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    dense = len(rows) >= 0.7 * (hi - lo)
    if dense:  # work on the whole span [lo, hi) (silent rows get zero gain): plain slices, no gathers
        span = hi - lo
        pos = rows - lo
        since_r = np.zeros(span, np.int64)
        since_r[pos] = since
        inc_r = np.zeros(span, np.uint32)
        inc_r[pos] = inc_of_note[note]
        gain_r = np.zeros(span, np.float32)
        gain_r[pos] = voice.velocity[note] * level
        tab_r = np.zeros(span, np.int64)
        tab_r[pos] = table_of_note[note]
        last_r = np.zeros(span, bool)
        last_r[pos] = last
    else:
        since_r, inc_r = since, inc_of_note[note]
        gain_r = (voice.velocity[note] * level).astype(np.float32)
        tab_r, last_r = table_of_note[note], last

    col = np.arange(s, dtype=np.uint32)
    ts = since_r.astype(np.uint32)[:, None] * np.uint32(s) + col
    np.multiply(ts, inc_r[:, None], out=ts)
    np.right_shift(ts, _SHIFT, out=ts)
    if len(tables) == 1:
        w = tables[0].take(ts)
    else:
        ts += (tab_r.astype(np.uint32) << np.uint32(TABLE_BITS))[:, None]
        w = np.concatenate(tables).take(ts)

    tau = max(env.decay, 1e-3) * sr
    row_decay = np.exp(-since_r * (s / tau)).astype(np.float32)
    col_decay = np.exp(-np.arange(s, dtype=np.float32) / np.float32(tau))
    e = ts.view(np.float32)  # the phase buffer is spent: reuse its memory for the envelope (no new allocation)
    np.multiply.outer(gain_r * np.float32(1 - env.sustain) * row_decay, col_decay, out=e)
    e += (gain_r * np.float32(env.sustain))[:, None]
    attack = max(env.attack, 0.002) * sr
    att_rows = np.flatnonzero(since_r * s < attack)
    if len(att_rows):
        e[att_rows] *= np.minimum((since_r[att_rows, None] * s + col) / np.float32(attack), 1.0)
    ends = np.flatnonzero(last_r)
    if len(ends):
        e[ends] *= _release_ramp(s, min(int(0.012 * sr), s))
    w *= e
    if dense:
        out[lo:hi] += w
    else:
        out[rows] += w


def _kick(song: Song, sr: int) -> np.ndarray:
    decay = song.value("kick_decay")
    n = int(min(0.6, 5 * decay) * sr)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    f_end = song.value("kick_pitch")
    tau = 0.03
    phase = 2 * np.pi * (f_end * t + 3.0 * f_end * tau * (1 - np.exp(-t / tau)))
    return (np.sin(phase) * np.exp(-t / decay)).astype(np.float32)


def _snare(song: Song, sr: int) -> np.ndarray:
    decay = song.value("snare_decay")
    n = int(min(0.5, 5 * decay) * sr)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    tone = song.value("snare_tone")
    noise = _noise_slice(1, (song.noise_offset * 7) % _NOISE_LEN, n)
    body = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    return ((1 - tone) * 0.6 * noise * np.exp(-t / decay) + tone * body).astype(np.float32)


def _hat(song: Song, sr: int) -> np.ndarray:
    decay = song.value("hat_decay")
    n = int(min(0.4, 5 * decay) * sr)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    noise = _noise_slice(1, (song.noise_offset * 13) % _NOISE_LEN, n)
    return (0.5 * noise * np.exp(-t / decay)).astype(np.float32)


def _place_hits(buf: np.ndarray, hit: np.ndarray, vel: np.ndarray, s: int, swing: int) -> None:
    """Add ``hit`` at every step with non-zero velocity; tails wrap to the bar's start (the bar loops)."""
    bar_len = len(buf)
    for step in np.flatnonzero(vel):
        pos = step * s + (swing if step % 2 else 0)
        end = min(pos + len(hit), bar_len)
        buf[pos:end] += vel[step] * hit[: end - pos]
        if pos + len(hit) > bar_len:
            rest = pos + len(hit) - bar_len
            buf[:rest] += vel[step] * hit[len(hit) - rest :]


def _drum_block(song: Song, sr: int, level: float) -> np.ndarray:
    """Four bars of drums: a normal bar and a fill bar (each looping onto itself), played A A A B."""
    s = song.step_samples
    bar_len = STEPS * s
    swing = int(round(song.value("swing") * s * 0.5))
    bars = np.zeros((2, bar_len), dtype=np.float32)
    levels = {"kick": level, "snare": 0.8 * level, "hat": 0.9 * level * song.value("hat_level")}
    for name, hit in (("kick", _kick(song, sr)), ("snare", _snare(song, sr)), ("hat", _hat(song, sr))):
        hit = hit[:bar_len]
        vel = song.drums[name] * np.float32(levels[name])
        _place_hits(bars[0], hit, vel[0], s, swing)
        extra = vel[1] - vel[0]
        if extra.any():
            _place_hits(bars[1], hit, extra, s, swing)
    bars[1] += bars[0]
    return bars[[0, 0, 0, 1]].reshape(-1)


def _upsample2_add(out: np.ndarray, y: np.ndarray) -> None:
    """Add ``y`` (half rate) into ``out`` by linear interpolation (its images are at least -20 dB down)."""
    even, odd = out[0::2], out[1::2]
    even += y[: len(even)]
    m = len(odd)
    mid = np.empty(m, dtype=np.float32)
    k = min(m, len(y) - 1)
    np.add(y[:k], y[1 : k + 1], out=mid[:k])
    mid[k:] = 2 * y[-1]
    mid *= np.float32(0.5)
    odd += mid


def _band_limited_tables(bright: float, odd: float, pitch: np.ndarray, sr: float,
                         max_harmonics: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per note the richest tone table whose harmonics stay below Nyquist: (tables, table index per note)."""
    freq = 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)
    n_harm = np.clip(np.floor(0.45 * sr / np.maximum(freq, 1.0)), 1, max_harmonics).astype(np.int64)
    used, table_of = np.unique(n_harm, return_inverse=True)
    return [_tone_table(bright, odd, int(h)) for h in used], table_of.reshape(-1)


def _reverb(x: np.ndarray, amount: float, spacing: float, sr: float) -> None:
    """Smear: three echoes at irrational spacings, decaying (in place)."""
    n = len(x)
    dry = x.copy()
    for k, ratio in enumerate((1.0, 1.618, 2.414)):
        delay = int(spacing * ratio * sr)
        if 0 < delay < n:
            seg = x[delay:]
            seg += dry[: n - delay] * np.float32(amount * 0.6 * (0.7**k))


def render(song: Song, seconds: float, sr: int) -> np.ndarray:
    """Mono float32 audio in [-1, 1] of ``round(seconds * sr)`` samples.

    The pitched parts (bass, chords, a band-limited lead) are synthesised and smeared at half the sample rate
    and interpolated up; drums, distortion and the noise floor run at the full rate.
    """
    n = int(round(seconds * sr))
    s = song.step_samples
    v = song.value
    half = sr / 2

    low = np.zeros((song.n_steps, s // 2), dtype=np.float32)
    bass_table = _tone_table(v("bass_bright"), 0.3, 6)
    env = Envelope(0.005, 0.25 + 0.5 * v("bass_gate"), 0.5)
    _render_voice(low, song.bass, [bass_table], np.zeros(len(song.bass.onset), int),
                  _midi_inc(song.bass.pitch, half), env, half, 0.8 * v("bass_level"))
    # chords: one wavetable per chord quality used, fundamental = root / first ratio
    used = np.unique(song.chords.quality) if len(song.chords.onset) else np.zeros(0, int)
    tables = [_chord_table(int(q), v("chord_bright"), 5) for q in used]
    table_of = np.searchsorted(used, song.chords.quality)
    divisor = np.array([CHORD_RATIOS[int(q)][0] for q in song.chords.quality], dtype=float)
    inc = _midi_inc(song.chords.pitch, half, divisor)
    env = Envelope(v("chord_attack"), v("chord_decay"), v("chord_sustain"))
    _render_voice(low, song.chords, tables, table_of, inc, env, half, 0.6 * v("chord_level"))
    tables, table_of = _band_limited_tables(v("lead_bright"), v("lead_odd"), song.lead.pitch, half, 8)
    env = Envelope(v("lead_attack"), v("lead_decay"), v("lead_sustain"))
    _render_voice(low, song.lead, tables, table_of, _midi_inc(song.lead.pitch, half), env, half,
                  0.6 * v("lead_level"))
    y = low.reshape(-1)[: (n + 1) // 2 + 1]
    reverb = v("reverb")
    if reverb > 0.02:
        _reverb(y, reverb, 0.015 + 0.09 * v("reverb_time"), half)

    x = np.zeros(n, dtype=np.float32)
    _upsample2_add(x, y)
    drum_level = v("drum_level")
    if drum_level > 0.01:
        block = _drum_block(song, sr, 0.9 * drum_level)
        for start in range(0, n, len(block)):
            seg = x[start : start + len(block)]
            seg += block[: len(seg)]

    # drive: x / (1 + d|x|) on the mix scaled to RMS 0.25 (the make-up gain is left to the loudness step)
    rms = float(np.sqrt(np.dot(x, x) / n)) if n else 0.0
    drive = v("drive")
    if drive > 0.02:
        d = np.float32(12.0 * drive**1.5 * 0.25 / max(rms, 1e-6))
        t = np.abs(x)
        t *= d
        t += np.float32(1.0)
        x /= t
        rms = float(np.sqrt(np.dot(x, x) / n))
    noise = v("noise")
    if noise > 0.01:  # noise floor relative to the music's level
        x += _noise_slice(0, song.noise_offset, n) * np.float32(0.24 * noise * rms)
        rms = float(np.sqrt(np.dot(x, x) / n))

    # loudness: scale RMS to the target level (dBFS), then clip
    target = 10.0 ** (v("loudness") / 20.0)
    x *= np.float32(target / max(rms, 1e-6))
    np.clip(x, -1.0, 1.0, out=x)
    return x
