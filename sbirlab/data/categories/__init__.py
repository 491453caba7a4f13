"""The categories of the synthetic world: one parametric drawing program per class.

Each program is a function ``program(b: Builder) -> None`` registered with :func:`category`. It
draws the object from parts in the unit square with ``b.ellipse``, ``b.rect``, ``b.poly``,
``b.line``, ... (see :mod:`sbirlab.data.geometry`) and draws its per-instance fine-grained attributes
with ``b.uniform`` / ``b.integer`` / ``b.choice`` so that the photo and every sketch of an instance
share them. Programs must be deterministic given ``b.rng``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..geometry import Builder

GROUPS = ("objects", "animals", "vehicles", "buildings", "plants", "tools", "food")


@dataclass(frozen=True)
class Category:
    name: str
    group: str
    program: Callable[[Builder], None]


CATEGORIES: dict[str, Category] = {}


def category(name: str, group: str):
    """Register the decorated drawing program as category ``name`` of ``group``."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; use one of {GROUPS}")

    def deco(fn):
        if name in CATEGORIES:
            raise ValueError(f"category {name!r} registered twice")
        CATEGORIES[name] = Category(name, group, fn)
        return fn

    return deco


def all_categories() -> list[str]:
    """Every registered class name, sorted."""
    return sorted(CATEGORIES)


# Import the program modules so they register themselves.
from . import animals, buildings, food, objects, plants, tools, vehicles  # noqa: E402,F401
