"""One verdict on "does the generator use its condition?": yes, no or inconclusive, from pre-registered tests.

The rule is fixed before looking at the data, so that the verdict cannot be tuned after the fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .stats import TestResult, holm

ALPHA = 0.01
PRIMARY = ("accuracy", "purity", "sensitivity", "retrieval")  # "accuracy" is required
SECONDARY = ("cas",)

RULE = (
    "Primary family (pre-registered, one-sided): (a) conditional accuracy above the shuffled-condition null; "
    "(c) cluster NMI above permuted labels; (d) condition sensitivity above the within-z permutation null; "
    "(e) top-1 retrieval above its permutation null (continuous conditions only). Only the tests that were "
    "run form the family; p-values are Holm-adjusted across it at alpha = {alpha}. A test 'passes' when its "
    "adjusted p < alpha AND its effect (value minus null mean) is at least its meaningful margin. "
    "YES: (a) passes and at least one other primary test passes. "
    "NO: no primary test has adjusted p < alpha, AND the upper 95 % bound of the accuracy effect is below its "
    "margin (a meaningful effect is excluded), AND real test covers beat chance (ceiling p < alpha), so the "
    "instrument could have seen an effect. "
    "INCONCLUSIVE: anything else (too few samples, wide intervals, conflicting tests, no ceiling). "
    "CAS is secondary: reported with its own p-value, never part of the decision."
)


def _as_dict(r: TestResult | Mapping[str, Any]) -> dict[str, Any]:
    return r.to_dict() if isinstance(r, TestResult) else dict(r)


def conditioning_verdict(results: Mapping[str, TestResult | Mapping[str, Any]], alpha: float = ALPHA) -> dict:
    """Decide yes / no / inconclusive from results keyed by "accuracy", "purity", "sensitivity",
    "retrieval" and "cas" (TestResult or their ``to_dict()``); returns the decision, the rule, and each
    test's p, Holm-adjusted p, effect, margin and interval."""
    if "accuracy" not in results:
        raise ValueError("the verdict needs the conditional-accuracy result under key 'accuracy'")
    rs = {k: _as_dict(v) for k, v in results.items() if v is not None}
    family = [k for k in PRIMARY if k in rs]
    adjusted = holm([rs[k]["p_value"] for k in family])
    tests: dict[str, dict[str, Any]] = {}
    for key, adj in zip(family, adjusted, strict=True):
        r = rs[key]
        significant = bool(adj < alpha)
        meaningful = r["effect"] is not None and r["margin"] is not None and r["effect"] >= r["margin"]
        tests[key] = {
            "role": "primary", "name": r["name"], "value": r["value"], "n": r["n"],
            "p_value": r["p_value"], "p_adjusted": float(adj), "significant": significant,
            "effect": r["effect"], "effect_interval": r["effect_interval"], "margin": r["margin"],
            "meaningful": bool(meaningful), "passes": bool(significant and meaningful),
            "interval": r["interval"],
        }
    for key in SECONDARY:
        if key in rs:
            r = rs[key]
            tests[key] = {
                "role": "secondary", "name": r["name"], "value": r["value"], "n": r["n"],
                "p_value": r["p_value"], "p_adjusted": r["p_value"], "significant": bool(r["p_value"] < alpha),
                "effect": r["effect"], "effect_interval": r["effect_interval"], "margin": r["margin"],
                "interval": r["interval"],
            }

    acc = rs["accuracy"]
    others_pass = [k for k in family if k != "accuracy" and tests[k]["passes"]]
    any_significant = any(tests[k]["significant"] for k in family)
    ceiling_p = acc.get("details", {}).get("ceiling_p_value")
    ceiling_ok = ceiling_p is not None and ceiling_p < alpha
    upper = (acc.get("effect_interval") or [None, None])[1]
    excluded = upper is not None and acc.get("margin") is not None and upper < acc["margin"]

    reasons: list[str] = []
    if tests["accuracy"]["passes"] and others_pass:
        decision = "yes"
        reasons.append(f"accuracy and {', '.join(others_pass)} pass Holm at alpha={alpha} with meaningful effects")
    elif not any_significant and excluded and ceiling_ok:
        decision = "no"
        reasons.append(f"no primary test significant; accuracy effect upper bound {upper:.4f} < margin "
                       f"{acc['margin']:.4f}")
    else:
        decision = "inconclusive"
        if not ceiling_ok:
            reasons.append("real test covers do not beat chance: the classifier cannot see the condition")
        if not tests["accuracy"]["passes"] and any_significant:
            reasons.append("some primary tests are significant but the required accuracy test does not pass")
        if tests["accuracy"]["passes"] and not others_pass:
            reasons.append("accuracy passes but no second primary test confirms it")
        if not any_significant and not excluded:
            reasons.append("nothing significant, but the accuracy interval still allows a meaningful effect "
                           "(too few samples)")
        if not reasons:
            reasons.append("significant tests without meaningful effects")
    return {
        "conditioning_works": decision,
        "alpha": alpha,
        "rule": RULE.format(alpha=alpha),
        "reasons": reasons,
        "family": family,
        "tests": tests,
    }
