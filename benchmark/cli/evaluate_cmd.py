"""``bench evaluate --model M|all``, or ``--samples PATH --asked MANIFEST`` for covers generated elsewhere, and
``bench export`` (a trained model's covers as files plus their manifest)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core import paths
from core.config.names import eval_name
from core.errors import UserError


def evaluate(
    model: Annotated[
        str, typer.Option("--model", help="a trained model (a GAN name or gan+condition id), or all")
    ] = "all",
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset (default: the one it trained on)")] = None,
    n: Annotated[str | None, typer.Option("--n", help="generated covers per model (10000 or 1e4)")] = None,
    features: Annotated[
        str | None, typer.Option("--features", help="covernet, inception, colour, file:PATH.pt or file:ARCH=PATH.pt "
                                 "(a torchvision state dict)")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="evaluation seed")] = None,
    samples: Annotated[
        str | None, typer.Option("--samples", help="covers generated elsewhere: a folder or an .npy/.npz array")
    ] = None,
    asked: Annotated[
        str | None, typer.Option("--asked", help="with --samples: manifest file,track_id[,z_id] (.csv/.parquet)")
    ] = None,
    condition: Annotated[
        str | None, typer.Option("--condition", help="with --samples: the condition (genre, pca, ...) or none")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="with --samples: the model's name in the run")] = None,
    guidance: Annotated[
        str | None, typer.Option("--guidance", help="diffusion models: guidance scales, one evaluation each (0,1,2,4)")
    ] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Image quality and whether the conditioning works, with one verdict per model."""
    from benchmark.pipeline.evaluate import check_evaluation_n, evaluate_run
    from benchmark.pipeline.guidance import parse_scales
    from benchmark.pipeline.locks import run_lock
    from benchmark.pipeline.sample_size import parse_count

    n = None if n is None else parse_count(n)
    values = common.drop_none({"eval": {"n": n, "features": features, "seed": seed}, "run": run})
    cfg = common.config(preset, set_, values)
    rp = paths.run(cfg.run)
    if samples is not None:
        if model != "all" or n is not None or guidance is not None:
            raise UserError("--samples judges every given image as it is: leave out --model, --n and --guidance")
        with run_lock(rp):
            results = [_evaluate_samples(samples, asked, dataset, condition, name, rp, cfg)]
        print_leaderboard(results)
        common.console.print(f"metrics in {escape(str(rp.eval(results[0]['model'])))}")
        return
    if any(v is not None for v in (asked, condition, name)):
        raise UserError("--asked, --condition and --name go with --samples (covers generated elsewhere)")
    check_evaluation_n(rp, cfg, model, dataset)  # --n capped by the test tracks and memory, before any work

    def announce(m: str, ds) -> None:
        common.console.print(f"[bold]evaluating[/] {m} on {escape(ds.name)} ({cfg.eval.features})")

    scales = parse_scales(guidance) if guidance is not None else None
    with run_lock(rp):
        results = evaluate_run(rp, cfg, model, dataset=dataset, announce=announce, guidance=scales)
    print_leaderboard(results)
    common.console.print(f"metrics in {escape(str(rp.root / 'eval'))}")


def _evaluate_samples(samples, asked, dataset, condition, name, rp, cfg) -> dict:  # noqa: ANN001 - CLI values
    from benchmark.pipeline.evaluate import evaluate_images
    from core.config.names import is_model_id

    missing = [flag for flag, v in (("--dataset", dataset), ("--condition", condition), ("--name", name)) if not v]
    if missing:
        raise UserError(f"--samples needs {', '.join(missing)} (--condition none for an unconditional model)")
    paths.check_name(name, "model name")
    if is_model_id(name):
        raise UserError(f"--name {name!r} is a toolkit model id: give the outside model a name of its own")
    common.console.print(f"[bold]evaluating[/] {escape(name)} (external) on {escape(dataset)} ({cfg.eval.features})")
    return evaluate_images(samples, asked, dataset, condition=condition, run=rp, name=name, cfg=cfg.eval,
                           device=cfg.device)  # fmt: skip


def export(
    model: Annotated[str, typer.Option("--model", help="a trained model (a GAN name or gan+condition id)")],
    out: Annotated[str, typer.Option("--out", help="folder for the PNG covers and manifest.csv")],
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    n: Annotated[int | None, typer.Option("--n", min=20, help="covers (default: the evaluation's n)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="evaluation seed")] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Write a trained model's covers and their manifest: the covers `bench evaluate` draws with this n and seed."""
    from benchmark.pipeline.evaluate import export_samples
    from core.config.names import parse_model_id

    values = common.drop_none({"eval": {"n": n, "seed": seed}, "run": run})
    cfg = common.config(preset, set_, values)
    rp = paths.run(cfg.run)
    model = parse_model_id(model).name
    if not (rp.model(model) / "checkpoints").is_dir():
        raise UserError(f"no trained {model!r} in run {rp.name!r}: train it with `bench train {model} --run {rp.name}`")
    manifest = export_samples(rp, model, out, cfg.eval, device_kind=cfg.device)
    common.console.print(f"{cfg.eval.n} covers and {escape(str(manifest))}")


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
            escape(eval_name(r["model"], r.get("guidance")))
            + ("" if r.get("source", "toolkit") == "toolkit" else " [dim](external)[/]"),
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
