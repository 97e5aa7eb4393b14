"""Relationship probe on real pairs, no generator involved: does a cover carry its music at all?

Cross-validated cover features -> genre (accuracy) and cover features -> audio embedding (ridge R^2), each
with a permutation p-value and an interval. It answers "is there a relationship to learn?" and gives the
ceiling any conditional generator can reach.

Permutations shuffle targets within each test fold against the fixed out-of-fold predictions: a fold's
predictions come from a model that never saw that fold, so under "no relationship" its targets are
exchangeable with respect to them (for genres the folds are stratified, so class counts stay fixed too).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark.errors import UserError
from benchmark.progress import track
from metrics.conditioning.classifier import ConditionClassifier
from metrics.conditioning.stats import (
    TestResult,
    bootstrap_tables,
    check_features,
    check_labels,
    contingency,
    n_classes_of,
    percentile_interval,
    permutation_chunks,
    permutation_p,
    permuted_accuracy,
    wilson_interval,
)

RIDGE_ALPHAS = np.logspace(-2, 4, 7)
_GRAM_MAX = 3000  # largest fold for the Gram-matrix permutation path (memory ~ fold^2 floats)


def _fold_ids(splits: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    ids = np.empty(n, dtype=np.int64)
    for f, (_, test) in enumerate(splits):
        ids[test] = f
    return ids


def _check_groups(groups: np.ndarray | None, n: int, folds: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise UserError(f"relationship probe: {g.size} group ids for {n} covers")
    n_groups = len(np.unique(g))
    if folds < 2 or n_groups < folds:
        raise UserError(f"relationship probe: artist-grouped {folds}-fold CV needs >= {folds} artist groups "
                        f"(there are {n_groups}); lower --folds or add artists")
    return g


def genre_probe(
    features: np.ndarray, genres: np.ndarray, *, folds: int = 5, n_permutations: int = 2000,
    n_bootstrap: int = 2000, seed: int = 0, kind: str = "logreg", groups: np.ndarray | None = None,
) -> TestResult:
    """Stratified k-fold accuracy of the condition classifier on real covers -> genre.

    With ``groups`` (artist ids) the folds are artist-disjoint (StratifiedGroupKFold): an artist's covers share
    a style, so a fold that sees the artist in training would reward recognising the artist, not the genre.
    """
    x = check_features(features, "cover features")
    y = check_labels(genres, x.shape[0], "genres")
    k = n_classes_of(y)
    g = _check_groups(groups, y.size, folds)
    if g is None:
        smallest = int(np.bincount(y, minlength=k)[np.bincount(y, minlength=k) > 0].min())
        if folds < 2 or smallest < folds:
            raise UserError(f"relationship probe: {folds}-fold CV needs every genre to have >= {folds} covers "
                            f"(smallest has {smallest}); lower --folds or add data")
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class": fine, folds need not hold all
            splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, g))
    pred = np.empty_like(y)
    for train, test in track(splits, "probe folds (genre)"):
        pred[test] = ConditionClassifier(kind=kind, seed=seed).fit(x[train], y[train]).predict(x[test])
    fold = _fold_ids(splits, y.size)
    rng = np.random.default_rng(seed)
    n = y.size
    acc = float((pred == y).mean())
    null = permuted_accuracy(pred, y, n_permutations, rng, strata=fold)
    # exact mean of the within-fold permutation null
    null_mean = float(sum(
        np.dot(np.bincount(pred[fold == f], minlength=k), np.bincount(y[fold == f], minlength=k)) / (fold == f).sum()
        for f in range(folds)
    ) / n)
    boot = bootstrap_tables(contingency(pred, y, k, k), n_bootstrap, rng)
    b_eff = np.trace(boot, axis1=1, axis2=2) / n - np.einsum("bi,bi->b", boot.sum(2), boot.sum(1)) / (n * n)
    return TestResult(
        name="relationship_genre_accuracy",
        value=acc,
        n=n,
        chance=1.0 / k,
        interval=wilson_interval(acc * n, n),
        p_value=permutation_p(acc, null),
        null_mean=null_mean,
        effect=acc - null_mean,
        effect_interval=percentile_interval(b_eff),
        margin=0.01,
        n_permutations=n_permutations,
        seed=seed,
        details={"n_classes": k, "folds": folds, "majority_share": float(np.bincount(y).max() / n),
                 "grouped": g is not None, "n_groups": int(len(np.unique(g))) if g is not None else None,
                 "null_q99": float(np.quantile(null, 0.99)), "n_bootstrap": n_bootstrap},
    )


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1.0 - ((y - pred) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum())


def _permuted_cross(
    y: np.ndarray, pred: np.ndarray, fold: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """sum_i <y[perm(i)], pred_i> for within-fold permutations: the only term of SS_res that changes."""
    n, e = y.shape
    small = np.bincount(fold).max() <= _GRAM_MAX
    if small:  # per-fold Gram matrices: each permutation then costs n scalar look-ups
        local = np.empty(n, dtype=np.int64)
        grams, members = [], []
        for f in range(fold.max() + 1):
            idx = np.flatnonzero(fold == f)
            local[idx] = np.arange(idx.size)
            grams.append(pred[idx] @ y[idx].T)
            members.append(idx)
    out = []
    for perm in permutation_chunks(n, n_permutations, rng, strata=fold, width=1 if small else e):
        if small:
            cross = np.zeros(perm.shape[0])
            for gram, idx in zip(grams, members, strict=True):
                cross += gram[local[idx][None, :], local[perm[:, idx]]].sum(axis=1)
        else:
            cross = y[perm].reshape(perm.shape[0], -1) @ pred.ravel()
        out.append(cross)
    return np.concatenate(out) if out else np.empty(0)


def _bootstrap_r2(y: np.ndarray, pred: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """R^2 of row-resampled (y, pred) pairs from per-row sums, resample counts drawn as multinomials."""
    n = y.shape[0]
    res, sq = ((y - pred) ** 2).sum(axis=1), (y**2).sum(axis=1)
    out = []
    step = max(1, 4_000_000 // n)
    for s in range(0, n_bootstrap, step):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(step, n_bootstrap - s)).astype(np.float64)
        ss_tot = w @ sq - ((w @ y) ** 2).sum(axis=1) / n
        out.append(1.0 - (w @ res) / ss_tot)
    return np.concatenate(out) if out else np.empty(0)


def audio_probe(
    features: np.ndarray, audio_embedding: np.ndarray, *, folds: int = 5, n_permutations: int = 2000,
    n_bootstrap: int = 1000, seed: int = 0, groups: np.ndarray | None = None,
) -> TestResult:
    """K-fold ridge (alpha by generalised CV inside each fold) cover features -> audio embedding.

    R^2 is pooled over the embedding's dimensions after standardising each one, so every dimension counts
    equally: 1 - sum of squared out-of-fold errors / total sum of squares. ``groups`` makes the folds
    artist-disjoint (GroupKFold).

    The interval is the bootstrap's percentile interval moved by the bootstrap's median bias: a resample's
    R^2 is measured around the resample's own mean, which lowers it by about (1 - R^2) / n, so the raw
    percentile interval can miss the value itself (seen: value -0.0043, interval [-0.0123, -0.0046]).
    Shifting by the median (the basic bias correction) keeps the interval's width and always contains the value.
    """
    x = check_features(features, "cover features")
    e = check_features(audio_embedding, "audio embedding")
    if e.shape[0] != x.shape[0]:
        raise UserError(f"audio embedding has {e.shape[0]} rows but the cover features have {x.shape[0]}")
    if folds < 2 or x.shape[0] < 2 * folds:
        raise UserError(f"relationship probe: {folds}-fold CV needs at least {2 * folds} pairs")
    y = (e - e.mean(axis=0)) / (e.std(axis=0) + 1e-12)
    g = _check_groups(groups, x.shape[0], folds)
    if g is None:
        splits = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    else:
        splits = list(GroupKFold(folds, shuffle=True, random_state=seed).split(x, y, g))
    pred = np.empty_like(y)
    for train, test in track(splits, "probe folds (audio)"):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x[train], y[train])
        pred[test] = model.predict(x[test]).reshape(test.size, -1)
    fold = _fold_ids(splits, y.shape[0])
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    r2 = _r2(y, pred)

    ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
    base = float((y**2).sum() + (pred**2).sum())
    null_a = 1.0 - (base - 2 * _permuted_cross(y, pred, fold, n_permutations, rng)) / ss_tot
    boot = _bootstrap_r2(y, pred, n_bootstrap, rng)
    boot = boot - (float(np.median(boot)) - r2) if boot.size else boot  # bias-shifted (see the docstring)
    null_mean = float(null_a.mean())
    return TestResult(
        name="relationship_audio_r2",
        value=r2,
        n=n,
        chance=0.0,
        interval=percentile_interval(boot),
        p_value=permutation_p(r2, null_a),
        null_mean=null_mean,
        effect=r2 - null_mean,
        effect_interval=percentile_interval(boot - null_mean),
        margin=0.01,
        n_permutations=n_permutations,
        seed=seed,
        details={"folds": folds, "embedding_dim": int(y.shape[1]), "null_q99": float(np.quantile(null_a, 0.99)),
                 "n_bootstrap": n_bootstrap, "interval": "bootstrap percentile, shifted by the median bias",
                 "grouped": g is not None},
    )


def relationship_probe(
    cover_features: np.ndarray, genres: np.ndarray, audio_embedding: np.ndarray | None = None, *,
    folds: int = 5, n_permutations: int = 2000, n_bootstrap: int = 1000, seed: int = 0, kind: str = "logreg",
    groups: np.ndarray | None = None,
) -> dict[str, TestResult | None]:
    """{"genre": cross-validated cover -> genre accuracy, "audio": cover -> audio embedding R^2 or None}."""
    genre = genre_probe(cover_features, genres, folds=folds, n_permutations=n_permutations,
                        n_bootstrap=n_bootstrap, seed=seed, kind=kind, groups=groups)
    audio = None
    if audio_embedding is not None:
        audio = audio_probe(cover_features, audio_embedding, folds=folds, n_permutations=n_permutations,
                            n_bootstrap=n_bootstrap, seed=seed, groups=groups)
    return {"genre": genre, "audio": audio}
