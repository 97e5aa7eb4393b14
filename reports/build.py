"""``build_report``: a run's outputs (metrics, samples, stats, encoders, dataset) as a static HTML folder.

The folder is self-contained: CSS and the little sorting script are inline, images are copied into ``img/`` and
referenced relatively, nothing is fetched from the network, so it opens from ``file://`` and can be zipped or
published as CI artefact. Every template is rendered with autoescaping on: names that come from data (artists,
albums, genres, rejected inputs) always stay text.

Anything a run lacks (no encoders, a model not evaluated yet, a dataset that moved) becomes a "not available"
note that says which command produces it; the report itself never fails for a missing part.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, Undefined

from core import __version__
from core.config.names import AUDIO_ENCODERS, model_ids_in, ordered_model_ids, parse_eval_name
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.jsonfiles import read_json_mapping as _read_json
from core.paths import RunPaths, configs_dir
from core.progress import track
from models.encoders.base import ENCODER_NAMES, OPTIONAL_ENCODERS, TABLE_ENCODERS
from reports import environment
from reports.check import (
    Bound,
    CheckResult,
    Gate,
    calibration_mismatch,
    describe_calibration,
    evaluate_bound,
    evaluation_currency,
    evaluation_facts,
    external_models,
    load_gate,
)
from reports.dose import dose_responses
from reports.pictures import cover_grid, sample_strip
from reports.plots import power_curves, read_stats, training_curves

TEMPLATES = Path(__file__).resolve().parent / "templates"
REJECTED_SHOWN = 200
TRACKS_SHOWN = 25
PAGES = (("index.html", "Leaderboard"), ("music.html", "Music as condition"), ("encoders.html", "Encoders"),
         ("data.html", "Data"), ("environment.html", "Environment"))  # fmt: skip
# audio encoders first (the study's question), then the table-only conditions, then the optional pretrained ones
ENCODER_ORDER = (*(n for n in AUDIO_ENCODERS if n in ENCODER_NAMES), *TABLE_ENCODERS, *OPTIONAL_ENCODERS)


# ------------------------------------------------------------------------------------------------ formatting
def _num(x: Any, digits: int = 4) -> str:
    if x is None or isinstance(x, Undefined):
        return "–"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        return f"{x:.{digits}g}"
    return str(x)


def _pval(x: Any) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return "–"
    return f"{x:.2g}" if x >= 1e-4 else f"{x:.1e}"


def _interval(iv: Any, digits: int = 3) -> str:
    if not isinstance(iv, (list, tuple)) or len(iv) != 2 or any(v is None for v in iv):
        return "–"
    return f"[{_num(iv[0], digits)}, {_num(iv[1], digits)}]"


def _duration(s: Any) -> str:
    if not isinstance(s, (int, float)) or isinstance(s, bool):
        return "–"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _sortkey(x: Any) -> str:
    """``data-value`` for sortable cells: the raw number, or empty (sorted last) when missing."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return ""
    return repr(float(x))


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name: data never becomes markup
        undefined=ChainableUndefined,  # a field an older metrics.json lacks renders as a dash, not a crash
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pval=_pval, interval=_interval, duration=_duration, sortkey=_sortkey)
    return env


# ------------------------------------------------------------------------------------------------ reading
def _read_config(run: RunPaths) -> tuple[str | None, dict[str, Any]]:
    if not run.config.is_file():
        return None, {}
    text = run.config.read_text(encoding="utf-8")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError:
        tree = None
    return text, tree if isinstance(tree, dict) else {}


