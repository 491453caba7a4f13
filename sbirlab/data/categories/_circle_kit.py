"""Fast shape helpers shared by the buildings and vehicles drawing programs (cached unit tables)."""
from __future__ import annotations

import math  # noqa: F401

import numpy as np  # noqa: F401

_UNIT: dict[int, np.ndarray] = {}


def _unit(n):
    """Cached unit circle with ``n`` vertices (starting at angle 0), like ``Builder.circle``."""
    u = _UNIT.get(n)
    if u is None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        u = _UNIT[n] = np.stack([np.cos(t), np.sin(t)], 1)
    return u


def _ellipse(b, cx, cy, rx, ry, color="gray", detail=0, n=28):
    """A fast ``b.ellipse`` (axis-aligned)."""
    return b.poly(_unit(n) * (rx, ry) + (cx, cy), color, detail)


def _circle(b, cx, cy, r, color="gray", detail=0, n=24):
    return b.poly(_unit(n) * r + (cx, cy), color, detail)
