"""``bench features extract|merge``: per-track audio statistics, cached as parquet in the dataset."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from benchmark.cli import common

app = typer.Typer(help="Extract and merge per-track audio features (FMA statistics + rhythm).", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="dataset name or folder")]


@app.command("extract")
def extract(
    name: NameArg = "default",
    shard: Annotated[
        str | None, typer.Option("--shard", help="compute only shard i of N (i/N, 0-based); merge later")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="worker processes (default: all cores)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="recompute even if a current cache exists")] = False,
) -> None:
    """Compute the features of every track (or of one shard) in worker processes."""
    from core.audio.extract import extract_features, load_skipped, parse_shard, skipped_path
    from core.data.prepared import PreparedDataset

    part = parse_shard(shard)
    ds = PreparedDataset.open(name)
    out = extract_features(ds, workers=workers, shard=part, force=force)
    common.console.print(f"[green]features[/] {escape(str(out))}")
    skipped = load_skipped(ds) if part is None else _read_csv(skipped_path(ds, part))
    if len(skipped):
        common.console.print(f"[yellow]{len(skipped)} tracks skipped[/] (see {escape(str(skipped_path(ds, part)))})")


@app.command("merge")
def merge(name: NameArg = "default") -> None:
    """Merge the shard files written by `extract --shard` into one table."""
    from core.audio.extract import merge_feature_shards
    from core.data.prepared import PreparedDataset

    out = merge_feature_shards(PreparedDataset.open(name))
    common.console.print(f"[green]merged[/] {escape(str(out))}")


def _read_csv(path):  # noqa: ANN001, ANN202 - tiny helper
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else pd.DataFrame()
