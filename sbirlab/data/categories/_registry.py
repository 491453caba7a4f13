"""The registry of drawing programs (:func:`category`); the package imports the program modules."""
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
