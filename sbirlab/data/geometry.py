"""Part-based geometry shared by the photo, sketch and drawing renderers.

A category of the synthetic world is a small *drawing program*: a Python function that receives a
:class:`Builder` and a random generator, draws the object out of parts (ellipses, polygons, open
polylines) in the unit square, and records the instance's fine-grained attributes with
:meth:`Builder.attr`. The photo renderer fills the parts, the sketch renderer traces their outlines
by hand, the drawing renderer traces them cleanly: three renderers, one geometry.

Coordinates: the unit square ``[0, 1]^2``, ``x`` to the right, ``y`` **down** (image convention).
Objects are drawn roughly inside ``[0.1, 0.9]^2``; the world applies the instance pose (scale, shift,
small rotation, mirror) afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Base colours by name (RGB 0-255). Programs ask for ``b.color("brown")`` and get a per-instance jitter.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "darkred": (130, 20, 25), "orange": (235, 130, 30), "yellow": (235, 210, 50),
    "gold": (210, 170, 40), "green": (60, 150, 60), "darkgreen": (30, 90, 40), "lime": (140, 200, 60),
    "olive": (120, 120, 50), "blue": (50, 90, 200), "navy": (30, 40, 110), "sky": (120, 180, 230),
    "cyan": (60, 190, 200), "purple": (120, 60, 160), "pink": (235, 140, 170), "magenta": (200, 50, 150),
    "brown": (120, 75, 40), "tan": (200, 160, 100), "beige": (225, 205, 165), "white": (240, 240, 235),
    "lightgray": (190, 190, 190), "gray": (128, 128, 128), "darkgray": (70, 70, 72), "black": (25, 25, 25),
    "skin": (230, 185, 150), "silver": (175, 180, 190), "wood": (150, 100, 55), "brick": (170, 70, 50),
    "cream": (245, 235, 200), "teal": (30, 130, 130),
}


@dataclass
class Part:
    """One part of an object.

    Attributes:
        points: ``[n, 2]`` vertices in unit coordinates.
        closed: a closed outline (filled in photos) or an open polyline (a line in photos).
        color: RGB fill (closed) or line colour (open).
        detail: 0 = essential silhouette, 1 = secondary part, 2 = fine detail (texture, small marks).
            Sketches drop higher levels more often; abstraction is the drawer's taste.
        width: line width for open parts, in unit coordinates (photos only).
    """

    points: np.ndarray
    closed: bool
    color: tuple[int, int, int]
    detail: int = 0
    width: float = 0.02


def _ellipse_points(cx, cy, rx, ry, angle=0.0, n=28, start=0.0, stop=2 * np.pi):
    t = np.linspace(start, stop, n, endpoint=not np.isclose(stop - start, 2 * np.pi))
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)


@dataclass
class Builder:
    """Collects the parts and attributes of one instance. Passed to every category program."""

    rng: np.random.Generator
    parts: list[Part] = field(default_factory=list)
    attrs: dict[str, float] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)
    _colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    # -- attributes and colours -------------------------------------------------------------
    def attr(self, name: str, value):
        """Record a fine-grained attribute (shared by the photo and its sketches) and return it."""
        self.attrs[name] = float(value)
        return value

    def uniform(self, name: str, low: float, high: float) -> float:
        """Draw ``U(low, high)`` and record it as attribute ``name``."""
        return self.attr(name, self.rng.uniform(low, high))

    def integer(self, name: str, low: int, high: int) -> int:
        """Draw an integer in ``[low, high]`` (inclusive) and record it as attribute ``name``."""
        return int(self.attr(name, self.rng.integers(low, high + 1)))

    def choice(self, name: str, options):
        """Pick one of ``options``; records its index as attribute ``name``.

        A choice named ``"color"`` among palette names also becomes a caption word ("a red cup").
        """
        i = int(self.rng.integers(len(options)))
        self.attr(name, i)
        if name == "color" and isinstance(options[i], str):
            self.words.append(options[i].replace("dark", "dark ").replace("light", "light "))
        return options[i]

    def color(self, name: str, jitter: int = 25) -> tuple[int, int, int]:
        """The instance's version of palette colour ``name`` (same jitter for every use in one instance)."""
        if name not in self._colors:
            base = np.array(PALETTE[name], dtype=float)
            c = np.clip(base + self.rng.normal(0, jitter / 2, 3), 0, 255)
            self._colors[name] = tuple(int(v) for v in c)
        return self._colors[name]

    def _col(self, color) -> tuple[int, int, int]:
        return self.color(color) if isinstance(color, str) else tuple(int(v) for v in color)

    # -- primitives ---------------------------------------------------------------------------
    def poly(self, pts, color="gray", detail=0, closed=True, width=0.02) -> Part:
        """A polygon (closed) or polyline (``closed=False``) through ``pts``."""
        p = Part(np.asarray(pts, dtype=np.float32).reshape(-1, 2), closed, self._col(color), detail, width)
        self.parts.append(p)
        return p

    def line(self, pts, color="black", detail=1, width=0.02) -> Part:
        """An open polyline (a stick, a leg, a string, a crease)."""
        return self.poly(pts, color, detail, closed=False, width=width)

    def ellipse(self, cx, cy, rx, ry, angle=0.0, color="gray", detail=0, n=28) -> Part:
        """A filled ellipse; ``angle`` in radians."""
        return self.poly(_ellipse_points(cx, cy, rx, ry, angle, n), color, detail)

    def circle(self, cx, cy, r, color="gray", detail=0, n=24) -> Part:
        """A filled circle."""
        return self.ellipse(cx, cy, r, r, 0.0, color, detail, n)

    def arc(self, cx, cy, rx, ry, start, stop, color="black", detail=1, width=0.02, angle=0.0) -> Part:
        """An open elliptical arc from ``start`` to ``stop`` radians (a smile, a handle, a rainbow)."""
        return self.line(_ellipse_points(cx, cy, rx, ry, angle, 16, start, stop), color, detail, width)

    def rect(self, x0, y0, x1, y1, color="gray", detail=0, angle=0.0) -> Part:
        """An axis-aligned rectangle, optionally rotated about its centre."""
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
        if angle:
            c = pts.mean(0)
            ca, sa = np.cos(angle), np.sin(angle)
            pts = (pts - c) @ np.array([[ca, sa], [-sa, ca]], dtype=np.float32) + c
        return self.poly(pts, color, detail)

    def tri(self, a, b, c, color="gray", detail=0) -> Part:
        """A triangle with vertices ``a``, ``b``, ``c``."""
        return self.poly([a, b, c], color, detail)

    def segment_rect(self, p0, p1, thickness, color="gray", detail=0) -> Part:
        """A thick bar from ``p0`` to ``p1`` (a limb, a handle, a mast) as a closed quad."""
        p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
        d = p1 - p0
        n = np.array([-d[1], d[0]], np.float32) / (np.linalg.norm(d) + 1e-8) * thickness / 2
        return self.poly([p0 + n, p1 + n, p1 - n, p0 - n], color, detail)


def transform_parts(parts: list[Part], scale: float, shift: tuple[float, float], angle: float,
                    mirror: bool) -> list[Part]:
    """Apply the instance pose about the centre of the unit square (mirror, rotate, scale, shift)."""
    ca, sa = np.cos(angle), np.sin(angle)
    rot = np.array([[ca, sa], [-sa, ca]], dtype=np.float32)
    out = []
    for p in parts:
        q = p.points - 0.5
        if mirror:
            q = q * np.array([-1.0, 1.0], np.float32)
        q = (q @ rot) * scale + 0.5 + np.asarray(shift, np.float32)
        out.append(Part(q.astype(np.float32), p.closed, p.color, p.detail, p.width * scale))
    return out
