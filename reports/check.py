"""Threshold and baseline checks over a run's ``eval/<model>/metrics.json``: the CI guard for the numbers.

Thresholds file (YAML), one block per model, one entry per metric::

    dcgan_cond:
      fid: {max: 250}                         # metrics.fid.value <= 250
      conditional_accuracy: {min: 0.5}        # metrics.conditional_accuracy.value >= 0.5
      conditional_accuracy.p_value: {max: 0.01}
      verdict.conditioning_works: {equals: "yes"}

A name is looked up first among ``metrics`` (a bare metric name means its ``value``; ``metric.field.sub`` walks
into that entry), otherwise from the top of ``metrics.json`` (``verdict.conditioning_works``, ``images_seen``).
Bounds: ``min`` and ``max`` (numbers, inclusive) and ``equals`` (any scalar). A malformed file (bad YAML, a model
that coverbench does not know, a name that ``metrics.json`` lacks, ``min > max``, a non-numeric bound) is the
user's to fix: ``UserError``. So is a gate that checks nothing or less than it seems to: an empty file, a model
listed with no checks, and a key given twice (YAML would silently keep the last one, dropping the first bound).
A model without ``metrics.json`` is a failed check, not a malformed file, and so is every bound of a model whose
evaluation was refused (``refused``: the feature-extractor guard's one-line reason; its FID would mean nothing).
Model names are coverbench's GANs, or a GAN with a ``+suffix`` (``stylegan_cond+pca``: one evaluation folder per
conditioning source). Models judged from outside the toolkit (``bench evaluate --samples``, ``evaluate_images``)
go under an ``external:`` key, so a typo in a toolkit model's name is still caught::

    external:
      my_gan: {verdict.conditioning_works: {equals: "yes"}}

A file written by ``bench calibrate`` also says what it was calibrated for, in a ``calibrated_for`` block
(``dataset``, ``dataset_identity``, ``preset``, ``extractor``; see ``evaluation_facts``). Bounds fitted to one world
mean nothing on another, so such a file is applied only to evaluations that match every recorded fact: ``bench
check`` refuses a run that does not (one line naming the difference), and the report leaves its bounds off
there and says why. Delete the block to apply a file anyway.

Numbers judged against an earlier version of their dataset (replaced since under the same name: ``bench data
synth/import --force``) describe data that is gone: every check (bounds, baseline, writing a baseline) refuses a
model whose metrics.json records another content fingerprint than its dataset's now, naming the ``bench evaluate``
that redoes it (``evaluation_currency``); an older file that records none gets a note instead.

Baselines: ``collect_baseline`` gathers every numeric metric value of a run into one JSON; ``check_thresholds`` with a
baseline fails a metric that got worse by more than ``tolerance`` relative to its baseline value, in its bad
direction (see ``direction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.config.names import MODEL_NAMES, parse_eval_name
from core.errors import UserError
from core.jsonfiles import read_json, read_json_mapping, read_json_object, write_json_atomic
from core.paths import RunPaths
from core.storage import check_writable

BOUND_KEYS = ("min", "max", "equals")
CALIBRATED_FOR = "calibrated_for"
FACTS = ("dataset", "dataset_identity", "preset", "extractor")  # what a calibration is bound to, in this order
LOWER_IS_BETTER = ("fid", "kid", "intra_fid")
HIGHER_IS_BETTER = ("conditional_accuracy", "cas", "precision", "recall", "density", "coverage")
BASELINE_SCHEMA = 1
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class Bound:
    """One threshold: ``path`` in a model's metrics.json must satisfy min <= value <= max and/or == equals."""

    path: str
    min: float | None = None
    max: float | None = None
    equals: Any = None
    has_equals: bool = False

    def describe(self) -> str:
        parts = []
        if self.min is not None and self.max is not None:
            parts.append(f"{_fmt(self.min)} .. {_fmt(self.max)}")
        elif self.min is not None:
            parts.append(f">= {_fmt(self.min)}")
        elif self.max is not None:
            parts.append(f"<= {_fmt(self.max)}")
        if self.has_equals:
            parts.append(f"== {self.equals!r}")
        return ", ".join(parts)


