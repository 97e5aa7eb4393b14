"""Bring your own feature weights (``features=file:PATH``) and CMMD beside FID.

The feature network is a tiny conv net saved in tmp_path (TorchScript, and a torch.export program), or a small
torchvision classifier's state dict (``file:ARCH=PATH``): its features must equal the network run by hand on the
documented input (RGB NCHW float in [0, 1]; for a state dict, torchvision's net built here, its head removed, ImageNet
normalisation done here), the file's SHA-256 must be recorded and part of the cache key (new weights never hit a stale
cache), and every broken contract is one line.
CMMD is checked against a naive O(n^2) double loop, an analytic value for Gaussians, and a peer (sklearn's RBF
kernel fed to torchmetrics' unbiased MMD estimator).
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from metrics.distribution.cmmd import cmmd, cmmd_entry, mmd2_rbf
from metrics.features.extractors import extractor_description, make_extractor, real_features
from metrics.features.user_weights import uses_cmmd
from tests.conftest import make_tiny_dataset, planted_loader

CPU = torch.device("cpu")


class TinyNet(nn.Module):
    """A conv layer, ReLU, global average pooling: (N, 3, H, W) -> (N, d)."""

    def __init__(self, seed: int = 0, c_in: int = 3, d: int = 8, input_resolution: int | None = None, how: str = "ok"):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(c_in, d, 3, padding=1)
        if input_resolution is not None:
            self.input_resolution = input_resolution
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).relu()
        if self.how == "map":
            return h  # (N, d, H, W): not pooled
        if self.how == "nan":
            return h.mean(dim=(2, 3)) / 0.0 * 0.0
        if self.how == "constant":
            return torch.ones(x.shape[0], 4)
        if self.how == "nan_on_black":  # divides by the image's brightest value: an all-black image gives inf
            return h.mean(dim=(2, 3)) / x.amax(dim=(1, 2, 3))[:, None]
        return h.mean(dim=(2, 3))


def save_scripted(path, net: nn.Module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(net.eval()), str(path))
    return path


@pytest.fixture
def tiny():
    make_tiny_dataset()
    return PreparedDataset.open("tiny")


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def by_hand(net: nn.Module, covers: np.ndarray, res: int | None = None, imagenet: bool = False) -> np.ndarray:
    """The documented input contract, computed independently: RGB NCHW float in [0, 1], resized if asked (and
    ImageNet-normalised, as a torchvision classifier's state dict is fed)."""
    x = torch.from_numpy(np.array(covers)).permute(0, 3, 1, 2).float() / 255.0
    if res is not None:
        x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    if imagenet:
        x = (x - torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)) / torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net.eval()(x).numpy()


def test_file_features_follow_the_contract_and_record_the_hash(tiny, tmp_path):
    net = TinyNet(seed=1)
    path = save_scripted(tmp_path / "feat.pt", net)
    ext = make_extractor(tiny, f"file:{path}", 32, EvalConfig(), CPU)
    covers = np.concatenate([tiny.covers(32)] * 2)[:70]  # more than one chunk of 64
    np.testing.assert_allclose(ext(covers), by_hand(net, covers), rtol=1e-5, atol=1e-6)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    desc = extractor_description(ext)  # what metrics.json's "extractor" holds
    assert desc["sha256"] == sha and sha in desc["preprocessing"] and desc["path"] == str(path)
    assert desc["format"] == "torchscript" and desc["dim"] == 8 and desc["input_resolution"] == 32
    assert ext.name == f"file:feat.pt@{sha[:12]}"
    assert uses_cmmd(f"file:{path}") and not uses_cmmd("covernet") and not uses_cmmd("inception")


def test_the_network_states_its_own_input_size(tiny, tmp_path):
    net = TinyNet(seed=2, input_resolution=16)
    ext = make_extractor(tiny, f"file:{save_scripted(tmp_path / 'f16.pt', net)}", 32, EvalConfig(), CPU)
    covers = tiny.covers(32)[:10]
    np.testing.assert_allclose(ext(covers), by_hand(net, covers, res=16), rtol=1e-5, atol=1e-6)
    assert ext.info["input_resolution"] == 16 and "-in16-" in ext.preprocessing


