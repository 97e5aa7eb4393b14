"""Are StyleGAN's gradients under bf16 autocast close to fp32, R1 and path length included, per FIR implementation?

Why: the regularisers differentiate through convolution backward passes (double backward), a path the speed
benchmarks never check for correctness. On the CPU, oneDNN's bf16 double backward of a stride-1 padded conv returns a
weight gradient unrelated to the true one (torch 2.14.1; relative error ~1.0 where stride 2 gives 0.002), which is one
reason training keeps bf16 to CUDA. This script holds the CUDA path to the same check: every parameter's gradient of
each loss term (D's logistic loss, R1, G's loss, path length) in bf16 autocast against strict fp32 (TF32 off); a
gradient that no longer points the fp32 way (cosine below ``--flag``) is listed. Part of ``gpu_checks.sh``; runs in
seconds.

    python -m speed.bf16_gradients --device cuda --res 64 --batch 8 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

TERMS = ("d_loss", "r1", "g_loss", "path_length")


@contextlib.contextmanager
def _strict_fp32():
    """TF32 off for the reference (PyTorch allows it for cuDNN convolutions by default)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def stylegan_gradients(G, D, z, c, real, *, bf16: bool) -> dict[str, dict[str, torch.Tensor]]:
    """Gradients of each loss term with respect to every parameter of the network it trains (G or D)."""
    dev = real.device
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    out = {}

    def grads(loss, net):
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        gs = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        return {n: (g if g is not None else torch.zeros_like(p)).detach().float().clone()
                for (n, p), g in zip(named, gs, strict=True)}

    with ctx:
        fake = G(z, c, noise_mode="const")
        out["d_loss"] = grads((F.softplus(D(fake.detach(), c)) + F.softplus(-D(real, c))).float().mean(), D)
        x = real.detach().requires_grad_(True)
        (r1,) = torch.autograd.grad(D(x, c).sum(), x, create_graph=True)
        out["r1"] = grads(r1.float().square().sum((1, 2, 3)).mean(), D)
        out["g_loss"] = grads(F.softplus(-D(G(z, c, noise_mode="const"), c)).float().mean(), G)
        img, ws = G(z, c, noise_mode="const", return_ws=True)
        probe = torch.randn(img.shape, generator=torch.Generator(dev).manual_seed(7), device=dev) / img.shape[-1]
        (pl,) = torch.autograd.grad((img.float() * probe).sum(), ws, create_graph=True)
        out["path_length"] = grads(pl.float().square().sum(2).mean(), G)
    return out


def gradient_errors(ref: dict[str, dict[str, torch.Tensor]], cand: dict[str, dict[str, torch.Tensor]],
                    flag: float, min_numel: int = 16) -> dict[str, dict]:
    """Per term, over parameters of at least ``min_numel`` elements: median and max relative error
    (||cand - ref|| / ||ref||), and the parameters whose gradient points elsewhere (cosine similarity below
    ``flag``). bf16 rounding leaves a gradient noisy but aligned (cosine near 1); a wrong kernel gives one that is
    unrelated (cosine near 0). Scalars such as noise strengths are left out: their gradients are sums with heavy
    cancellation, noisy in bf16 without being wrong."""
    report = {}
    for term, rg in ref.items():
        rel, cos = {}, {}
        for name, r in rg.items():
            norm, x = r.norm().item(), cand[term][name]
            if r.numel() < min_numel or norm == 0:
                continue
            rel[name] = (x - r).norm().item() / norm
            cos[name] = (x.flatten() @ r.flatten()).item() / max(x.norm().item() * norm, 1e-30)
        vals = sorted(rel.values())
        report[term] = {"median": vals[len(vals) // 2] if vals else 0.0, "max": vals[-1] if vals else 0.0,
                        "min_cosine": min(cos.values(), default=1.0),
                        "flagged": {n: round(c, 4) for n, c in cos.items() if c < flag}}
    return report


def conv_double_backward_probe(device: torch.device, stride: int) -> float:
    """Relative error of the bf16 double-backward weight gradient of one 3x3 conv (padding 1) against float64."""
    g = torch.Generator().manual_seed(0)
    x0, w0, v0 = (torch.randn(*s, generator=g, dtype=torch.float64)
                  for s in ((4, 8, 16, 16), (8, 8, 3, 3), (4, 8, 16 // stride, 16 // stride)))

    def weight_grad(dtype):
        x = x0.to(device, dtype).requires_grad_(True)
        w = (w0 / 8).to(device, dtype).requires_grad_(True)
        y = F.conv2d(x, w, padding=1, stride=stride)
        (gx,) = torch.autograd.grad((y * v0.to(device, dtype)).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.double().square().sum(), w)[0].double().cpu()

    ref = weight_grad(torch.float64)
    return ((weight_grad(torch.bfloat16) - ref).norm() / ref.norm()).item()


def main(argv: list[str] | None = None) -> int:
    from models.gans.registry import build_gan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", default="full", choices=("full", "tiny"))
    ap.add_argument("--impls", default="conv,pool,fold")
    ap.add_argument("--flag", type=float, default=0.5, help="cosine similarity below which a gradient is listed")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    torch.manual_seed(0)
    base = build_gan("stylegan_cond", res=args.res, cond_dim=8, size=args.size)
    z = torch.randn(args.batch, base.z_dim, device=dev)
    c = torch.eye(8, device=dev)[torch.arange(args.batch, device=dev) % 8]
    real = torch.randn(args.batch, 3, args.res, args.res, device=dev).contiguous(memory_format=fmt)
    result = {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "torch": torch.__version__, "res": args.res, "batch": args.batch, "size": args.size, "flag": args.flag,
              "conv_probe": {f"stride{s}": conv_double_backward_probe(dev, s) for s in (1, 2)}, "impls": {}}
    print(f"one 3x3 conv, bf16 double-backward weight gradient vs float64 on {result['device_name']}: "
          + ", ".join(f"{k} {v:.3g}" for k, v in result["conv_probe"].items()))
    for impl in args.impls.split(","):
        spec = build_gan("stylegan_cond", res=args.res, cond_dim=8, size=args.size, fir_impl=impl)
        spec.G.load_state_dict(base.G.state_dict())
        spec.D.load_state_dict(base.D.state_dict())
        G = spec.G.to(dev, memory_format=fmt).eval()  # eval: no w_avg update between the two passes
        D = spec.D.to(dev, memory_format=fmt)
        with _strict_fp32():
            ref = stylegan_gradients(G, D, z, c, real, bf16=False)
        cand = stylegan_gradients(G, D, z, c, real, bf16=True)
        rep = result["impls"][impl] = gradient_errors(ref, cand, args.flag)
        for term in TERMS:
            r = rep[term]
            print(f"{impl:>5} {term:>12}: relative error median {r['median']:.3g}, max {r['max']:.3g}; "
                  f"min cosine {r['min_cosine']:.3f}; flagged {len(r['flagged'])}"
                  + (f" {sorted(r['flagged'])[:4]}" if r["flagged"] else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