@dataclass(frozen=True)
class CheckResult:
    """One row of the check table. ``kind`` is ``bound``, ``baseline``, ``missing`` or ``refused``."""

    model: str
    path: str
    kind: str
    expected: str
    actual: Any
    ok: bool
    message: str = ""

    def line(self) -> str:
        return f"{self.model} {self.path}: {self.message}"


@dataclass
class CheckReport:
    results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the checks could not tell (see ``evaluation_currency``)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failures


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def metrics_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics`` mapping of a metrics.json document ({} when absent or not a mapping)."""
    metrics = doc.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def read_metrics(run: RunPaths, model: str) -> dict[str, Any] | None:
    path = run.eval(model) / METRICS_FILE
    if not path.is_file():
        return None
    return read_json_object(path, "metrics file", f"evaluate {model} again (`bench evaluate --model {model}`)")


# ---------------------------------------------------------------------------------------------- thresholds file
def is_model_name(name: Any) -> bool:
    """An evaluation folder's name: a model id (a GAN or diffusion name, or ``<conditional model>+<condition>``,
    ``stylegan_cond+pca``), or a diffusion model's at one guidance scale (``diffusion_cond@w0``)."""
    try:
        parse_eval_name(name)
    except (UserError, TypeError):
        return False
    return isinstance(name, str)


EXTERNAL_KEY = "external"  # thresholds: models judged from outside the toolkit are listed under this key


def is_external_name(name: Any) -> bool:
    """A name an outside model may have in a run (a plain folder name that is not a toolkit model id)."""
    from core.paths import check_name

    if not isinstance(name, str) or is_model_name(name):
        return False
    try:
        check_name(name)
    except UserError:
        return False
    return True


def external_models(run: RunPaths) -> list[str]:
    """Evaluation folders of models judged from outside the toolkit (``source`` other than ``toolkit``)."""
    root = run.root / "eval"
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and is_external_name(d.name) and (d / METRICS_FILE).is_file():
            doc = read_metrics(run, d.name)
            if isinstance(doc, dict) and doc.get("source", "toolkit") != "toolkit":
                out.append(d.name)
    return out


def _expand_external(tree: dict, source: str) -> tuple[dict, set[str]]:
    """Lift the ``external:`` block's models to the top level (their names are not toolkit ids)."""
    if EXTERNAL_KEY not in tree:
        return tree, set()
    block = tree[EXTERNAL_KEY]
    if not isinstance(block, dict) or not block:
        raise UserError(f"{source}: {EXTERNAL_KEY}: must map outside models' names to their checks")
    bad = [n for n in block if not is_external_name(n) or n in tree]
    if bad:
        raise UserError(f"{source}: {EXTERNAL_KEY}: {bad[0]!r} is not a name an outside model can have in a run")
    return {**{k: v for k, v in tree.items() if k != EXTERNAL_KEY}, **block}, set(block)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise UserError(f"duplicate key {key!r} at line {line} (first at line {seen[key]})")
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_thresholds(tree: Any, source: str = "thresholds") -> dict[str, list[Bound]]:
    """Validate the structure of a loaded thresholds tree (model -> name -> bounds); names are checked later.

    A gate that checks nothing (no models at all, or a model with no checks) is refused: it would pass CI vacuously.
    """
    if tree is None or tree == {}:
        raise UserError(f"{source}: no checks (the file is empty): a gate that checks nothing would always pass")
    if not isinstance(tree, dict):
        raise UserError(f"{source}: expected a mapping of model -> {{metric: {{min, max, equals}}}}")
    out: dict[str, list[Bound]] = {}
    tree, externals = _expand_external(tree, source)
    for model, block in tree.items():
        if not is_model_name(model) and model not in externals:
            raise UserError(f"{source}: unknown model {model!r} (known: {', '.join(MODEL_NAMES)}, or a "
                            "conditional model+condition, or diffusion_cond@w<guidance scale>; outside models go "
                            f"under {EXTERNAL_KEY}:)")
        if block is None or block == {}:
            raise UserError(f"{source}: {model} is listed with no checks: give at least one, e.g. fid: {{max: 100}}")
        if not isinstance(block, dict):
            raise UserError(f"{source}: {model} must map metric names to bounds, e.g. fid: {{max: 100}}")
        bounds = []
        for path, spec in block.items():
            where = f"{source}: {model}.{path}"
            if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
                raise UserError(f"{source}: {model}: invalid metric name {path!r}")
            if not isinstance(spec, dict) or not spec:
                raise UserError(f"{where}: expected a mapping with min, max and/or equals, got {spec!r}")
            unknown = [k for k in spec if k not in BOUND_KEYS]
            if unknown:
                raise UserError(f"{where}: unknown key(s) {unknown} (use min, max, equals)")
            lo, hi = spec.get("min"), spec.get("max")
            for name, v in (("min", lo), ("max", hi)):
                if name in spec and (not _is_number(v) or not math.isfinite(v)):
                    raise UserError(f"{where}: {name} must be a finite number, got {v!r}")
            if lo is not None and hi is not None and lo > hi:
                raise UserError(f"{where}: min {lo} is greater than max {hi}")
            eq = spec.get("equals")
            if "equals" in spec and isinstance(eq, (dict, list)):
                raise UserError(f"{where}: equals must be a single value, got {eq!r}")
            bounds.append(
                Bound(
                    path,
                    float(lo) if lo is not None else None,
                    float(hi) if hi is not None else None,
                    eq,
                    "equals" in spec,
                )
            )
        out[model] = bounds
    return out