def test_torch_export_program_with_fixed_batch(tiny, tmp_path):
    net = TinyNet(seed=3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (torch.rand(4, 3, 32, 32),))  # batch fixed at 4, size at 32
        torch.export.save(program, str(tmp_path / "feat.pt2"))
    ext = make_extractor(tiny, f"file:{tmp_path / 'feat.pt2'}", 32, EvalConfig(), CPU)
    covers = tiny.covers(32)[:11]  # not a multiple of 4: the last batch is padded and cut
    np.testing.assert_allclose(ext(covers), by_hand(net, covers), rtol=1e-5, atol=1e-6)
    assert ext.info["format"] == "torch.export" and ext.info["input_resolution"] == 32


def test_changed_weights_change_the_cache_key(tiny, tmp_path):
    path = save_scripted(tmp_path / "feat.pt", TinyNet(seed=1))
    first = make_extractor(tiny, f"file:{path}", 32, EvalConfig(), CPU)
    a, _ = real_features(tiny, "test", 32, first, stats=False)
    again, _ = real_features(tiny, "test", 32, make_extractor(tiny, f"file:{path}", 32, EvalConfig(), CPU),
                             stats=False)  # fmt: skip
    assert not a.hit and again.hit and again.key == a.key
    save_scripted(path, TinyNet(seed=7))  # same path, new weights
    second = make_extractor(tiny, f"file:{path}", 32, EvalConfig(), CPU)
    b, _ = real_features(tiny, "test", 32, second, stats=False)
    assert not b.hit and b.key != a.key and not np.allclose(a.features, b.features)
    assert second.info["sha256"] != first.info["sha256"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: save_scripted(p, TinyNet(c_in=1)), r"failed on the input contract \(float32 RGB NCHW in \[0, 1\]"),
        (lambda p: save_scripted(p, TinyNet(how="map")), r"returned shape \(16, 8, 32, 32\) .* must return \(N, d\)"),
        (lambda p: save_scripted(p, TinyNet(how="nan")), "NaN or inf features for image 0 of 16"),
        (lambda p: save_scripted(p, TinyNet(how="constant")), "gives every probe cover the same features"),
        (lambda p: torch.save(TinyNet().state_dict(), p), "holds a state dict .* file:resnet18=.* torch.jit.save"),
        (lambda p: p.write_bytes(b"not a network"), "is not a TorchScript module or a torch.export program"),
        (lambda p: None, "no feature network at"),
        (lambda p: save_scripted(p, TinyNet(input_resolution=0)), "input_resolution must be a positive int"),
    ],
    ids=["one-channel", "feature-map", "nan", "constant", "state-dict", "garbage", "missing", "bad-resolution"],
)
def test_broken_contracts_are_one_line(tiny, tmp_path, make, match):
    path = tmp_path / "net.pt"
    make(path)
    with pytest.raises(UserError, match=match) as e:
        make_extractor(tiny, f"file:{path}", 32, EvalConfig(), CPU)
    assert "\n" not in str(e.value)


def test_nan_on_a_later_image_names_it(tiny, tmp_path):
    path = save_scripted(tmp_path / "f.pt", TinyNet(how="nan_on_black"))
    ext = make_extractor(tiny, f"file:{path}", 32, EvalConfig(), CPU)  # the probe covers are not black: fine
    covers = np.concatenate([tiny.covers(32)] * 2)[:70]
    assert ext(covers).shape == (70, 8)
    covers[66] = 0
    with pytest.raises(UserError, match="NaN or inf features for image 66 of 70"):
        ext(covers)


# --------------------------------------------------------------------------------------- torchvision state dicts
def with_data_statistics(net: nn.Module, size: int, n: int = 4) -> nn.Module:
    """BatchNorm statistics of a batch, as training leaves them: fresh ones (mean 0, var 1) make a deep net's
    features the same for every input, which would hide a missing normalisation."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # the batch's own statistics, not 10 % of them
    with torch.no_grad():
        net.train()(torch.randn(n, 3, size, size))
    return net.eval()


def small_classifier(seed: int = 0, classes: int = 5) -> nn.Module:
    """mobilenet_v3_small with a 5-class head and BatchNorm statistics of its own (eval mode must use them)."""
    torch.manual_seed(seed)
    return with_data_statistics(torchvision.models.mobilenet_v3_small(weights=None, num_classes=classes), 224)


def penultimate(state: dict, classes: int = 5) -> nn.Module:
    """The reference: torchvision's mobilenet_v3_small built here with the state, its last Linear removed."""
    net = torchvision.models.mobilenet_v3_small(weights=None, num_classes=classes)
    net.load_state_dict(state)
    net.classifier[3] = nn.Identity()
    return net.eval()


