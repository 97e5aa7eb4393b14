"""Write a synthetic world in the real Spotify dump's layout, so the importer can be exercised on it.

::

    DIR/tracks.csv               track_id, album_id, artist_id, artist_name, album_name, track_name, genre,
                                 and the Spotify attribute columns
    DIR/covers/<album_id>.jpg    res x res RGB JPEG (quality 95), re-rendered from the stored cover arguments
    DIR/previews/<track_id>.mp3  the stored audio, mono MP3
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.progress import progress_bar
from core.workers import die_with_parent

CSV_COLUMNS = (
    "track_id", "album_id", "artist_id", "artist_name", "album_name", "track_name", "genre",
    "danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness", "liveness",
    "valence", "tempo", "key", "mode", "duration_ms",
)
JPEG_QUALITY = 95
CHUNK = 16


def export_table(tracks: pd.DataFrame) -> pd.DataFrame:
    """The CSV the real dump ships: prepared column names mapped back to the dump's."""
    out = tracks.rename(columns={"artist": "artist_name", "album": "album_name", "track": "track_name"})
    return out.loc[:, list(CSV_COLUMNS)]


def _export_chunk(args: tuple) -> int:
    import soundfile as sf
    from PIL import Image

    from core.data.synth.world import render_track_cover

    root, rows, out_dir, res, n_genres, palette_overlap = args
    ds = PreparedDataset.open(root)
    out = Path(out_dir)
    for r in rows:
        row = ds.tracks.iloc[r]
        img = render_track_cover(row, n_genres, res, palette_overlap)
        Image.fromarray(np.ascontiguousarray(img), "RGB").save(
            out / "covers" / f"{row['album_id']}.jpg", quality=JPEG_QUALITY
        )
        sf.write(out / "previews" / f"{row['track_id']}.mp3", ds.waveform(r), ds.sample_rate, format="MP3")
    return len(rows)


def export_world(ds: PreparedDataset, out_dir: Path, *, res: int = 640, workers: int | None = None,
                 force: bool = False) -> Path:
    """Export synthetic dataset ``ds`` to ``out_dir`` (refuses a non-empty folder unless ``force``)."""
    out_dir = Path(out_dir)
    if not ds.is_synthetic or "cover_seed" not in ds.tracks.columns:
        raise UserError(f"dataset {ds.name!r} is not a synthetic world: only those can be exported")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"export target {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise UserError(f"export folder {out_dir} is not empty (pass --force to overwrite it)")
        for sub in ("covers", "previews"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / "tracks.csv").unlink(missing_ok=True)
    (out_dir / "covers").mkdir(parents=True, exist_ok=True)
    (out_dir / "previews").mkdir(parents=True, exist_ok=True)

    synth = ds.manifest.get("synth", {})
    n_genres = int(synth.get("genres", len(ds.genres)))
    palette_overlap = float(synth.get("palette_overlap", 0.25))
    n = len(ds)
    jobs = [(str(ds.paths.root), list(range(s, min(s + CHUNK, n))), str(out_dir), int(res), n_genres,
             palette_overlap) for s in range(0, n, CHUNK)]
    workers = max(1, int(workers or os.cpu_count() or 1))
    with progress_bar("exporting tracks", n) as bar:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                bar.advance(_export_chunk(job))
        else:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with mp.get_context(method).Pool(min(workers, len(jobs)), die_with_parent, (os.getpid(),)) as pool:
                for done in pool.imap_unordered(_export_chunk, jobs):
                    bar.advance(done)
    table = export_table(ds.tracks)
    tmp = out_dir / ".tracks.csv.tmp"
    table.to_csv(tmp, index=False, encoding="utf-8")
    os.replace(tmp, out_dir / "tracks.csv")
    return out_dir