@dataclass(frozen=True)
class Gate:
    """A thresholds file: its bounds per model, and what it was calibrated for (empty: applies to any run)."""

    bounds: dict[str, list[Bound]]
    calibrated_for: dict[str, str] = field(default_factory=dict)
    source: str = "thresholds"


def split_calibrated_for(tree: Any, source: str = "thresholds") -> tuple[Any, dict[str, str]]:
    """(the tree without its ``calibrated_for`` block, that block checked: known facts, string values)."""
    if not isinstance(tree, dict) or CALIBRATED_FOR not in tree:
        return tree, {}
    rest = {k: v for k, v in tree.items() if k != CALIBRATED_FOR}
    block = tree[CALIBRATED_FOR]
    if not isinstance(block, dict) or not block:
        raise UserError(f"{source}: {CALIBRATED_FOR} must map some of {', '.join(FACTS)} to values")
    unknown = [k for k in block if k not in FACTS]
    if unknown:
        raise UserError(f"{source}: {CALIBRATED_FOR} has unknown key(s) {unknown} (known: {', '.join(FACTS)})")
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in block.values()):
        raise UserError(f"{source}: every {CALIBRATED_FOR} value must be a single name, got {block!r}")
    return rest, {k: str(block[k]) for k in FACTS if k in block}


def load_gate(path: str | Path) -> Gate:
    """Read and validate a thresholds YAML file, with its ``calibrated_for`` block (``UserError`` when malformed)."""
    tree = _read_thresholds_tree(Path(path))
    tree, calibrated_for = split_calibrated_for(tree, str(path))
    return Gate(parse_thresholds(tree, str(path)), calibrated_for, str(path))


def load_thresholds(path: str | Path) -> dict[str, list[Bound]]:
    """Read and validate the structure of a thresholds YAML file (``UserError`` when malformed); the bounds only."""
    return load_gate(path).bounds


