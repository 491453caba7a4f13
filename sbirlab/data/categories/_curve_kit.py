"""Fast shape helpers shared by the plants and tools drawing programs (cached unit tables)."""
from __future__ import annotations

import math  # noqa: F401

import numpy as np  # noqa: F401

_TAU = 2 * math.pi
_CACHE: dict = {}


def _lin(n: int) -> np.ndarray:
    """``linspace(0, 1, n)``, cached."""
    key = ("lin", n)
    v = _CACHE.get(key)
    if v is None:
        v = _CACHE[key] = np.linspace(0.0, 1.0, n)
    return v


def _unit(n: int, a0: float = 0.0, a1: float = _TAU):
    """Cached ``(cos t, sin t)`` for ``n`` angles from ``a0`` to ``a1`` (a full turn omits the endpoint)."""
    key = (n, a0, a1)
    v = _CACHE.get(key)
    if v is None:
        t = np.linspace(a0, a1, n, endpoint=not math.isclose(a1 - a0, _TAU))
        v = _CACHE[key] = (np.cos(t), np.sin(t))
    return v


def _xy(x, y) -> np.ndarray:
    out = np.empty((len(x), 2))
    out[:, 0] = x
    out[:, 1] = y
    return out


def _ell(cx, cy, rx, ry, ang=0.0, n=16, a0=0.0, a1=_TAU) -> np.ndarray:
    """Points of an ellipse (or an arc of it from ``a0`` to ``a1``) rotated by ``ang``."""
    c, s = _unit(n, a0, a1)
    x, y = rx * c, ry * s
    if ang:
        ca, sa = math.cos(ang), math.sin(ang)
        x, y = ca * x - sa * y, sa * x + ca * y
    return _xy(cx + x, cy + y)
