"""GAN zoo: every model's forward/backward at 32 px, conditioning, losses, regularisers, FIR, modconv, EMA, ADA."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from models.gans import MODELS, build_gan, ema_beta, ema_update
from models.gans.ada import AdaptiveAugment
from models.gans.diffaugment import DiffAugment, cutout, translation
from models.gans.layers import modulated_conv2d
from models.gans.losses import BCELoss, StyleGANLoss, WassersteinGPLoss, gradient_penalty, r1_penalty
from models.gans.ops import fir_fold, make_resampler
from models.gans.ops.fir_conv import downsample2d, fir_filter, fir_kernel, upsample2d

RES, N, COND = 32, 8, 5


def _c(n: int = N, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, COND, (n,), generator=g), COND).float()


def _spec(name: str, res: int = RES, **kw):
    torch.manual_seed(0)
    return build_gan(name, res=res, cond_dim=COND if name.endswith("_cond") else 0, size="tiny", **kw)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are tiny: one intra-op thread avoids spin-waiting on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ every model


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_every_model(name):
    spec = _spec(name)
    c = _c() if spec.conditional else None
    z = torch.randn(N, spec.z_dim)
    img = spec.G(z, c)
    assert img.shape == (N, 3, RES, RES) and torch.isfinite(img).all()
    if name.startswith("stylegan"):
        assert img.abs().max() < 20 and img.std() > 0.05  # [-1, 1]-ish, not collapsed
    else:
        assert img.abs().max() <= 1.0  # tanh output
    logits = spec.D(img.detach(), c)
    assert logits.shape == (N,) and torch.isfinite(logits).all()

    real = torch.rand(N, 3, RES, RES) * 2 - 1
    loss_d, stats_d = spec.loss.d_step(spec.G, spec.D, real, c, step=0)  # step 0: lazy R1 included for StyleGAN
    spec.D.zero_grad()
    loss_d.backward()
    _assert_grads(spec.D, f"{name} D")
    assert all(torch.isfinite(v) for v in stats_d.values())

    spec.G.zero_grad()
    loss_g, _ = spec.loss.g_step(spec.G, spec.D, c, n=N, step=1)
    loss_g.backward()
    _assert_grads(spec.G, f"{name} G")


def _assert_grads(module: nn.Module, what: str) -> None:
    for pname, p in module.named_parameters():
        assert p.grad is not None, f"{what}: no grad for {pname}"
        assert torch.isfinite(p.grad).all(), f"{what}: non-finite grad for {pname}"
        assert p.grad.abs().sum() > 0, f"{what}: zero grad for {pname}"


@pytest.mark.parametrize("name", [m for m in MODELS if m.endswith("_cond")])
def test_condition_changes_output(name):
    spec = _spec(name)  # train mode, as G and D run in training (BatchNorm on batch statistics)
    z = torch.randn(N, spec.z_dim)
    c1, c2 = _c(seed=1), _c(seed=1).roll(1, dims=1)  # every sample gets a different genre
    torch.manual_seed(5)
    a = spec.G(z, c1)
    torch.manual_seed(5)
    a_again = spec.G(z, c1)
    torch.manual_seed(5)
    b = spec.G(z, c2)
    assert torch.equal(a, a_again)  # same z, same c, same noise -> same images
    per_sample = (a - b).abs().flatten(1).mean(1)
    assert (per_sample > 1e-3).all(), per_sample
    x = torch.rand(N, 3, RES, RES) * 2 - 1
    d1, d2 = spec.D(x, c1), spec.D(x, c2)
    assert ((d1 - d2).abs() > 1e-5).all()
    # the condition is checked: wrong width is a clear error
    with pytest.raises(UserError, match="condition has shape"):
        spec.G(z, torch.zeros(N, COND + 1))


def test_dcgan_reference_settings():
    spec = build_gan("dcgan", res=64)
    assert spec.z_dim == 100 and spec.g_opt.lr == 2e-4 and spec.g_opt.betas == (0.5, 0.999)
    assert any(isinstance(m, nn.BatchNorm2d) for m in spec.G.modules())
    convs = [m.weight for m in spec.G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs[-1].shape[0] == 64  # 64 base channels into the last layer
    allw = torch.cat([w.flatten() for w in convs])
    assert abs(allw.std().item() - 0.02) < 0.002 and abs(allw.mean().item()) < 0.002
    assert spec.G(torch.randn(2, 100)).shape == (2, 3, 64, 64)


def test_wgan_gp_settings_and_no_batchnorm_in_critic():
    spec = build_gan("wgan_gp", res=64)
    assert spec.n_critic == 5 and spec.d_opt.lr == 1e-4 and spec.d_opt.betas == (0.0, 0.9)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in spec.D.modules())
    assert isinstance(spec.loss, WassersteinGPLoss) and spec.loss.gp_weight == 10.0


def test_stylegan_defaults():
    spec = build_gan("stylegan_cond", res=256, cond_dim=8, batch=32)
    h = spec.hparams
    assert h["r1_gamma"] == pytest.approx(0.0002 * 256**2 / 32) and h["r1_every"] == 16
    assert h["augment"] == "color,translation,cutout" and spec.has_ema and h["style_mix_prob"] == 0.9
    ratio = 16 / 17
    assert spec.d_opt.lr == pytest.approx(0.0025 * ratio) and spec.d_opt.betas[1] == pytest.approx(0.99**ratio)
    assert spec.G.num_ws == 14 and spec.G.mapping.net[0].w_gain == pytest.approx(0.01 / math.sqrt(512 + 512))


def test_registry_errors():
    with pytest.raises(UserError, match="dcgan, dcgan_cond"):
        build_gan("biggan", res=32)
    with pytest.raises(UserError, match="cond_dim > 0"):
        build_gan("stylegan_cond", res=32, size="tiny")
    with pytest.raises(UserError, match="unconditional"):
        build_gan("dcgan", res=32, cond_dim=4)
    with pytest.raises(UserError, match="accepted"):
        build_gan("dcgan", res=32, w_dim=3)
    with pytest.raises(UserError, match="resolution"):
        build_gan("dcgan", res=48)


# ------------------------------------------------------------------------------------------ losses


class _Fixed(nn.Module):
    """A 'generator' that returns fixed noise images (so only D learns)."""

    def __init__(self, res: int = RES):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.res = res

    def forward(self, z, c=None, **kw):
        g = torch.Generator().manual_seed(0)
        return torch.rand(z.shape[0], 3, self.res, self.res, generator=g) * 0.4 - 0.6 + self.p


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp", "stylegan_cond"])
def test_d_loss_decreases_on_separable_toy_batch(name):
    res = 16 if name.startswith("stylegan") else RES  # 32 px is covered above; keep this one quick
    spec = _spec(name, res=res, augment="none")
    G = _Fixed(res)
    c = _c() if spec.conditional else None
    real = torch.full((N, 3, res, res), 0.8)
    opt = spec.d_opt.make(spec.D.parameters())
    losses = []
    for step in range(8):
        loss, _ = spec.loss.d_step(G, spec.D, real, c, step=step + 1)  # not a lazy-R1 step
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


class _Linear(nn.Module):
    """D(x) = <w, x> + b per sample: gradient w everywhere, so R1 = ||w||^2 and GP = (||w|| - 1)^2."""

    def __init__(self, scale: float):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, RES, RES, generator=torch.Generator().manual_seed(3)) * scale)

    def forward(self, x, c=None):
        return (x * self.w).sum((1, 2, 3))


class _Quadratic(nn.Module):
    def forward(self, x, c=None):  # D(x) = 0.5 ||x||^2: gradient x, R1 = ||x||^2
        return 0.5 * x.square().sum((1, 2, 3))


def test_r1_and_gp_match_analytic_gradients():
    real = torch.randn(N, 3, RES, RES)
    fake = torch.randn(N, 3, RES, RES)
    D = _Linear(0.05)
    wn2 = D.w.detach().square().sum()
    r1, logits = r1_penalty(D, real, None)
    torch.testing.assert_close(r1, wn2.expand(N), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, D(real))
    gp, gnorm = gradient_penalty(D, real, fake, None)
    torch.testing.assert_close(gp, (wn2.sqrt() - 1).square(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gnorm, wn2.sqrt())
    r1q, _ = r1_penalty(_Quadratic(), real, None)
    torch.testing.assert_close(r1q, real.square().sum((1, 2, 3)))
    # the penalty is differentiable w.r.t. D's weights: d||w||^2/dw = 2w
    r1.mean().backward()
    torch.testing.assert_close(D.w.grad, 2 * D.w.detach())


def test_lazy_r1_term_in_d_step():
    D = _Linear(0.05)
    loss = StyleGANLoss(z_dim=4, r1_gamma=0.3, r1_every=16)
    real = torch.randn(N, 3, RES, RES)
    torch.manual_seed(1)
    l_reg, stats = loss.d_step(_Fixed(), D, real, None, step=32)
    torch.manual_seed(1)
    l_plain, stats2 = loss.d_step(_Fixed(), D, real, None, step=33)
    expected = 0.3 / 2 * D.w.detach().square().sum() * 16
    torch.testing.assert_close(l_reg - l_plain, expected, rtol=1e-4, atol=1e-4)
    assert "D/r1" in stats and "D/r1" not in stats2


def test_wgan_and_bce_losses_match_formulas():
    D = _Linear(0.01)
    G = _Fixed()
    real = torch.randn(N, 3, RES, RES)
    fake = G(torch.zeros(N, 1))
    lr, lf = D(real), D(fake)
    bce, _ = BCELoss(z_dim=1).d_step(G, D, real, None)
    torch.testing.assert_close(bce, -F.logsigmoid(lr).mean() - F.logsigmoid(-lf).mean())
    wl, st = WassersteinGPLoss(z_dim=1, gp_weight=10.0).d_step(G, D, real, None)
    gp = (D.w.detach().square().sum().sqrt() - 1).square()
    torch.testing.assert_close(wl, lf.mean() - lr.mean() + 10 * gp, rtol=1e-5, atol=1e-5)
    g, _ = WassersteinGPLoss(z_dim=1).g_step(G, D, None, n=N)
    torch.testing.assert_close(g, -lf.mean())


def test_path_length_regulariser_runs_and_tracks_mean():
    spec = _spec("stylegan", res=16, pl_weight=2.0, augment="none")
    loss0, st0 = spec.loss.g_step(spec.G, spec.D, None, n=N, step=1)
    loss, st = spec.loss.g_step(spec.G, spec.D, None, n=N, step=4)
    assert "G/pl_penalty" in st and "G/pl_penalty" not in st0
    assert st["G/pl_mean"] > 0 and torch.isfinite(loss)
    loss.backward()
    assert spec.G.synthesis.blocks[-1].conv1.weight.grad.abs().sum() > 0
    state = spec.loss.state_dict()
    assert state["pl_mean"] == st["G/pl_mean"]
    with torch.no_grad():  # a diverged G: the step is skipped by the engine, the running mean must survive it
        spec.G.synthesis.blocks[-1].torgb.weight.fill_(float("nan"))
    loss, st = spec.loss.g_step(spec.G, spec.D, None, n=N, step=8)
    assert not torch.isfinite(loss) and spec.loss.pl_mean == state["pl_mean"]


# ------------------------------------------------------------------------------------------ layers


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("up", [False, True])
def test_synthesis_layer_folded_gains_equal_the_textbook_formula(fused, up):
    """lrelu(modconv(x) + noise + bias) * sqrt(2), written out, against the layer that folds sqrt(2) into the
    demodulation, noise and bias (values, gradients, and channels_last kept)."""
    from models.gans.layers import lrelu_gain
    from models.gans.stylegan.synthesis import SynthesisLayer

    torch.manual_seed(0)
    layer = SynthesisLayer(6, 5, w_dim=8, res=16 if up else 8, up=up, fused=fused)
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x = torch.randn(3, 6, 8, 8, requires_grad=True)
    w = torch.randn(3, 8)
    y = layer(x, w, noise_mode="const")
    styles = layer.affine(w)
    conv = modulated_conv2d(x, layer.weight * layer.w_gain, styles, up=up, resample=layer.resample, fused=fused)
    ref = lrelu_gain(conv + layer.noise_const * layer.noise_strength + layer.bias[None, :, None, None])
    torch.testing.assert_close(y, ref)
    probe = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad((y * probe).sum(), x)[0],
                               torch.autograd.grad((ref * probe).sum(), x)[0])
    if not fused:  # the grouped (fused) form reshapes the batch into channels, which loses the layout anyway
        xc = x.detach().contiguous(memory_format=torch.channels_last)
        assert layer(xc, w, noise_mode="random").is_contiguous(memory_format=torch.channels_last)


def test_discriminator_block_folded_gains_equal_the_textbook_formula():
    """(skip(x) + conv1(conv0(x))) * sqrt(1/2) with lrelu * sqrt(2) activations, written out with plain convs."""
    from models.gans.layers import lrelu_gain
    from models.gans.stylegan.discriminator import DiscriminatorBlock

    torch.manual_seed(0)
    block = DiscriminatorBlock(4, 6)
    with torch.no_grad():
        for conv in (block.conv0, block.conv1):
            conv.bias.normal_()
    x = torch.randn(2, 4, 8, 8)
    f = fir_kernel()
    h = lrelu_gain(F.conv2d(x, block.conv0.weight * block.conv0.w_gain, block.conv0.bias, padding=1))
    h = lrelu_gain(F.conv2d(fir_filter(h, f, 2), block.conv1.weight * block.conv1.w_gain, block.conv1.bias, stride=2))
    skip = F.conv2d(fir_filter(x, f, 1), block.skip.weight * block.skip.w_gain, stride=2)
    torch.testing.assert_close(block(x), (skip + h) * math.sqrt(0.5))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demod", [True, False])
def test_modulated_conv_equals_per_sample_loop(fused, up, demod):
    torch.manual_seed(0)
    n, cin, cout, h = 3, 4, 5, 8
    x = torch.randn(n, cin, h, h)
    w = torch.randn(cout, cin, 3, 3)
    s = torch.randn(n, cin)
    f = fir_kernel()
    out = modulated_conv2d(x, w, s, demodulate=demod, up=up, resample=make_resampler("conv"), fused=fused)
    ref = []
    for i in range(n):
        wi = w * s[i][None, :, None, None]
        if demod:
            wi = wi / wi.square().sum((1, 2, 3), keepdim=True).sqrt()
        xi = upsample2d(x[i : i + 1], f) if up else x[i : i + 1]
        ref.append(F.conv2d(xi, wi, padding=1))
    ref = torch.cat(ref)
    assert out.shape == ref.shape
    if up:  # "transposed conv then FIR" equals "FIR upsample then conv" away from the borders
        out, ref = out[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_fir_resampling_keeps_constants_and_pixel_centres():
    f = fir_kernel()
    const = torch.full((1, 2, 8, 8), 0.7)
    up = upsample2d(const, f)
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], torch.full_like(up[..., 1:-1, 1:-1], 0.7))
    down = downsample2d(const, f)
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))
    # a ramp x[i] = i must land on pixel centres: up[j] = (j - 0.5) / 2, down[i] = 2 i + 0.5
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    u = upsample2d(ramp, f)[0, 0, 4, 1:-1]
    torch.testing.assert_close(u, (torch.arange(1.0, 15.0) - 0.5) / 2)
    d = downsample2d(ramp, f)[0, 0, 2, 1:-1]
    torch.testing.assert_close(d, 2 * torch.arange(1.0, 3.0) + 0.5)


def _grouped_reference(op: str, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The FIR ops as plain grouped convolutions (autograd's own, group-looping, double backward)."""
    c = x.shape[1]
    w = f.to(x.dtype)[None, None].expand(c, 1, *f.shape)
    if op == "up":
        return F.conv_transpose2d(x, w * 4, stride=2, padding=1, groups=c)
    if op == "down":
        return F.conv2d(x, w, stride=2, padding=1, groups=c)
    return F.conv2d(F.pad(x, (2, 2, 2, 2)), w, groups=c)