def _read_thresholds_tree(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"thresholds file {path} not found")
    try:
        tree = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as e:
        raise UserError(f"thresholds file {path} is not UTF-8 text (byte {e.start} cannot be decoded)") from e
    except UserError as e:
        raise UserError(f"thresholds file {path}: {e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"thresholds file {path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from e
    return tree


# ------------------------------------------------------------------------------------- what a gate was fitted to
def evaluation_facts(run: RunPaths, doc: dict[str, Any]) -> dict[str, str | None]:
    """What one model's evaluation was made from, in the terms of ``calibrated_for`` (None: not known).

    ``dataset`` and ``extractor`` come from ``metrics.json``; ``preset`` from the run's config.yaml;
    ``dataset_identity`` (``core.data.info.dataset_identity``) from the dataset of that name, when it is there.
    """
    ext = doc.get("extractor")
    extractor = ext.get("name") if isinstance(ext, dict) else ext
    if extractor is None:  # older or hand-made files: each metric entry names its extractor
        fid = metrics_of(doc).get("fid")
        extractor = fid.get("extractor") if isinstance(fid, dict) else None
    from core.data.info import dataset_identity

    dataset, ds = doc.get("dataset"), judged_dataset(run, doc)
    return {
        "dataset": None if dataset is None else str(dataset),
        "dataset_identity": None if ds is None else dataset_identity(ds),  # gone: not known, so not compared
        "preset": _run_preset(run),
        "extractor": None if extractor is None else str(extractor),
    }


def judged_dataset(run: RunPaths, doc: dict[str, Any]) -> Any:
    """The dataset an evaluation was judged against, as it is now (a ``PreparedDataset``; None when it is gone or
    unreadable): the folder it was opened from when given by path (metrics.json's ``dataset_path``, else the
    training's when it names the same dataset), else the name under the data root."""
    from core.data.prepared import PreparedDataset

    name = doc.get("dataset")
    if not isinstance(name, str) or not name:
        return None
    where = doc.get("dataset_path")
    if where is None and is_model_name(doc.get("model")):
        trained = read_json_mapping(run.model(_model_of(str(doc["model"]))) / "train_config.json") or {}
        where = trained.get("dataset_path") if trained.get("dataset") == name else None
    try:
        return PreparedDataset.open(where if isinstance(where, str) and where else name)
    except (UserError, OSError, ValueError):
        return None


def _model_of(eval_name: str) -> str:
    return parse_eval_name(eval_name)[0]


# -------------------------------------------------------------------------- made from the dataset there now?
def redo_evaluation(run: RunPaths, model: str, doc: dict[str, Any]) -> str:
    """The command that evaluates ``model`` of ``run`` again (its evaluation folder's name: ``diffusion_cond@w2``)."""
    if doc.get("source", "toolkit") != "toolkit":
        return f"re-run `bench evaluate --samples ... --name {model} --run {run.name}` on the dataset there now"
    base, w = parse_eval_name(model)
    return f"re-run `bench evaluate --model {base} --run {run.name}{'' if w is None else f' --guidance {w:g}'}`"


def evaluation_currency(run: RunPaths, model: str, doc: dict[str, Any] | None, fix: str | None = None
                        ) -> tuple[str | None, str | None]:
    """(stale, note) for one evaluation: ``stale`` the one line saying it was judged against an earlier version of
    its dataset (replaced since: ``bench data ... --force``) and ``fix`` (default: re-run ``bench evaluate``);
    ``note`` when it records no content fingerprint (files older than the fingerprint), so that cannot be told.
    (None, None) when it is current, or when its dataset is not named or gone."""
    from core.data.fingerprint import KEY, check_fingerprint

    ds = None if doc is None else judged_dataset(run, doc)
    if ds is None:
        return None, None
    recorded = doc.get(KEY)
    if not isinstance(recorded, str) or not recorded:
        return None, (f"the evaluation of {model} records no dataset fingerprint (an older file): whether dataset "
                      f"{ds.name!r} was replaced since cannot be told; {redo_evaluation(run, model, doc)} to be sure")
    try:
        check_fingerprint(recorded, ds.fingerprint, f"the evaluation of {model} in run {run.name!r}", ds.name,
                          fix or redo_evaluation(run, model, doc))
    except UserError as e:
        return str(e), None
    return None, None


def require_current(run: RunPaths, model: str, doc: dict[str, Any] | None, notes: list[str] | None = None) -> None:
    """UserError when ``model``'s evaluation is stale (see ``evaluation_currency``); its note, if any, to ``notes``."""
    stale, note = evaluation_currency(run, model, doc)
    if stale:
        raise UserError(stale)
    if note and notes is not None and note not in notes:
        notes.append(note)


def _run_preset(run: RunPaths) -> str | None:
    if not run.config.is_file():
        return None
    try:
        tree = yaml.safe_load(run.config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None
    preset = tree.get("preset") if isinstance(tree, dict) else None
    return None if preset is None else str(preset)


def calibration_mismatch(calibrated_for: dict[str, str], facts: dict[str, str | None]) -> str | None:
    """How an evaluation differs from what a gate was calibrated for (None: it matches every known fact)."""
    diffs = [f"{k} {facts[k]!r} (calibrated for {v!r})" for k, v in calibrated_for.items()
             if facts.get(k) is not None and facts[k] != v]
    return "; ".join(diffs) or None


def describe_calibration(calibrated_for: dict[str, str]) -> str:
    """``dataset 'default' (synth:ab12...), preset cpu, covernet features``."""
    c = calibrated_for
    parts = []
    if "dataset" in c or "dataset_identity" in c:
        ident = f" ({c['dataset_identity']})" if "dataset_identity" in c else ""
        parts.append(f"dataset {c.get('dataset', '?')!r}{ident}")
    if "preset" in c:
        parts.append(f"preset {c['preset']}")
    if "extractor" in c:
        parts.append(f"{c['extractor']} features")
    return ", ".join(parts)


def resolve(doc: dict[str, Any], path: str) -> tuple[bool, Any]:
    """Look ``path`` up in a metrics.json document: (found, value). See the module docstring for the rules."""
    metrics = metrics_of(doc)
    parts = path.split(".")
    if parts[0] in metrics:
        node: Any = metrics[parts[0]]
        rest = parts[1:]
    else:
        node, rest = doc, parts
    for p in rest:
        if isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return False, None
    if isinstance(node, dict) and "value" in node:
        node = node["value"]
    return True, node


def known_names(doc: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in metrics_of(doc).items() if isinstance(v, dict) and "value" in v)


def evaluate_bound(model: str, bound: Bound, doc: dict[str, Any] | None, source: str = "thresholds") -> CheckResult:
    """Check one bound against one model's metrics.json (None: the model was not evaluated -> failure)."""
    expected = bound.describe()
    if doc is None:
        return CheckResult(model, bound.path, "missing", expected, None, False, "no metrics.json (not evaluated)")
    if doc.get("refused"):  # the feature-extractor guard refused to judge: no number of it can pass a gate
        return CheckResult(model, bound.path, "refused", expected, None, False, f"evaluation refused: {doc['refused']}")
    found, value = resolve(doc, bound.path)
    if not found:
        raise UserError(
            f"{source}: {model} has no {bound.path!r} in metrics.json "
            f"(metrics: {', '.join(known_names(doc))}; or a path such as verdict.conditioning_works)"
        )
    if isinstance(value, (dict, list)):
        raise UserError(f"{source}: {model}.{bound.path} names a group of values, not one value")
    problems = []
    if bound.min is not None or bound.max is not None:
        if not _is_number(value) or not math.isfinite(value):
            return CheckResult(model, bound.path, "bound", expected, value, False, f"no numeric value ({value!r})")
        if bound.min is not None and value < bound.min:
            problems.append(f"{_fmt(value)} < min {_fmt(bound.min)}")
        if bound.max is not None and value > bound.max:
            problems.append(f"{_fmt(value)} > max {_fmt(bound.max)}")
    if bound.has_equals:
        same = (
            math.isclose(value, bound.equals, rel_tol=1e-9, abs_tol=0.0)
            if _is_number(value) and _is_number(bound.equals)
            else value == bound.equals
        )
        if not same:
            problems.append(f"{value!r} != {bound.equals!r}")
    ok = not problems
    return CheckResult(model, bound.path, "bound", expected, value, ok, "; ".join(problems) or "ok")


def check_bounds(
    run: RunPaths, thresholds: dict[str, list[Bound]], source: str = "thresholds",
    calibrated_for: dict[str, str] | None = None, notes: list[str] | None = None,
) -> list[CheckResult]:
    """Every bound against the run's metrics; a model evaluated otherwise than ``calibrated_for``, or against an
    earlier version of its dataset, is refused (``notes`` gets what cannot be told)."""
    out = []
    for model, bounds in thresholds.items():
        doc = read_metrics(run, model)
        require_current(run, model, doc, notes)
        if doc is not None and calibrated_for:
            diff = calibration_mismatch(calibrated_for, evaluation_facts(run, doc))
            if diff:
                raise UserError(
                    f"{source} was calibrated for {describe_calibration(calibrated_for)}, but run {run.name!r} "
                    f"evaluated {model} with {diff}: calibrate a gate for this run (`bench calibrate`), or delete "
                    f"the {CALIBRATED_FOR} block to apply it anyway"
                )
        out.extend(evaluate_bound(model, b, doc, source) for b in bounds)
    return out


# --------------------------------------------------------------------------------------------------- baselines
def direction(metric: str) -> str:
    """``lower`` (lower is better), ``higher`` (higher is better) or ``both`` (any change counts)."""
    if metric in LOWER_IS_BETTER:
        return "lower"
    if metric in HIGHER_IS_BETTER or metric.endswith("accuracy"):
        return "higher"
    return "both"


def collect_baseline(run: RunPaths) -> dict[str, Any]:
    """Every evaluated model's numeric metric values: {"models": {model: {metric: value}}}, and "notes" when some
    evaluation cannot say which content of its dataset it judged. A stale evaluation is refused: it is no baseline."""
    models: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    eval_root = run.root / "eval"
    for d in sorted(eval_root.iterdir()) if eval_root.is_dir() else []:
        known = is_model_name(d.name) or d.name in external_models(run)
        doc = read_metrics(run, d.name) if d.is_dir() and known else None
        if doc is None:
            continue
        require_current(run, d.name, doc, notes)
        vals = {
            k: float(v["value"])
            for k, v in metrics_of(doc).items()
            if isinstance(v, dict) and _is_number(v.get("value")) and math.isfinite(v["value"])
        }
        models[d.name] = vals
    if not models:
        raise UserError(f"run {run.name!r} has no evaluated models (run `bench evaluate --run {run.name}`)")
    return {"schema_version": BASELINE_SCHEMA, "run": run.name, "models": models, **({"notes": notes} if notes else {})}


def check_output_file(path: str | Path, what: str, example: str) -> Path:
    """``path`` can be written as a file (not a folder; its folder writable): checked before any work, so a typo
    costs nothing. ``example`` is a file name to suggest inside a folder given by mistake."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: give a file name (e.g. {path / example})")
    check_writable(path.parent, what)
    return path


def write_baseline(run: RunPaths, path: str | Path) -> Path:
    path = check_output_file(path, "baseline file", "baseline.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, collect_baseline(run))
    return path


def load_baseline(path: str | Path) -> dict[str, dict[str, float]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"baseline file {path} not found (write one with `bench check --write-baseline {path}`)")
    tree = read_json(path, "baseline file", "write it again with `bench check --write-baseline`")
    models = tree.get("models") if isinstance(tree, dict) else None
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise UserError(f"baseline file {path} has no 'models' mapping: write it with `bench check --write-baseline`")
    for model, values in models.items():
        bad = {k: v for k, v in values.items() if not (_is_number(v) and math.isfinite(v))}
        if bad:
            key, value = next(iter(bad.items()))
            raise UserError(f"baseline file {path}: {model}.{key} is {value!r}, not a finite number "
                            f"({len(bad)} such value(s)): write it again with `bench check --write-baseline`")
    return models


def compare_baseline(
    run: RunPaths, baseline: dict[str, dict[str, float]], tolerance: float, notes: list[str] | None = None
) -> list[CheckResult]:
    """A metric fails when it moved in its bad direction by more than ``tolerance`` x |baseline value|; a stale
    evaluation is refused (``require_current``)."""
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise UserError(f"tolerance must be a finite number >= 0, got {tolerance}")
    out = []
    for model, base in baseline.items():
        doc = read_metrics(run, model)
        require_current(run, model, doc, notes)
        for metric, ref in base.items():
            way = direction(metric)
            allowed = tolerance * abs(ref)
            expected = {"lower": f"<= {_fmt(ref + allowed)}", "higher": f">= {_fmt(ref - allowed)}"}.get(
                way, f"{_fmt(ref - allowed)} .. {_fmt(ref + allowed)}"
            )
            path = f"{metric} (baseline)"
            if doc is None:
                msg = "no metrics.json (not evaluated)"
                out.append(CheckResult(model, path, "missing", expected, None, False, msg))
                continue
            entry = metrics_of(doc).get(metric)
            value = entry.get("value") if isinstance(entry, dict) else None
            if not _is_number(value) or not math.isfinite(value):
                out.append(CheckResult(model, path, "baseline", expected, value, False, "no value now"))
                continue
            change = value - ref
            worse = {"lower": change, "higher": -change}.get(way, abs(change))
            ok = worse <= allowed
            rel = f"{change / abs(ref):+.1%}" if ref else f"{change:+.4g}"
            msg = "ok" if ok else f"{_fmt(value)} vs baseline {_fmt(ref)} ({rel}, tolerance {tolerance:.0%})"
            out.append(CheckResult(model, path, "baseline", expected, value, ok, msg))
    return out


def check_thresholds(
    run: RunPaths,
    thresholds: str | Path | dict[str, list[Bound]] | Gate | None = None,
    *,
    baseline: str | Path | dict[str, dict[str, float]] | None = None,
    tolerance: float = 0.1,
) -> CheckReport:
    """All threshold and baseline checks of ``run``; malformed inputs raise ``UserError``."""
    report = CheckReport()
    if thresholds is not None:
        gate = thresholds if isinstance(thresholds, Gate) else (
            Gate(thresholds) if isinstance(thresholds, dict) else load_gate(thresholds))
        report.results.extend(check_bounds(run, gate.bounds, gate.source, gate.calibrated_for, report.notes))
    if baseline is not None:
        base = baseline if isinstance(baseline, dict) else load_baseline(baseline)
        report.results.extend(compare_baseline(run, base, tolerance, report.notes))
    return report


# ------------------------------------------------------------------------------------------- interval coverage
def interval_violations(tree: Any, path: str = "", tol: float = 1e-9) -> list[str]:
    """Every interval in a metrics tree that does not contain its own estimate, as ``path: value not in [lo, hi]``.

    Pairs: ``value`` with ``interval``, and any ``X`` with ``X_interval`` in the same mapping (``effect`` with
    ``effect_interval``, ``ceiling`` with ``ceiling_interval``, ...). A missing or non-numeric side is skipped; a
    pair with an ``X_interval_note`` beside it (saying why the interval may exclude the estimate) is reported only
    when that note is empty. ``tol`` is relative to the interval's scale (floating-point round-off).
    """
    out: list[str] = []
    if isinstance(tree, dict):
        for key, bounds in tree.items():
            if not isinstance(key, str) or not (key == "interval" or key.endswith("_interval")):
                continue
            name = "value" if key == "interval" else key[: -len("_interval")]
            value = tree.get(name)
            if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(_is_number(b) for b in bounds)):
                continue
            if not _is_number(value) or tree.get(f"{key}_note"):
                continue
            lo, hi = float(bounds[0]), float(bounds[1])
            slack = tol * max(1.0, abs(lo), abs(hi))
            if not (lo - slack <= value <= hi + slack):
                where = f"{path}.{name}" if path else name
                out.append(f"{where}: {value:.6g} not in [{lo:.6g}, {hi:.6g}]")
        for key, sub in tree.items():
            out.extend(interval_violations(sub, f"{path}.{key}" if path else str(key), tol))
    elif isinstance(tree, list):
        for i, sub in enumerate(tree):
            out.extend(interval_violations(sub, f"{path}[{i}]", tol))
    return out
