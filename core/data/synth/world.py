"""The synthetic album world: per-track styles, Spotify-style attributes, cover coupling, parallel writing.

Every random choice of track ``i`` comes from ``np.random.default_rng([seed, i, stream])`` (artists from their
own streams), so the bytes written do not depend on how the tracks are split over worker processes.

Per track: a genre (an artist sticks to one), a style = the genre's style + artist and track jitter, blended by
``genre_overlap`` towards a random other genre and the global mean; the song realised from it, its audio, the
attributes derived from the realised parameters, and a cover. With probability ``coupling`` the cover is drawn
from the track's own genre and attributes; otherwise from a genre drawn uniformly and independently of the track
(so C=0 means no relationship at all) with fresh attributes sampled for that genre. The cover's arguments are
stored (``cover_genre``, ``cover_seed``, ``cover_<attr>``) so that it can
be re-rendered at any resolution.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.config.schema import SplitConfig, SynthConfig
from core.data.prepared import DatasetWriter
from core.data.synth import music
from core.data.synth.covers import COVER_ATTRS, render_cover
from core.data.synth.music import GENRE_NAMES, Song, genre_profile, mean_style, realise, render
from core.paths import DatasetPaths
from core.progress import progress_bar
from core.workers import die_with_parent

__all__ = ["GENRE_NAMES", "synthesize_world", "track_style", "song_attributes", "world_plan"]

# RNG streams of one track
S_STYLE, S_COVER, S_NAMES, S_FRESH = 0, 1, 2, 3
ARTIST_STREAM = 1000  # artists use [seed, artist, ARTIST_STREAM]

TRACK_JITTER = 0.07  # per-track spread of the normalised style around its genre
ARTIST_JITTER = 0.05  # per-artist spread (an artist's tracks resemble each other)
CHUNK = 32  # tracks per work unit


# ----------------------------------------------------------------------------------------------------------
# Styles and attributes


def track_style(genre: int, n_genres: int, overlap: float, rng: np.random.Generator,
                artist_offset: np.ndarray | None = None) -> tuple[np.ndarray, tuple[music.Progression, ...]]:
    """A track's style vector and chord progressions: its genre's, jittered and blended by ``overlap``."""
    own = genre_profile(genre)
    others = [g for g in range(n_genres) if g != genre]
    other = genre_profile(int(rng.choice(others))) if others else own
    w_other = overlap * rng.uniform(0.0, 1.0)
    w_mean = 0.5 * overlap
    style = (1.0 - w_other - w_mean) * own.style + w_other * other.style + w_mean * mean_style(n_genres)
    style = style + rng.normal(0.0, TRACK_JITTER, music.STYLE_DIM)
    if artist_offset is not None:
        style = style + artist_offset
    progs = other.progressions if rng.random() < w_other else own.progressions
    return np.clip(style, 0.0, 1.0), progs


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def song_attributes(song: Song, rng: np.random.Generator) -> dict[str, float]:
    """Spotify-style attributes derived from the realised parameters (``loudness`` is measured separately)."""
    v = song.value
    hits = {k: float((d[0] > 0).mean()) for k, d in song.drums.items()}  # share of the 16 steps that hit
    drums = v("drum_level")
    density = drums * (0.45 * hits["kick"] + 0.25 * hits["snare"] + 0.3 * hits["hat"] * v("hat_level"))
    tempo_n = (song.tempo - 60.0) / 130.0
    loud_n = (v("loudness") + 22.0) / 19.0
    four_floor = float((song.drums["kick"][0, ::4] > 0).mean())
    lead_density = len(song.lead.onset) / max(1, song.n_steps)
    energy = 0.45 * loud_n + 0.3 * density / 0.6 + 0.15 * v("drive") + 0.1 * tempo_n
    dance = (0.3 * drums * four_floor + 0.25 * (1 - abs(song.tempo - 118.0) / 60.0) + 0.2 * drums
             + 0.15 * v("bass_level") + 0.1 * (1 - v("reverb")))
    valence = 0.4 * song.mode + 0.2 * (v("chord_bright") + v("lead_bright")) / 2 + 0.25 * tempo_n + 0.15 * (
        1 - v("reverb"))
    acoustic = 1.0 - (0.45 * v("drive") + 0.25 * v("lead_odd") * v("lead_bright") + 0.15 * drums * v("hat_level")
                      + 0.15 * v("bass_bright"))
    speech = 0.025 + 0.3 * (1 - (v("lead_gate") - 0.2) / 0.8) * lead_density * v("lead_level") + 0.08 * v("swing")
    instrumental = 0.97 - 0.55 * v("lead_level") * (v("lead_gate") - 0.2) / 0.8 * v("lead_sustain")
    live = 0.06 + 0.45 * v("reverb") * (0.4 + 0.6 * v("reverb_time")) + 0.35 * v("noise")
    jitter = rng.normal(0.0, 0.03, 6)
    return {
        "danceability": _unit(dance + jitter[0]),
        "energy": _unit(energy + jitter[1]),
        "speechiness": _unit(speech + 0.3 * abs(jitter[2])),
        "acousticness": _unit(acoustic + jitter[3]),
        "instrumentalness": _unit(instrumental + jitter[4]),
        "liveness": _unit(live + jitter[5]),
        "valence": _unit(valence + rng.normal(0.0, 0.04)),
        "tempo": float(song.tempo),
        "key": int(song.key),
        "mode": int(song.mode),
        "duration_ms": int(round(v("duration") * 1000 * float(np.exp(rng.normal(0.0, 0.18))))),
    }


def loudness_db(audio: np.ndarray) -> float:
    """RMS level of float audio in dBFS (Spotify's loudness column is a dB level of this kind)."""
    x = np.asarray(audio, dtype=np.float32)
    rms = float(np.sqrt(np.dot(x, x) / len(x))) if len(x) else 0.0
    return 20.0 * np.log10(max(rms, 1e-5))


# ----------------------------------------------------------------------------------------------------------
# Names and ids

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gl", "k", "l", "m", "n", "p", "r", "s", "sh", "st", "t", "v", "z", "")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ee")
_CODAS = ("", "", "n", "r", "s", "l", "x", "th", "m")
_B62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


