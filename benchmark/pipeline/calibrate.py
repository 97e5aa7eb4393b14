"""``bench calibrate``: CI thresholds from the spread of several seeds, by a written rule, not from one run.

One run on one machine says little about the next machine: CPU kernels differ, a few hundred GAN steps diverge,
and the numbers move about as much as they do between seeds. So the gate is fitted to N seeds (runs ``P0 .. P{N-1}``,
each trained and evaluated with ``seed``, ``train.seed`` and ``eval.seed`` = its seed, or read where they exist) and
every bound follows from what was observed. Per model, over the N seeds (mean m, sample sd s, min, max):

- ``fid``: max = max + max(3 s, 0.25 m). 3 sd covers the seed-to-seed spread; the 25 % floor covers what a handful
  of seeds on one machine under-samples (another CPU's kernels, library versions; an sd from 5 seeds can be half
  the true one).
- Conditional models (``metrics.json`` ``conditional: true``):
  - ``verdict.conditioning_works`` equals "yes" only if every seed said "yes"; otherwise there is no verdict bound
    and a warning (a gate that fails on its own calibration runs measures noise; lengthen the schedule instead).
  - ``conditional_accuracy`` min = max(null + margin, min - 3 s), never above the lowest observed accuracy.
    null and margin are the largest of the seeds' ``null_mean`` and ``margin`` (the effect the verdict calls
    meaningful), so the bound never sits at chance, where a model ignoring its condition would pass it.
  - ``conditional_accuracy.p_value`` max = alpha (0.01, the verdict's level) when every seed was below it.
- Unconditional models (the negative control):
  - ``verdict.conditioning_works`` equals "no", always: that is what they are there to show. A seed that said
    otherwise is reported as a warning (and the gate fails on that run until the schedule or n changes).
  - ``conditional_accuracy`` max = max(null + margin, max observed): above null + margin the control "sees" a
    condition it never got.
  - ``conditional_accuracy.p_value`` min = 0.001. Under the null the p-value is uniform, so a min of alpha would
    fail 1 % of honest CI runs per model; "no" already holds the Holm-corrected family at alpha, and 0.001 only adds
    a catch for an unmistakable leak.

The runs must have been evaluated on one dataset, with one extractor and one preset (a spread over two worlds is
not a spread): otherwise refused. The file records them in a ``calibrated_for`` block, and is then applied only to
evaluations that match (``reports.check``). Fewer than 2 seeds cannot give a spread: refused. After writing, the
file is checked against every run it came from (``self_check``): a bound that fails there is a warning, never
silently shipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import paths
from core.config.load import deep_merge, validate
from core.config.names import MODEL_NAMES, is_model_id
from core.config.schema import Config
from core.errors import UserError
from core.jsonfiles import read_json_object
from core.paths import RunPaths
from reports.check import CALIBRATED_FOR, check_output_file

ALPHA = 0.01
UNCOND_P_MIN = 0.001
FID_SD_FACTOR = 3.0
FID_REL_FLOOR = 0.25
ACC_SD_FACTOR = 3.0
MIN_SEEDS = 2
METRICS_FILE = "metrics.json"

RULE = f"""\
Bounds follow from the spread over the seeds (mean m, sample sd s, min, max), by benchmark/pipeline/calibrate.py:
  fid max                                = max + max({FID_SD_FACTOR:g} s, {FID_REL_FLOOR:g} m)
  conditional: verdict equals "yes"      only if every seed said "yes" (else no verdict bound, and a warning)
  conditional: accuracy min              = max(null + margin, min - {ACC_SD_FACTOR:g} s), never above the lowest seen
  conditional: accuracy p_value max      = {ALPHA:g} (the verdict's alpha) when every seed was below it
  unconditional: verdict equals "no"     always (the negative control)
  unconditional: accuracy max            = max(null + margin, max seen)
  unconditional: accuracy p_value min    = {UNCOND_P_MIN:g} (p is uniform under the null: {ALPHA:g} fails 1 % of runs)
null and margin: the largest over the seeds of conditional_accuracy.null_mean and .margin. A model conditioned on
a continuous vector (the music) is gated on its track-level retrieval score instead of the class accuracy."""


@dataclass
class ModelSpread:
    """One model's gated numbers over the seeds (one entry per seed, in seed order)."""

    model: str
    conditional: bool
    key: str = "conditional_accuracy"  # the gated conditioning metric: "retrieval" for continuous conditions
    seeds: list[int] = field(default_factory=list)
    fid: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    p_value: list[float] = field(default_factory=list)
    null: list[float] = field(default_factory=list)
    margin: list[float] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


@dataclass
class Calibration:
    """What ``calibrate`` measured and wrote."""

    runs: list[str]
    spreads: dict[str, ModelSpread]
    thresholds: dict[str, dict[str, dict[str, Any]]]
    warnings: list[str]
    text: str
    out: Path | None = None
    calibrated_for: dict[str, str] = field(default_factory=dict)


def _stats(xs: Sequence[float]) -> tuple[float, float, float, float]:
    a = np.asarray(xs, dtype=np.float64)
    sd = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return float(a.mean()), sd, float(a.min()), float(a.max())


def _ceil(x: float, digits: int) -> float:
    f = 10.0**digits
    return math.ceil(x * f - 1e-9) / f


def _floor(x: float, digits: int) -> float:
    f = 10.0**digits
    return math.floor(x * f + 1e-9) / f


# --------------------------------------------------------------------------------------------------- reading runs
def _number(doc: dict[str, Any], *path: str) -> float | None:
    node = _field(doc, *path)
    ok = isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node)
    return float(node) if ok else None