_FIR_OPS = {"up": lambda x, f: upsample2d(x, f), "down": lambda x, f: downsample2d(x, f),
            "filter": lambda x, f: fir_filter(x, f, 2)}


@pytest.mark.parametrize("op", sorted(_FIR_OPS))
@pytest.mark.parametrize("size", [6, 7])
def test_fir_ops_values_gradients_and_second_derivatives(op, size):
    """The custom FIR autograd functions equal grouped convolutions in value, gradient and gradient of gradient."""
    torch.manual_seed(0)
    f = fir_kernel().double()
    x = torch.randn(2, 3, size, size, dtype=torch.double, requires_grad=True)
    fn = _FIR_OPS[op]
    assert torch.autograd.gradcheck(lambda t: fn(t, f), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fn(t, f), (x,))
    # the same first and second derivatives as the reference, through a nonlinearity so they are not trivial
    y_ref = _grouped_reference(op, x, f)
    y = fn(x, f)
    torch.testing.assert_close(y, y_ref)
    probe = torch.randn_like(y)
    (g,) = torch.autograd.grad((y.tanh() * probe).sum(), x, create_graph=True)
    (g_ref,) = torch.autograd.grad((y_ref.tanh() * probe).sum(), x, create_graph=True)
    torch.testing.assert_close(g, g_ref)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    (gg_ref,) = torch.autograd.grad(g_ref.square().sum(), x)
    torch.testing.assert_close(gg, gg_ref)


