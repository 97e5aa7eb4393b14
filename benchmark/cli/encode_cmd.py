"""``bench encode --encoder NAME|all``: fit music encoders and compare how much genre each embedding carries."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core import paths
from core.errors import UserError


def encode(
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder",
            "-e",
            help="genre, attributes, pca, autoencoder, rnn, cnn, musicnn (pretrained; needs `pip install --no-deps "
            "musicnn==0.1.0`), a comma list, or all (every one but musicnn)",
        ),
    ] = "all",
    run: Annotated[str | None, typer.Option("--run", help="run folder under the runs root [config run]")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="prepared dataset [config data.name]")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="embedding size d [32]")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="feature-extraction processes (default: all cores)")
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", help="register your own vectors instead: .parquet/.csv (track_id + a list column "
                     "`vector` or numeric columns), .npz (track_id + vector), or .npy with --ids"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="with --from-file: the condition's name")] = None,
    ids: Annotated[
        str | None, typer.Option("--ids", help="with an .npy/.npz array: CSV whose track_id column names each row")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="with --from-file: replace vectors registered from another file")
    ] = False,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Fit encoders on the train split and write runs/<run>/encoders/<name>/ (model, embeddings, eval.json).

    With --from-file F --name NAME: register your own music embedding (one vector per track, keyed by track id)
    as condition NAME of the run, scored like the built-in encoders; then `bench train dcgan_cond+NAME`.
    """
    from benchmark.pipeline.encode import encode as encode_all
    from core.data.prepared import PreparedDataset
    from models.encoders.store import resolve_names

    values = {"run": run, "data": {"name": dataset, "workers": workers}, "encoders": {"dim": dim}}
    cfg = common.config(preset, set_, common.drop_none(values))
    if from_file is not None or name is not None or ids is not None:
        return _register(from_file, name, ids, replace, encoder, cfg)
    names = resolve_names(encoder)
    ds = PreparedDataset.open(cfg.data.name)
    run_paths = paths.run(cfg.run)
    results = encode_all(ds, run_paths, names, cfg, workers=cfg.data.workers)
    common.console.print(comparison_table(results, f"encoders on {ds.name} (run {run_paths.name})"))
    for name, ev in results.items():
        verdict = ev.get("reconstruction", {}).get("verdict")
        if verdict:
            colour = "green" if ev["reconstruction"]["beats_or_matches_pca"] else "yellow"
            common.console.print(f"[{colour}]{escape(name)}:[/] {escape(verdict)}")
    common.console.print(f"[green]wrote[/] {escape(str(run_paths.root / 'encoders'))}")


def _register(from_file: str | None, name: str | None, ids: str | None, replace: bool, encoder: str, cfg) -> None:  # noqa: ANN001
    from benchmark.pipeline.encode import register_embedding
    from core.data.prepared import PreparedDataset

    if from_file is None or name is None:
        raise UserError("register your own vectors with both --from-file FILE and --name NAME")
    if encoder != "all":
        raise UserError("--encoder fits a built-in encoder, --from-file registers your own vectors: give one of them")
    ds = PreparedDataset.open(cfg.data.name)
    run_paths = paths.run(cfg.run)
    ev = register_embedding(ds, run_paths, from_file, name, ids=ids, replace=replace, cfg=cfg.encoders)
    common.console.print(comparison_table({name: ev}, f"{name} (external) on {ds.name} (run {run_paths.name})"))
    common.console.print(f"[green]registered[/] {escape(name)} in {escape(str(run_paths.encoder(name)))}: train on it "
                         f"with `bench train dcgan_cond+{escape(name)} --run {escape(run_paths.name)}`")


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def _acc(block: dict) -> str:
    if "accuracy" not in block:
        return "-"
    return f"{block['accuracy']:.3f} [dim]({block['chance_majority']:.2f}/{block['chance_uniform']:.2f})[/]"


def comparison_table(results: dict[str, dict], title: str) -> Table:
    """One row per encoder; accuracies carry their chance levels (majority share / 1/k) in brackets."""
    caption = "accuracy (chance: majority share / 1/k); probes fit on train, scored on test"
    table = Table(title=escape(title), caption=caption)
    for col in ("encoder", "d", "probe acc", "macro-F1", "kNN-10 acc", "silhouette", "purity", "NMI", "ARI", "extra"):
        table.add_column(col, justify="left" if col in ("encoder", "extra") else "right")
    for name, ev in results.items():
        km = ev.get("kmeans", {})
        extra = ""
        if "skipped" in ev:
            extra = f"skipped: {ev['skipped']}"
        elif "explained_variance" in ev:
            extra = f"explained var {ev['explained_variance']:.3f}"
        elif "autoencoder_mse_test" in ev.get("reconstruction", {}):
            r = ev["reconstruction"]
            extra = f"recon MSE {r['autoencoder_mse_test']:.3f} (pca {r['pca_mse_test']:.3f})"
        table.add_row(
            escape(name),
            str(ev.get("dim", "-")),
            _acc(ev.get("linear_probe", {})),
            _f(ev.get("linear_probe", {}).get("macro_f1")),
            _acc(ev.get("knn", {})),
            _f(ev.get("silhouette")),
            _f(km.get("purity")),
            _f(km.get("nmi")),
            _f(km.get("ari")),
            escape(extra),
        )
    return table
