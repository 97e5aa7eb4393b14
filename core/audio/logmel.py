"""Log-mel spectrograms in torch, matching ``librosa.power_to_db(librosa.feature.melspectrogram(...))``.

``torch.stft`` with a periodic Hann window and centred zero padding (librosa 0.11's ``pad_mode="constant"``),
``librosa.filters.mel`` weights (Slaney), power -> dB with ``ref=1.0, amin=1e-10``. Batched; runs wherever its
input lives, so CUDA tensors give GPU spectrograms. ``logmel_dataset`` streams a prepared dataset's int16 audio
through pinned memory to the device.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from queue import Queue

import librosa
import numpy as np
import torch
from torch import nn


class LogMel(nn.Module):
    """(B, n) or (n,) waveform -> (B, n_mels, 1 + n // hop) log-mel in dB, computed in the input's dtype.

    int16 input is scaled by 1/32767. float64 input matches librosa to ~1e-12 dB; float32 within 1e-3 dB in
    every bin less than 60 dB below the clip's peak and within ~0.05 dB in the quietest bins (float32 FFT
    rounding is ~1e-7 of a frame's peak amplitude). ``top_db`` (None: no floor) clips each clip at its own
    maximum minus ``top_db``, as librosa does for one clip at a time.
    """

    def __init__(
        self,
        sr: int = 22050,
        n_fft: int = 2048,
        hop: int = 512,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 2.0,
        top_db: float | None = None,
        amin: float = 1e-10,
    ):
        super().__init__()
        self.sr, self.n_fft, self.hop, self.n_mels = int(sr), int(n_fft), int(hop), int(n_mels)
        self.power, self.top_db, self.amin = float(power), top_db, float(amin)
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel", torch.from_numpy(mel.astype(np.float64)), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True, dtype=torch.float64), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        squeeze = wave.dim() == 1
        x = wave[None] if squeeze else wave
        if not x.is_floating_point():
            x = x.float() / 32767.0
        dtype = x.dtype
        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop,
            window=self.window.to(dtype),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        mag = spec.abs()
        power = mag.square() if self.power == 2.0 else mag.pow(self.power)
        mel = torch.matmul(self.mel.to(dtype), power)
        db = 10.0 * torch.log10(mel.clamp_min(self.amin))
        if self.top_db is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - float(self.top_db))
        return db[0] if squeeze else db


def _batches(n: int, batch_size: int, rows: Sequence[int] | None) -> list[np.ndarray]:
    order = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def logmel_dataset(
    ds,  # noqa: ANN001 - core.data.prepared.PreparedDataset
    batch_size: int = 64,
    device: str | torch.device | None = None,
    *,
    rows: Sequence[int] | None = None,
    logmel: LogMel | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(rows, log-mel batch on device)`` over a prepared dataset (all rows, or ``rows`` in that order).

    A reader thread copies int16 audio from the memory map into pinned host buffers (two, used in turn) while
    the device works on the previous batch; the host-to-device copy is asynchronous and the int16 -> float
    conversion happens on the device. Samples past a track's ``audio_len`` are the dataset's zero padding.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    logmel = (logmel or LogMel(sr=ds.sample_rate)).to(device)
    audio = ds.audio()
    batches = _batches(audio.shape[0], batch_size, rows)
    if not batches:
        return
    pin = device.type == "cuda"
    buffers = [torch.empty((batch_size, audio.shape[1]), dtype=torch.int16, pin_memory=pin) for _ in range(2)]
    copied: list = [None, None]  # per buffer: the CUDA event after which it may be refilled
    free = [threading.Event(), threading.Event()]
    for e in free:
        e.set()
    ready: Queue = Queue()  # flow control comes from the two buffers
    stop = threading.Event()

    def reader() -> None:
        try:
            for i, idx in enumerate(batches):
                slot = i % 2
                while not free[slot].wait(0.1):
                    if stop.is_set():
                        return
                free[slot].clear()
                if copied[slot] is not None:
                    copied[slot].synchronize()
                view = buffers[slot][: len(idx)].numpy()
                if np.all(np.diff(idx) == 1):
                    view[:] = audio[idx[0] : idx[-1] + 1]
                else:
                    view[:] = audio[idx]
                ready.put((slot, idx))
            ready.put(None)
        except BaseException as e:  # hand the error to the consumer
            ready.put(e)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    copy_stream = torch.cuda.Stream(device) if pin else None
    try:
        with torch.no_grad():
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                slot, idx = item
                host = buffers[slot][: len(idx)]
                if pin:
                    with torch.cuda.stream(copy_stream):
                        dev = host.to(device, non_blocking=True)
                        copied[slot] = torch.cuda.Event()
                        copied[slot].record(copy_stream)
                    torch.cuda.current_stream(device).wait_event(copied[slot])
                    dev.record_stream(torch.cuda.current_stream(device))
                else:
                    dev = host.to(device, copy=True)
                free[slot].set()
                yield idx, logmel(dev)
    finally:
        stop.set()
        thread.join()