def test_prepared_filters_are_cached_but_never_stale():
    """The scaled/cast filter is made once per buffer, and an in-place change to the buffer is seen."""
    from models.gans.ops.fir_conv import _prepared

    f = fir_kernel()
    assert _prepared(f, 4.0, torch.float64) is _prepared(f, 4.0, torch.float64)
    torch.testing.assert_close(_prepared(f, 4.0, torch.float64), (f * 4).double())
    x = torch.randn(1, 2, 6, 6)
    before = fir_filter(x, f, 1, gain=4.0)
    with torch.no_grad():
        f.mul_(2.0)
    torch.testing.assert_close(fir_filter(x, f, 1, gain=4.0), 2 * before)
    g = fir_kernel() * 3  # another buffer: its own entry
    torch.testing.assert_close(_prepared(g, 4.0, torch.float64), (g * 4).double())


def test_fir_double_backward_does_not_loop_over_channels():
    """Autograd's grouped-conv double backward runs one conv per channel; ours must stay a few convs in all."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        convs = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func._overloadpacket == torch.ops.aten.convolution:
                Count.convs += 1
            return func(*args, **(kwargs or {}))

    f = fir_kernel()
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    with Count():
        y = fir_filter(upsample2d(x, f), f, 1)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        g.square().sum().backward()
    assert Count.convs <= 8  # 2 forward + 2 backward + 4 double backward; grouped autograd: hundreds


@pytest.mark.parametrize("impl", ["blend", "pool"])
@pytest.mark.parametrize("pad,gain,stride", [(1, 4.0, 1), (2, 1.0, 1), (1, 1.0, 2), (2, 0.5, 2), (5, 1.0, 1)])
def test_fir_impls_equal_depthwise_conv_to_second_order(impl, pad, gain, stride):
    """The channels_last-friendly FIRs (shifted-slice blends, box-filter cascade) are the same linear map as the
    depthwise conv: values, gradients and gradients of gradients, on odd and even sizes."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 10, dtype=torch.double, requires_grad=True)
    f = fir_kernel().double()
    y, y_ref = make_resampler(impl).filter(x, pad, gain, stride), fir_filter(x, f, pad, gain, stride)
    torch.testing.assert_close(y, y_ref)
    probe = torch.randn_like(y)
    (g,) = torch.autograd.grad((y.sin() * probe).sum(), x, create_graph=True)
    (g_ref,) = torch.autograd.grad((y_ref.sin() * probe).sum(), x, create_graph=True)
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(torch.autograd.grad(g.square().sum(), x)[0],
                               torch.autograd.grad(g_ref.square().sum(), x)[0])
    xc = x.detach().float().contiguous(memory_format=torch.channels_last)
    if stride == 1:
        assert make_resampler(impl).filter(xc, pad, gain).is_contiguous(memory_format=torch.channels_last)


