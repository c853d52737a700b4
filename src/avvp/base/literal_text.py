"""Names drawn in figures are shown as written.

File, class and run names are user data: a `$` in one must neither break a figure (matplotlib
reads `$...$` as mathtext and raises on `$1_$2`) nor change it (`$\\frac{a}{b}$` drawn as a
fraction). Every text a figure draws from such names is made literal: no mathtext, no LaTeX,
whatever the rcParams say.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LITERAL: dict[str, Any] = {"parse_math": False, "usetex": False}  # keyword arguments of matplotlib texts


def make_literal(texts: Iterable[Any]) -> None:
    """Texts matplotlib made from our strings (legend entries, tick labels) made literal too."""
    for text in texts:
        text.set_parse_math(False)
        text.set_usetex(False)