def test_state_dict_features_equal_the_torchvision_network_by_hand(tiny, tmp_path):
    state = small_classifier(seed=1).state_dict()
    path = tmp_path / "finetuned.pt"
    torch.save(state, path)
    ext = make_extractor(tiny, f"file:mobilenet_v3_small={path}", 32, EvalConfig(), CPU)
    covers = tiny.covers(32)[:20]
    want = by_hand(penultimate(state), covers, res=224, imagenet=True)
    assert want.shape == (20, 1024)
    assert (want.std(axis=0) > 0.1 * np.abs(want).mean()).mean() > 0.5  # the features tell covers apart
    np.testing.assert_allclose(ext(covers), want, rtol=1e-4, atol=1e-5)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    desc = extractor_description(ext)
    assert desc["sha256"] == sha and desc["path"] == str(path) and desc["format"] == "state_dict"
    assert desc["arch"] == "mobilenet_v3_small" and desc["dim"] == 1024 and desc["input_resolution"] == 224
    assert ext.name == f"file:mobilenet_v3_small=finetuned.pt@{sha[:12]}"
    assert sha in ext.preprocessing and "mobilenet_v3_small" in ext.preprocessing and "-in224-" in ext.preprocessing
    assert uses_cmmd(f"file:mobilenet_v3_small={path}")


@pytest.mark.parametrize(
    "wrap",
    [lambda sd: {"state_dict": sd}, lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
     lambda sd: {f"module.{k}": v for k, v in sd.items()}],
    ids=["state_dict-key", "model-key-ddp", "ddp"],
)  # fmt: skip
def test_wrapped_and_ddp_prefixed_state_dicts_load_the_same(tiny, tmp_path, wrap):
    state = small_classifier(seed=2).state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save(wrap(state), tmp_path / "wrapped.pt")
    plain, wrapped = (make_extractor(tiny, f"file:mobilenet_v3_small={tmp_path / name}", 32, EvalConfig(), CPU)
                      for name in ("plain.pt", "wrapped.pt"))  # fmt: skip
    covers = tiny.covers(32)[:8]
    np.testing.assert_array_equal(wrapped(covers), plain(covers))
    assert wrapped.info["sha256"] != plain.info["sha256"]  # another file: another cache key


def test_inception_state_dict_without_aux_head_at_its_own_size(tmp_path):
    from metrics.features.user_weights import load_feature_net

    torch.manual_seed(3)
    made = torchvision.models.inception_v3(weights=None, num_classes=3, aux_logits=False, init_weights=False)
    made = with_data_statistics(made, 299, n=2)
    torch.save(made.state_dict(), tmp_path / "inception.pt")
    net = load_feature_net(tmp_path / "inception.pt", CPU, "inception_v3")
    assert net.input_resolution == 299 and net.arch == "inception_v3"
    ref = torchvision.models.inception_v3(weights=None, num_classes=3, aux_logits=False, init_weights=False,
                                          transform_input=True)  # as torchvision's ImageNet weights build it
    ref.load_state_dict(made.state_dict())
    ref.fc = nn.Identity()
    covers = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(covers).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(299, 299), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        got = net.call(x).numpy()
    np.testing.assert_allclose(got, by_hand(ref, covers, res=299, imagenet=True), rtol=1e-4, atol=1e-5)
    assert got.shape == (2, 2048)


@pytest.mark.parametrize(
    ("arch", "make", "match"),
    [
        ("resnt18", lambda p: torch.save(small_classifier().state_dict(), p),
         r"unknown torchvision architecture 'resnt18' \(did you mean resnet18.*list_models\(torchvision.models\)"),
        ("resnet18", lambda p: torch.save(small_classifier().state_dict(), p),
         "is not a state dict of torchvision's resnet18: missing key 'conv1.weight'"),
        ("mobilenet_v3_small", lambda p: torch.save({**small_classifier().state_dict(), "extra": torch.ones(1)}, p),
         "of torchvision's mobilenet_v3_small: unexpected key 'extra' \\(0 missing, 1 unexpected\\)"),
        ("mobilenet_v3_small", lambda p: save_scripted(p, TinyNet()), "is not a state dict .* without an architecture"),
        ("mobilenet_v3_small", lambda p: torch.save({"epoch": 3}, p), "holds a dict without a state dict"),
        ("squeezenet1_1", lambda p: torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), p),
         "squeezenet1_1 has no final Linear layer"),
    ],
    ids=["unknown-arch", "other-arch", "unexpected-key", "torchscript", "no-state-dict", "no-linear-head"],
)  # fmt: skip
def test_broken_state_dicts_are_one_line(tiny, tmp_path, arch, make, match):
    path = tmp_path / "sd.pt"
    make(path)
    with pytest.raises(UserError, match=match) as e:
        make_extractor(tiny, f"file:{arch}={path}", 32, EvalConfig(), CPU)
    assert "\n" not in str(e.value)