def _fold_cases():
    f = fir_kernel().double()
    up_ref = lambda x, w: fir_filter(F.conv_transpose2d(x, w.transpose(0, 1).flip((2, 3)), stride=2), f, 1, gain=4.0)  # noqa: E731
    down_ref = lambda x, w: F.conv2d(fir_filter(x, f, 2), w, stride=2)  # noqa: E731
    taps = fir_fold.fold_matrices()
    return {"up": (lambda x, w: fir_fold.up_conv(x, w, taps), up_ref, (7, 5), 3),
            "down": (lambda x, w: fir_fold.down_conv(x, w, taps), down_ref, (8, 10), 3)}


@pytest.mark.parametrize("kind", ["up", "down"])
def test_fir_folded_into_convs_equals_filter_and_conv_to_second_order(kind):
    """fir_impl="fold" merges the filter into the neighbouring conv (polyphase): the same map as the depthwise
    filter and the stride-2 conv, in values, gradients (input and weight) and gradients of gradients; channels_last
    in, channels_last out."""
    fold, ref, size, k = _fold_cases()[kind]
    torch.manual_seed(0)
    x = torch.randn(2, 5, *size, dtype=torch.double, requires_grad=True)
    w = torch.randn(4, 5, k, k, dtype=torch.double, requires_grad=True)
    y, y_ref = fold(x, w), ref(x, w)
    torch.testing.assert_close(y, y_ref)
    probe = torch.randn_like(y)
    g = torch.autograd.grad((y.sin() * probe).sum(), (x, w), create_graph=True)
    g_ref = torch.autograd.grad((y_ref.sin() * probe).sum(), (x, w), create_graph=True)
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(torch.autograd.grad(g[0].square().sum() + g[1].sum(), (x, w)),
                               torch.autograd.grad(g_ref[0].square().sum() + g_ref[1].sum(), (x, w)))
    xc = x.detach().float().contiguous(memory_format=torch.channels_last)
    assert fold(xc, w.detach().float()).is_contiguous(memory_format=torch.channels_last)
    fold_weight = fir_fold.fold_up_weight if kind == "up" else fir_fold.fold_down_weight
    taps = fir_fold.fold_matrices()
    wl = fold_weight(w.detach(), taps, channels_last=True)  # laid out as a channels_last conv reads it
    assert wl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(wl, fold_weight(w.detach(), taps), rtol=0, atol=0)


