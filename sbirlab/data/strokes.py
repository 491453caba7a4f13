"""Sketches as strokes: the one rasteriser, and QuickDraw's ``.ndjson`` stroke format.

A sketch is a list of strokes; a stroke is an ``[n, 2]`` array of ``(x, y)`` points on a square canvas
of side ``canvas`` (QuickDraw's simplified drawings use 256, ``y`` down). :func:`rasterize_strokes` is
the **only** function that turns strokes into pixels: the synthetic world, the QuickDraw loader and
the sketch widget all call it, so a sketch drawn in the widget looks exactly like a dataset sketch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw

Strokes = list  # list of [n, 2] float arrays


def rasterize_strokes(strokes: Strokes, size: int = 64, width: float = 3.0, canvas: float = 256.0,
                      supersample: int = 2, widths: Iterable[float] | None = None) -> Image.Image:
    """Draw black strokes on white and return an RGB image of ``size`` x ``size`` pixels.

    Args:
        strokes: polylines in canvas coordinates (``[n, 2]`` arrays or lists of points).
        size: output side in pixels.
        width: stroke width in **canvas** units (scaled with the image, so 64 px and 224 px agree).
        canvas: side of the coordinate frame of ``strokes``.
        supersample: draw at this multiple of ``size`` and downsample (anti-aliasing).
        widths: optional per-stroke widths (canvas units), overriding ``width``.
    """
    s = size * supersample
    img = Image.new("L", (s, s), 255)
    draw = ImageDraw.Draw(img)
    scale = s / canvas
    ws = list(widths) if widths is not None else None
    for k, st in enumerate(strokes):
        pts = np.asarray(st, dtype=np.float32).reshape(-1, 2)
        if len(pts) == 0:
            continue
        w = (ws[k] if ws is not None else width) * scale
        wi = max(1, int(round(w)))
        xy = [(float(x), float(y)) for x, y in pts * scale]
        if len(xy) == 1:  # a dot
            r = max(w / 2, 0.5)
            x, y = xy[0]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
        else:
            draw.line(xy, fill=0, width=wi, joint="curve")
            if wi > 2:  # round caps
                r = w / 2
                for x, y in (xy[0], xy[-1]):
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
    if supersample > 1:
        img = img.reduce(supersample)
    return img.convert("RGB")


def strokes_to_quickdraw(strokes: Strokes) -> list[list[list[int]]]:
    """Strokes to QuickDraw's simplified format ``[[[x0, x1, ...], [y0, y1, ...]], ...]`` (ints, 0-255)."""
    out = []
    for st in strokes:
        pts = np.clip(np.rint(np.asarray(st, dtype=np.float32).reshape(-1, 2)), 0, 255).astype(int)
        out.append([pts[:, 0].tolist(), pts[:, 1].tolist()])
    return out


def quickdraw_to_strokes(drawing) -> Strokes:
    """QuickDraw's ``drawing`` field to a list of ``[n, 2]`` arrays. Raises ``ValueError`` if malformed."""
    if not isinstance(drawing, list):
        raise ValueError("'drawing' must be a list of strokes")
    strokes = []
    for k, st in enumerate(drawing):
        if not (isinstance(st, list) and len(st) >= 2 and len(st[0]) == len(st[1])):
            raise ValueError(f"stroke {k} is not [[x...], [y...]] with equal lengths")
        strokes.append(np.stack([np.asarray(st[0], np.float32), np.asarray(st[1], np.float32)], axis=1))
    return strokes


def write_ndjson(path: str | Path, records: Iterable[dict]) -> None:
    """Write QuickDraw-style records (one JSON object per line) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    tmp.replace(path)


def read_ndjson(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` from a QuickDraw ``.ndjson`` file.

    Raises:
        ValueError: naming the file and the 1-based line number of a malformed line.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if "drawing" not in rec:
                    raise ValueError("no 'drawing' field")
                quickdraw_to_strokes(rec["drawing"])
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}: line {n}: malformed QuickDraw record ({e})") from None
            yield n, rec