def _field(doc: dict[str, Any], *path: str) -> Any:
    """``doc[path[0]][path[1]]...``, None where a step is missing or not a mapping (hand-edited files)."""
    node: Any = doc
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return node


def _model_order(name: str) -> tuple[int, str]:
    base = name.partition("+")[0]
    return (MODEL_NAMES.index(base) if base in MODEL_NAMES else len(MODEL_NAMES), name)


def condition_metric(doc: dict[str, Any]) -> str:
    """The conditioning metric a model is gated on: track-level retrieval for a continuous condition (class
    accuracy over k-means clusters is only a coarse stand-in there), conditional accuracy otherwise."""
    return "retrieval" if doc.get("condition_kind") == "continuous" else "conditional_accuracy"


def evaluated_models(run: RunPaths) -> dict[str, dict[str, Any]]:
    """Every ``eval/<model>/metrics.json`` of ``run`` (folder names as they are, ``+`` suffixes included)."""
    root = run.root / "eval"
    out = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        f = d / METRICS_FILE
        if d.is_dir() and f.is_file() and is_model_id(d.name):
            out[d.name] = read_json_object(f, "metrics file", f"evaluate {d.name} again (run {run.name})")
    return out


def calibrated_for(runs: Sequence[tuple[int, RunPaths]], docs: dict[int, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """What every evaluation of the runs was made from (``reports.check.FACTS``): one dataset, one extractor,
    one preset. Runs that differ in any of them are refused, naming which run holds what."""
    from reports.check import FACTS, evaluation_facts

    seen: dict[str, dict[str, list[str]]] = {k: {} for k in FACTS}
    for seed, rp in runs:
        for model, doc in docs[seed].items():
            for key, value in evaluation_facts(rp, doc).items():
                if value is not None:
                    seen[key].setdefault(value, []).append(f"{rp.name}/{model}")
    for key, values in seen.items():
        if len(values) > 1:
            which = "; ".join(f"{v!r} in {', '.join(sorted(set(w))[:3])}{' ...' if len(set(w)) > 3 else ''}"
                              for v, w in sorted(values.items()))
            raise UserError(f"the runs were evaluated with different {key.replace('_', ' ')}s ({which}): thresholds "
                            "fitted over two of them would gate neither; calibrate each set of runs on its own")
    return {k: next(iter(v)) for k, v in seen.items() if v}


def check_current(run: RunPaths) -> None:
    """UserError when an evaluation of ``run`` was computed on content of its dataset that was replaced since
    (``bench data ... --force``): its numbers describe data that is gone, so they must not join a spread."""
    from reports.check import evaluation_currency

    for model, doc in evaluated_models(run).items():  # a dataset that is gone: nothing to compare with
        stale, _ = evaluation_currency(run, model, doc, "train and evaluate the seeds again under another --run-prefix")
        if stale:
            raise UserError(stale)


def collect_spreads(
    runs: Sequence[tuple[int, RunPaths]], docs: dict[int, dict[str, dict[str, Any]]] | None = None
) -> tuple[dict[str, ModelSpread], list[str]]:
    """Per model, the gated numbers of every run; a model absent from some run is left out with a warning."""
    docs = docs if docs is not None else {seed: evaluated_models(rp) for seed, rp in runs}
    for seed, rp in runs:
        if not docs[seed]:
            raise UserError(f"run {rp.name!r} has no evaluated models (eval/<model>/{METRICS_FILE})")
    names = sorted({m for d in docs.values() for m in d}, key=_model_order)
    warnings: list[str] = []
    spreads: dict[str, ModelSpread] = {}
    for name in names:
        missing = [rp.name for seed, rp in runs if name not in docs[seed]]
        if missing:
            warnings.append(f"{name}: not evaluated in {', '.join(missing)}; left out of the thresholds")
            continue
        first = docs[runs[0][0]][name]
        s = ModelSpread(name, bool(first.get("conditional", name.partition("+")[0].endswith("_cond"))),
                        key=condition_metric(first))
        key = s.key
        for seed, rp in runs:
            doc = docs[seed][name]
            if doc.get("refused"):
                raise UserError(f"run {rp.name!r}: the evaluation of {name} was refused ({doc['refused']}); "
                                "nothing to calibrate on until its feature extractor can see")
            fid = _number(doc, "metrics", "fid", "value")
            acc = _number(doc, "metrics", key, "value")
            if fid is None or acc is None:
                raise UserError(f"run {rp.name!r}: {name} has no finite fid or {key} in {METRICS_FILE}")
            s.seeds.append(seed)
            s.fid.append(fid)
            s.accuracy.append(acc)
            p = _number(doc, "metrics", key, "p_value")
            s.p_value.append(p if p is not None else float("nan"))
            s.null.append(_number(doc, "metrics", key, "null_mean") or 0.0)
            s.margin.append(_number(doc, "metrics", key, "margin") or 0.0)
            s.verdicts.append(str(_field(doc, "verdict", "conditioning_works")))
        spreads[name] = s
    if not spreads:
        raise UserError("no model was evaluated in every run: nothing to calibrate")
    return spreads, warnings


# ------------------------------------------------------------------------------------------------------ the rule
def bounds_for(s: ModelSpread) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The thresholds of one model by the module's rule, and the warnings it raised."""
    warn: list[str] = []
    out: dict[str, dict[str, Any]] = {}
    f_mean, f_sd, _, f_max = _stats(s.fid)
    out["fid"] = {"max": _ceil(f_max + max(FID_SD_FACTOR * f_sd, FID_REL_FLOOR * f_mean), 1)}
    _, a_sd, a_min, a_max = _stats(s.accuracy)
    null, margin = max(s.null), max(s.margin)
    ps = [p for p in s.p_value if math.isfinite(p)]
    counts = {v: s.verdicts.count(v) for v in sorted(set(s.verdicts))}
    if s.conditional:
        lo = min(a_min, max(null + margin, a_min - ACC_SD_FACTOR * a_sd))
        out[s.key] = {"min": max(0.0, _floor(lo, 3))}
        if len(ps) == len(s.p_value) and max(ps) < ALPHA:
            out[f"{s.key}.p_value"] = {"max": ALPHA}
        if all(v == "yes" for v in s.verdicts):
            out["verdict.conditioning_works"] = {"equals": "yes"}
        else:
            warn.append(
                f"{s.model}: verdicts {counts} over {len(s.seeds)} seeds, not all 'yes': no verdict bound "
                "(train longer or evaluate more covers until every seed says yes)"
            )
        if a_min < null + margin:
            warn.append(f"{s.model}: lowest {s.key} {a_min:.3f} is below null + margin {null + margin:.3f}")
    else:
        out["conditional_accuracy"] = {"max": _ceil(max(null + margin, a_max), 3)}
        out["conditional_accuracy.p_value"] = {"min": UNCOND_P_MIN}
        out["verdict.conditioning_works"] = {"equals": "no"}
        bad = [f"seed {seed}: {v}" for seed, v in zip(s.seeds, s.verdicts, strict=True) if v != "no"]
        if bad:
            warn.append(f"{s.model}: the negative control did not say 'no' ({', '.join(bad)}); the gate fails there")
    return out, warn


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def describe_bounds(block: dict[str, dict[str, Any]]) -> str:
    """One model's bounds on one line: ``fid <= 71.5, conditional_accuracy >= 0.305, ...``."""
    ops = {"min": ">=", "max": "<=", "equals": "=="}
    return ", ".join(f"{path} {ops[k]} {v}" for path, spec in block.items() for k, v in spec.items())


def _spread_comment(s: ModelSpread) -> list[str]:
    lines = []
    for label, xs in (("fid", s.fid), ("accuracy", s.accuracy), ("null", s.null)):
        m, sd, lo, hi = _stats(xs)
        lines.append(f"#   {label:<9} mean {_fmt(m)}  sd {_fmt(sd)}  min {_fmt(lo)}  max {_fmt(hi)}")
    ps = [p for p in s.p_value if math.isfinite(p)]
    if ps:
        lines.append(f"#   p_value   min {_fmt(min(ps))}  max {_fmt(max(ps))}")
    counts = ", ".join(f"{v} {s.verdicts.count(v)}" for v in ("yes", "no", "inconclusive") if v in s.verdicts)
    others = sorted(set(s.verdicts) - {"yes", "no", "inconclusive"})
    counts += "".join(f", {v} {s.verdicts.count(v)}" for v in others)
    lines.append(f"#   verdicts  {counts} (of {len(s.verdicts)})")
    return lines


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    return repr(float(v)) if isinstance(v, float) else str(v)


def render(
    thresholds: dict[str, dict[str, dict[str, Any]]],
    spreads: dict[str, ModelSpread],
    runs: Sequence[str],
    warnings: Sequence[str],
    note: str = "",
    made_for: dict[str, str] | None = None,
) -> str:
    """The thresholds file: the rule and the measured spread as comments, what it was calibrated for, then one
    flow-style bound per line."""
    head = [
        "# CI thresholds written by `bench calibrate` from the spread over "
        f"{len(runs)} seeds (runs {', '.join(runs)}).",
        "# Check a run with `bench check --thresholds THIS_FILE --run RUN`.",
        *(f"# {ln}" if ln else "#" for ln in note.splitlines()),
        "#",
        *(f"# {ln}" for ln in RULE.splitlines()),
    ]
    if warnings:
        head += ["#", "# Warnings when this file was written:", *(f"#   {w}" for w in warnings)]
    body = []
    if made_for:
        body += ["", "# Applied only to evaluations of this dataset, preset and extractor (bench check refuses others)",
                 f"{CALIBRATED_FOR}:", *(f"  {k}: {_yaml_scalar(v)}" for k, v in made_for.items())]
    for model, block in thresholds.items():
        s = spreads[model]
        body += ["", f"# {model} ({'conditional' if s.conditional else 'unconditional'}), measured over "
                 f"{len(s.seeds)} seeds:", *_spread_comment(s), f"{model}:"]
        for path, spec in block.items():
            inner = ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in spec.items())
            body.append(f"  {path}: {{{inner}}}")
    return "\n".join(head + body) + "\n"


# -------------------------------------------------------------------------------------------------- orchestration
def seed_config(cfg: Config, seed: int, run_prefix: str) -> Config:
    """``cfg`` with every seed that shapes training and evaluation set to ``seed``, in run ``{prefix}{seed}``."""
    values = {"seed": seed, "run": f"{run_prefix}{seed}", "train": {"seed": seed}, "eval": {"seed": seed}}
    return validate(deep_merge(cfg.model_dump(mode="json", by_alias=True), values))


def train_and_evaluate(cfg: Config) -> None:
    """The cpu pipeline for one seed: ``train all`` then ``evaluate all`` (the only calls into training/evaluation)."""
    from benchmark.pipeline.evaluate import evaluate_model, models_to_evaluate, trained_on
    from benchmark.pipeline.locks import run_lock
    from benchmark.pipeline.train import train_all
    from core.data.prepared import PreparedDataset

    rp = paths.run(cfg.run)
    with run_lock(rp):
        train_all(PreparedDataset.open(cfg.data.name), rp, cfg)
        for m in models_to_evaluate(rp, cfg):  # as `bench evaluate --model all`
            evaluate_model(PreparedDataset.open(trained_on(rp, m)), rp, m, cfg.eval, device_kind=cfg.device)


def seed_warnings(runs: Sequence[RunPaths]) -> list[str]:
    """A spread measured over runs that share their training or evaluation seed is not a spread: say so."""
    import yaml

    out = []
    train_seeds, eval_seeds = set(), set()
    for rp in runs:
        if rp.config.is_file():
            try:
                tree = yaml.safe_load(rp.config.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                raise UserError(f"{rp.config} is not readable YAML ({e}): train run {rp.name} again") from None
            train_seeds.add(((tree.get("train") or {}) if isinstance(tree, dict) else {}).get("seed"))
        for doc in evaluated_models(rp).values():
            eval_seeds.add(_field(doc, "seeds", "eval"))
    if len(runs) > 1 and len(train_seeds) == 1 and len([rp for rp in runs if rp.config.is_file()]) == len(runs):
        out.append(f"every run was trained with train.seed {train_seeds.pop()}: the spread misses training noise")
    if len(runs) > 1 and len(eval_seeds) == 1 and None not in eval_seeds:
        out.append(f"every run was evaluated with eval seed {eval_seeds.pop()}: the spread misses evaluation noise")
    return out


def self_check(thresholds: dict[str, dict[str, dict[str, Any]]], runs: Sequence[RunPaths]) -> list[str]:
    """Every failure of the written gate on the runs it was fitted to (an empty list when it holds on all)."""
    from reports.check import check_thresholds, parse_thresholds

    bounds = parse_thresholds(thresholds, "calibrated thresholds")
    return [f"{rp.name}: {f.line()}" for rp in runs for f in check_thresholds(rp, bounds).failures]


def calibrate(
    cfg: Config,
    seeds: int,
    run_prefix: str,
    out: str | Path | None = None,
    *,
    reuse: bool = False,
    from_runs: bool = False,
    note: str = "",
    on_seed: Callable[[int, str], None] | None = None,
) -> Calibration:
    """Train and evaluate (or read) seeds 0..N-1 in runs ``{run_prefix}{seed}``, then write the thresholds.

    ``from_runs``: only read runs that exist (no training). ``reuse``: read a run that already holds evaluations
    and train/evaluate only the others; without it an existing run is refused rather than mixed into a new set.
    ``on_seed(seed, what)`` reports progress ("read" or "train").
    """
    if seeds < MIN_SEEDS:
        raise UserError(f"--seeds {seeds}: at least {MIN_SEEDS} seeds are needed for a spread (5 or more advised)")
    if out is not None:  # before any training: a folder or an unwritable place found after an hour is an hour lost
        out = check_output_file(out, "thresholds file", "thresholds.yaml")
    runs = [(s, paths.run(f"{run_prefix}{s}")) for s in range(seeds)]
    for seed, rp in runs:
        have = bool(evaluated_models(rp))
        if from_runs or (reuse and have):
            if not have:
                raise UserError(f"run {rp.name!r} has no evaluated models: train and evaluate it (drop --from-runs)")
            check_current(rp)
            if on_seed:
                on_seed(seed, "read")
            continue
        if rp.root.exists() and any(rp.root.iterdir()) and not reuse:
            raise UserError(f"run {rp.name!r} exists: pass --reuse to read or complete it, or choose another prefix")
        if on_seed:
            on_seed(seed, "train")
        train_and_evaluate(seed_config(cfg, seed, run_prefix))
    docs = {seed: evaluated_models(rp) for seed, rp in runs}
    made_for = calibrated_for(runs, docs)
    spreads, warnings = collect_spreads(runs, docs)
    warnings.extend(seed_warnings([rp for _, rp in runs]))
    thresholds: dict[str, dict[str, dict[str, Any]]] = {}
    for name, s in spreads.items():
        thresholds[name], w = bounds_for(s)
        warnings.extend(w)
    warnings.extend(f"the written gate fails on {x}" for x in self_check(thresholds, [rp for _, rp in runs]))
    names = [rp.name for _, rp in runs]
    text = render(thresholds, spreads, names, warnings, note, made_for)
    result = Calibration(names, spreads, thresholds, warnings, text, calibrated_for=made_for)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
        result.out = out
    return result
