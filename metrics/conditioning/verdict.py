"""One verdict on "does the generator use its condition?": yes, no or inconclusive, from pre-registered tests.

The rule is fixed before looking at the data, so that the verdict cannot be tuned after the fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .stats import TestResult, holm

ALPHA = 0.01
PRIMARY = ("accuracy", "purity", "sensitivity")  # the family for a categorical condition (genre)
PRIMARY_CONTINUOUS = ("accuracy", "purity", "sensitivity", "retrieval", "fjd", "cfid")
TRACK_LEVEL = ("retrieval", "cfid")  # tests that use each track's own condition vector
SECONDARY = ("cas", "fjd", "cfid")  # reported beside the family when not in it

RULE = (
    "Primary family (pre-registered, one-sided): (a) conditional accuracy above the shuffled-condition null; "
    "(c) cluster NMI above permuted labels; (d) condition sensitivity above the within-z permutation null; "
    "for continuous conditions (audio embeddings, attributes) also (e) retrieval of each cover's own condition "
    "(mean rank score) above its permutation null, (f) FJD and (g) CFID below their shuffled-pairing nulls. "
    "Only the tests that were run form the family; p-values are Holm-adjusted across it at alpha = {alpha}. "
    "A test 'passes' when its adjusted p < alpha AND its effect (improvement over the null mean) is at least "
    "its meaningful margin. "
    "Categorical condition (genre): YES when (a) passes and at least one other primary test passes. "
    "NO when no primary test has adjusted p < alpha, AND the upper 95 % bound of the accuracy effect is below its "
    "margin (a meaningful effect is excluded), AND real test covers beat chance (ceiling p < alpha), so the "
    "instrument could have seen an effect. "
    "Continuous condition: YES when a track-level test ((e) retrieval or (g) CFID) passes and at least one other "
    "primary test passes. NO when no primary test has adjusted p < alpha, AND the upper 95 % bound of the "
    "retrieval effect is below its margin, AND real test covers retrieve their own conditions above chance "
    "(retrieval ceiling p < alpha). "
    "INCONCLUSIVE: anything else (too few samples, wide intervals, conflicting tests, no ceiling). "
    "CAS (and FJD/CFID for a categorical condition) are secondary: reported with their own p-values, never part "
    "of the decision."
)


def _as_dict(r: TestResult | Mapping[str, Any]) -> dict[str, Any]:
    return r.to_dict() if isinstance(r, TestResult) else dict(r)


def _primary_entries(rs: dict[str, dict], family: list[str], alpha: float) -> dict[str, dict[str, Any]]:
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
    return tests


def _secondary_entry(r: dict[str, Any], alpha: float) -> dict[str, Any]:
    return {
        "role": "secondary", "name": r["name"], "value": r["value"], "n": r["n"],
        "p_value": r["p_value"], "p_adjusted": r["p_value"], "significant": bool(r["p_value"] < alpha),
        "effect": r["effect"], "effect_interval": r["effect_interval"], "margin": r["margin"],
        "interval": r["interval"],
    }


def _excludes_margin(r: dict[str, Any]) -> tuple[bool, float | None]:
    """Whether the upper 95 % bound of the effect lies below the margin (a meaningful effect is excluded)."""
    upper = (r.get("effect_interval") or [None, None])[1]
    return upper is not None and r.get("margin") is not None and upper < r["margin"], upper


def conditioning_verdict(
    results: Mapping[str, TestResult | Mapping[str, Any]], alpha: float = ALPHA, *, continuous: bool = False
) -> dict:
    """Decide yes / no / inconclusive from results keyed by "accuracy", "purity", "sensitivity", "retrieval",
    "fjd", "cfid" and "cas" (TestResult or their ``to_dict()``); ``continuous`` selects the rule for condition
    vectors. Returns the decision, the rule, and each test's p, Holm-adjusted p, effect, margin and interval."""
    if "accuracy" not in results:
        raise ValueError("the verdict needs the conditional-accuracy result under key 'accuracy'")
    if continuous and "retrieval" not in results:
        raise ValueError("the verdict for a continuous condition needs the retrieval result under key 'retrieval'")
    rs = {k: _as_dict(v) for k, v in results.items() if v is not None}
    family = [k for k in (PRIMARY_CONTINUOUS if continuous else PRIMARY) if k in rs]
    tests = _primary_entries(rs, family, alpha)
    tests.update({k: _secondary_entry(rs[k], alpha) for k in SECONDARY if k in rs and k not in tests})
    decision, reasons = (_continuous_decision if continuous else _categorical_decision)(rs, tests, family, alpha)
    return {
        "conditioning_works": decision,
        "alpha": alpha,
        "rule": RULE.format(alpha=alpha),
        "kind": "continuous" if continuous else "categorical",
        "reasons": reasons,
        "family": family,
        "tests": tests,
    }


