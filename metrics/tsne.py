"""t-SNE colour/genre analyses: is the map of covers organised by genre or by colour?

The seed study saw covers cluster by colour, not by genre. Here a map of real cover features is fitted with
openTSNE, generated covers are placed into the same map with ``transform``, and two k-NN agreement scores (genre and
colour) are compared, each against its own chance level, so "organised by colour" becomes a number.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from core.plot_text import plain, plain_text_rc
from metrics.threads import fit_thread_limit


def mean_colors(images: np.ndarray) -> np.ndarray:
    """Mean RGB in [0, 1] per uint8 NHWC image."""
    return np.asarray(images, dtype=np.float32).mean(axis=(1, 2)) / 255.0


def knn_agreement(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """Share of each point's k nearest map neighbours with its label, against the share expected by chance."""
    labels = np.asarray(labels)
    k = min(k, len(xy) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(xy)
    idx = nn.kneighbors(xy, return_distance=False)[:, 1:]
    agree = float((labels[idx] == labels[:, None]).mean())
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    # a random neighbour (drawn without the point itself) shares the label with this probability
    n = len(labels)
    chance = float(((counts * (counts - 1)) / (n * (n - 1))).sum()) if n > 1 else float((p**2).sum())
    lift = (agree - chance) / (1 - chance) if chance < 1 else 0.0
    return {"agreement": agree, "chance": chance, "lift": float(lift), "k": k}


def colour_labels(colors: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Colour classes: k-means over mean colours, as many classes as genres so the two scores are comparable."""
    n_clusters = max(2, min(n_clusters, len(colors)))
    with fit_thread_limit():  # 3-d points: two threads only wait on each other (7.8 s vs milliseconds when busy)
        return KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(colors)


MAPS_KEPT = 4  # real-cover maps kept in memory: one per (features, seed, perplexity) a run evaluates against
_maps: OrderedDict[str, np.ndarray] = OrderedDict()


def fit_map(features: np.ndarray, seed: int = 0, perplexity: float = 30.0, n_jobs: int = 1,
            store: Path | None = None):
    """An openTSNE embedding of (real) features; it can place new points with ``transform``.

    Neighbours are found exactly (brute force, one matrix product): openTSNE's default switches to Annoy trees
    from 1,000 points, which in 2,048 dims took 55 s to index 3,000 covers and 20 s to place 2,000 more on the
    busy 2-core box, against about a second for the exact search (which also leaves no neighbour out).
    A map depends only on the real features and its settings, so it is optimised once (16 s at 3,000 covers in
    2,048 dims, the gpu preset's map, on two cores): its coordinates are kept in memory for every model of
    ``bench evaluate --model all`` and, with ``store`` (a folder), saved there; a kept map is rebuilt around them
    (the same affinities and settings), which places new points exactly as the fitted map does. openTSNE moves a
    map's points on its first ``transform``: callers copy the coordinates they score right after this call.
    """
    from openTSNE import TSNE, __version__

    x = np.ascontiguousarray(features, dtype=np.float64)
    perplexity = float(min(perplexity, max(2.0, (len(x) - 1) / 3)))
    key = hashlib.sha256(x.tobytes() + repr((x.shape, seed, perplexity, n_jobs, __version__)).encode()).hexdigest()
    tsne = TSNE(perplexity=perplexity, random_state=seed, n_jobs=n_jobs, initialization="pca", verbose=False,
                neighbors="exact")
    path = None if store is None else Path(store) / f"tsne-{key[:32]}.npy"
    kept = _maps.get(key)
    if kept is None:
        kept = _stored_map(path, len(x))
    with fit_thread_limit():
        emb = tsne.fit(x) if kept is None else _rebuilt(tsne, x, kept)
    if kept is None:
        kept = np.array(emb)
        if path is not None:
            _store_map(path, kept)
    _maps[key] = kept
    _maps.move_to_end(key)
    while len(_maps) > MAPS_KEPT:
        _maps.popitem(last=False)
    return emb


def _stored_map(path: Path | None, n: int) -> np.ndarray | None:
    """Saved coordinates of the map, or None (none saved, unreadable, or of another size: fitted again)."""
    if path is None or not path.is_file():
        return None
    try:
        xy = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return xy if xy.shape == (n, 2) and np.isfinite(xy).all() else None


def _store_map(path: Path, xy: np.ndarray) -> None:
    """Save the coordinates; a read-only or full cache folder only costs the next evaluation a fit."""
    from metrics.features.cache import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.save(f, xy))
    except OSError:
        pass


def _rebuilt(tsne: Any, x: np.ndarray, xy: np.ndarray):
    """The fitted map around saved coordinates: the same affinities (exact neighbours of ``x``) and settings, so
    ``transform`` places new points exactly where the original fit's map would."""
    import logging

    quiet = logging.getLogger("openTSNE.tsne")  # it warns that a given initialisation is not near zero
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return tsne.prepare_initial(x, initialization=xy)
    finally:
        quiet.setLevel(level)


def tsne_analysis(
    real_features: np.ndarray,
    real_genres: np.ndarray,
    real_images: np.ndarray,
    *,
    gen_features: np.ndarray | None = None,
    gen_conditions: np.ndarray | None = None,
    gen_images: np.ndarray | None = None,
    seed: int = 0,
    perplexity: float = 30.0,
    k: int = 10,
    n_jobs: int = 1,
    map_store: Path | None = None,
) -> dict[str, Any]:
    """Map real covers, place generated ones, and score genre against colour organisation.

    Returns coordinates (``real_xy``, ``gen_xy``) and ``scores``: genre and colour k-NN agreement with chance and
    lift (agreement above chance, normalised), trustworthiness, and ``organised_by`` ("genre" or "colour").
    ``map_store``: a folder where the real map is saved and found again (:func:`fit_map`).
    """
    real_features = np.asarray(real_features)
    real_genres = np.asarray(real_genres)
    if len(real_features) < 10:
        raise ValueError(f"a t-SNE map needs at least 10 real covers, got {len(real_features)}")
    emb = fit_map(real_features, seed, perplexity, n_jobs, store=map_store)
    real_xy = np.array(emb)  # a copy: openTSNE moves the map's points on its first transform
    n_genres = len(np.unique(real_genres))
    colors = mean_colors(real_images)
    col_lab = colour_labels(colors, n_genres, seed)
    genre_score = knn_agreement(real_xy, real_genres, k)
    colour_score = knn_agreement(real_xy, col_lab, k)
    scores: dict[str, Any] = {
        "n_real": len(real_xy),
        "genre": genre_score,
        "colour": colour_score,
        "organised_by": "genre" if genre_score["lift"] >= colour_score["lift"] else "colour",
        "trustworthiness": float(trustworthiness(real_features, real_xy, n_neighbors=min(k, len(real_xy) // 2 - 1))),
        "perplexity": float(perplexity),
        "seed": seed,
    }
    out: dict[str, Any] = {"real_xy": real_xy, "real_genres": real_genres, "real_colors": colors, "scores": scores}
    if gen_features is not None and len(gen_features):
        with fit_thread_limit():
            gen_xy = np.asarray(emb.transform(np.asarray(gen_features, dtype=np.float64)))
        out["gen_xy"] = gen_xy
        if gen_conditions is not None:
            out["gen_conditions"] = np.asarray(gen_conditions)
            # Do generated covers land among real covers of the genre they were asked for?
            nn = NearestNeighbors(n_neighbors=min(k, len(real_xy))).fit(real_xy)
            idx = nn.kneighbors(gen_xy, return_distance=False)
            hit = float((real_genres[idx] == np.asarray(gen_conditions)[:, None]).mean())
            _, counts = np.unique(real_genres, return_counts=True)
            scores["generated_genre_agreement"] = {
                "agreement": hit,
                "chance": float(((counts / counts.sum()) ** 2).sum()),
                "n_gen": len(gen_xy),
            }
        if gen_images is not None:
            out["gen_colors"] = mean_colors(gen_images)
    return out


def save_tsne_plots(
    result: dict[str, Any],
    out_dir: Path,
    genre_names: list[str],
    real_images: np.ndarray | None = None,
    prefix: str = "tsne",
) -> dict[str, Path]:
    """PNG maps coloured by genre and by mean colour, and a thumbnail mosaic; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plain_text_rc():  # genre names are data: never LaTeX (and escaped for mathtext below)
        return _draw_tsne_plots(plt, result, out_dir, genre_names, real_images, prefix)


def _draw_tsne_plots(
    plt: Any, result: dict[str, Any], out_dir: Path, genre_names: list[str], real_images: np.ndarray | None,
    prefix: str,
) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    xy, genres = result["real_xy"], result["real_genres"]
    written: dict[str, Path] = {}
    cmap = plt.get_cmap("tab20" if len(genre_names) > 10 else "tab10")

    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=110)
    for g, name in enumerate(genre_names):
        m = genres == g
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(g % cmap.N), label=plain(name), alpha=0.8)
    if "gen_xy" in result:
        gxy = result["gen_xy"]
        gc = result.get("gen_conditions")
        colors = [cmap(int(c) % cmap.N) for c in gc] if gc is not None else "black"
        ax.scatter(gxy[:, 0], gxy[:, 1], s=14, c=colors, marker="x", linewidths=0.7, label="generated (x)")
    s = result["scores"]
    ax.set_title(f"real covers by genre (genre lift {s['genre']['lift']:.2f}, colour lift {s['colour']['lift']:.2f})")
    ax.legend(markerscale=2, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    written["genre"] = out_dir / f"{prefix}_genre.png"
    fig.tight_layout()
    fig.savefig(written["genre"])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=110)
    ax.scatter(xy[:, 0], xy[:, 1], s=8, c=np.clip(result["real_colors"], 0, 1))
    if "gen_xy" in result and "gen_colors" in result:
        ax.scatter(
            result["gen_xy"][:, 0],
            result["gen_xy"][:, 1],
            s=16,
            c=np.clip(result["gen_colors"], 0, 1),
            marker="x",
            linewidths=0.9,
        )
    ax.set_title("real covers by mean colour")
    ax.set_xticks([])
    ax.set_yticks([])
    written["colour"] = out_dir / f"{prefix}_colour.png"
    fig.tight_layout()
    fig.savefig(written["colour"])
    plt.close(fig)

    if real_images is not None:
        written["mosaic"] = out_dir / f"{prefix}_mosaic.png"
        thumbnail_mosaic(xy, real_images, written["mosaic"])
    return written


def thumbnail_mosaic(xy: np.ndarray, images: np.ndarray, path: Path, grid: int = 24, thumb: int = 24) -> Path:
    """Snap map positions to a grid and draw one thumbnail per occupied cell (the first point that lands there)."""
    from PIL import Image

    lo, hi = xy.min(0), xy.max(0)
    cells = np.clip(((xy - lo) / np.maximum(hi - lo, 1e-9) * (grid - 1)).round().astype(int), 0, grid - 1)
    canvas = np.full((grid * thumb, grid * thumb, 3), 255, np.uint8)
    taken = np.zeros((grid, grid), bool)
    for i, (cx, cy) in enumerate(cells):
        r = grid - 1 - cy
        if taken[r, cx]:
            continue
        taken[r, cx] = True
        im = Image.fromarray(np.asarray(images[i])).resize((thumb, thumb), Image.Resampling.BILINEAR)
        canvas[r * thumb : (r + 1) * thumb, cx * thumb : (cx + 1) * thumb] = np.asarray(im)
    Image.fromarray(canvas).save(path)
    return path
