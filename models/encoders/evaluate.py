"""How much genre an embedding carries: pure functions over (embeddings, genre labels, splits).

Every accuracy comes with its chance levels (majority-class share on the scored rows, and 1/k), because a
probe accuracy means nothing without them. Clustering scores (purity, NMI, ARI) are computed here from the
contingency table and tested against sklearn; the probe uses sklearn's logistic regression.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.data.prepared import PreparedDataset

LABELLED_MIN = 2
AE_MATCH_TOLERANCE = 0.01  # "matches pca" = within 1 % of pca's test reconstruction error


def chance_levels(y_test: np.ndarray, n_classes: int) -> dict[str, float]:
    """Majority-class share among the scored labels, and uniform guessing 1/k."""
    y_test = np.asarray(y_test)
    major = float(np.bincount(y_test, minlength=n_classes).max() / len(y_test)) if len(y_test) else float("nan")
    return {"chance_majority": major, "chance_uniform": 1.0 / n_classes}


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array with the train columns' mean/std (constant columns keep std 1)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std < 1e-12] = 1.0
    return [(a - mean) / std for a in (train, *others)]


def linear_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_classes: int, seed: int = 0
) -> dict[str, float]:
    """Multinomial logistic regression on standardised embeddings, fit on train, scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    xtr, xte = standardise(np.asarray(x_train, np.float64), np.asarray(x_test, np.float64))
    out: dict[str, float] = {"n_train": int(len(y_train)), "n_test": int(len(y_test))}
    if len(np.unique(y_train)) < 2:
        pred = np.full(len(y_test), y_train[0] if len(y_train) else 0)
    else:
        clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
        clf.fit(xtr, y_train)
        pred = clf.predict(xte)
    out["accuracy"] = float(accuracy_score(y_test, pred))
    # macro-F1 over the classes the test split holds: a class without test tracks has no F1, not an F1 of 0
    present = np.unique(np.asarray(y_test))
    out["macro_f1"] = float(f1_score(y_test, pred, average="macro", labels=present, zero_division=0))
    out["classes_absent"] = [int(c) for c in np.setdiff1d(np.arange(n_classes), present)]
    out.update(chance_levels(y_test, n_classes))
    return out


def knn_predict(x_train: np.ndarray, y_train: np.ndarray, x_query: np.ndarray, k: int = 10) -> np.ndarray:
    """k-nearest-neighbour vote by cosine similarity; ties go to the smallest label (as sklearn's mode does)."""
    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float64)
        n = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(n > 0, n, 1.0)

    k = min(k, len(x_train))
    y_train = np.asarray(y_train)
    n_classes = int(y_train.max()) + 1
    out = np.empty(len(x_query), dtype=y_train.dtype)
    tr = unit(x_train)
    q = unit(x_query)
    for start in range(0, len(q), 1024):
        sim = q[start : start + 1024] @ tr.T
        idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        votes = np.zeros((len(idx), n_classes), np.int64)
        np.add.at(votes, (np.repeat(np.arange(len(idx)), k), y_train[idx].ravel()), 1)
        out[start : start + len(idx)] = votes.argmax(axis=1)
    return out


def knn_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_classes: int, k: int = 10
) -> dict[str, float]:
    pred = knn_predict(x_train, y_train, x_test, k)
    return {"accuracy": float(np.mean(pred == np.asarray(y_test))), "k": int(k), **chance_levels(y_test, n_classes)}


def contingency(labels_true: np.ndarray, labels_pred: np.ndarray) -> np.ndarray:
    """Counts (n_true_classes, n_clusters) over the labels actually present."""
    _, t = np.unique(labels_true, return_inverse=True)
    _, p = np.unique(labels_pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), np.int64)
    np.add.at(table, (t, p), 1)
    return table