def _seeds(tree: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            key = f"{prefix}{k}"
            if k == "seed" and not isinstance(v, dict):
                out[key] = v
            else:
                out.update(_seeds(v, f"{key}."))
    return out


def _model_names(run: RunPaths, config: dict[str, Any]) -> list[str]:
    """Models with a training folder or an evaluation, in the config's order, then the rest sorted."""
    found = model_ids_in(run.root / "models") | model_ids_in(run.root / "eval")
    return ordered_model_ids(found, list((config.get("train") or {}).get("models") or [])) + external_models(run)


class _Images:
    """Copies images into ``report/img/`` and hands back their relative paths (None when the source is missing)."""

    def __init__(self, root: Path):
        self.root = root
        self.widths: dict[str, int] = {}

    def __call__(self, src: Path | None, *parts: str, upscale: bool = False) -> str | None:
        if src is None or not Path(src).is_file():
            return None
        dest = self.root.joinpath("img", *parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        rel = "/".join(("img", *parts))
        if upscale:  # tiny pixel grids (32 px covers) are shown at 2x or 3x, pixelated, so covers can be seen
            try:
                from PIL import Image

                with Image.open(dest) as im:
                    w = im.width
                self.widths[rel] = w * max(1, min(3, 768 // max(w, 1)))
            except OSError:
                pass
        return rel


# ------------------------------------------------------------------------------------------------ thresholds
def _thresholds(run: RunPaths, path: Path | None, preset: str | None) -> tuple[Gate, str | None, str | None]:
    """(gate, source file, note). An explicit file must be valid; the preset's file is applied when it is."""
    if path is not None:
        return load_gate(path), str(path), None
    if not preset:
        return Gate({}), None, None
    auto = configs_dir() / "thresholds" / f"{preset}.yaml"
    if not auto.is_file():
        return Gate({}), None, None
    try:
        return load_gate(auto), str(auto), None
    except UserError as e:
        return Gate({}), str(auto), f"thresholds not applied: {e}"


_STALE_SKIP = "thresholds not applied: the evaluation was judged against an earlier version of its dataset"


def _calibration_skip(run: RunPaths, gate: Gate, doc: dict | None) -> str | None:
    """Why the gate's bounds are left off this model (evaluated otherwise than it was calibrated for), or None."""
    if doc is None or not gate.calibrated_for:
        return None
    diff = calibration_mismatch(gate.calibrated_for, evaluation_facts(run, doc))
    if diff is None:
        return None
    return f"thresholds not applied: calibrated for {describe_calibration(gate.calibrated_for)}; evaluated with {diff}"


def _apply(model: str, bounds: list[Bound], doc: dict | None, source: str, strict: bool) -> tuple[list, str | None]:
    out, note = [], None
    for b in bounds:
        try:
            out.append(evaluate_bound(model, b, doc, source))
        except UserError as e:
            if strict:
                raise
            note = f"some thresholds not applied: {e}"
    return out, note


# ------------------------------------------------------------------------------------------------ per model
def _metric_rows(doc: dict[str, Any], checks: list[CheckResult]) -> list[dict[str, Any]]:
    rows = []
    for name, m in (doc.get("metrics") or {}).items():
        if not isinstance(m, dict) or "value" not in m:
            continue
        det = m.get("details") or {}
        rows.append(
            {
                "name": name,
                "value": m.get("value"),
                "interval": m.get("interval"),
                "n": m.get("n"),
                "n_real": m.get("n_real"),
                "extractor": m.get("extractor"),
                "p_value": m.get("p_value"),
                "null_mean": m.get("null_mean"),
                "chance": m.get("chance"),
                "ceiling": det.get("ceiling"),
                "seed": m.get("seed"),
                "skipped": m.get("skipped") if m.get("value") is None else None,
                "checks": [c for c in checks if c.path == name],
            }
        )
    return rows


def _verdict(doc: dict[str, Any]) -> dict[str, Any] | None:
    v = doc.get("verdict")
    if not isinstance(v, dict):
        return None
    tests = []
    for key, t in (v.get("tests") or {}).items():
        if isinstance(t, dict):
            tests.append({"key": key, **{k: t.get(k) for k in (
                "name", "role", "value", "interval", "p_value", "p_adjusted", "effect", "effect_interval", "margin",
                "significant", "meaningful", "passes", "n")}})  # fmt: skip
    return {
        "works": v.get("conditioning_works") or "unknown",
        "rule": v.get("rule"),
        "reasons": list(v.get("reasons") or []),
        "alpha": v.get("alpha"),
        "family": list(v.get("family") or []),
        "tests": tests,
    }


def _tsne(doc: dict[str, Any], eval_dir: Path, img: _Images, model: str) -> dict[str, Any] | None:
    t = (doc.get("metrics") or {}).get("tsne")
    if not isinstance(t, dict):
        return None
    plots = dict(t.get("plots") or {})
    for key in ("genre", "colour", "mosaic"):
        plots.setdefault(key, f"tsne_{key}.png")
    images = []
    for key in ("genre", "colour", "mosaic"):
        name = Path(str(plots[key])).name
        rel = img(eval_dir / name, model, name)
        if rel:
            images.append({"key": key, "src": rel})
    scores = []
    for key in ("genre", "colour"):
        s = t.get(key)
        if isinstance(s, dict):
            scores.append({"by": key, **{k: s.get(k) for k in ("agreement", "chance", "lift", "k")}})
    gen = t.get("generated_genre_agreement") if isinstance(t.get("generated_genre_agreement"), dict) else None
    return {
        "images": images,
        "scores": scores,
        "generated": gen,
        "organised_by": t.get("organised_by"),
        "trustworthiness": t.get("trustworthiness"),
        "perplexity": t.get("perplexity"),
        "n_real": t.get("n_real"),
        "extractor": t.get("extractor"),
    }


def _model_page(
    run: RunPaths, name: str, img: _Images, checks: list[CheckResult], out: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(template context for model-<name>.html, its leaderboard row)."""
    mdir, edir = run.model(name), run.eval(name)
    summary = _read_json(mdir / "summary.json") or {}
    train_cfg = _read_json(mdir / "train_config.json") or {}
    doc = _read_json(edir / "metrics.json")
    stats = read_stats(mdir / "stats.jsonl")
    curves = None
    if stats:
        png = training_curves(mdir / "stats.jsonl", out / "img" / name / "training_curves.png", title=name)
        curves = f"img/{name}/training_curves.png" if png else None
    snaps = sorted((mdir / "samples").glob("samples-*.png")) if (mdir / "samples").is_dir() else []
    snapshot = img(snaps[-1], name, "snapshot.png", upscale=True) if snaps else None
    ctx: dict[str, Any] = {
        "name": name,
        "summary": summary,
        "train_config": train_cfg,
        "trained": bool(summary) or (mdir / "checkpoints").is_dir(),
        "curves": curves,
        "n_stats": len(stats),
        "snapshot": snapshot,
        "snapshot_name": snaps[-1].name if snaps else None,
        "evaluated": doc is not None,
        "checks": checks,
        "other_checks": [],
    }
    row: dict[str, Any] = {
        "name": name,
        "href": f"model-{name}.html",
        "evaluated": doc is not None,
        "conditional": train_cfg.get("cond_dim", 0) > 0 if train_cfg else None,
        "condition": train_cfg.get("condition"),
        "train_seconds": summary.get("train_seconds"),
        "images_per_s": summary.get("images_per_s"),
        "finished": summary.get("finished"),
        "n_pass": sum(c.ok for c in checks),
        "n_fail": sum(not c.ok for c in checks),
    }
    if doc is None:
        row.update(verdict=None)
        return ctx, row
    external = doc.get("source", "toolkit") != "toolkit"  # judged from outside: no training folder to show
    ctx.update(external=external, source=doc.get("source", "toolkit"))
    row.update(external=external)
    m = doc.get("metrics") or {}

    def val(key: str) -> Any:
        e = m.get(key)
        return e.get("value") if isinstance(e, dict) else None

    acc = m.get("conditional_accuracy") if isinstance(m.get("conditional_accuracy"), dict) else {}
    verdict = _verdict(doc)
    row.update(
        conditional=doc.get("conditional", row["conditional"]),
        condition=doc.get("condition") or row["condition"],
        fid=val("fid"),
        kid=val("kid"),
        intra_fid=val("intra_fid"),
        acc=acc.get("value"),
        ceiling=(acc.get("details") or {}).get("ceiling"),
        null=acc.get("null_mean"),
        p=acc.get("p_value"),
        verdict=verdict["works"] if verdict else None,
    )
    samples_name = Path(str((doc.get("plots") or {}).get("samples", "samples.png"))).name
    strip = sample_strip(edir / samples_name, out / "img" / name / "strip.png")
    row["strip"] = f"img/{name}/strip.png" if strip else None
    metric_names = {r for r in m if isinstance(m[r], dict) and "value" in m[r]}
    ctx.update(
        doc=doc,
        metric_rows=_metric_rows(doc, checks),
        other_checks=[c for c in checks if c.path not in metric_names],
        verdict=verdict,
        samples=img(edir / samples_name, name, "samples.png", upscale=True),
        class_names=list(doc.get("class_names") or []),
        tsne=_tsne(doc, edir, img, name),
        timings=doc.get("timings_s") or {},
        acc_details=acc.get("details") or {},
    )
    return ctx, row


# ------------------------------------------------------------------------------------------------ other pages
def _encoders(run: RunPaths, img: _Images) -> list[dict[str, Any]]:
    root = run.root / "encoders"
    if not root.is_dir():
        return []
    names = sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda n: (
        ENCODER_ORDER.index(n) if n in ENCODER_ORDER else len(ENCODER_ORDER), n))  # fmt: skip
    out = []
    for name in names:
        ev = _read_json(root / name / "eval.json")
        if ev is None:
            continue
        probe = ev.get("linear_probe") if isinstance(ev.get("linear_probe"), dict) else {}
        knn = ev.get("knn") if isinstance(ev.get("knn"), dict) else {}
        km = ev.get("kmeans") if isinstance(ev.get("kmeans"), dict) else {}
        recon = ev.get("reconstruction") if isinstance(ev.get("reconstruction"), dict) else {}
        tsne_src = root / name / "tsne.png"
        if not tsne_src.is_file() and ev.get("tsne_png"):
            tsne_src = root / name / Path(str(ev["tsne_png"])).name
        out.append(
            {
                "name": name,
                "dim": ev.get("dim"),
                "n": ev.get("n"),
                "probe_acc": probe.get("accuracy"),
                "probe_f1": probe.get("macro_f1"),
                "absent": ev.get("classes_absent_from_test") or [],
                "chance_majority": probe.get("chance_majority"),
                "chance_uniform": probe.get("chance_uniform"),
                "probe_skipped": probe.get("skipped"),
                "knn_acc": knn.get("accuracy"),
                "knn_k": knn.get("k"),
                "silhouette": ev.get("silhouette"),
                "purity": km.get("purity"),
                "nmi": km.get("nmi"),
                "ari": km.get("ari"),
                "explained_variance": ev.get("explained_variance"),
                "recon_mse": ev.get("reconstruction_mse_test", recon.get("autoencoder_mse_test")),
                "recon_verdict": recon.get("verdict"),
                "fit_seconds": ev.get("fit_seconds"),
                "error": ev.get("error"),
                "external": str(ev.get("sha256"))[:12] if ev.get("kind") == "external" else None,
                "tsne": img(tsne_src, "encoders", f"{name}.png"),
            }
        )
    return out


def _music_rows(rows: list[dict[str, Any]], encoders: list[dict[str, Any]], run: RunPaths) -> list[dict[str, Any]]:
    """One block per condition: the encoder's own probe scores, then each generator conditioned on it with its
    verdict and track-level scores (retrieval against its ceiling, FJD, CFID). Answers "which encoding of the music
    works as a condition?"."""
    by_encoder = {e["name"]: e for e in encoders}
    blocks: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r.get("conditional") or not r.get("condition"):
            continue
        cond = str(r["condition"])
        block = blocks.setdefault(cond, {"condition": cond, "encoder": by_encoder.get(cond), "models": []})
        doc = _read_json(run.eval(r["name"]) / "metrics.json") or {}
        m = {k: v for k, v in (doc.get("metrics") or {}).items() if isinstance(v, dict)}
        ret = m.get("retrieval") or {}
        det = ret.get("details") or {}
        fjd, cfid = m.get("fjd") or {}, m.get("cfid") or {}
        block["models"].append({
            "name": r["name"], "href": r["href"], "verdict": r.get("verdict"), "evaluated": r.get("evaluated"),
            "fid": r.get("fid"), "acc": r.get("acc"), "null": r.get("null"), "acc_p": r.get("p"),
            "rank_score": ret.get("value"), "rank_p": ret.get("p_value"), "rank_ceiling": det.get("ceiling"),
            "top1": det.get("top1"), "top5": det.get("top5"), "median_rank": det.get("median_rank"),
            "n_candidates": det.get("n_candidates"), "ceiling_top1": det.get("ceiling_top1"),
            "fjd": fjd.get("value"), "fjd_p": fjd.get("p_value"), "cfid": cfid.get("value"),
            "cfid_p": cfid.get("p_value"),
        })  # fmt: skip
    order = ENCODER_ORDER
    return sorted(blocks.values(), key=lambda b: (order.index(b["condition"]) if b["condition"] in order
                                                  else len(order), b["condition"]))


def _open_dataset(dataset: PreparedDataset | str | None, docs: list[dict]) -> tuple[PreparedDataset | None, str]:
    if isinstance(dataset, PreparedDataset):
        return dataset, dataset.name
    name = dataset or next((d.get("dataset") for d in docs if d.get("dataset")), None)
    if not name:
        return None, "not available: no model names its dataset yet (run `bench train` first, or pass --dataset)"
    try:
        return PreparedDataset.open(name), str(name)
    except UserError as e:
        return None, f"not available: {e}"


def relationship_rows(rel: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Table rows of a probe: genre, then one per audio embedding (older files hold one, named apart)."""
    if not rel:
        return []
    rows = [{"label": "cover → genre accuracy", "key": "genre", "r": rel.get("genre"), "source": None}]
    audio = rel.get("audio")
    if isinstance(audio, dict) and "value" not in audio:  # {encoder: result}
        runs = {a.get("encoder"): a.get("run") for a in rel.get("audio_embeddings") or []}
        for name, r in audio.items():
            src = f"{name}, run {runs[name]}" if runs.get(name) else name
            rows.append({"label": "cover → audio embedding R²", "key": "audio", "r": r, "source": src})
    elif audio:
        rows.append({"label": "cover → audio embedding R²", "key": "audio", "r": audio,
                     "source": rel.get("audio_embedding")})
    if len(rows) == 1:
        rows.append({"label": "cover → audio embedding R²", "key": "audio", "r": None, "source": None,
                     "skipped": rel.get("audio_skipped")})
    return rows


def _power(run: RunPaths, out: Path) -> list[dict[str, Any]]:
    """``bench power`` results (eval/power.json): per condition its curve, q* sentence and false-positive rates."""
    doc = _read_json(run.root / "eval" / "power.json")
    if not doc or not doc.get("rows"):
        return []
    blocks = []
    for cond, png in power_curves(doc, out / "img" / "power"):
        meta = (doc.get("conditions") or {}).get(cond, {})
        blocks.append({
            "condition": cond, "img": f"img/power/{png.name}", "sentence": meta.get("sentence"),
            "family": meta.get("family") or [], "left_out": sorted(meta.get("left_out") or {}),
            "n_permutations": meta.get("n_permutations"), "false_positive": meta.get("false_positive") or [],
            "labels": meta.get("labels"), "alpha": doc.get("alpha"), "extractor": doc.get("extractor"),
        })
    return blocks


def _data_page(ds: PreparedDataset | None, note: str, run: RunPaths) -> dict[str, Any]:
    from core.data.info import dataset_summary

    rel = _read_json(run.root / "eval" / "relationship.json")
    if ds is not None:
        from core.data.info import read_probe

        probe = read_probe(ds)  # the dataset's own probe (bench data probe) while its content is unchanged,
        if probe is not None and (rel is None or probe.get("extractor") == rel.get("extractor")):
            rel = probe  # and made with the extractor that judged this run's models (the one evaluate used)
    ctx: dict[str, Any] = {"dataset": None, "note": note, "relationship": rel,
                           "relationship_rows": relationship_rows(rel)}
    if ds is None:
        return ctx
    rej = ds.rejected()
    cols = [c for c in ("track_id", "artist", "album", "track", "genre", "split") if c in ds.tracks.columns]
    head = ds.tracks[cols].head(TRACKS_SHOWN).astype(object)
    sample = head.where(head.notna(), "")
    ctx.update(
        dataset=dataset_summary(ds),
        rejected=rej.head(REJECTED_SHOWN).astype(str).to_dict("records"),
        rejected_columns=list(rej.columns),
        rejected_total=len(rej),
        tracks=sample.astype(str).to_dict("records"),
        track_columns=cols,
    )
    return ctx


# ------------------------------------------------------------------------------------------------ entry point
def build_report(
    run: RunPaths,
    *,
    dataset: PreparedDataset | str | None = None,
    thresholds: Path | None = None,
) -> Path:
    """Write ``run``'s report to ``run.report`` (replacing an old one) and return the path of its index.html.

    ``dataset`` (object or name) defaults to the one the models were trained on; ``thresholds`` defaults to
    ``configs/thresholds/<preset>.yaml`` when the run's preset has one (then applied only if valid).
    """
    if not run.root.is_dir():
        raise UserError(f"run {run.name!r} not found at {run.root} (train something with `bench train --run ...`)")
    config_text, config = _read_config(run)
    gate, threshold_source, threshold_note = _thresholds(
        run, Path(thresholds) if thresholds is not None else None, config.get("preset")
    )
    final = run.report
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _render_all(run, tmp, dataset, config_text, config, gate, threshold_source, threshold_note, thresholds)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final / "index.html"


def _render_all(run, out, dataset, config_text, config, gate, threshold_source, threshold_note, explicit) -> None:
    env = _env()
    img = _Images(out)
    names = _model_names(run, config)
    bounds = gate.bounds
    models, rows, skipped = [], [], []
    for name in track(names, "report: models"):
        doc = _read_json(run.eval(name) / "metrics.json")
        stale, currency_note = evaluation_currency(run, name, doc)
        skip = (_STALE_SKIP if stale else _calibration_skip(run, gate, doc)) if bounds.get(name) else None
        checks, note = ([], None) if skip else _apply(name, bounds.get(name, []), doc, threshold_source or "thresholds",
                                                      explicit is not None)
        threshold_note = threshold_note or note
        ctx, row = _model_page(run, name, img, checks, out)
        ctx["threshold_skip"] = row["threshold_skip"] = skip
        ctx["stale"] = row["stale"] = stale  # shown on its row and page: numbers of data that is gone
        ctx["currency_note"] = row["currency_note"] = currency_note
        skipped += [name] if skip else []
        models.append(ctx)
        rows.append(row)
    if skipped:
        first = next(r["threshold_skip"] for r in rows if r["threshold_skip"])
        threshold_note = f"{first} ({', '.join(skipped)})" + (f"; {threshold_note}" if threshold_note else "")
    docs = [d for d in (_read_json(run.eval(n) / "metrics.json") for n in names) if d] + [
        _read_json(run.model(n) / "train_config.json") or {} for n in names
    ]
    ds, ds_note = _open_dataset(dataset, docs)
    data = _data_page(ds, ds_note, run)
    if ds is not None:  # real covers per genre, one strip each (files named by genre index, never by name)
        grid = cover_grid(ds, img.root / "img" / "data")
        data["cover_grid"] = [dict(g, file=f"img/data/{g['file'].name}") for g in grid]
    encoders = _encoders(run, img)
    run_devices = {}
    for n in names:
        s = _read_json(run.model(n) / "summary.json") or {}
        d = _read_json(run.eval(n) / "metrics.json") or {}
        run_devices[n] = {
            "train": s.get("device"),
            "eval": d.get("device"),
            "eval seeds": d.get("seeds"),
            "versions": d.get("versions"),
        }
    unthresholded = [m for m in bounds if parse_eval_name(m)[0] not in names]  # diffusion_cond@w0: a model's scale
    common = {
        "run": run.name,
        "pages": PAGES,
        "version": __version__,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "models_nav": [(m["name"], f"model-{m['name']}.html") for m in models],
        "widths": img.widths,
    }
    rel = data["relationship"]
    pages: dict[str, tuple[str, dict[str, Any]]] = {
        "index.html": (
            "index.html.j2",
            {
                "rows": rows,
                "threshold_source": threshold_source,
                "threshold_note": threshold_note,
                "unthresholded": unthresholded,
                "relationship": rel,
                "dataset_name": data["dataset"]["name"] if data["dataset"] else None,
                "power": _power(run, out),
                "dose": dose_responses(run, names, out),
            },
        ),
        "music.html": ("music.html.j2", {"blocks": _music_rows(rows, encoders, run)}),
        "encoders.html": ("encoders.html.j2", {"encoders": encoders}),
        "data.html": ("data.html.j2", data),
        "environment.html": (
            "environment.html.j2",
            {
                "versions": environment.versions(),
                "device": environment.device_info(),
                "run_devices": run_devices,
                "seeds": _seeds(config),
                "commit": environment.git_commit(),
                "config_text": config_text,
                "config_path": str(run.config),
            },
        ),
    }
    for m in models:
        pages[f"model-{m['name']}.html"] = (
            "model.html.j2",
            {"m": m, "threshold_source": threshold_source, "threshold_note": threshold_note},
        )
    for filename, (template, ctx) in pages.items():
        html = env.get_template(template).render(**common, page=filename, **ctx)
        (out / filename).write_text(html, encoding="utf-8")
