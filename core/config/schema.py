"""The validated shape of every configuration value.

Every model forbids unknown keys, so a typo in YAML or in ``--set`` fails loudly, naming the key.
Later stages (encoders, GANs, evaluation) add their sections here.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config.hparams import resolve_hparams
from core.config.names import GAN_NAMES, check_condition_name, parse_model_id
from core.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


def _check_resolutions(values: list[int], lo: int, hi: int) -> list[int]:
    if not values:
        raise ValueError("at least one resolution is required")
    for r in values:
        if not lo <= r <= hi:
            raise ValueError(f"resolution {r} outside {lo}..{hi}")
    return sorted(set(values))


class SynthConfig(Strict):
    """The synthetic album world: a stand-in for the Spotify dataset with a known, tunable relationship."""

    tracks: int = Field(4000, ge=8, le=1_000_000)
    genres: int = Field(8, ge=2, le=16)
    coupling: float = Field(1.0, ge=0.0, le=1.0, description="probability that a cover follows its track")
    res: list[int] = Field(default_factory=lambda: [64], description="cover resolutions stored (px)")
    seconds: float = Field(10.0, ge=1.0, le=60.0)
    seed: int = 0
    genre_overlap: float = Field(0.35, ge=0.0, le=1.0, description="how much genres share musical traits")
    palette_overlap: float = Field(0.25, ge=0.0, le=1.0, description="how much genres share cover colours")
    tracks_per_artist: float = Field(4.0, ge=1.0, le=100.0, description="mean tracks per artist")
    sample_rate: int = Field(22050, ge=8000, le=48000)
    export_res: int = Field(640, ge=32, le=1024, description="cover size written by --export")

    @field_validator("res")
    @classmethod
    def _res(cls, v: list[int]) -> list[int]:
        return _check_resolutions(v, 32, 256)


class ImportConfig(Strict):
    """Import of a real Spotify-style dump (covers + previews + CSV)."""

    res: list[int] = Field(default_factory=lambda: [64])
    seconds: float = Field(30.0, ge=1.0, le=120.0, description="audio kept per track (padded/cut)")
    sample_rate: int = Field(22050, ge=8000, le=48000)
    min_audio_seconds: float = Field(1.0, ge=0.0, description="shorter previews are rejected")
    min_cover_px: int = Field(64, ge=8, description="covers whose short side is smaller are rejected")
    max_aspect: float = Field(1.25, ge=1.0, description="wider covers are rejected; others centre-cropped")
    max_pixels: int = Field(50_000_000, ge=1, description="decompression-bomb guard")
    max_reject_share: float = Field(0.5, ge=0.0, le=1.0, description="fail when more than this is rejected")

    @field_validator("res")
    @classmethod
    def _res(cls, v: list[int]) -> list[int]:
        return _check_resolutions(v, 32, 640)


class SplitConfig(Strict):
    """Train/val/test shares: stratified by genre, artist-disjoint when artist ids exist."""

    train: float = Field(0.8, gt=0.0, lt=1.0)
    val: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0
    group_by: list[Literal["artist", "audio", "cover"]] | None = Field(
        None, description="what ties tracks into one split: artist, identical audio, identical cover; [] ties "
        "nothing. Unset: all three, and the import fails when identical content costs a split a genre or a split "
        "(core.data.splits)",
    )

    @model_validator(mode="after")
    def _sum(self) -> SplitConfig:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {self.train + self.val + self.test:g}")
        return self


class LoaderConfig(Strict):
    batch_size: int = Field(256, ge=1)
    workers: int = Field(0, ge=0)


class DataConfig(Strict):
    name: str = Field("default", description="dataset used by default by later stages")
    synth: SynthConfig = Field(default_factory=SynthConfig)
    import_: ImportConfig = Field(default_factory=ImportConfig, alias="import")
    split: SplitConfig = Field(default_factory=SplitConfig)
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    workers: int | None = Field(None, ge=1, description="worker processes for synthesis/import (None: all cores)")


class EncodersConfig(Strict):
    """Music encoders (``bench encode``): shared training settings and per-network sizes."""

    dim: int = Field(32, ge=1, le=1024, description="embedding size d of pca/autoencoder/rnn/cnn")
    epochs: int = Field(40, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    patience: int = Field(6, ge=1, description="epochs without val improvement before stopping")
    seed: int = 0
    seconds: float = Field(30.0, gt=0.0, le=600.0, description="audio used per track by rnn/cnn (from the start)")
    n_mels: int = Field(128, ge=8, le=512)
    n_mfcc: int = Field(20, ge=2, le=128, description="MFCCs (+ deltas) per frame for the rnn")
    frame_pool: int = Field(4, ge=1, le=64, description="rnn: average this many frames into one step")
    rnn_hidden: int = Field(64, ge=4)
    rnn_recon_weight: float = Field(
        1.0, ge=0.0, description="rnn: weight of the sequence-autoencoder loss on training tracks without a genre "
        "(0: use labelled tracks only)"
    )
    cnn_channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    ae_hidden: list[int] = Field(default_factory=lambda: [256, 128])
    cache_mb: int = Field(2048, ge=0, description="keep log-mels in memory when they fit, else recompute")
    tsne_points: int = Field(5000, ge=10, description="tracks drawn in the t-SNE map")
    eval_max_points: int = Field(20000, ge=100, description="subsample for silhouette and k-means")


def _model_ids(values: list[str]) -> list[str]:
    """Each entry a GAN name or a ``gan+condition`` id (``stylegan_cond+cnn``), no duplicates."""
    ids = []
    for v in values:
        try:
            ids.append(parse_model_id(v).name)
        except UserError as e:
            raise ValueError(str(e)) from None
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"model(s) listed twice: {', '.join(dup)}")
    return ids


def _finite_kimg(v: float | None) -> float | None:
    """kimg counts images: infinity or NaN would pass ``gt=0`` (NaN compares false) and break the schedule."""
    if v is not None and not math.isfinite(v):
        raise ValueError(f"must be a finite number of kimg, got {v}")
    return v


class ModelTrainConfig(Strict):
    """Per-model training settings that differ from the shared ones (None: use the shared value)."""

    res: int | None = Field(None, ge=8, le=1024)
    kimg: float | None = Field(None, gt=0.0)
    batch: int | None = Field(None, ge=2)
    size: Literal["tiny", "full"] | None = None
    hparams: dict[str, Any] = Field(default_factory=dict, description="typed per GAN family in core.config.hparams")

    _kimg = field_validator("kimg")(_finite_kimg)


class TrainConfig(Strict):
    """GAN training (``bench train``): schedule in kimg, checkpoints, precision, logging."""

    models: list[str] = Field(
        default_factory=lambda: list(GAN_NAMES), description="what `train all` trains: GAN names or gan+condition ids"
    )
    condition: str = Field(
        "genre", description="what plain conditional GAN names train on: a built-in condition or a registered embedding"
    )
    res: int = Field(32, ge=8, le=1024)
    size: Literal["tiny", "full"] = "tiny"
    batch: int = Field(32, ge=2)
    kimg: float = Field(2.0, gt=0.0, description="training length in thousands of real images shown to D")
    snapshot_kimg: float = Field(1.0, gt=0.0, description="sample grid every this many kimg")
    checkpoint_kimg: float = Field(1.0, gt=0.0)
    keep_checkpoints: int = Field(3, ge=1)
    log_kimg: float = Field(0.25, gt=0.0, description="a stats.jsonl line every this many kimg")
    max_nonfinite: int = Field(20, ge=0, description="stop after this many skipped non-finite steps")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    amp: bool = Field(True, description="bf16 autocast on CUDA (always fp32 on CPU)")
    channels_last: bool = True
    compile: bool = Field(False, description="torch.compile the networks on CUDA")
    seed: int = 0
    per_model: dict[str, ModelTrainConfig] = Field(
        default_factory=dict, description="by GAN name, or by gan+condition id (which beats the GAN's entry)"
    )

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        return _model_ids(v)

    @field_validator("condition")
    @classmethod
    def _condition(cls, v: str) -> str:
        try:
            return check_condition_name(v)
        except UserError as e:
            raise ValueError(str(e)) from None

    @field_validator("per_model")
    @classmethod
    def _per_model(cls, v: dict[str, ModelTrainConfig]) -> dict[str, ModelTrainConfig]:
        _model_ids(list(v))
        for key, entry in v.items():  # typed per family: a typo fails at load, not after the models before it
            try:
                resolve_hparams(parse_model_id(key).gan, entry.hparams)
            except UserError as e:
                raise ValueError(f"{key}.hparams: {e}") from None
        return v

    _kimg = field_validator("kimg", "snapshot_kimg", "checkpoint_kimg", "log_kimg")(_finite_kimg)

    def for_model(self, name: str) -> ModelTrainConfig:
        """The effective per-model settings: the id's entry, then its GAN's entry, then the shared values."""
        gan = parse_model_id(name).gan
        own = self.per_model.get(name) if name != gan else None
        base = self.per_model.get(gan, ModelTrainConfig())
        layers = [m for m in (own, base) if m is not None]

        def first(key: str):
            return next((getattr(m, key) for m in layers if getattr(m, key) is not None), getattr(self, key))

        hparams = {**base.hparams, **(own.hparams if own is not None else {})}
        return ModelTrainConfig(
            res=first("res"), kimg=first("kimg"), batch=first("batch"), size=first("size"), hparams=hparams
        )

    def condition_of(self, name: str) -> str | None:
        """The condition model ``name`` trains on (None for unconditional GANs)."""
        return parse_model_id(name).condition_or(self.condition)


class EvalConfig(Strict):
    """Evaluation (``bench evaluate``): sample sizes, feature extractor, statistics."""

    n: int = Field(2000, ge=20, description="generated covers per model")
    features: str = Field(
        "covernet", description="feature extractor: covernet, inception, colour, file:PATH.pt, file:ARCH=PATH.pt "
        "(a torchvision state dict) or a registered name"
    )
    seed: int = 0
    batch: int = Field(256, ge=1)
    n_permutations: int = Field(2000, ge=100)
    n_bootstrap: int = Field(200, ge=0)
    kid_subsets: int = Field(50, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    sensitivity_z: int = Field(32, ge=2, description="z vectors in the condition-sensitivity grid")
    tsne_real: int = Field(1000, ge=20, description="real covers in the t-SNE map")
    tsne_gen: int = Field(500, ge=0, description="generated covers placed into the map")
    covernet_epochs: int = Field(12, ge=1)
    covernet_width: int = Field(32, ge=4)
    covernet_batch: int = Field(128, ge=2, description="covernet training batch (smaller: more steps per epoch)")
    covernet_patience: int = Field(3, ge=1, description="covernet: epochs without val improvement before stopping")
    relationship_folds: int = Field(5, ge=2)
    models: list[str] = Field(
        default_factory=list, description="what `evaluate all` covers (empty: every trained model of the run)"
    )

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        return _model_ids(v)

    @field_validator("features")
    @classmethod
    def _features(cls, v: str) -> str:
        scheme, sep, arg = v.partition(":")
        if not scheme.isidentifier() or (sep and not arg):
            raise ValueError(f"{v!r}: a registered extractor name (covernet, inception, colour) or file:PATH.pt")
        return v


class Config(Strict):
    preset: Literal["cpu", "gpu"] = "cpu"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    run: str = Field("default", description="run folder name under the runs root")
    data: DataConfig = Field(default_factory=DataConfig)
    encoders: EncodersConfig = Field(default_factory=EncodersConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
