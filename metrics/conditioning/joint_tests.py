"""Permutation tests of FJD and CFID against "the generator ignores its condition", for the verdict.

Null hypothesis made exact by permuting which condition belongs to which generated cover (real set fixed): lower
distance is better, so effect = null mean - value and p counts null draws at or below the observed statistic.
The reported ``value`` is always the exact distance in the full feature space (``frechet``). The null and the
bootstrap are computed in a reduced basis of the image features (``metrics.distribution.basis``: exact when it
spans them, else the top principal components of the pooled features, reported in ``details["null_basis"]``),
batched with torch (``joint_null``), and the permutations may stop early by a Besag-Clifford rule
(``stats.SequentialRule``). ``exact=True`` takes the reference path instead: every permuted distance in the
full space, a fixed number of permutations, bootstrap replicates by full refits (``joint_exact``).

Cost (speed/bench_conditioning.py, BENCHMARKS.md): the values' own moments and eigensolves, O(n (d + dc)^2 +
(d + dc)^3) once; then per permutation O(n k dc) for the cross-covariance and two eigensolves of k + dc and k
dims (k <= 128 by default), per bootstrap replicate O(n (k + dc)^2) and the same two eigensolves.
"""

from __future__ import annotations

import numpy as np
import torch

from core.devices import resolve_device
from core.errors import UserError
from metrics.distribution.basis import DEFAULT_COMPONENTS, ReducedBasis, pooled_basis
from metrics.threads import fit_thread_limit

from .frechet import (
    MARGIN_SHARE,
    RCOND,
    JointFrechetResult,
    _cfid,
    _check_pairs,
    _conditional,
    _fjd,
    _moments,
    _shifted_interval,
    condition_scale,
)
from .joint_exact import exact_null
from .joint_null import JointStatistics, single_thread
from .stats import (
    SequentialRule,
    TestResult,
    permutation_chunks,
    permutation_p,
    sequential_done,
    sequential_p,
)

NAMES = {"fjd": "frechet_joint_distance", "cfid": "conditional_frechet_distance"}


def joint_conditioning_tests(
    real_x: np.ndarray,
    real_c: np.ndarray,
    gen_x: np.ndarray,
    gen_c: np.ndarray,
    *,
    n_permutations: int = 200,
    n_boot: int = 50,
    cond_scale: float | None = None,
    rcond: float = RCOND,
    seed: int = 0,
    confidence: float = 0.95,
    allow_singular: bool = False,
    sequential: SequentialRule | None = None,
    max_components: int = DEFAULT_COMPONENTS,
    device: str | torch.device | None = None,
    exact: bool = False,
) -> dict[str, TestResult]:
    """FJD and CFID tests, keys "fjd" and "cfid" (module docstring).

    ``n_permutations`` draws of the null, p = (1 + #{null <= observed}) / (1 + B); or, with ``sequential``, as
    many as its rule asks (``n_permutations`` is then ignored). margin = ``MARGIN_SHARE`` (5 %) of the null mean.
    ``interval`` is the value's bootstrap interval (``n_boot`` generated-pair resamples, centred on the value by
    the bootstrap's own bias, computed in the null's basis); ``effect_interval`` is null mean minus that
    interval (the null mean held fixed), or with n_boot = 0 the effect plus/minus the null's 95 % spread.
    ``device``: where the batched null runs (None: a GPU when present, by ``core.devices``).
    """
    ry, rc, gy, gc = _check_pairs(real_x, real_c, gen_x, gen_c, allow_singular)
    if n_permutations < 1:
        raise UserError(f"n_permutations must be at least 1, got {n_permutations}")
    alpha = condition_scale(ry, rc) if cond_scale is None else float(cond_scale)
    if exact:
        rule = SequentialRule(first=n_permutations, most=n_permutations)
        with fit_thread_limit():
            fjd, cfid, null, observed = exact_null(ry, rc, gy, gc, alpha, rcond, n_permutations, n_boot, seed,
                                                   confidence)
        extra = {"null_path": "exact (full space)"}
    else:
        rule = sequential or SequentialRule(first=n_permutations, most=n_permutations)
        fjd, cfid, null, observed, extra = _fast(ry, rc, gy, gc, alpha, rcond, rule, n_boot, seed, confidence,
                                                 max_components, resolve_device(device))
    fjd.details["cond_scale_from"] = "real set" if cond_scale is None else "given"
    extra["null_rule"] = rule.describe() if sequential is not None and not exact else "fixed"
    return {res.name: _result(res, null[:, i], float(observed[i]), rule, seed, confidence, extra)
            for i, res in enumerate((fjd, cfid))}


