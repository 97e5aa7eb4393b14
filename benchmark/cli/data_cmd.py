"""``bench data synth|import|info``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark import paths
from benchmark.cli import common

app = typer.Typer(help="Create, import and inspect prepared datasets.", no_args_is_help=True)

ForceOpt = Annotated[bool, typer.Option("--force", help="replace an existing dataset of that name")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="worker processes (default: all cores)")]


@app.command("synth")
def synth(
    name: Annotated[str, typer.Option("--name", help="dataset name (folder under the data root)")] = "default",
    tracks: Annotated[int | None, typer.Option("--tracks", help="number of tracks [4000]")] = None,
    genres: Annotated[int | None, typer.Option("--genres", help="number of genres [8]")] = None,
    coupling: Annotated[
        float | None, typer.Option("--coupling", help="probability a cover follows its track [1.0]")
    ] = None,
    res: Annotated[list[int] | None, typer.Option("--res", help="cover resolution(s) in px (repeatable) [64]")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="audio seconds per track [10]")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed [0]")] = None,
    genre_overlap: Annotated[float | None, typer.Option("--genre-overlap", help="shared musical traits")] = None,
    palette_overlap: Annotated[float | None, typer.Option("--palette-overlap", help="shared cover colours")] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="also write the world in the real dataset's layout here")
    ] = None,
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Synthesise an album world: music, Spotify-style attributes and covers with a known coupling."""
    from benchmark.data.prepared import PreparedDataset
    from benchmark.data.synth.export import export_world
    from benchmark.data.synth.world import synthesize_world

    flags = {
        "tracks": tracks,
        "genres": genres,
        "coupling": coupling,
        "res": res,
        "seconds": seconds,
        "seed": seed,
        "genre_overlap": genre_overlap,
        "palette_overlap": palette_overlap,
    }
    cfg = common.config(preset, set_, common.drop_none({"data": {"synth": flags, "workers": workers}}))
    dest = paths.dataset(name)
    out = synthesize_world(dest, cfg.data.synth, cfg.data.split, workers=cfg.data.workers, force=force)
    ds = PreparedDataset(out)
    common.console.print(f"[green]wrote[/] {escape(str(out.root))}")
    if export is not None:
        where = export_world(ds, export, res=cfg.data.synth.export_res, workers=cfg.data.workers, force=force)
        common.console.print(f"[green]exported[/] to {escape(str(where))}")
    print_info(ds)


@app.command("import")
def import_(
    src: Annotated[Path, typer.Argument(help="folder or .zip with covers, mp3 previews and a CSV")],
    name: Annotated[str, typer.Option("--name", help="dataset name (folder under the data root)")],
    metadata: Annotated[
        Path | None, typer.Option("--metadata", help="CSV of tracks (default: the CSV found in SRC)")
    ] = None,
    res: Annotated[list[int] | None, typer.Option("--res", help="cover resolution(s) in px (repeatable)")] = None,
    max_reject_share: Annotated[
        float | None, typer.Option("--max-reject-share", help="fail when more than this share is rejected")
    ] = None,
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Import a Spotify-style dump (JPEG covers, mp3 previews, CSV) into the prepared format."""
    from benchmark.data.importer.run import import_dataset
    from benchmark.data.prepared import PreparedDataset

    flags = {"res": res, "max_reject_share": max_reject_share}
    cfg = common.config(preset, set_, common.drop_none({"data": {"import": flags, "workers": workers}}))
    result = import_dataset(
        src,
        paths.dataset(name),
        cfg.data.import_,
        cfg.data.split,
        metadata=metadata,
        workers=cfg.data.workers,
        force=force,
    )
    print_import_summary(result)
    print_info(PreparedDataset(result.paths))


@app.command("info")
def info(name: Annotated[str, typer.Argument(help="dataset name or folder")] = "default") -> None:
    """Counts per genre and split, resolutions, audio length, and the coupling if synthetic."""
    from benchmark.data.prepared import PreparedDataset

    print_info(PreparedDataset.open(name))


def print_import_summary(result) -> None:  # noqa: ANN001 - ImportResult, imported lazily
    table = Table(title="import summary")
    table.add_column("outcome")
    table.add_column("tracks", justify="right")
    table.add_row("kept", str(result.kept))
    rej = result.rejected
    if len(rej):
        for reason, count in rej["reason"].str.split(":").str[0].value_counts().items():
            table.add_row(f"rejected: {escape(str(reason))}", str(count))
    common.console.print(table)
    for note in getattr(result, "notes", []):
        common.console.print(f"[yellow]note:[/] {escape(note)}")


def print_info(ds) -> None:  # noqa: ANN001 - PreparedDataset, imported lazily
    from benchmark.data.info import dataset_summary

    s = dataset_summary(ds)
    head = Table(title=f"dataset {escape(s['name'])}", show_header=False)
    for key, value in s["facts"].items():
        head.add_row(escape(key), escape(str(value)))
    common.console.print(head)
    table = Table(title="tracks per genre and split")
    table.add_column("genre")
    for split in s["splits"]:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for genre, counts in s["per_genre"].items():
        table.add_row(escape(str(genre)), *[str(counts[sp]) for sp in s["splits"]], str(sum(counts.values())))
    table.add_row("[bold]all[/]", *[str(s["split_counts"][sp]) for sp in s["splits"]], str(s["tracks"]))
    common.console.print(table)