def test_an_existing_file_named_arch_equals_path_keeps_its_meaning(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = TinyNet(seed=5)
    save_scripted(tmp_path / "resnet18=feat.pt", net)
    ext = make_extractor(tiny, "file:resnet18=feat.pt", 32, EvalConfig(), CPU)
    assert ext.info["format"] == "torchscript" and "arch" not in ext.info and ext.name.startswith("file:resnet18=")
    np.testing.assert_allclose(ext(tiny.covers(32)[:4]), by_hand(net, tiny.covers(32)[:4]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------------ CMMD
def naive_mmd2(x: np.ndarray, y: np.ndarray, sigma: float, unbiased: bool) -> float:
    """The textbook double sums, one pair at a time."""
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma * sigma))

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not unbiased or i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not unbiased or i != j)
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    nxx, nyy = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    return sxx / nxx + syy / nyy - 2 * sxy / (n * m)


def test_mmd_matches_the_naive_double_sum():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(23, 5)), rng.normal(0.4, 1.3, size=(17, 5))
    for sigma in (0.7, 3.0, 10.0):
        for est in ("unbiased", "biased"):
            want = naive_mmd2(x, y, sigma, est == "unbiased")
            assert mmd2_rbf(x, y, sigma, estimator=est) == pytest.approx(want, rel=1e-9, abs=1e-13)


def test_mmd_matches_a_peer_sklearn_kernel_and_torchmetrics_estimator():
    mmd_peer = pytest.importorskip("torchmetrics.image.kid").maximum_mean_discrepancy
    from sklearn.metrics.pairwise import rbf_kernel

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)), rng.normal(0.3, 1.0, size=(40, 6))
    gamma = 1 / (2 * 2.0**2)
    kxx, kyy, kxy = (torch.from_numpy(rbf_kernel(a, b, gamma=gamma)) for a, b in ((x, x), (y, y), (x, y)))
    assert mmd2_rbf(x, y, 2.0) == pytest.approx(float(mmd_peer(kxx, kxy, kyy)), rel=1e-10)


def gaussian_mmd2(mu1, s1, mu2, s2, d, sigma):
    """MMD^2 between N(mu1, s1^2 I) and N(mu2, s2^2 I) in d dims for the RBF kernel, in closed form:
    E k(u) for u = x - y ~ N(m, v I) is (1 + v / sigma^2)^(-d/2) exp(-|m|^2 / (2 (sigma^2 + v)))."""
    def ek(m2, v):
        return (1 + v / sigma**2) ** (-d / 2) * np.exp(-m2 / (2 * (sigma**2 + v)))

    m2 = float(np.sum((np.asarray(mu1) - np.asarray(mu2)) ** 2))
    return ek(0.0, 2 * s1**2) + ek(0.0, 2 * s2**2) - 2 * ek(m2, s1**2 + s2**2)


def test_unbiased_estimate_centres_on_the_analytic_value():
    d, sigma = 3, 1.5
    mu2 = np.array([0.8, 0.0, -0.3])
    truth = gaussian_mmd2(np.zeros(d), 1.0, mu2, 1.2, d, sigma)
    rng = np.random.default_rng(2)
    est = [mmd2_rbf(rng.normal(size=(60, d)), mu2 + 1.2 * rng.normal(size=(60, d)), sigma) for _ in range(200)]
    se = np.std(est, ddof=1) / np.sqrt(len(est))
    assert abs(np.mean(est) - truth) < 4 * se and truth > 10 * se  # centred on it, and far from 0
    biased = [mmd2_rbf(rng.normal(size=(60, d)), mu2 + 1.2 * rng.normal(size=(60, d)), sigma, estimator="biased")
              for _ in range(200)]  # fmt: skip
    assert np.mean(biased) - truth > 4 * se  # the V-statistic sits above it by O(1/n)