def _fast(ry, rc, gy, gc, alpha, rcond, rule, n_boot, seed, confidence, max_components, device):
    """Exact values; null draws, observed statistics and bootstrap intervals from the reduced basis."""
    d = ry.shape[1]
    gen_stats = _moments(gy, gc)  # the big product, with every thread; the rest single-threaded
    ref = _moments(np.hstack([ry, alpha * rc]))
    with fit_thread_limit():
        real = _conditional(_moments(np.hstack([ry, rc])), d, rcond)
        fjd = _fjd(ry, rc, gy, gc, alpha, 0, seed, confidence, ref=ref, gen_stats=gen_stats)
        cfid = _cfid(ry, rc, gy, gc, rcond, 0, seed, confidence, real=real, gen_stats=gen_stats)
        basis = pooled_basis(ry, gy, max_components, gen_scatter=gen_stats.sigma[:d, :d] * (gy.shape[0] - 1))
    with single_thread(device), fit_thread_limit():
        stats = JointStatistics(ry, rc, gy, gc, alpha, rcond, basis, device)
        observed = stats.observed()
        null = _draw_null(stats, observed, rule, np.random.default_rng(seed))
        boot = stats.bootstrap(n_boot, seed) if n_boot > 0 else None
    for i, res in enumerate((fjd, cfid)):
        if boot is not None:
            _set_interval(res, boot[:, i], n_boot, seed, confidence)
    return fjd, cfid, null, observed, {"null_basis": _basis_details(basis), "null_device": str(device)}


def _basis_details(basis: ReducedBasis) -> dict:
    return {**basis.to_dict(), "used_for": "permutation null and bootstrap interval (the value is full-space)"}


def _set_interval(res: JointFrechetResult, vals: np.ndarray, n_boot: int, seed: int, confidence: float) -> None:
    res.interval, res.boot_se = _shifted_interval(vals, res.value, confidence)
    res.n_boot, res.seed = n_boot, seed


def _draw_null(stats: JointStatistics, observed: np.ndarray, rule: SequentialRule,
               rng: np.random.Generator) -> np.ndarray:
    """Null draws (B, 2) in the order drawn, until both statistics reach the rule's stopping point."""
    draws: list[np.ndarray] = []
    drawn, target = 0, rule.first
    step = max(50, rule.first // 2)
    while True:
        for chunk in permutation_chunks(stats.n, target - drawn, rng):
            draws.append(stats.permuted(chunk))
        drawn = target
        null = np.concatenate(draws)
        if sequential_done(null, observed, rule, "less"):
            return null
        target = min(rule.most, drawn + step)


def _result(res: JointFrechetResult, nv: np.ndarray, observed: float, rule: SequentialRule, seed: int,
            confidence: float, extra: dict) -> TestResult:
    null_mean = float(nv.mean())
    effect = null_mean - res.value
    q = (1.0 - confidence) / 2.0
    n_lo, n_hi = (float(v) for v in np.quantile(nv, [q, 1.0 - q]))
    if res.interval is not None:
        eff_int = (null_mean - res.interval[1], null_mean - res.interval[0])
    else:
        eff_int = (effect - (n_hi - null_mean), effect + (null_mean - n_lo))
    if rule.first == rule.most:
        p, used = permutation_p(observed, nv, alternative="less"), nv.size
    else:
        p, used = sequential_p(nv, observed, rule, "less")
    return TestResult(
        name=NAMES[res.name], value=res.value, n=res.n_gen, chance=null_mean, interval=res.interval, p_value=p,
        null_mean=null_mean, effect=effect, effect_interval=eff_int, margin=MARGIN_SHARE * null_mean,
        n_permutations=int(nv.size), seed=seed,
        details={
            **res.details,
            "lower_is_better": True,
            "n_real": res.n_real,
            "dim": res.dim,
            "cond_dim": res.cond_dim,
            "n_boot": res.n_boot,
            "boot_se": res.boot_se,
            "null_interval": (n_lo, n_hi),
            "null_sd": float(nv.std(ddof=1)) if nv.size > 1 else 0.0,
            "observed_on_null_path": observed,
            "p_draws": int(used),
            "margin_rule": f"{MARGIN_SHARE:.0%} of the null mean",
            **extra,
        },
    )
