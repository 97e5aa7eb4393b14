"""``bench train MODEL|all``: train one GAN, or the encoders and then every GAN of the preset."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core import paths
from core.config.names import MODEL_NAMES, parse_model_id
from core.storage import check_writable

ModelArg = Annotated[
    str, typer.Argument(help=f"one of {', '.join(MODEL_NAMES)}, a model+condition id (stylegan_cond+cnn), or all")
]


def train(
    model: ModelArg,
    run: Annotated[str | None, typer.Option("--run", help="run folder under the runs root [config run]")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="prepared dataset [config data.name]")] = None,
    condition: Annotated[
        str | None,
        typer.Option("--condition", help="genre, pca, rnn, autoencoder, cnn, attributes, musicnn, or an embedding "
                     "registered with `bench encode --from-file`"),
    ] = None,
    kimg: Annotated[float | None, typer.Option("--kimg", help="training length in thousands of images")] = None,
    res: Annotated[int | None, typer.Option("--res", help="resolution in px")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="global batch size")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the newest checkpoint")] = False,
    stop_after_kimg: Annotated[
        float | None, typer.Option("--stop-after-kimg", help="end early (resumable) after this many kimg")
    ] = None,
    encoders: Annotated[
        str, typer.Option("--encoders", help="train all: needed, all, none, or a comma-separated list")
    ] = "needed",
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Train MODEL into runs/<run>/models/<model>/, or `all`: the encoders, then every model of the preset.

    MODEL is a GAN name or a gan+condition id (`stylegan_cond+cnn`: the same GAN under another condition, next to
    the others in the run). Flags (--kimg, --res, --batch) apply to every model they concern and beat per-model
    preset values; --set still beats flags. `all` skips finished models and resumes interrupted ones.
    """
    from benchmark.pipeline.train import train_all
    from core.data.prepared import PreparedDataset
    from models.gans.train.distributed import close_process_group, is_main_process

    if model != "all":
        model = parse_model_id(model).name
    per = {"kimg": kimg, "res": res, "batch": batch}
    per = {k: v for k, v in per.items() if v is not None}
    values = {"run": run, "train": {"condition": condition, **per}, "data": {"name": dataset}}
    cfg = common.config(preset, set_, common.drop_none(values))
    if per:  # flags beat every per-model entry: the GANs', the preset's ids' and this model's own
        ids = {*MODEL_NAMES, *cfg.train.models, *([model] if model != "all" else [])}
        values["train"]["per_model"] = {m: dict(per) for m in sorted(ids)}
        cfg = common.config(preset, set_, common.drop_none(values))
    run_paths = paths.run(cfg.run)
    check_writable(run_paths.root, "the run folder")  # before any training, not at the first checkpoint
    ds = PreparedDataset.open(cfg.data.name)
    try:
        if model == "all":
            rows = train_all(ds, run_paths, cfg, encoders=encoders, stop_after_kimg=stop_after_kimg)
        else:
            from benchmark.pipeline.train import StageResult, train_model

            r = train_model(ds, run_paths, model, cfg, resume=resume, stop_after_kimg=stop_after_kimg)
            status = "trained" if r.finished else "stopped"
            rows = [StageResult("gan", model, status, r.seconds, r.images_seen, r.images_per_s, r.directory)]
    finally:
        close_process_group()
    if is_main_process():
        _print_summary(rows, run_paths.root)


def _print_summary(rows, root) -> None:  # noqa: ANN001 - StageResult list, imported lazily
    table = Table(title=f"train: {escape(str(root))}")
    for col in ("stage", "status", "kimg", "images/s", "seconds"):
        table.add_column(col, justify="right" if col in ("kimg", "images/s", "seconds") else "left")
    colour = {"trained": "green", "resumed": "green", "skipped": "dim", "stopped": "yellow"}
    for r in rows:
        table.add_row(
            escape(f"{r.label} {r.name}"),
            f"[{colour.get(r.status, 'white')}]{r.status}[/]",
            f"{r.images_seen / 1000:.2f}" if r.kind == "gan" else "",
            f"{r.images_per_s:.1f}" if r.images_per_s else "",
            f"{r.seconds:.1f}",
        )
    common.console.print(table)
