"""``bench perf train``: training throughput, memory and FLOP utilisation of one GAN configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core.config.schema import GAN_NAMES

app = typer.Typer(help="Measure speed: training throughput of the GANs.", no_args_is_help=True)


@app.command("train")
def train(
    model: Annotated[str, typer.Option("--model", help=", ".join(GAN_NAMES))],
    res: Annotated[int, typer.Option("--res", help="resolution in px")] = 64,
    batch: Annotated[int, typer.Option("--batch", help="batch size")] = 64,
    steps: Annotated[int, typer.Option("--steps", min=1, help="timed iterations (n_critic D + 1 G step each)")] = 20,
    warmup: Annotated[int | None, typer.Option("--warmup", help="untimed iterations first [period + 2]")] = None,
    size: Annotated[str, typer.Option("--size", help="full or tiny networks")] = "full",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast (CUDA only)")] = True,
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last", help="CUDA only")] = True,
    compile_: Annotated[bool, typer.Option("--compile/--no-compile", help="torch.compile G and D (CUDA)")] = False,
    compile_mode: Annotated[
        str | None, typer.Option("--compile-mode", help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="feed real covers of this dataset (default: random images)")
    ] = None,
    hparam: Annotated[
        list[str] | None, typer.Option("--hparam", help="model setting key=value for build_gan (repeatable)")
    ] = None,
    flops: Annotated[bool, typer.Option("--flops/--no-flops", help="count FLOPs for utilisation")] = True,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the result here")] = None,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="write a torch.profiler operator table of one period here")
    ] = None,
) -> None:
    """Time full training iterations through the engine's own step code; report images/s, s/kimg, memory, MFU."""
    from core.config.load import parse_override
    from speed.harness import perf_train

    ds = None
    if dataset:
        from core.data.prepared import PreparedDataset

        ds = PreparedDataset.open(dataset)
    hp = {}
    for text in hparam or []:
        keys, value = parse_override(text)
        hp[".".join(keys)] = value
    out = perf_train(
        model,
        res=res,
        batch=batch,
        steps=steps,
        warmup=warmup,
        size=size,
        device=device,
        amp=amp,
        channels_last=channels_last,
        compile=compile_,
        compile_mode=compile_mode,
        hparams=hp,
        dataset=ds,
        count_flops=flops,
        profile_path=str(profile) if profile else None,
    )
    print_perf(out)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        common.console.print(f"[green]wrote[/] {escape(str(json_path))}")


def print_perf(r: dict) -> None:
    def num(v, fmt: str) -> str:  # noqa: ANN001
        return "n/a" if v is None else format(v, fmt)

    table = Table(title=f"perf train {escape(r['model'])} {r['res']} px, batch {r['batch']} ({escape(r['size'])})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("device", escape(str(r["device"]))),
        ("bf16 / channels_last / compile", f"{r['amp_bf16']} / {r['channels_last']} / {r['compile']}"),
        ("iterations timed (images)", f"{r['iterations']} ({r['images']})"),
        ("images/s", num(r["images_per_s"], ".1f")),
        ("s/kimg", num(r["s_per_kimg"], ".3f")),
        ("images per CPU-second", num(r["images_per_cpu_s"], ".1f")),
        ("peak memory (MB)", num(r["peak_memory_mb"], ".0f")),
        ("GFLOP per image", num(r["flops_per_image"] and r["flops_per_image"] / 1e9, ".3f")),
        ("achieved TFLOP/s", num(r["achieved_tflops"], ".3f")),
        ("peak TFLOP/s", num(r["peak_tflops"], ".0f")),
        ("FLOP utilisation", "n/a" if r["flop_utilisation"] is None else f"{100 * r['flop_utilisation']:.1f} %"),
        ("warm-up (s)", num(r["warmup_seconds"], ".1f")),
    ]
    for k, v in rows:
        table.add_row(k, v)
    common.console.print(table)
