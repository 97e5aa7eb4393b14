"""``bench evaluate --model M|all``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from core import paths
from core.config.names import model_ids_in, ordered_model_ids, parse_model_id
from core.errors import UserError
from core.storage import check_writable
from coverbench.cli import common


def evaluate(
    model: Annotated[
        str, typer.Option("--model", help="a trained model (a GAN name or gan+condition id), or all")
    ] = "all",
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset (default: the one it trained on)")] = None,
    n: Annotated[int | None, typer.Option("--n", min=20, help="generated covers per model")] = None,
    features: Annotated[str | None, typer.Option("--features", help="inception or covernet")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="evaluation seed")] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Image quality and whether the conditioning works, with one verdict per model."""
    from core.data.prepared import PreparedDataset
    from coverbench.pipeline.evaluate import evaluate_model, evaluate_relationship

    values = common.drop_none({"eval": {"n": n, "features": features, "seed": seed}, "run": run})
    cfg = common.config(preset, set_, values)
    rp = paths.run(cfg.run)
    if model == "all":
        names = cfg.eval.models or ordered_model_ids(model_ids_in(rp.root / "models"), cfg.train.models)
    else:
        names = [parse_model_id(model).name]
    trained = [m for m in names if (rp.model(m) / "checkpoints").is_dir()]
    if model != "all" and not trained:
        raise UserError(
            f"no trained {model!r} in run {rp.name!r} (train it with `bench train {model} --run {rp.name}`)"
        )
    if not trained:
        raise UserError(f"run {rp.name!r} has no trained models (run `bench train all --run {rp.name}`)")
    for m in trained:  # fail now, not after all the computing, when results or feature caches cannot be written
        check_writable(rp.eval(m), "evaluation folder")
        name = dataset or json.loads((rp.model(m) / "train_config.json").read_text())["dataset"]
        check_writable(paths.dataset(name).cache_dir, "the dataset's feature cache")
    results = []
    ds = None
    for m in trained:
        name = dataset or json.loads((rp.model(m) / "train_config.json").read_text())["dataset"]
        ds = PreparedDataset.open(name)
        common.console.print(
            f"[bold]evaluating[/] {m} on {escape(ds.name)} ({cfg.eval.features if not features else features})"
        )
        results.append(evaluate_model(ds, rp, m, cfg.eval, device_kind=cfg.device))
    if ds is not None:
        evaluate_relationship(ds, rp, cfg.eval, device_kind=cfg.device)
    print_leaderboard(results)
    common.console.print(f"metrics in {escape(str(rp.root / 'eval'))}")


def _fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def print_leaderboard(results: list[dict]) -> None:
    t = Table(title="evaluation")
    for col in ("model", "FID", "KID", "cond. acc", "ceiling", "null", "p", "retrieval (ceiling)", "verdict"):
        t.add_column(col, justify="right" if col not in ("model", "verdict") else "left")
    for r in results:
        m = r["metrics"]
        acc = m["conditional_accuracy"]
        det = acc.get("details", {})
        verdict = r["verdict"]["conditioning_works"]
        colour = {"yes": "green", "no": "red"}.get(verdict, "yellow")
        t.add_row(
            escape(r["model"]),
            _fmt(m["fid"]["value"]),
            _fmt(m["kid"]["value"]),
            _fmt(acc["value"]),
            _fmt(det.get("ceiling")),
            _fmt(acc.get("null_mean")),
            _fmt(acc.get("p_value")),
            _retrieval(m.get("retrieval")),
            f"[{colour}]{verdict}[/]",
        )
    common.console.print(t)


def _retrieval(r: dict | None) -> str:
    """Track-level retrieval of continuous conditions: mean rank score (0.5 = chance) and the real-cover ceiling."""
    if not r:
        return "-"
    return f"{_fmt(r.get('value'))} ({_fmt((r.get('details') or {}).get('ceiling'))})"
