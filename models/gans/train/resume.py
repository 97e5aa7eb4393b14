"""What a resumed run must share with the run it continues.

A checkpoint continues one training: same data, same condition, same batch (the schedule, the R1/lazy
regularisation intervals and the data order depend on it) and the same networks. Changing any of those on
``--resume`` would silently make a model that is neither run, so it is refused with one line. ``kimg`` may grow
(training longer), and implementation choices that compute the same function (``fir_impl``) may change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from core.data.fingerprint import KEY as FINGERPRINT
from core.data.fingerprint import check_fingerprint
from core.errors import UserError

# train_config.json keys that define the training being continued, and how the user sets each.
FIXED = {"dataset": "--dataset", "condition": "--condition", "batch": "--batch", "res": "--res", "size": "size"}
# Derived from the condition and the architecture: reported only when the keys above do not explain a difference.
DERIVED = ("cond_dim", "z_dim")


def saved_settings(config_file: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The settings of the run being resumed: its ``train_config.json``, else the checkpoint's own meta."""
    try:
        return json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = json.loads(state.get("meta") or "{}")
        if "batch" in meta.get("hparams", {}):
            meta.setdefault("batch", meta["hparams"]["batch"])
        return meta


def check_resume_matches(config_file: Path, state: dict[str, Any], now: dict[str, Any], arch_keys: set[str]) -> None:
    """UserError naming every setting of ``now`` that differs from the run being resumed.

    ``now`` holds this invocation's values under train_config.json's keys (dataset, condition, batch, res, size,
    cond_dim, z_dim, hparams); ``arch_keys`` are the hparams that shape the networks. A key the saved run does
    not record is not compared.
    """
    saved = saved_settings(config_file, state)
    check_same_data(config_file, saved, now)
    diffs = []
    for key, flag in FIXED.items():
        if key in saved and key in now and saved[key] != now[key]:
            diffs.append(f"{flag} {saved[key]} then, {now[key]} now")
    old_hp, new_hp = saved.get("hparams") or {}, now.get("hparams") or {}
    for key in sorted(arch_keys & (set(old_hp) | set(new_hp))):
        if key in old_hp and key in new_hp and old_hp[key] != new_hp[key]:
            diffs.append(f"hparam {key} {old_hp[key]} then, {new_hp[key]} now")
    if not diffs:
        for key in DERIVED:
            if key in saved and key in now and saved[key] != now[key]:
                diffs.append(f"{key} {saved[key]} then, {now[key]} now")
    if diffs:
        where = Path(config_file).parent
        raise UserError(
            f"cannot resume {now.get('model', where.name)} in {where} with other settings ({'; '.join(diffs)}): "
            "resume with the settings it was trained with, or train into another --run"
        )


def check_same_data(config_file: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """UserError when the model was trained on content of its dataset that has been replaced since (same name,
    other files: ``bench data synth/import --force``); ``saved`` and ``now`` hold ``dataset_fingerprint``."""
    where = Path(config_file).parent
    if not now.get(FINGERPRINT) or saved.get("dataset") != now.get("dataset"):
        return  # another dataset altogether is a difference of --dataset, said as such
    check_fingerprint(
        saved.get(FINGERPRINT), now[FINGERPRINT], f"{now.get('model', where.name)} in {where}",
        str(now.get("dataset") or saved.get("dataset")),
        "train it into another --run, or remove that folder to train it again",
    )


def check_training_length(kimg: float, batch: int, stop_after_kimg: float | None = None) -> None:
    """UserError for a schedule that trains nothing or cannot be counted (infinite, NaN, negative).

    Training counts whole batches of images, so ``kimg`` must cover at least one batch; ``stop_after_kimg`` is a
    point on the same count (0 or more, finite).
    """
    if not math.isfinite(kimg) or kimg <= 0:
        raise UserError(f"invalid --kimg {kimg:g}: use a positive, finite number of thousands of images")
    if round(kimg * 1000) < batch:
        raise UserError(
            f"--kimg {kimg:g} is {round(kimg * 1000)} images, less than one batch of {batch}: nothing would be trained"
        )
    if stop_after_kimg is not None and (not math.isfinite(stop_after_kimg) or stop_after_kimg < 0):
        raise UserError(f"invalid --stop-after-kimg {stop_after_kimg:g}: use a finite number of kimg, 0 or more")