def _categorical_decision(rs, tests, family, alpha) -> tuple[str, list[str]]:  # noqa: ANN001 - dicts above
    acc = rs["accuracy"]
    others_pass = [k for k in family if k != "accuracy" and tests[k]["passes"]]
    any_significant = any(tests[k]["significant"] for k in family)
    ceiling_p = acc.get("details", {}).get("ceiling_p_value")
    ceiling_ok = ceiling_p is not None and ceiling_p < alpha
    excluded, upper = _excludes_margin(acc)
    if tests["accuracy"]["passes"] and others_pass:
        return "yes", [f"accuracy and {', '.join(others_pass)} pass Holm at alpha={alpha} with meaningful effects"]
    if not any_significant and excluded and ceiling_ok:
        return "no", [f"no primary test significant; accuracy effect upper bound {upper:.4f} < margin "
                      f"{acc['margin']:.4f}"]
    reasons = []
    if not ceiling_ok:
        reasons.append("real test covers do not beat chance: the classifier cannot see the condition")
    if not tests["accuracy"]["passes"] and any_significant:
        reasons.append("some primary tests are significant but the required accuracy test does not pass")
    if tests["accuracy"]["passes"] and not others_pass:
        reasons.append("accuracy passes but no second primary test confirms it")
    if not any_significant and not excluded:
        reasons.append("nothing significant, but the accuracy interval still allows a meaningful effect "
                       "(too few samples)")
    return "inconclusive", reasons or ["significant tests without meaningful effects"]


def _continuous_decision(rs, tests, family, alpha) -> tuple[str, list[str]]:  # noqa: ANN001 - dicts above
    ret = rs["retrieval"]
    track_pass = [k for k in TRACK_LEVEL if k in tests and tests[k]["passes"]]
    any_significant = any(tests[k]["significant"] for k in family)
    ceiling_p = ret.get("details", {}).get("ceiling_p_value")
    ceiling_ok = ceiling_p is not None and ceiling_p < alpha
    excluded, upper = _excludes_margin(ret)
    passing = [k for k in family if tests[k]["passes"]]
    if track_pass and len(passing) >= 2:
        return "yes", [f"{', '.join(passing)} pass Holm at alpha={alpha} with meaningful effects (track-level: "
                       f"{', '.join(track_pass)})"]
    if not any_significant and excluded and ceiling_ok:
        return "no", [f"no primary test significant; retrieval effect upper bound {upper:.4f} < margin "
                      f"{ret['margin']:.4f}"]
    reasons = []
    if not ceiling_ok:
        reasons.append("real test covers do not retrieve their own conditions above chance: the instrument cannot "
                       "see the condition")
    if track_pass:
        reasons.append(f"{track_pass[0]} passes but no second primary test confirms it")
    elif any_significant:
        reasons.append("some primary tests are significant but no track-level test (retrieval, CFID) passes")
    if not any_significant and not excluded:
        reasons.append("nothing significant, but the retrieval interval still allows a meaningful effect "
                       "(too few samples)")
    return "inconclusive", reasons or ["significant tests without meaningful effects"]