def test_depth_to_space_inverts_space_to_depth_in_both_layouts():
    x = torch.randn(2, 3, 4, 6)
    for t in (x, x.contiguous(memory_format=torch.channels_last)):
        s = fir_fold.space_to_depth(t)
        assert s.shape == (2, 12, 2, 3)
        torch.testing.assert_close(s[:, 3 * 1 + 2], t[:, 2, 0::2, 1::2])  # phase (0, 1), channel 2
        torch.testing.assert_close(fir_fold.depth_to_space(s), t)
    with pytest.raises(ValueError, match="even"):
        fir_fold.space_to_depth(torch.randn(1, 1, 3, 4))


@pytest.mark.parametrize("impl", ["blend", "pool", "fold"])
def test_stylegan_fir_impls_give_the_same_networks(impl):
    """fir_impl changes how the filters run, not the model: same outputs, R1 and path-length gradients."""
    conv, other = _spec("stylegan_cond", res=16), _spec("stylegan_cond", res=16, fir_impl=impl)
    assert other.D.blocks[0].conv1.resample.impl == impl and conv.D.blocks[0].conv1.resample.impl == "conv"
    other.G.load_state_dict(conv.G.state_dict())
    other.D.load_state_dict(conv.D.state_dict())
    z, c = torch.randn(4, conv.z_dim), _c(4)
    outs = []
    for spec in (conv, other):
        torch.manual_seed(1)
        img, ws = spec.G(z, c, noise_mode="const", return_ws=True)
        real = img.detach().requires_grad_(True)
        (r1,) = torch.autograd.grad(spec.D(real, c).sum(), real, create_graph=True)
        (pl,) = torch.autograd.grad((img * img.detach()).sum(), ws, create_graph=True)
        (r1.square().sum() + pl.square().sum()).backward()
        outs.append((img, r1, pl, next(spec.G.parameters()).grad, spec.D.fromrgb.weight.grad,
                     spec.D.blocks[0].skip.weight.grad))
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="fir_impl"):
        _spec("stylegan", res=16, fir_impl="fft")


