"""``bench power``: how often the verdict says "yes" for partial-oracle covers (see benchmark/pipeline/power.py)."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core import paths
from core.errors import UserError

STRENGTH_HELP = "strengths q in [0, 1], comma-separated: the chance a cover is the asked track's own"


def power(
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    condition: Annotated[
        str, typer.Option("--condition", help="genre, or an encoded or registered condition (e.g. pca)")
    ] = "genre",
    strength: Annotated[str, typer.Option("--strength", help=STRENGTH_HELP)] = "0,0.05,0.1,0.2,0.4,1",
    n: Annotated[str, typer.Option("--n", help="covers per replicate, comma-separated")] = "200,1000,5000",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="replicates per (strength, n)")] = 50,
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset (default: the run's)")] = None,
    joint: Annotated[bool, typer.Option("--joint", help="add FJD and CFID to a continuous family (slow)")] = False,
    features: Annotated[
        str | None, typer.Option("--features", help="covernet, inception, colour, file:PATH or file:ARCH=PATH "
                                 "[config eval.features]")
    ] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Power and false-positive rate of the conditioning verdict, from real covers: no training."""
    from benchmark.pipeline import power as pw
    from core.data.prepared import PreparedDataset

    strengths, sizes = pw.parse_strengths(strength), pw.parse_sizes(n)
    cfg = common.config(preset, set_, common.drop_none({"run": run, "eval": {"features": features}}))
    rp = paths.run(cfg.run)
    if not rp.root.is_dir():
        raise UserError(f"run {rp.name!r} not found at {rp.root}: bench power writes eval/power.json into a run "
                        f"(`bench encode --encoder genre --run {rp.name}` creates one without training)")
    name = dataset or _run_dataset(rp) or cfg.data.name
    ds = PreparedDataset.open(name)
    out = pw.power_analysis(ds, rp, cfg.eval, condition, strengths=strengths, sizes=sizes, seeds=seeds,
                            res=cfg.train.res, joint=joint, device_kind=cfg.device)
    meta = out["conditions"][condition]
    table = Table(title=f"verdict power: {escape(condition)} ({escape(', '.join(meta['family']))}; "
                        f"{meta['n_permutations']} permutations)")
    for col in ("n", "q", "seeds", "yes", "95 % interval", "no", "inconclusive"):
        table.add_column(col, justify="right")
    for r in out["rows"]:
        if r["condition"] == condition:
            lo, hi = r["yes_interval"]
            table.add_row(str(r["n"]), f"{r['strength']:g}", str(r["seeds"]), f"{r['yes']:.2f}",
                          f"[{lo:.3f}, {hi:.3f}]", f"{r['no']:.2f}", f"{r['inconclusive']:.2f}")
    common.console.print(table)
    for note in out.get("notes") or []:  # rows of power.json that no longer describe anything
        common.err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    for fp in meta["false_positive"]:
        lo, hi = fp["interval"]
        line = (f"false 'yes' at q = 0, n = {fp['n']}: {fp['rate']:.3f} over {fp['seeds']} seeds, "
                f"95 % interval [{lo:.3f}, {hi:.3f}]")
        if fp["exceeds_alpha"]:
            common.err_console.print(f"warning: {line} exceeds alpha = {out['alpha']}", highlight=False, soft_wrap=True)
        else:
            common.console.print(line, highlight=False, soft_wrap=True)
    if meta.get("refused"):  # as bench evaluate: every number is written, the judgement is not to be trusted
        common.err_console.print(
            f"[bold yellow]refused to judge:[/] {escape(meta['refused'])}; bench evaluate withholds every verdict "
            "with this extractor, so these rates say what the tests would decide, not what evaluation will",
            highlight=False, soft_wrap=True,
        )
    common.console.print(escape(meta["sentence"]), highlight=False, soft_wrap=True)
    common.console.print(f"left out of the family: {escape(', '.join(meta['left_out']))}; "
                         f"{meta['seconds']:.0f} s", highlight=False, soft_wrap=True)
    common.console.print(f"written to {escape(str(rp.root / 'eval' / pw.POWER_FILE))}")


def _run_dataset(rp: paths.RunPaths) -> str | None:
    """The dataset recorded in the run's config.yaml, if the run has one."""
    if not rp.config.is_file():
        return None
    tree = yaml.safe_load(rp.config.read_text(encoding="utf-8")) or {}
    return (tree.get("data") or {}).get("name")