def test_cmmd_is_scaled_mmd_of_unit_embeddings_with_a_bootstrap_interval():
    rng = np.random.default_rng(3)
    real, gen = rng.normal(size=(120, 16)), rng.normal(0.5, 1.0, size=(100, 16))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    r = cmmd(real, gen, n_boot=100, seed=0)
    assert r.value == pytest.approx(1000 * naive_mmd2(unit(real)[:120], unit(gen), 10.0, True), rel=1e-8)
    assert cmmd(7.0 * real, 0.1 * gen).value == pytest.approx(r.value, rel=1e-9)  # scale of the features: none
    assert r.interval[0] < r.value < r.interval[1] and r.interval[0] > 0  # a shifted mean is seen
    assert cmmd(real, gen, n_boot=100, seed=0).interval == r.interval  # same seed, same numbers
    same = cmmd(real[:60], real[60:], n_boot=100, seed=0)
    assert same.interval[0] < 0 < same.interval[1] and abs(same.value) < r.value / 5
    # the interval narrows like 1/sqrt(n): four times the samples, about half the width
    big = cmmd(rng.normal(size=(480, 16)), rng.normal(0.5, 1.0, size=(400, 16)), n_boot=100, seed=0)
    ratio = (big.interval[1] - big.interval[0]) / (r.interval[1] - r.interval[0])
    assert 0.3 < ratio < 0.75


def test_cmmd_entry_for_metrics_json_and_bad_inputs():
    rng = np.random.default_rng(4)
    e = cmmd_entry(rng.normal(size=(50, 4)), rng.normal(size=(40, 4)), seed=1, n_boot=20)
    assert e["n"] == 40 and e["n_real"] == 50 and e["kernel"] == "gaussian-rbf" and e["sigma"] == 10.0
    assert e["n_boot"] == 20 and len(e["interval"]) == 2 and e["estimator"] == "unbiased" and e["seed"] == 1
    bad = rng.normal(size=(10, 4))
    bad[3, 1] = np.nan
    for args, match in [((bad, rng.normal(size=(10, 4))), "NaN or inf"),
                        ((rng.normal(size=(10, 4)), rng.normal(size=(10, 5))), "4-d but generated features are 5-d"),
                        ((rng.normal(size=(1, 4)), rng.normal(size=(10, 4))), "at least 2 samples"),
                        ((np.zeros((5, 4)), rng.normal(size=(10, 4))), "row 0 is all zeros")]:  # fmt: skip
        with pytest.raises(UserError, match=match):
            cmmd(*args)


