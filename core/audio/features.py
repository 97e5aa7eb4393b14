"""Per-clip audio statistics: the FMA feature set (518 values) plus rhythm (13 values).

Every spectral feature comes from ONE magnitude STFT (n_fft 2048, hop 512) and every chroma feature from ONE
constant-Q transform (84 bins, 12 per octave, C1 up, ``tuning=0.0``): computing them separately, as the librosa
one-liners do, repeats the same transforms many times over (``naive_features`` is that baseline and the
reference the tests compare against). Frame-wise values are summarised by mean, std, skew, kurtosis, median,
min and max, the statistics used by the FMA dataset.

Robustness rules (so a dataset never gets NaN/inf features):

- non-finite samples are replaced by 0 before analysis;
- clips shorter than one FFT frame (2048 samples) are zero-padded to one frame; an empty clip is silence;
- statistics of constant rows define skew = kurtosis = 0 (scipy would give NaN);
- silent clips get tempo 0 and no beats (all beat statistics 0).

``clip_features`` raises ``BadAudio`` if, despite this, a value is not finite; dataset extraction records such
clips as skipped instead of failing.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import scipy.stats

from core.audio import transforms as T

SR = 22050
N_FFT = 2048
HOP = 512
N_MFCC = 20
CQT_BINS_PER_OCTAVE = 12
CQT_OCTAVES = 7
FEATURE_VERSION = 1

STATS = ("mean", "std", "skew", "kurtosis", "median", "min", "max")
# (name, rows) in output order; 74 rows x 7 statistics = 518 values
GROUPS = (
    ("chroma_stft", 12),
    ("chroma_cqt", 12),
    ("chroma_cens", 12),
    ("tonnetz", 6),
    ("mfcc", N_MFCC),
    ("rms", 1),
    ("spectral_centroid", 1),
    ("spectral_bandwidth", 1),
    ("spectral_contrast", 7),
    ("spectral_rolloff", 1),
    ("zcr", 1),
)
RHYTHM = (
    "tempo",
    "beats_per_s",
    "beat_interval_std",
    "beat_strength_mean",
    "beat_strength_std",
    "beat_strength_median",
    "onset_mean",
    "onset_std",
    "onset_skew",
    "onset_kurtosis",
    "onset_median",
    "onset_max",
    "onset_rate",
)


class BadAudio(ValueError):
    """A clip whose features cannot be made finite; extraction records it as skipped."""


@lru_cache(maxsize=1)
def feature_names() -> tuple[str, ...]:
    """Stable column names, e.g. ``mfcc_03_mean``, ``rms_std``, ``rhythm_tempo``."""
    names = []
    for group, rows in GROUPS:
        for r in range(rows):
            base = f"{group}_{r + 1:02d}" if rows > 1 else group
            names.extend(f"{base}_{s}" for s in STATS)
    names.extend(f"rhythm_{r}" for r in RHYTHM)
    return tuple(names)


N_STATS_FEATURES = sum(rows for _, rows in GROUPS) * len(STATS)  # 518
N_FEATURES = N_STATS_FEATURES + len(RHYTHM)  # 531


def prepare_clip(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """Mono float32 at 22,050 Hz, finite, at least one FFT frame long (see the module's robustness rules)."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got shape {y.shape}")
    if not np.isfinite(y).all():
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    if int(sr) != SR and len(y):
        y = librosa.resample(y, orig_sr=int(sr), target_sr=SR, res_type="soxr_hq").astype(np.float32)
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    return np.ascontiguousarray(y)


def summarise(x: np.ndarray) -> np.ndarray:
    """(k, T) frame values -> (k, 7) statistics in ``STATS`` order, in float64.

    Skew and kurtosis follow scipy's defaults (biased, Fisher kurtosis) but are 0 where scipy gives NaN
    (rows whose variance is zero at float64 resolution).
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=1)
    d = x - mean[:, None]
    d2 = d * d
    m2 = d2.mean(axis=1)
    m3 = (d2 * d).mean(axis=1)
    m4 = (d2 * d2).mean(axis=1)
    flat = m2 <= (np.finfo(np.float64).resolution * mean) ** 2
    safe = np.where(flat, 1.0, m2)
    skew = np.where(flat, 0.0, m3 / safe**1.5)
    kurt = np.where(flat, 0.0, m4 / safe**2 - 3.0)
    return np.stack([mean, np.sqrt(m2), skew, kurt, np.median(x, axis=1), x.min(axis=1), x.max(axis=1)], axis=1)


def _rhythm(onset: np.ndarray, tempo: float, beats: np.ndarray, onsets: np.ndarray, n_samples: int) -> np.ndarray:
    seconds = n_samples / SR
    strength = onset[beats] if len(beats) else np.zeros(1)
    gaps = np.diff(beats) * HOP / SR
    o = summarise(onset[None, :])[0]
    return np.array(
        [
            tempo,
            len(beats) / seconds,
            gaps.std() if len(gaps) > 1 else 0.0,
            strength.mean(),
            strength.std(),
            np.median(strength),
            o[0],
            o[1],
            o[2],
            o[3],
            o[4],
            o[6],
            len(onsets) / seconds,
        ]
    )


def _finish(rows: list[np.ndarray], rhythm: np.ndarray) -> np.ndarray:
    stats = np.concatenate([summarise(r) for r in rows]).reshape(-1)
    out = np.concatenate([stats, rhythm]).astype(np.float32)
    if not np.isfinite(out).all():
        bad = [n for n, v in zip(feature_names(), out, strict=True) if not np.isfinite(v)]
        raise BadAudio(f"non-finite features: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")
    return out


def clip_features(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """All 531 features of one clip, float32, in ``feature_names()`` order, from one STFT and one CQT."""
    y = prepare_clip(y, sr)
    power = T.power_spectrogram(y, N_FFT, HOP)
    mag = np.sqrt(power)
    chroma_stft = librosa.feature.chroma_stft(S=power, sr=SR, tuning=0.0)
    mel_db = librosa.power_to_db(T.mel_basis(SR, N_FFT) @ power)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
    rms = librosa.feature.rms(S=mag, frame_length=N_FFT)
    centroid, bandwidth = T.centroid_bandwidth(mag, SR, N_FFT)
    contrast = T.spectral_contrast(mag, SR, N_FFT)
    rolloff = T.rolloff(mag, SR, N_FFT)
    zcr = T.zero_crossing_rate(y, N_FFT, HOP)

    cqt = T.cqt_magnitude(y, SR, HOP, n_bins=CQT_OCTAVES * CQT_BINS_PER_OCTAVE, bins_per_octave=CQT_BINS_PER_OCTAVE)
    chroma_kw = {"sr": SR, "bins_per_octave": CQT_BINS_PER_OCTAVE, "n_octaves": CQT_OCTAVES}
    chroma_cqt = librosa.feature.chroma_cqt(C=cqt, **chroma_kw)
    chroma_cens = librosa.feature.chroma_cens(C=cqt, **chroma_kw)
    tonnetz = librosa.feature.tonnetz(chroma=chroma_cqt, sr=SR)

    # librosa's beat tracker uses the median over mel bands; onset statistics and detection use the mean
    onset = librosa.onset.onset_strength(S=mel_db, sr=SR)
    beat_env = librosa.onset.onset_strength(S=mel_db, sr=SR, aggregate=np.median)
    if beat_env.any():
        tempo = T.tempo(beat_env, SR, HOP)
        _, beats = librosa.beat.beat_track(onset_envelope=beat_env, sr=SR, hop_length=HOP, bpm=tempo)
        onsets = librosa.onset.onset_detect(onset_envelope=onset, sr=SR, hop_length=HOP)
    else:
        tempo, beats, onsets = 0.0, np.zeros(0, dtype=int), np.zeros(0, dtype=int)

    rows = [
        chroma_stft, chroma_cqt, chroma_cens, tonnetz, mfcc, rms, centroid[None], bandwidth[None],
        contrast, rolloff[None], zcr[None],
    ]  # fmt: skip
    return _finish(rows, _rhythm(onset, tempo, beats, onsets, len(y)))


def _scipy_summary(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    cols = [
        x.mean(axis=1),
        x.std(axis=1),
        scipy.stats.skew(x, axis=1),
        scipy.stats.kurtosis(x, axis=1),
        np.median(x, axis=1),
        x.min(axis=1),
        x.max(axis=1),
    ]
    return np.nan_to_num(np.stack(cols, axis=1), nan=0.0)


def naive_features(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """The baseline: each librosa feature function called on the waveform on its own (same definitions).

    Every call recomputes its own STFT or CQT (the chroma functions one CQT each, tonnetz another), and the
    statistics come from scipy. Slow on purpose; it is the reference ``clip_features`` is tested against.
    """
    import warnings

    y = prepare_clip(y, sr)
    f = librosa.feature
    ck = {"tuning": 0.0, "bins_per_octave": CQT_BINS_PER_OCTAVE, "n_octaves": CQT_OCTAVES}
    rows = [
        f.chroma_stft(y=y, sr=SR, tuning=0.0),
        f.chroma_cqt(y=y, sr=SR, **ck),
        f.chroma_cens(y=y, sr=SR, **ck),
        f.tonnetz(y=y, sr=SR, **ck),
        f.mfcc(y=y, sr=SR, n_mfcc=N_MFCC),
        f.rms(S=np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)), frame_length=N_FFT),
        f.spectral_centroid(y=y, sr=SR),
        f.spectral_bandwidth(y=y, sr=SR),
        f.spectral_contrast(y=y, sr=SR),
        f.spectral_rolloff(y=y, sr=SR),
        f.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns on constant rows; those become 0
        stats = np.concatenate([_scipy_summary(r) for r in rows]).reshape(-1)
        tempo, beats = librosa.beat.beat_track(y=y, sr=SR, hop_length=HOP)
        onset = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)
        onsets = librosa.onset.onset_detect(y=y, sr=SR, hop_length=HOP)
        o = _scipy_summary(onset[None, :])[0]
    seconds = len(y) / SR
    strength = onset[beats] if len(beats) else np.zeros(1)
    gaps = np.diff(beats) * HOP / SR
    rhythm = [
        float(np.atleast_1d(tempo)[0]),
        len(beats) / seconds,
        gaps.std() if len(gaps) > 1 else 0.0,
        strength.mean(),
        strength.std(),
        np.median(strength),
        o[0], o[1], o[2], o[3], o[4], o[6],
        len(onsets) / seconds,
    ]  # fmt: skip
    return np.concatenate([stats, rhythm]).astype(np.float32)
