"""The categories of the synthetic world: one parametric drawing program per class.

Each program is a function ``program(b: Builder) -> None`` registered with :func:`category`. It
draws the object from parts in the unit square with ``b.ellipse``, ``b.rect``, ``b.poly``,
``b.line``, ... (see :mod:`sbirlab.data.geometry`) and draws its per-instance fine-grained attributes
with ``b.uniform`` / ``b.integer`` / ``b.choice`` so that the photo and every sketch of an instance
share them. Programs must be deterministic given ``b.rng``.
"""
from __future__ import annotations

from ._registry import CATEGORIES, GROUPS, Category, all_categories, category

__all__ = ["CATEGORIES", "GROUPS", "Category", "all_categories", "category"]

# Import the program modules so they register themselves (in this order: the world's class order).
from . import animals, buildings, food, objects, plants, tools, vehicles  # noqa: E402,F401
