"""Relationship probe on real pairs, no generator involved: does a cover carry its music at all?

Cross-validated cover features -> genre (accuracy) and cover features -> audio embedding (ridge R^2), each
with a permutation p-value and an interval. It answers "is there a relationship to learn?" and gives the
ceiling any conditional generator can reach.

Permutations shuffle targets within each test fold against the fixed out-of-fold predictions: a fold's
predictions come from a model that never saw that fold, so under "no relationship" its targets are
exchangeable with respect to them (for genres the folds are stratified, so class counts stay fixed too).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import UserError
from core.progress import track
from metrics.conditioning.classifier import ConditionClassifier
from metrics.conditioning.stats import (
    TestResult,
    bias_shifted_interval,
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
    class_names: list[str] | None = None,
) -> TestResult:
    """Stratified k-fold accuracy of the condition classifier on real covers -> genre.

    With ``groups`` (artist ids) the folds are artist-disjoint (GroupKFold, shuffled): an artist's covers share
    a style, so a fold that sees the artist in training would reward recognising the artist, not the genre; the
    p-value and intervals then take the artist group as the unit (``_grouped_genre_result``). Grouped folds can
    hold out every cover of a genre (a genre of one artist, or groups tied together by shared content): such covers
    are not scored, and when they are most covers the probe refuses (``_held_out_classes``).
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
    else:  # folds drawn without looking at the genres, so shuffling genres among a fold's groups is exact
        splits = list(GroupKFold(folds, shuffle=True, random_state=seed).split(x, y, g))
    scored = _scoreable(splits, y)
    pred = np.full_like(y, -1)
    for train, test in track(splits, "probe folds (genre)"):
        test = test[scored[test]]
        if test.size:
            pred[test] = ConditionClassifier(kind=kind, seed=seed).fit(x[train], y[train]).predict(x[test])
    fold = _fold_ids(splits, y.size)
    rng = np.random.default_rng(seed)
    if g is not None:
        held_out = _held_out_classes(splits, y, scored, g, class_names)
        pred, y, g, fold = pred[scored], y[scored], g[scored], fold[scored]
        acc = float((pred == y).mean())
        r = _grouped_genre_result(pred, y, g, fold, k, acc, folds, n_permutations, n_bootstrap, seed, rng)
        r.details.update(held_out)
        return r
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
                 "grouped": False, "n_groups": None,
                 "null_q99": float(np.quantile(null, 0.99)), "n_bootstrap": n_bootstrap},
    )


def _scoreable(splits: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray) -> np.ndarray:
    """Covers whose genre their fold's training part holds: a classifier can only ever name genres it was fit on,
    so a cover of a genre the fold holds out wholly is wrong by construction, whatever the covers show."""
    ok = np.zeros(y.size, dtype=bool)
    for train, test in splits:
        seen = np.unique(y[train])
        if seen.size >= 2:  # one genre in training: nothing to tell apart, the fold scores nothing
            ok[test] = np.isin(y[test], seen)
    return ok


def _held_out_classes(splits: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, scored: np.ndarray,
                      groups: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Refuse (UserError) when grouped folds hold out whole genres for most covers or leave fewer than two genres
    to score; otherwise say how many covers were left unscored, and of which genres (``details``)."""
    n, lost = y.size, int((~scored).sum())
    genres = [class_names[c] if class_names else str(c) for c in sorted(int(c) for c in np.unique(y[~scored]))]
    if lost == 0:
        return {"unscored_covers": 0, "unscored_classes": []}
    if lost * 2 > n or np.unique(y[scored]).size < 2:
        sizes = np.unique(groups, return_counts=True)[1]
        raise UserError(
            f"relationship probe: the grouped folds hold out every cover of a genre for {lost} of {n} covers "
            f"({', '.join(map(repr, genres[:5]))}): a classifier never fit on a genre cannot name "
            f"it, so the accuracy would measure the grouping, not the covers. The groups are too few or too uneven "
            f"(largest {int(sizes.max())} covers, {sizes.size} groups): lower --folds, or import with --group-by "
            "artist when identical audio or covers tie the groups together"
        )
    return {"unscored_covers": lost, "unscored_classes": genres,
            "unscored_note": "covers whose genre their fold's training part lacked (held out wholly) are not scored"}


def _grouped_genre_result(
    pred: np.ndarray, y: np.ndarray, groups: np.ndarray, fold: np.ndarray, k: int, acc: float, folds: int,
    n_permutations: int, n_bootstrap: int, seed: int, rng: np.random.Generator,
) -> TestResult:
    """p-value and intervals with the artist group, not the cover, as the unit.

    An artist's covers share a style and a genre, so their predictions move together: shuffling single covers'
    genres would understate the null's spread and give too small p-values. Here each group keeps its covers'
    predictions (counts per predicted class) and the groups' genres (majority) are shuffled among the groups of
    the same fold; intervals resample whole groups.
    """
    n = y.size
    _, gi = np.unique(groups, return_inverse=True)
    n_g = int(gi.max()) + 1
    counts = np.zeros((n_g, k), np.int64)  # predictions per group and class
    np.add.at(counts, (gi, pred), 1)
    labels = np.zeros((n_g, k), np.int64)
    np.add.at(labels, (gi, y), 1)
    g_label = labels.argmax(axis=1)  # the group's genre (all of its covers' genre for a one-genre artist)
    g_fold = np.zeros(n_g, np.int64)
    g_fold[gi] = fold
    g_correct = counts[np.arange(n_g), g_label]
    stat = float(g_correct.sum() / n)  # the accuracy when every cover carries its group's genre
    null = []
    for perm in permutation_chunks(n_g, n_permutations, rng, strata=g_fold):
        null.append(counts[np.arange(n_g)[None, :], g_label[perm]].sum(axis=1) / n)
    null = np.concatenate(null) if null else np.empty(0)
    null_mean = 0.0  # exact: within a fold, a group gets each fold-mate's genre with equal probability
    for f in range(folds):
        m = g_fold == f
        if m.any():
            null_mean += float(counts[m].sum(axis=0) @ np.bincount(g_label[m], minlength=k)) / m.sum()
    null_mean /= n
    sizes = counts.sum(axis=1)
    correct = np.bincount(gi, weights=(pred == y).astype(np.float64), minlength=n_g)
    pick = rng.integers(0, n_g, size=(n_bootstrap, n_g))  # cluster bootstrap: whole groups
    b_acc = correct[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    return TestResult(
        name="relationship_genre_accuracy",
        value=acc,
        n=n,
        chance=1.0 / k,
        interval=percentile_interval(b_acc),
        p_value=permutation_p(stat, null),
        null_mean=null_mean,
        effect=acc - null_mean,
        effect_interval=percentile_interval(b_acc - null_mean),
        margin=0.01,
        n_permutations=n_permutations,
        seed=seed,
        details={"n_classes": k, "folds": folds, "majority_share": float(np.bincount(y).max() / n),
                 "grouped": True, "n_groups": n_g, "null": "genres shuffled among artist groups within folds",
                 "interval": "bootstrap over artist groups", "statistic_group_genre": stat,
                 "null_q99": float(np.quantile(null, 0.99)) if null.size else None, "n_bootstrap": n_bootstrap},
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
    null_mean = float(null_a.mean())
    return TestResult(
        name="relationship_audio_r2",
        value=r2,
        n=n,
        chance=0.0,
        interval=bias_shifted_interval(boot, r2),  # see the docstring
        p_value=permutation_p(r2, null_a),
        null_mean=null_mean,
        effect=r2 - null_mean,
        effect_interval=bias_shifted_interval(boot - null_mean, r2 - null_mean),
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