def purity(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Share of points whose cluster's majority class is their own class."""
    table = contingency(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Normalised mutual information, arithmetic-mean normalisation (sklearn's default)."""
    table = contingency(labels_true, labels_pred).astype(np.float64)
    n = table.sum()
    a, b = table.sum(axis=1), table.sum(axis=0)
    ha, hb = _entropy(a), _entropy(b)
    if ha == 0.0 and hb == 0.0:
        return 1.0
    nz = table > 0
    mi = float((table[nz] / n * np.log(table[nz] * n / np.outer(a, b)[nz])).sum())
    denom = (ha + hb) / 2
    return float(mi / denom) if denom > 0 else 0.0


def ari(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Adjusted Rand index (Hubert and Arabie) from pair counts."""
    table = contingency(labels_true, labels_pred).astype(np.float64)
    n = table.sum()

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    sum_ij, sum_a, sum_b = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    total = n * (n - 1) / 2
    expected = sum_a * sum_b / total if total > 0 else 0.0
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:
        return 1.0
    return float((sum_ij - expected) / (maximum - expected))


def cluster_scores(x: np.ndarray, y: np.ndarray, n_clusters: int, seed: int = 0) -> dict[str, float]:
    """k-means (k = number of genres) on standardised embeddings, scored against genre."""
    from sklearn.cluster import KMeans

    (z,) = standardise(np.asarray(x, np.float64))
    k = int(min(n_clusters, len(np.unique(z, axis=0))))
    pred = KMeans(n_clusters=max(k, 1), n_init=4, random_state=seed).fit_predict(z)
    return {"k": k, "purity": purity(y, pred), "nmi": nmi(y, pred), "ari": ari(y, pred)}


def silhouette(x: np.ndarray, y: np.ndarray) -> float:
    """Mean silhouette of the genre labelling in standardised embedding space (Euclidean); NaN if undefined."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(y)) < 2 or len(np.unique(y)) >= len(y):
        return float("nan")
    (z,) = standardise(np.asarray(x, np.float64))
    return float(silhouette_score(z, y, metric="euclidean"))


def tsne_map(
    x: np.ndarray, y: np.ndarray, genres: list[str], path: str | Path, seed: int = 0, title: str = ""
) -> Path:
    """A 2-D openTSNE map of standardised embeddings coloured by genre, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from openTSNE import TSNE

    from core.plot_text import plain, plain_text_rc

    (z,) = standardise(np.asarray(x, np.float64))
    perplexity = float(max(2.0, min(30.0, (len(z) - 1) / 3.0)))
    emb = np.asarray(TSNE(perplexity=perplexity, n_jobs=1, random_state=seed, verbose=False).fit(z))
    with plain_text_rc():  # genre names and the title are data: never LaTeX, '$' escaped for mathtext
        return _draw_map(plt, emb, y, genres, Path(path), plain(title or "t-SNE by genre"), plain)


def _draw_map(plt, emb: np.ndarray, y: np.ndarray, genres: list[str], path: Path, title: str, plain) -> Path:  # noqa: ANN001
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    cmap = plt.get_cmap("tab20" if len(genres) > 10 else "tab10")
    for g, name in enumerate(genres):
        m = y == g
        if m.any():
            ax.scatter(emb[m, 0], emb[m, 1], s=6, color=cmap(g % cmap.N), label=plain(name), alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def evaluate_embeddings(
    x: np.ndarray,
    genre_idx: np.ndarray,
    splits: np.ndarray,
    genres: list[str],
    *,
    seed: int = 0,
    max_points: int = 20000,
    tsne_points: int = 5000,
    tsne_path: str | Path | None = None,
    title: str = "",
) -> dict[str, Any]:
    """All genre scores of one embedding. Probes fit on the train split and score on test; clustering,
    silhouette and t-SNE use every labelled track (subsampled to ``max_points`` / ``tsne_points``)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(genre_idx, np.int64)
    splits = np.asarray(splits).astype(str)
    k = len(genres)
    lab = y >= 0
    tr, te = lab & (splits == "train"), lab & (splits == "test")
    out: dict[str, Any] = {"n": int(len(x)), "dim": int(x.shape[1]), "n_genres": k, "seed": seed}
    out["n_labelled"] = int(lab.sum())
    if not np.isfinite(x).all():
        out["error"] = "embeddings contain non-finite values"
        return out
    if tr.sum() >= LABELLED_MIN and te.sum() >= 1:
        out["linear_probe"] = linear_probe(x[tr], y[tr], x[te], y[te], k, seed)
        out["knn"] = knn_accuracy(x[tr], y[tr], x[te], y[te], k, k=10)
        absent = out["linear_probe"]["classes_absent"]
        if absent:
            out["classes_absent_from_test"] = [genres[c] for c in absent]
    else:
        out["linear_probe"] = out["knn"] = {"skipped": "needs labelled train and test tracks"}
    rows = np.flatnonzero(lab)
    if len(np.unique(y[rows])) >= 2:
        sub = rows[subsample(len(rows), max_points, seed)]
        out["silhouette"] = silhouette(x[sub], y[sub])
        out["kmeans"] = cluster_scores(x[sub], y[sub], k, seed)
        out["kmeans"]["n"] = int(len(sub))
        if tsne_path is not None and len(rows) >= 5:
            sub = rows[subsample(len(rows), tsne_points, seed)]
            out["tsne_png"] = str(tsne_map(x[sub], y[sub], genres, tsne_path, seed, title))
    return out


def encoder_scores(name: str, enc: Any, ds: PreparedDataset, train: np.ndarray, test: np.ndarray) -> dict:
    """What only some encoders can say of themselves: pca's explained variance, the autoencoder against pca."""
    if name == "pca":
        ratio = [float(v) for v in enc.explained_variance_ratio]
        z_test = enc.standardised(ds, test) if len(test) else None
        out = {"explained_variance": float(sum(ratio)), "explained_variance_ratio": ratio}
        if z_test is not None:
            out["reconstruction_mse_test"] = enc.reconstruction_mse(z_test)
        return out
    if name == "autoencoder":
        from models.encoders.pca import pca_reconstruction_mse

        if not len(test):
            return {"reconstruction": {"skipped": "no test tracks"}}
        z_train, z_test = enc.standardised(ds, train), enc.standardised(ds, test)
        ae = enc.reconstruction_mse(z_test)
        pca = pca_reconstruction_mse(z_train, z_test, enc.dim)
        ok = ae <= pca * (1 + AE_MATCH_TOLERANCE)
        verdict = (
            f"autoencoder {'beats' if ae < pca else 'matches'} pca at d={enc.dim} on test reconstruction"
            if ok
            else f"autoencoder does NOT beat or match pca at d={enc.dim}: test MSE {ae:.4f} vs pca {pca:.4f}"
        )
        return {
            "reconstruction": {
                "autoencoder_mse_test": ae,
                "pca_mse_test": pca,
                "dim": enc.dim,
                "beats_or_matches_pca": bool(ok),
                "tolerance": AE_MATCH_TOLERANCE,
                "verdict": verdict,
            }
        }
    return {}