def test_stylegan_truncation_and_style_mixing():
    spec = _spec("stylegan", res=16)
    G = spec.G.eval()
    z = torch.randn(4, spec.z_dim)
    img = G(z, truncation_psi=0.0, noise_mode="const")  # every sample collapses to w_avg
    torch.testing.assert_close(img, img[:1].expand_as(img))
    _, ws = G(z, style_mix_prob=1.0, return_ws=True, noise_mode="const")
    # with mixing every sample switches to a second w at some layer
    assert all(not torch.equal(ws[i, 0], ws[i, -1]) for i in range(4))
    _, ws0 = G(z, style_mix_prob=0.0, return_ws=True)
    assert torch.equal(ws0[:, 0], ws0[:, -1])


def test_stylegan_bf16_autocast_and_channels_last():
    spec = _spec("stylegan_cond", res=16)
    G = spec.G.to(memory_format=torch.channels_last)
    D = spec.D.to(memory_format=torch.channels_last)
    c = _c(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = G(torch.randn(4, spec.z_dim), c)
        logits = D(img.contiguous(memory_format=torch.channels_last), c)
    assert torch.isfinite(img.float()).all() and torch.isfinite(logits.float()).all()
    logits.float().sum().backward()
    assert torch.isfinite(G.synthesis.blocks[-1].conv1.weight.grad).all()


# ------------------------------------------------------------------------------------------ EMA, ADA, DiffAugment


def test_ema_update_and_half_life():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    G_ema = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    G[1].running_mean.fill_(2.0)
    before = [p.detach().clone() for p in G_ema.parameters()]
    ema_update(G_ema, G, 0.9)
    for pe, b, pg in zip(G_ema.parameters(), before, G.parameters(), strict=True):
        torch.testing.assert_close(pe, 0.9 * b + 0.1 * pg.detach())
    assert torch.equal(G_ema[1].running_mean, G[1].running_mean)
    beta = ema_beta(32, half_life_kimg=10)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)
    assert ema_beta(32, 10, rampup=0.05, kimg_seen=1.0) < beta  # shorter half-life early on


