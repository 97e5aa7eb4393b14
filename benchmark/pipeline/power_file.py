"""``eval/power.json``: read and checked before a sweep, merged so that no valid row is ever dropped, and summarised
(q* and the false-positive rates, from the rows shown).

Every row measured is kept, keyed by (dataset, extractor, condition, q, n, seeds), in ``sweeps``: one section per
(dataset, extractor) with its dataset's content fingerprint, its conditions' metadata and every row. The top level
is what the report and the CLI show: the section of the latest sweep, with one row per (condition, q, n), the one
with the most seeds (the narrowest interval), and q* and the false-positive rates computed from those rows.

Rows are dropped only when they no longer describe anything: rows of a dataset replaced since under the same name
(its content fingerprint changed) and, for one condition, rows measured another way (another test family,
permutation count, label kind) when that condition is swept again. Each drop is said in ``notes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.data.fingerprint import KEY as FINGERPRINT
from core.data.fingerprint import is_stale
from core.errors import UserError
from core.paths import RunPaths
from metrics.conditioning.verdict import ALPHA

SCHEMA = 2  # 2: every row kept in sweeps, by (dataset, extractor), with the dataset's content fingerprint
SAME_WAY = ("family", "n_permutations", "labels", "kind")
ROW_KEYS = ("condition", "strength", "n", "seeds")
FIX = "move it aside (or delete it) and run bench power again; nothing was computed"
POWER_FILE = "power.json"
TARGET_POWER = 0.8  # q*: the smallest strength whose yes-rate reaches this


def q_star(rows: Sequence[dict[str, Any]], condition: str, target: float = TARGET_POWER) -> dict[str, float | None]:
    """Per n, the smallest strength whose yes-rate reaches ``target`` (None: not reached at any strength run)."""
    out: dict[str, float | None] = {}
    for n in sorted({r["n"] for r in rows if r["condition"] == condition}):
        hit = [r["strength"] for r in rows if r["condition"] == condition and r["n"] == n and r["yes"] >= target]
        out[str(n)] = min(hit) if hit else None
    return out


def q_star_sentence(condition: str, qs: dict[str, float | None]) -> str:
    parts = [f"n = {n}: q* = {q:g}" if q is not None else f"n = {n}: q* above every strength tried"
             for n, q in qs.items()]
    return f"{condition}: at your n, conditioning weaker than q* goes unseen ({'; '.join(parts)})."


def false_positive(rows: Sequence[dict[str, Any]], condition: str, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """The q = 0 rows: false "yes" rate, its Wilson interval, and whether the point estimate exceeds alpha."""
    return [{"n": r["n"], "rate": r["yes"], "interval": r["yes_interval"], "seeds": r["seeds"],
             "exceeds_alpha": r["yes"] > alpha}
            for r in rows if r["condition"] == condition and r["strength"] == 0.0]


def row_key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in ROW_KEYS)


def read_power(run: RunPaths) -> dict[str, Any] | None:
    """The run's power.json, checked (None when there is none): a damaged file is one line before any work."""
    path = run.root / "eval" / POWER_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: {FIX}") from None
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({getattr(e, 'msg', e)}): {FIX}") from None
    problem = _problem(doc)
    if problem:
        raise UserError(f"{path} is not a power.json ({problem}): {FIX}")
    return doc


def _problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, not an object"
    for where, section in [("the top level", doc), *((f"sweep {i}", s) for i, s in enumerate(doc.get("sweeps", [])))]:
        if not isinstance(section, dict):
            return f"{where} is not an object"
        rows = section.get("rows", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in ROW_KEYS) for r in rows):
            return f"{where}: rows must be objects with {', '.join(ROW_KEYS)}"
        if not isinstance(section.get("conditions", {}), dict):
            return f"{where}: conditions must be an object"
    if not isinstance(doc.get("sweeps", []), list):
        return "sweeps must be a list"
    return None


def _sections(old: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every (dataset, extractor) section of an earlier file (one written before sections: its top level)."""
    if not old:
        return []
    if "sweeps" in old:
        return [dict(s) for s in old["sweeps"]]
    keys = ("dataset", FINGERPRINT, "extractor", "preprocessing", "conditions", "rows")
    return [{k: old.get(k) for k in keys}] if old.get("rows") else []


def shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (condition, q, n): the one with the most seeds."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = (r["condition"], r["strength"], r["n"])
        if k not in best or r["seeds"] > best[k]["seeds"]:
            best[k] = r
    return sorted(best.values(), key=lambda r: (r["condition"], r["n"], r["strength"]))


def _drop_stale(sections: list[dict[str, Any]], new: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    keep = []
    for s in sections:
        if s.get("dataset") == new["dataset"] and is_stale(s.get(FINGERPRINT), new[FINGERPRINT]):
            notes.append(f"dropped {len(s.get('rows') or [])} rows ({s.get('extractor')} features) measured on an "
                         f"earlier version of dataset {new['dataset']!r}, replaced since")
            continue
        keep.append(s)
    return keep


def merge_power(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` (one condition of one sweep) merged into ``old``: its rows replace those of the same key, every
    other row is kept (see the module's docstring for the two exceptions, each said in ``notes``)."""
    cond, notes = new["condition_names"][0], []
    sections = _drop_stale(_sections(old), new, notes)
    sec = next((s for s in sections if (s.get("dataset"), s.get("extractor")) == (new["dataset"], new["extractor"])),
               None)
    if sec is None:
        sec = {"dataset": new["dataset"], "extractor": new["extractor"], "conditions": {}, "rows": []}
        sections.append(sec)
    sec.update({FINGERPRINT: new[FINGERPRINT], "preprocessing": new.get("preprocessing")})
    prev, meta = (sec.get("conditions") or {}).get(cond), new["conditions"][cond]
    same_way = prev is None or all(prev.get(k) == meta.get(k) for k in SAME_WAY)
    earlier = [r for r in sec.get("rows") or [] if r["condition"] == cond]
    if not same_way and earlier:
        differ = ", ".join(k for k in SAME_WAY if prev.get(k) != meta.get(k))
        notes.append(f"replaced {len(earlier)} earlier {cond} rows measured another way ({differ} differ)")
    measured = {row_key(r) for r in new["rows"]}
    kept = [r for r in sec.get("rows") or [] if r["condition"] != cond or (same_way and row_key(r) not in measured)]
    sec["rows"] = sorted(kept + new["rows"], key=lambda r: (r["condition"], r["n"], r["strength"], r["seeds"]))
    shown = shown_rows(sec["rows"])
    meta = {**meta, "q_star": q_star(shown, cond), "false_positive": false_positive(shown, cond)}
    meta["sentence"] = q_star_sentence(cond, meta["q_star"])
    if same_way and prev is not None and any(r["condition"] == cond for r in kept):
        meta["seconds"] = round(meta["seconds"] + float(prev.get("seconds") or 0.0), 1)
    sec["conditions"] = {**{k: v for k, v in (sec.get("conditions") or {}).items() if k != cond}, cond: meta}
    merged = {**new, "schema_version": SCHEMA, "rows": shown, "conditions": sec["conditions"]}
    merged["condition_names"] = sorted(merged["conditions"])
    for key in ("family", "n_permutations", "q_star"):
        merged[key] = {c: m[key] for c, m in merged["conditions"].items()}
    merged.update(sweeps=sections, notes=notes)
    return merged
