"""``bench data synth|import|info|probe``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from benchmark.pipeline.locks import dataset_lock
from core import paths

app = typer.Typer(help="Create, import and inspect prepared datasets.", no_args_is_help=True)

ForceOpt = Annotated[bool, typer.Option("--force", help="replace an existing dataset of that name")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="worker processes (default: all cores)")]


@app.callback()
def _remove_stale_temp() -> None:
    # every `bench data` command first removes what killed imports and syntheses left (.NAME.tmp-PID folders)
    from core.storage import remove_stale_temp

    for p in remove_stale_temp(paths.data_root()):
        common.console.print(f"[dim]removed {escape(str(p))}, left by a process that no longer runs[/]")


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
    from core.data.prepared import PreparedDataset
    from core.data.synth.export import export_world
    from core.data.synth.world import synthesize_world

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
    with dataset_lock(dest):
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
    group_by: Annotated[
        str | None, typer.Option("--group-by", help="what keeps tracks in one split: artist, audio, cover "
                                 "(comma-separated) or none [all three, refused where duplicates cost a split a genre]")
    ] = None,
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Import a Spotify-style dump (JPEG covers, mp3 previews, CSV) into the prepared format."""
    from core.data.importer.run import import_dataset
    from core.data.prepared import PreparedDataset

    flags = {"res": res, "max_reject_share": max_reject_share}
    values = common.drop_none({"data": {"import": flags, "workers": workers}})
    if group_by is not None:  # "none" is an empty list, which drop_none would drop
        keys = [k.strip() for k in group_by.split(",") if k.strip() and k.strip() != "none"]
        values.setdefault("data", {})["split"] = {"group_by": keys}
    cfg = common.config(preset, set_, values)
    with dataset_lock(paths.dataset(name)):
        result = import_dataset(
            src, paths.dataset(name), cfg.data.import_, cfg.data.split, metadata=metadata, workers=cfg.data.workers,
            force=force,
        )
    print_import_summary(result)  # its notes carry the split warnings
    print_info(PreparedDataset(result.paths), warnings=False)


@app.command("info")
def info(name: Annotated[str, typer.Argument(help="dataset name or folder")] = "default") -> None:
    """Counts per genre and split, resolutions, audio length, and the coupling if synthetic."""
    from core.data.prepared import PreparedDataset

    print_info(PreparedDataset.open(name))


@app.command("probe")
def probe(
    name: Annotated[str, typer.Argument(help="dataset name or folder")] = "default",
    features: Annotated[
        str | None, typer.Option("--features", help="covernet (val+test only), inception, colour, file:PATH.pt or "
                                 "file:ARCH=PATH.pt (a torchvision state dict) (default: eval.features, the "
                                 "extractor bench evaluate uses)")
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="artist-grouped cross-validation folds")] = 5,
    permutations: Annotated[int, typer.Option("--permutations", min=100, help="permutations per p-value")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Is there a cover <-> music relationship to learn? Probe real covers, no model needed (writes probe.json)."""
    from benchmark.pipeline.probe import probe_dataset, probe_table
    from core.data.info import probe_path
    from core.data.prepared import PreparedDataset

    cfg = common.config(preset, set_)
    ds = PreparedDataset.open(name)
    out = probe_dataset(ds, features, folds, cfg=cfg.eval, n_permutations=permutations, seed=seed,
                        device_kind=cfg.device)
    table = Table(title=f"relationship probe on {escape(ds.name)}: {escape(out['extractor'])} features, "
                  f"{escape(out['cv'])}")
    for col in ("target", "value", "95% interval", "null", "p", "n"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for r in probe_table(out).itertuples():
        table.add_row(escape(r.target), f"{r.value:.3f}", f"[{r.lo:.3f}, {r.hi:.3f}]", f"{r.null:.3f}",
                      f"{r.p:.4f}", str(r.n))
    common.console.print(table)
    if out.get("genre_skipped"):
        common.console.print(f"[yellow]note:[/] genre not probed: {escape(out['genre_skipped'])}")
    held = ((out.get("genre") or {}).get("details") or {})
    if held.get("unscored_covers"):
        common.console.print(
            f"[yellow]note:[/] {held['unscored_covers']} covers of {escape(', '.join(held['unscored_classes']))} "
            "not scored: their groups sit wholly in one fold, whose classifier never saw the genre"
        )
    if out.get("audio_skipped"):
        common.console.print(f"[yellow]note:[/] {escape(out['audio_skipped'])}; genre side only")
    elif not out["audio_embeddings"]:
        common.console.print("[yellow]note:[/] no audio embeddings for this dataset yet (run `bench encode`): "
                             "genre side only")
    common.console.print(f"[green]wrote[/] {escape(str(probe_path(ds)))}")


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


def print_info(ds, warnings: bool = True) -> None:  # noqa: ANN001 - PreparedDataset, imported lazily
    from core.data.info import dataset_summary

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
    for w in s.get("warnings", []) if warnings else []:
        common.console.print(f"[yellow]warning:[/] {escape(w)}")
