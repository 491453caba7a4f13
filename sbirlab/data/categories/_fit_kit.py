"""Fast shape helpers shared by the food and objects drawing programs (cached unit tables)."""
from __future__ import annotations

import math  # noqa: F401

import numpy as np  # noqa: F401

_LIN: dict = {}
_CIRC: dict = {}


def _lin(n):
    """``np.linspace(0, 1, n)``, cached."""
    u = _LIN.get(n)
    if u is None:
        u = _LIN[n] = np.linspace(0.0, 1.0, n)
    return u


def _span(a, b, n):
    """``np.linspace(a, b, n)`` from the cached table."""
    return a + (b - a) * _lin(n)


def _ell(cx, cy, rx, ry, n=24):
    """Closed ellipse outline points."""
    u = _CIRC.get(n)
    if u is None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        u = _CIRC[n] = _xy(np.cos(t), np.sin(t))
    return u * (rx, ry) + (cx, cy)


def _arcp(cx, cy, rx, ry, start, stop, n=14):
    """Points on an elliptical arc from ``start`` to ``stop`` radians (y down)."""
    t = _span(start, stop, n)
    return _xy(cx + rx * np.cos(t), cy + ry * np.sin(t))


def _rot(pts, angle, center):
    """Rotate ``[n, 2]`` points by ``angle`` radians about ``center`` (y down: positive = clockwise)."""
    ca, sa = math.cos(angle), math.sin(angle)
    c = np.asarray(center, dtype=np.float64)
    return (np.asarray(pts, dtype=np.float64) - c) @ np.array(((ca, sa), (-sa, ca))) + c


def _xy(x, y):
    """``[n, 2]`` points from coordinate arrays ``x`` and ``y`` (faster than ``np.stack``)."""
    out = np.empty((len(x), 2))
    out[:, 0] = x
    out[:, 1] = y
    return out


def _fit(b, box=0.8):
    """Centre the drawn object in the unit square; shrink it if it is larger than ``box``."""
    pts = np.concatenate([p.points for p in b.parts])
    lo, hi = pts.min(0), pts.max(0)
    s = min(1.0, box / max(float((hi - lo).max()), 1e-6))
    off = (0.5 - (lo + hi) / 2 * s).astype(np.float32)
    for p in b.parts:
        if s < 1.0:
            p.points *= np.float32(s)
        p.points += off
