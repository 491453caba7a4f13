"""The sketch pad's model: strokes kept in Python, rasterised by the dataset's own rasteriser.

The pad never reads the browser's canvas image back (that sync is asynchronous and may lag or be
missing): every point the mouse sends is stored here, in the dataset's stroke frame (a square of side
:data:`CANVAS` = 256, ``y`` down, as QuickDraw and the synthetic world), and :meth:`StrokeModel.rasterize`
turns the strokes into pixels with :func:`sbirlab.data.strokes.rasterize_strokes`, the function that
drew every sketch of the dataset. A sketch drawn in the widget, replayed from a recording, or built in a
test without any browser therefore looks exactly like a dataset sketch.

Bad input never raises: :meth:`StrokeModel.end` and :meth:`StrokeModel.add_stroke` return a
:class:`Notice` when a stroke had to be cut or dropped (points outside the pad), and
:meth:`StrokeModel.problem` says why the current sketch cannot be searched with (empty pad, only dots).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..data.strokes import rasterize_strokes

#: Side of the stroke coordinate frame (the synthetic world's and QuickDraw's 256 canvas).
CANVAS = 256.0
#: Default pen width in canvas units (the synthetic world's drawers use 2 to 5; the loaders use 3).
DEFAULT_WIDTH = 3.0
#: Pen widths the pad accepts, in canvas units.
MIN_WIDTH, MAX_WIDTH = 1.0, 16.0
#: A stroke whose points all lie within this distance (canvas units) of each other is a dot.
DOT_EXTENT = 2.0
#: Mouse moves closer than this (canvas units) to the previous point are not stored.
MIN_STEP = 0.75


@dataclass(frozen=True)
class Notice:
    """Something the user should know about their input (shown in the widget, never raised).

    Attributes:
        code: a stable short name tests can check: ``"empty"``, ``"dot"``, ``"outside"``, ``"clipped"``,
            ``"nothing-to-undo"``, ``"bad-stroke"``.
        message: one sentence for the user.
    """

    code: str
    message: str


EMPTY = Notice("empty", "The pad is empty: draw a stroke to search.")
ONLY_DOTS = Notice("dot", "Only a dot so far: draw a line (press, drag, release) to search.")
NOTHING_TO_UNDO = Notice("nothing-to-undo", "Nothing to undo: the pad is empty.")


def _outside_notice(canvas: float) -> Notice:
    return Notice("outside", f"That stroke lies outside the drawing area (0-{canvas:g} on both axes) "
                             "and was ignored.")


def _clipped_notice(n_out: int, canvas: float) -> Notice:
    return Notice("clipped", f"{n_out} point(s) of that stroke fell outside the drawing area "
                             f"(0-{canvas:g}) and were left out.")


def stroke_extent(points: np.ndarray) -> float:
    """Largest side of the bounding box of ``points`` ``[n, 2]`` (0 for a single point)."""
    if len(points) < 2:
        return 0.0
    return float((points.max(0) - points.min(0)).max())


def _inside_runs(points: np.ndarray, canvas: float) -> tuple[list[np.ndarray], int]:
    """Split ``points`` into the maximal runs of consecutive points inside ``[0, canvas]^2``.

    Returns the runs and the number of points left out (outside or not finite).
    """
    ok = np.isfinite(points).all(1) & (points >= 0).all(1) & (points <= canvas).all(1)
    runs, start = [], None
    for i, inside in enumerate(ok):
        if inside and start is None:
            start = i
        elif not inside and start is not None:
            runs.append(points[start:i])
            start = None
    if start is not None:
        runs.append(points[start:])
    return runs, int((~ok).sum())


@dataclass
class StrokeModel:
    """The strokes of one sketch, in the dataset's stroke frame.

    Points from the pad arrive in *view* pixels (``view_size`` wide) and are stored in canvas units
    (``canvas`` wide): ``p_canvas = p_view * canvas / view_size``. Widths are per stroke, in canvas units.

    Attributes:
        canvas: side of the stroke frame (256, as the dataset's strokes).
        view_size: side of the on-screen pad in pixels.
        width: the pen width for the next stroke (canvas units).
        strokes: finished strokes, ``[n, 2]`` float32 arrays.
        widths: their widths.
    """

    canvas: float = CANVAS
    view_size: float = CANVAS
    width: float = DEFAULT_WIDTH
    strokes: list = field(default_factory=list)
    widths: list = field(default_factory=list)
    _current: list | None = field(default=None, repr=False)

    # -- coordinates ---------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """Canvas units per view pixel."""
        return self.canvas / self.view_size

    def to_view(self, points: np.ndarray) -> np.ndarray:
        """Canvas units to view pixels."""
        return np.asarray(points, dtype=np.float64) / self.scale

    def set_width(self, width: float) -> float:
        """Set the pen width (clamped to ``[MIN_WIDTH, MAX_WIDTH]``; non-numbers keep the old width)."""
        try:
            w = float(width)
        except (TypeError, ValueError):
            return self.width
        if math.isfinite(w):
            self.width = float(min(MAX_WIDTH, max(MIN_WIDTH, w)))
        return self.width

    # -- live drawing (mouse events, view pixels) ------------------------------------------------
    @property
    def drawing(self) -> bool:
        """Whether a stroke is in progress (mouse button down)."""
        return self._current is not None

    @property
    def current(self) -> np.ndarray:
        """The stroke in progress, canvas units ``[n, 2]`` (empty when none)."""
        return np.asarray(self._current or np.zeros((0, 2)), dtype=np.float32).reshape(-1, 2)

    def begin(self, x: float, y: float) -> None:
        """Start a stroke at view position ``(x, y)`` (a stroke still open is finished first)."""
        if self._current is not None:
            self.end()
        self._current = [(float(x) * self.scale, float(y) * self.scale)]

    def extend(self, x: float, y: float) -> bool:
        """Add a point to the stroke in progress; returns whether it was stored (moves below
        :data:`MIN_STEP` and moves without a stroke in progress are not)."""
        if self._current is None:
            return False
        p = (float(x) * self.scale, float(y) * self.scale)
        q = self._current[-1]
        if math.isfinite(p[0]) and math.isfinite(p[1]) and math.hypot(p[0] - q[0], p[1] - q[1]) < MIN_STEP:
            return False
        self._current.append(p)
        return True

    def end(self, x: float | None = None, y: float | None = None) -> Notice | None:
        """Finish the stroke in progress (adding ``(x, y)`` if given) and store it.

        Returns a :class:`Notice` if the stroke was cut or dropped, else ``None``.
        """
        if self._current is None:
            return None
        if x is not None and y is not None:
            self.extend(x, y)
        pts, self._current = self._current, None
        return self.add_stroke(pts)

    def cancel(self) -> None:
        """Forget the stroke in progress."""
        self._current = None

    # -- whole strokes (canvas units) --------------------------------------------------------------
    def add_stroke(self, points, width: float | None = None, clip: bool = True) -> Notice | None:
        """Store one stroke given in **canvas** units (a recording, a replay, a test).

        With ``clip`` (the pad), points outside ``[0, canvas]^2`` or not finite are left out and the
        inside runs that remain become strokes of their own. Without it (recordings of the dataset, whose
        drawers may overshoot the frame a little, as the rasteriser allows) only non-finite points are
        left out. Returns a :class:`Notice` when points were left out (``"clipped"``) or nothing was left
        (``"outside"``), or the points were not an ``[n, 2]`` array (``"bad-stroke"``).
        """
        try:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            return Notice("bad-stroke", "That stroke is not a list of (x, y) points and was ignored.")
        if len(pts) == 0:
            return Notice("bad-stroke", "That stroke has no points and was ignored.")
        w = self.width if width is None else float(width)
        if clip:
            runs, n_out = _inside_runs(pts, self.canvas)
        else:
            finite = np.isfinite(pts).all(1)
            runs, n_out = ([pts[finite]] if finite.any() else []), int((~finite).sum())
        for r in runs:
            self.strokes.append(r.astype(np.float32))
            self.widths.append(w)
        if not runs:
            return _outside_notice(self.canvas)
        return _clipped_notice(n_out, self.canvas) if n_out else None

    def undo(self) -> Notice | None:
        """Remove the last stroke (or the stroke in progress); a notice when there is nothing to undo."""
        if self._current is not None:
            self._current = None
            return None
        if not self.strokes:
            return NOTHING_TO_UNDO
        self.strokes.pop()
        self.widths.pop()
        return None

    def clear(self) -> None:
        """Remove every stroke."""
        self.strokes.clear()
        self.widths.clear()
        self._current = None

    def load(self, strokes: Sequence, widths: Iterable[float] | None = None, clip: bool = False) -> list[Notice]:
        """Replace the sketch by ``strokes`` (canvas units) with optional per-stroke ``widths``
        (a recording: not clipped to the frame unless ``clip``, see :meth:`add_stroke`)."""
        self.clear()
        ws = list(widths) if widths is not None else [None] * len(strokes)
        notices = [self.add_stroke(s, w, clip=clip) for s, w in zip(strokes, ws)]
        return [n for n in notices if n is not None]

    # -- state ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.strokes)

    def problem(self) -> Notice | None:
        """Why the sketch cannot be searched with (:data:`EMPTY`, :data:`ONLY_DOTS`), or ``None``."""
        if not self.strokes:
            return EMPTY
        if all(stroke_extent(s) < DOT_EXTENT for s in self.strokes):
            return ONLY_DOTS
        return None

    def rasterize(self, size: int = 64, supersample: int = 2) -> Image.Image:
        """The sketch as an RGB image, drawn by :func:`sbirlab.data.strokes.rasterize_strokes`
        exactly as the dataset's sketches are (same frame, per-stroke widths in canvas units)."""
        return rasterize_strokes(self.strokes, size=size, canvas=self.canvas, supersample=supersample,
                                 widths=self.widths)

    def copy(self) -> "StrokeModel":
        """An independent copy (the finished strokes only)."""
        return StrokeModel(self.canvas, self.view_size, self.width, [s.copy() for s in self.strokes],
                           list(self.widths))
