"""Data strings (genre names, titles) as plain matplotlib text, never mathtext or LaTeX.

Matplotlib reads a string with two ``$`` as mathtext and, with ``text.usetex``, sends every string to LaTeX, so
a genre named ``jazz $\\frac{$`` would fail the whole plot (and the evaluation that draws it). Escaping ``$``
keeps the string literal under mathtext; ``plain_text_rc`` switches LaTeX off while a figure is drawn.
"""

from __future__ import annotations

from contextlib import AbstractContextManager


def plain(text: object) -> str:
    """``text`` as a string matplotlib draws literally (each ``$`` escaped)."""
    return str(text).replace("$", r"\$")


def plain_text_rc() -> AbstractContextManager:
    """A context in which matplotlib never hands text to LaTeX (``text.usetex`` off)."""
    import matplotlib

    return matplotlib.rc_context({"text.usetex": False})