def test_ada_moves_p_with_sign_of_real_logits():
    ada = AdaptiveAugment(target=0.6, interval=2, speed_kimg=0.1)
    for _ in range(4):
        ada.observe(torch.ones(50))  # over-confident D -> more augmentation
    p_up = ada.p.item()
    assert p_up == pytest.approx(min(1.0, 2 * 100 / 100))
    ada2 = AdaptiveAugment(target=0.6, interval=2, speed_kimg=1.0, p_init=0.5)
    for _ in range(2):
        ada2.observe(-torch.ones(50))
    assert ada2.p.item() == pytest.approx(0.5 - 100 / 1000)
    state = ada2.state_dict()
    ada3 = AdaptiveAugment()
    ada3.load_state_dict(state)
    assert ada3.p.item() == pytest.approx(0.4)
    ada4 = AdaptiveAugment(target=0.6, interval=2, speed_kimg=1.0, p_init=0.5)
    ada4.observe(torch.full((50,), float("nan")))  # a skipped non-finite step's logits count for nothing
    ada4.observe(-torch.ones(50))
    assert ada4.p.item() == pytest.approx(0.5 - 50 / 1000)


def test_diffaugment_is_differentiable_and_gated():
    torch.manual_seed(0)
    x = torch.randn(16, 3, 16, 16, requires_grad=True)
    aug = DiffAugment("color,translation,cutout")
    y = aug(x, 1.0)
    assert y.shape == x.shape and not torch.allclose(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(aug(x, 0.0), x)  # p = 0: identity
    # cutout zeroes about a quarter of the pixels; translation keeps content (a shifted copy)
    ones = torch.ones(64, 1, 16, 16)
    frac = (cutout(ones) == 0).float().mean().item()
    assert 0.15 < frac < 0.3
    img = torch.arange(256.0).view(1, 1, 16, 16).expand(4, 1, 16, 16)
    t = translation(img)
    nz = t[t != 0]
    assert set(nz.tolist()) <= set(range(256))
    with pytest.raises(UserError, match="unknown DiffAugment"):
        DiffAugment("color,rotate")


def test_determinism_with_fixed_seed():
    def run():
        spec = _spec("stylegan_cond", res=16)
        torch.manual_seed(7)
        real = torch.rand(N, 3, 16, 16)
        loss, _ = spec.loss.d_step(spec.G, spec.D, real, _c(), step=0)
        return loss.detach(), [p.detach().clone() for p in spec.G.parameters()]

    (l1, p1), (l2, p2) = run(), run()
    assert torch.equal(l1, l2)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))