def made_up_name(rng: np.random.Generator, max_words: int = 3) -> str:
    """One to ``max_words`` made-up words of one to three syllables (one batch of draws: it runs per track)."""
    r = iter(rng.integers(0, 1 << 30, 1 + max_words * 8).tolist())
    words = []
    for _ in range(1 + next(r) % max_words):
        syllables = "".join(_ONSETS[next(r) % len(_ONSETS)] + _VOWELS[next(r) % len(_VOWELS)]
                            for _ in range(1 + next(r) % 3))
        words.append((syllables + _CODAS[next(r) % len(_CODAS)]).capitalize())
    return " ".join(words)


def spotify_id(rng: np.random.Generator) -> str:
    """A 22-character base-62 id, the shape of Spotify's."""
    return "".join(_B62[rng.integers(0, 62, 22)])


# ----------------------------------------------------------------------------------------------------------
# The plan: genres and artists for every track (cheap, decided up front in the main process)


@dataclass(frozen=True)
class WorldPlan:
    genre: np.ndarray  # (n,) genre index per track
    artist: np.ndarray  # (n,) artist index per track
    artist_genre: np.ndarray  # (n_artists,)


def world_plan(cfg: SynthConfig) -> WorldPlan:
    """Artists with ~tracks_per_artist tracks each, each artist in one genre, genres balanced, order shuffled."""
    n = cfg.tracks
    rng = np.random.default_rng([cfg.seed, 0, 999])
    draws = 1 + rng.poisson(cfg.tracks_per_artist - 1.0, size=n)  # n artists always suffice
    total = np.cumsum(draws)
    k = int(np.searchsorted(total, n)) + 1  # first k artists cover n tracks
    sizes_arr = draws[:k].copy()
    sizes_arr[-1] -= int(total[k - 1]) - n
    counts = np.zeros(cfg.genres)
    artist_genre = np.empty(len(sizes_arr), dtype=np.int64)
    for a in np.argsort(-sizes_arr, kind="stable"):  # biggest artists first, each to the emptiest genre
        low = np.flatnonzero(counts == counts.min())
        g = int(low[rng.integers(len(low))])
        artist_genre[a] = g
        counts[g] += sizes_arr[a]
    artist = np.repeat(np.arange(len(sizes_arr)), sizes_arr)
    order = rng.permutation(n)
    artist = artist[order]
    return WorldPlan(artist_genre[artist], artist, artist_genre)


