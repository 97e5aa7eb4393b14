"""The one source of GAN names, condition names and model ids (a GAN trained under one condition).

A run holds a GAN x condition matrix. A model id is either a GAN name (``dcgan_cond``: conditional GANs then take
the run's ``train.condition``, genre by default) or ``<conditional GAN>+<condition>`` (``stylegan_cond+cnn``), so
the same GAN can be trained under several conditions side by side in one run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

GAN_NAMES = ("dcgan", "dcgan_cond", "wgan_gp", "wgan_gp_cond", "stylegan", "stylegan_cond")
DIFFUSION_NAMES = ("diffusion_cond",)  # a conditional denoiser with classifier-free guidance (models.diffusion)
MODEL_NAMES = (*GAN_NAMES, *DIFFUSION_NAMES)  # everything `bench train` builds; ids below take any of them
CONDITION_NAMES = ("genre", "pca", "rnn", "autoencoder", "cnn", "attributes", "musicnn")
CATEGORICAL_CONDITIONS = ("genre",)  # one-hot classes; every other condition is a continuous vector per track
AUDIO_ENCODERS = ("pca", "rnn", "autoencoder", "cnn", "musicnn")  # conditions computed from the music itself
SEPARATOR = "+"
# any other condition is an outside embedding registered in a run (`bench encode --from-file F --name NAME`): its
# name is checked here for syntax only and resolved where it is used (models.conditions.load_conditions)
CONDITION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
RESERVED_CONDITION_NAMES = ("all", "none", "needed")  # words of `bench encode --encoder` and `train --encoders`
GUIDANCE_MARK = "@w"  # eval/<model id>@w<scale>/: one evaluation per classifier-free guidance scale


@dataclass(frozen=True)
class ModelId:
    """``gan`` is one of MODEL_NAMES (a GAN or a diffusion model); ``condition`` is the explicit condition of a
    ``gan+condition`` id, else None."""

    gan: str
    condition: str | None = None

    @property
    def name(self) -> str:
        return self.gan if self.condition is None else f"{self.gan}{SEPARATOR}{self.condition}"

    @property
    def conditional(self) -> bool:
        return self.gan.endswith("_cond")

    def condition_or(self, default: str) -> str | None:
        """The condition this model trains on: its own, else ``default`` (None for unconditional GANs)."""
        if not self.conditional:
            return None
        return self.condition or default


def parse_model_id(text: str) -> ModelId:
    """``"stylegan_cond+cnn"`` -> ModelId("stylegan_cond", "cnn"); one clear line for anything else."""
    gan, sep, condition = str(text).partition(SEPARATOR)
    if gan not in MODEL_NAMES:
        raise UserError(
            f"unknown model {text!r}: choose one of {', '.join(MODEL_NAMES)}, or <conditional model>+<condition> "
            f"(e.g. stylegan_cond+cnn)"
        )
    if not sep:
        return ModelId(gan)
    if not gan.endswith("_cond"):
        raise UserError(f"model {text!r}: {gan} is unconditional; only *_cond GANs take a condition")
    try:
        check_condition_name(condition)
    except UserError as e:
        raise UserError(f"model {text!r}: {e}") from None
    return ModelId(gan, condition)


def check_condition_name(name: str) -> str:
    """A built-in condition (CONDITION_NAMES) or a name an outside embedding can be registered under: a letter,
    then letters, digits, '_' or '-' (at most 64), not a GAN name and not a reserved word. Syntax only: whether
    the run holds it is known where it is used."""
    text = str(name)
    if text in CONDITION_NAMES:
        return text
    if not CONDITION_NAME_RE.match(text):
        raise UserError(
            f"invalid condition name {text!r}: a built-in one ({', '.join(CONDITION_NAMES)}) or a registered "
            "embedding's name (a letter, then letters, digits, '_' or '-', at most 64)"
        )
    if text in MODEL_NAMES or text in RESERVED_CONDITION_NAMES:
        raise UserError(f"invalid condition name {text!r}: it is a model name or a reserved word")
    return text


def is_builtin_condition(name: str | None) -> bool:
    return name in CONDITION_NAMES


def is_model_id(text: str) -> bool:
    try:
        parse_model_id(text)
    except UserError:
        return False
    return True


def is_categorical(condition: str | None) -> bool:
    return condition in CATEGORICAL_CONDITIONS


def ordered_model_ids(found: set[str] | list[str], first: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Valid model ids among ``found``: those in ``first`` (a config's order), then by GAN, then by condition."""
    valid = [f for f in found if is_model_id(f)]

    def key(mid: str) -> tuple[int, str]:
        m = parse_model_id(mid)
        return MODEL_NAMES.index(m.gan), m.condition or ""

    return [m for m in first if m in valid] + sorted((m for m in valid if m not in first), key=key)


def model_ids_in(folder: Path) -> set[str]:
    """Model ids that have a sub-folder of ``folder`` (a run's ``models/`` or ``eval/``)."""
    return {p.name for p in folder.iterdir() if p.is_dir() and is_model_id(p.name)} if folder.is_dir() else set()


def model_family(model: str) -> str:
    """``diffusion`` or ``gan``: which family builds model id ``model`` (for people; both train in one engine)."""
    return "diffusion" if parse_model_id(model).gan in DIFFUSION_NAMES else "gan"


def takes_guidance(model: str) -> bool:
    """Whether model id ``model`` samples with a classifier-free guidance scale (the diffusion models)."""
    return parse_model_id(model).gan in DIFFUSION_NAMES


def eval_name(model: str, guidance: float | None = None) -> str:
    """The evaluation folder of ``model`` at a guidance scale: ``diffusion_cond@w2`` (the id alone without one)."""
    return model if guidance is None else f"{model}{GUIDANCE_MARK}{float(guidance):g}"


def parse_eval_name(text: str) -> tuple[str, float | None]:
    """``"diffusion_cond+pca@w0.5"`` -> ("diffusion_cond+pca", 0.5); a plain model id -> (id, None)."""
    model, mark, scale = str(text).rpartition(GUIDANCE_MARK)
    if not mark:
        return parse_model_id(text).name, None
    try:
        w = float(scale)
    except ValueError:
        w = math.nan
    if not math.isfinite(w):
        raise UserError(f"{text!r}: the guidance scale after {GUIDANCE_MARK!r} is not a finite number")
    if not takes_guidance(model):
        raise UserError(f"{text!r}: {parse_model_id(model).gan} takes no guidance scale")
    return parse_model_id(model).name, w


def guided_evals_in(folder: Path, model: str) -> dict[float, str]:
    """Guidance scale -> evaluation folder name, for every ``<model>@w<scale>`` sub-folder of ``folder``."""
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.startswith(f"{model}{GUIDANCE_MARK}"):
                try:
                    found, w = parse_eval_name(p.name)
                except UserError:
                    continue
                if found == model and w is not None:
                    out[w] = p.name
    return dict(sorted(out.items()))
