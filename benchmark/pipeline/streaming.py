"""Judge a generator inside your own training loop: a ``torchmetrics.Metric`` over (images, asked) batches.

``update`` turns each batch into features at once (images are not kept, except a few for the t-SNE thumbnails
and the sample picture) and stores what each cover was asked for; ``compute`` hands everything to the same
judging code as ``bench evaluate`` and returns the same :class:`~benchmark.pipeline.judge.Evaluation`. States are
lists of tensors reduced by concatenation, so under DDP every rank's covers are gathered before judging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from benchmark.pipeline.asked import Asked, check_count, track_rows
from benchmark.pipeline.inputs import as_dataset, as_run, condition_vectors, eval_settings, judged_meta, output_folder
from benchmark.pipeline.judge import Evaluation, RealSide, judge, real_side
from benchmark.pipeline.sources import image_sheet_writer
from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset
from core.devices import pick_device
from core.errors import UserError
from core.images import as_uint8_nhwc, check_square
from core.paths import RunPaths


class ConditioningMetric(Metric):
    """Streaming conditioning judgement: ``update(images, asked[, z_ids])`` per batch, ``compute()`` at the end.

    ``asked`` per batch: track ids (strings), dataset rows (int tensor) or condition vectors (float (B, d)).
    ``z_ids`` (int tensor): images sharing one came from the same latent (enables the sensitivity test).
    Other arguments as :func:`~benchmark.evaluate_images`. Call ``update``, not the module itself: judging a
    single batch (what ``forward`` does in torchmetrics) is not meaningful here, so ``forward`` only updates.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(
        self, dataset: PreparedDataset | str, *, condition: str | None, run: RunPaths | str | None = None,
        name: str = "stream", out_dir: str | Path | None = None, features: str | None = None,
        cfg: EvalConfig | None = None, seed: int | None = None, device: str = "auto",
        value_range: tuple[float, float] = (-1.0, 1.0), keep_images: int = 256, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ds, self._run_paths = as_dataset(dataset), as_run(run)
        self._cfg = eval_settings(cfg, features, None)
        self._seed = self._cfg.seed if seed is None else seed
        self._device = pick_device(device)
        self._condition = None if condition in (None, "none") else condition
        self._conditions = condition_vectors(self._ds, self._condition, self._run_paths)
        self._name, self._out = name, output_folder(out_dir, self._run_paths, name)
        self._value_range, self._keep = value_range, keep_images
        self._side: RealSide | None = None
        for state in ("features", "asked_rows", "asked_vectors", "z_ids", "kept", "kept_flag"):
            self.add_state(state, default=[], dist_reduce_fx="cat")

    def _real_side(self, res: int) -> RealSide:
        if self._side is None:
            self._side = real_side(self._ds, res, self._condition, self._conditions, self._cfg, self._device,
                                   seed=self._seed)  # fmt: skip
        elif self._side.res != res:
            raise UserError(f"a batch of {res} px images after {self._side.res} px ones: one size per judgement")
        return self._side

    def update(self, images: Any, asked: Any, z_ids: Any = None) -> None:
        """Add a batch: its covers' features, what each was asked for, and (optionally) its latent groups."""
        pixels = as_uint8_nhwc(images, self._value_range, "images")
        side = self._real_side(check_square(pixels, self._ds.resolutions, "images", f"dataset {self._ds.name!r}"))
        self.features.append(torch.from_numpy(side.ext(pixels)))
        self._add_asked(asked, len(pixels))
        if z_ids is not None:
            z = torch.as_tensor(z_ids, dtype=torch.long).reshape(-1)
            if len(z) != len(pixels):
                raise UserError(f"z_ids: {len(z)} ids for {len(pixels)} images")
            self.z_ids.append(z)
        room = max(0, self._keep - sum(len(k) for k in self.kept))
        flag = torch.zeros(len(pixels), dtype=torch.bool)
        flag[:room] = True
        self.kept_flag.append(flag)  # which covers' pixels are kept, aligned with the features after any gather
        if room:
            self.kept.append(torch.from_numpy(pixels[:room]))

    def _add_asked(self, asked: Any, n: int) -> None:
        if isinstance(asked, torch.Tensor) and asked.is_floating_point():
            vectors = asked.detach().float().cpu()
            if vectors.ndim != 2 or len(vectors) != n or not torch.isfinite(vectors).all():
                raise UserError(f"asked: expected ({n}, d) finite condition vectors, got {tuple(vectors.shape)}")
            self.asked_vectors.append(vectors)
            return
        if isinstance(asked, torch.Tensor):
            rows = asked.detach().long().cpu().reshape(-1)
            if len(rows) and (rows.min() < 0 or rows.max() >= len(self._ds)):
                raise UserError(f"asked: dataset rows must lie in [0, {len(self._ds)})")
        else:
            rows = torch.from_numpy(np.array(track_rows(self._ds, list(asked), "asked"), dtype=np.int64))
        if len(rows) != n:
            raise UserError(f"asked: {len(rows)} rows for {n} images")
        self.asked_rows.append(rows)

    def forward(self, *args: Any, **kwargs: Any) -> None:
        self.update(*args, **kwargs)

    def compute(self) -> Evaluation:
        """Judge every cover added so far (on all ranks): the same result and files as ``bench evaluate``."""
        from benchmark.pipeline.evaluate import generated_from_images

        if self._side is None:
            raise UserError("nothing to judge: call update(images, asked) first")
        feats = dim_zero_cat(self.features).numpy() if len(self.features) else np.zeros((0, 1), np.float32)
        asked = self._asked()
        check_count(asked, len(feats))
        kept = dim_zero_cat(self.kept).numpy() if len(self.kept) else None
        where = np.flatnonzero(dim_zero_cat(self.kept_flag).numpy()) if kept is not None else None
        gen = generated_from_images(self._side, asked, kept, features=feats, image_rows=where)
        if kept is not None:
            gen.draw_samples = image_sheet_writer(kept, gen.asked_y[where], self._side.n_classes)
        meta = judged_meta(self._name, "stream", self._run_paths, {"inputs": {"updates": int(self._update_count)}})
        return judge(self._side, gen, self._cfg, self._out, meta=meta, seed=self._seed, device=self._device)

    def _asked(self) -> Asked:
        rows = dim_zero_cat(self.asked_rows).numpy() if len(self.asked_rows) else None
        vectors = dim_zero_cat(self.asked_vectors).numpy() if len(self.asked_vectors) else None
        if rows is not None and vectors is not None:
            raise UserError("asked: some batches named tracks and others gave vectors; use one kind throughout")
        z = dim_zero_cat(self.z_ids).numpy().astype(str) if len(self.z_ids) else None
        n = len(rows) if rows is not None else len(vectors) if vectors is not None else 0
        if z is not None and len(z) != n:
            raise UserError("z_ids were given for some batches only: give them for every batch or none")
        return Asked(rows=rows, vectors=vectors, files=None, z_ids=z, source="stream")