# ----------------------------------------------------------------------------------------------------------
# One track


def _artist(seed: int, a: int) -> tuple[np.ndarray, str, str]:
    rng = np.random.default_rng([seed, a, ARTIST_STREAM])
    offset = rng.normal(0.0, ARTIST_JITTER, music.STYLE_DIM)
    return offset, spotify_id(rng), made_up_name(rng, 2)


def synth_track(i: int, genre: int, artist: int, cfg: SynthConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Audio (float32) and the table row of track ``i``; the cover arguments are in the row."""
    offset, artist_id, artist_name = _artist(cfg.seed, artist)
    rng = np.random.default_rng([cfg.seed, i, S_STYLE])
    style, progs = track_style(genre, cfg.genres, cfg.genre_overlap, rng, offset)
    song = realise(style, progs, cfg.seconds, cfg.sample_rate, rng)
    audio = render(song, cfg.seconds, cfg.sample_rate)
    attrs = song_attributes(song, rng)
    attrs["loudness"] = round(loudness_db(audio), 3)

    names = np.random.default_rng([cfg.seed, i, S_NAMES])
    row: dict[str, Any] = {
        "track_id": spotify_id(names),
        "album_id": spotify_id(names),
        "artist_id": artist_id,
        "artist": artist_name,
        "album": made_up_name(names),
        "track": made_up_name(names),
        "genre": GENRE_NAMES[genre],
        **attrs,
    }

    crng = np.random.default_rng([cfg.seed, i, S_COVER])
    coupled = bool(crng.random() < cfg.coupling) or cfg.genres < 2
    if coupled:
        cover_genre, cover_attrs = genre, attrs
    else:
        # Uniform over ALL genres, own included: drawing only "other" genres would leave a negative relationship
        # (the cover rules out its track's genre), so C=0 would not be the seed study's "no relationship".
        cover_genre = int(crng.integers(cfg.genres))
        fresh = np.random.default_rng([cfg.seed, i, S_FRESH])
        f_style, f_progs = track_style(cover_genre, cfg.genres, cfg.genre_overlap, fresh)
        cover_attrs = song_attributes(realise(f_style, f_progs, cfg.seconds, cfg.sample_rate, fresh), fresh)
    row["coupled"] = coupled
    row["cover_genre"] = int(cover_genre)
    row["cover_seed"] = int(crng.integers(0, 2**31 - 1))
    for a in COVER_ATTRS:
        row[f"cover_{a}"] = float(cover_attrs[a])
    row["genre_idx_synth"] = genre
    row["audio_len"] = len(audio)
    return audio, row


def cover_args(row: dict[str, Any] | pd.Series) -> dict[str, Any]:
    """The attribute mapping render_cover takes, from a stored row."""
    return {a: float(row[f"cover_{a}"]) for a in COVER_ATTRS}


def render_track_cover(row: dict[str, Any] | pd.Series, n_genres: int, res: int, palette_overlap: float) -> np.ndarray:
    """The track's cover at ``res`` px from its stored arguments (title = album name)."""
    return render_cover(int(row["cover_genre"]), n_genres, cover_args(row), int(row["cover_seed"]), int(res),
                        palette_overlap=palette_overlap, title=str(row["album"]))


# ----------------------------------------------------------------------------------------------------------
# Parallel writing


def _pcm16(x: np.ndarray) -> np.ndarray:
    """Clipped float audio to int16 in place (same values as ``prepared.to_int16``, fewer passes)."""
    np.multiply(x, np.float32(32767.0), out=x)
    np.rint(x, out=x)
    return x.astype(np.int16)


def _chunk_job(args: tuple) -> tuple[int, list[dict[str, Any]]]:
    start, genres, artists, cfg_dict, cover_files, audio_file = args
    cfg = SynthConfig(**cfg_dict)
    audio_mm = np.load(audio_file, mmap_mode="r+")
    cover_mm = {int(r): np.load(p, mmap_mode="r+") for r, p in cover_files.items()}
    rows = []
    for k, (g, a) in enumerate(zip(genres, artists, strict=True)):
        i = start + k
        audio, row = synth_track(i, int(g), int(a), cfg)
        wave = _pcm16(audio)
        audio_mm[i, : len(wave)] = wave
        audio_mm[i, len(wave) :] = 0
        for r, mm in cover_mm.items():
            mm[i] = render_track_cover(row, cfg.genres, r, cfg.palette_overlap)
        rows.append(row)
    audio_mm.flush()
    for mm in cover_mm.values():
        mm.flush()
    del audio_mm, cover_mm
    return start, rows


def _jobs(plan: WorldPlan, cfg: SynthConfig, writer: DatasetWriter) -> Iterator[tuple]:
    cfg_dict = cfg.model_dump()
    covers = {r: str(writer.cover_file(r)) for r in writer.resolutions}
    for start in range(0, cfg.tracks, CHUNK):
        stop = min(start + CHUNK, cfg.tracks)
        yield (start, plan.genre[start:stop], plan.artist[start:stop], cfg_dict, covers, str(writer.audio_file))


def synthesize_world(dest: DatasetPaths, cfg: SynthConfig, split: SplitConfig, *, workers: int | None = None,
                     force: bool = False) -> DatasetPaths:
    """Synthesise the world described by ``cfg`` into the prepared dataset ``dest``."""
    if cfg.genres > len(GENRE_NAMES):
        raise ValueError(f"at most {len(GENRE_NAMES)} genres")
    workers = max(1, int(workers or os.cpu_count() or 1))
    plan = world_plan(cfg)
    samples = int(round(cfg.seconds * cfg.sample_rate))
    writer = DatasetWriter(dest, cfg.tracks, cfg.res, samples, cfg.sample_rate, force=force)
    rows: dict[int, list[dict[str, Any]]] = {}
    try:
        jobs = list(_jobs(plan, cfg, writer))
        with progress_bar("synthesising tracks", cfg.tracks) as bar:
            if workers == 1 or len(jobs) == 1:
                for job in jobs:
                    start, chunk = _chunk_job(job)
                    rows[start] = chunk
                    bar.advance(len(chunk))
            else:
                ctx = mp.get_context(_start_method())
                with ctx.Pool(min(workers, len(jobs)), die_with_parent, (os.getpid(),)) as pool:
                    for start, chunk in pool.imap_unordered(_chunk_job, jobs):
                        rows[start] = chunk
                        bar.advance(len(chunk))
    except BaseException:
        writer.abort()
        raise
    table = pd.DataFrame([r for start in sorted(rows) for r in rows[start]])
    table = table.drop(columns=["genre_idx_synth"])
    source = {"generator": "coverbench.synth", "seed": cfg.seed, "coupling": cfg.coupling,
              "genre_overlap": cfg.genre_overlap, "palette_overlap": cfg.palette_overlap}
    return writer.finish(table, kind="synthetic", source=source, split=split,
                         genres=list(GENRE_NAMES[: cfg.genres]), extra={"synth": cfg.model_dump()})


def _start_method() -> str:
    """fork where available (fast start, no re-import); the work is pure numpy, nothing thread-bound."""
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"