# ------------------------------------------------------------------------------------------------ end to end
def test_probe_cli_takes_file_features_and_refuses_a_broken_contract_in_one_line(tiny, tmp_path, capsys):
    import json

    from tests.conftest import run_bench

    good = save_scripted(tmp_path / "feat.pt", TinyNet(seed=1))
    assert run_bench("data", "probe", "tiny", "--features", f"file:{good}", "--folds", "2", "--permutations",
                     "100") == 0  # fmt: skip
    probe = json.loads((tiny.paths.root / "probe.json").read_text())
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    assert probe["extractor"] == f"file:feat.pt@{sha[:12]}" and sha in probe["preprocessing"]
    capsys.readouterr()
    bad = save_scripted(tmp_path / "gray.pt", TinyNet(c_in=1))
    assert run_bench("data", "probe", "tiny", "--features", f"file:{bad}", "--folds", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "failed on the input contract" in err and len(err.splitlines()) == 1


def test_probe_cli_takes_a_state_dict_with_its_architecture(tiny, tmp_path, capsys):
    import json

    from tests.conftest import run_bench

    path = tmp_path / "finetuned.pt"
    torch.save({"model": small_classifier(seed=4).state_dict()}, path)
    assert run_bench("data", "probe", "tiny", "--features", f"file:mobilenet_v3_small={path}", "--folds", "2",
                     "--permutations", "100") == 0  # fmt: skip
    probe = json.loads((tiny.paths.root / "probe.json").read_text())
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert probe["extractor"] == f"file:mobilenet_v3_small=finetuned.pt@{sha[:12]}" and sha in probe["preprocessing"]
    capsys.readouterr()
    assert run_bench("data", "probe", "tiny", "--features", f"file:{path}", "--folds", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "holds a state dict" in err and "file:resnet18=" in err and len(err.splitlines()) == 1


def test_evaluation_records_the_weights_hash_in_metrics_json(tmp_path, monkeypatch):
    """bench evaluate's own pipeline with file features: metrics.json names the file by its SHA-256."""
    import json

    import benchmark.pipeline.evaluate as ev
    from core import paths
    from core.config import load_config
    from core.config.schema import SplitConfig, SynthConfig
    from core.data.synth.world import synthesize_world
    from tests.test_evaluate_pipeline import N_GENRES, PlantedG

    synthesize_world(paths.dataset("w"), SynthConfig(tracks=240, genres=N_GENRES, coupling=1.0, res=[32],
                                                     seconds=1.0, seed=3), SplitConfig(), workers=1)  # fmt: skip
    ds = PreparedDataset.open("w")
    path = save_scripted(tmp_path / "feat.pt", TinyNet(seed=4, d=16))
    meta = {"res": 32, "cond_dim": N_GENRES, "z_dim": 4, "condition": "genre", "checkpoint": "planted",
            "images_seen": 0}
    monkeypatch.setattr(ev, "load_generator", planted_loader(PlantedG(ds, True), meta))
    cfg = load_config("cpu", ["eval.n_permutations=100", "eval.n_bootstrap=10", "eval.tsne_real=60", "eval.tsne_gen=30",
                              "eval.sensitivity_z=4", f"eval.features=file:{path}"]).eval  # fmt: skip
    m = ev.evaluate_model(ds, paths.run("r"), "dcgan_cond", cfg, device_kind="cpu", n=60, seed=0)
    on_disk = json.loads((paths.run("r").eval("dcgan_cond") / "metrics.json").read_text())
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    for doc in (m, on_disk):
        assert doc["extractor"]["sha256"] == sha and doc["extractor"]["format"] == "torchscript"
        assert doc["metrics"]["fid"]["extractor"] == f"file:feat.pt@{sha[:12]}"
        c = doc["metrics"]["cmmd"]  # CMMD beside FID with your own features
        assert c["extractor"] == doc["metrics"]["fid"]["extractor"] and c["n"] == 60 and c["sigma"] == 10.0
        assert c["interval"][0] <= c["value"] <= c["interval"][1]


def test_the_readme_feature_networks_follow_the_contract(tiny, tmp_path, monkeypatch):
    from tests.conftest import readme_blocks

    monkeypatch.chdir(tmp_path)
    import runpy

    (python,) = readme_blocks("Bring your own feature network", "python")
    script = tmp_path / "readme_features.py"  # a file: torch.jit.script reads the class's source
    script.write_text(python)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        runpy.run_path(str(script), run_name="readme")
    (bash,) = readme_blocks("Bring your own feature network", "bash")
    kinds = [line.split("--features ")[1].split()[0] for line in bash.splitlines() if "--features " in line]
    assert kinds == ["file:resnet18=resnet18_finetuned.pt", "file:resnet18_features.pt"]  # a state dict, a program
    for kind in kinds:
        ext = make_extractor(tiny, kind, 32, EvalConfig(), CPU)
        assert ext(tiny.covers(32)[:3]).shape == (3, 512) and ext.info["input_resolution"] == 224


def test_every_extractor_gets_c_contiguous_batches():
    """The Extractor hands its function C-contiguous uint8 batches whatever the caller's layout (a generator's NCHW
    output seen as NHWC is not): convolutions take another code path per layout, and bench evaluate's covers must
    give bit for bit the features of the same covers read back from PNG files."""
    from metrics.features.extractors import Extractor

    seen = []
    ext = Extractor("probe", "probe", lambda a: seen.append(a.flags.c_contiguous) or a.reshape(len(a), -1)[:, :4] * 1.0)
    nchw = np.random.default_rng(0).integers(0, 256, (10, 3, 8, 8), dtype=np.uint8)
    view = nchw.transpose(0, 2, 3, 1)  # NHWC values, NCHW memory
    assert not view.flags.c_contiguous
    out = ext(view, batch=4)
    assert seen == [True, True, True] and np.array_equal(out, ext(np.ascontiguousarray(view), batch=4))
