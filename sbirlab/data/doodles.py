"""Real human doodles (Google's *Quick, Draw!*, CC BY 4.0) as sketches of the synthetic world's classes.

sbirlab ships 1,692 of them in ``data/real/quickdraw/`` (see its README for the attribution): one
QuickDraw simplified ``.ndjson`` file per QuickDraw word. :data:`QUICKDRAW_WORDS` maps the words that
differ from a world class name; every other file stands for the world class of the same name
(spaces for underscores).

The doodles are split once, deterministically, by a stable hash of their ``key_id``: a *pretrain*
part (may enter the tiny CLIP's pretraining corpus, as web drawings entered real CLIP's) and a
*heldout* part (:data:`HELDOUT_FRACTION`), which nothing trains on and on which sbirlab reports. Neither
part is ever an SBIR training or test sketch.

QuickDraw's simplified drawings touch the top-left corner of their 256 canvas; :func:`frame_doodle`
centres a doodle and scales its longer side to :data:`DOODLE_EXTENT` of the canvas, the frame of the
world's sketches, before the one shared rasteriser draws it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .strokes import quickdraw_to_strokes, rasterize_strokes, read_ndjson
from .synthetic import CANVAS, stable_hash01

log = logging.getLogger(__name__)

#: QuickDraw words that name a world class differently (README of data/real/quickdraw).
QUICKDRAW_WORDS = {"coffee cup": "cup", "wine bottle": "bottle", "alarm clock": "clock", "bird": "songbird",
                   "floor lamp": "lamp"}
#: Share of the doodles held out of every training (by a stable hash of ``key_id``).
HELDOUT_FRACTION = 0.3
#: Longer side of a framed doodle, as a fraction of the canvas.
DOODLE_EXTENT = 0.8
PARTS = ("all", "pretrain", "heldout")


@dataclass
class Doodle:
    """One real doodle: its world class, strokes on the 256 canvas, QuickDraw key and source file."""

    label: str
    strokes: list
    key_id: str
    source: str


def default_doodle_dir() -> Path:
    """The doodles shipped with sbirlab: ``data/real/quickdraw`` of the repository."""
    return Path(__file__).resolve().parents[2] / "data" / "real" / "quickdraw"


def world_class(word: str) -> str:
    """The world class a QuickDraw word stands for (``"coffee cup"`` -> ``"cup"``)."""
    return QUICKDRAW_WORDS.get(word, word.replace(" ", "_"))


def doodle_part(key_id: str) -> str:
    """``"heldout"`` or ``"pretrain"``: the fixed part of the doodle with this ``key_id``."""
    return "heldout" if stable_hash01(str(key_id)) < HELDOUT_FRACTION else "pretrain"


def load_doodles(folder: str | Path, part: str = "all", classes=None) -> list[Doodle]:
    """Read every ``*.ndjson`` of ``folder`` as :class:`Doodle` records of ``part``.

    Args:
        folder: a folder of QuickDraw simplified ndjson files named by their QuickDraw word.
        part: ``"all"``, ``"pretrain"`` or ``"heldout"`` (see the module docstring).
        classes: the known world classes (default: every class of the synthetic world); a file whose
            word maps to none of them is an error.

    Raises:
        FileNotFoundError: ``folder`` is missing or holds no ``.ndjson`` file.
        ValueError: an unknown part or word, or a malformed line (file and line number named).
    """
    from .categories import all_categories

    if part not in PARTS:
        raise ValueError(f"unknown doodle part {part!r}; known: {', '.join(PARTS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"doodle folder {folder} does not exist")
    files = sorted(folder.glob("*.ndjson"))
    if not files:
        raise FileNotFoundError(f"doodle folder {folder} holds no .ndjson file (QuickDraw simplified format)")
    known = set(classes or all_categories())
    out, empty = [], 0
    for f in files:
        label = world_class(f.stem)
        if label not in known:
            raise ValueError(f"{f}: QuickDraw word {f.stem!r} maps to no world class; "
                             f"name the file after one of: {', '.join(sorted(known))}")
        for line, rec in read_ndjson(f):
            key = str(rec.get("key_id", f"{f.stem}-{line}"))  # by line: the same key whatever part is read
            if part != "all" and doodle_part(key) != part:
                continue
            strokes = [s for s in quickdraw_to_strokes(rec["drawing"]) if len(s) >= 2]
            if not strokes:
                empty += 1
                continue
            out.append(Doodle(label, strokes, key, f.name))
    if empty:
        log.warning("%s: %d doodles without a stroke of two points or more were skipped", folder, empty)
    return out


def frame_doodle(strokes, extent: float = DOODLE_EXTENT, canvas: float = CANVAS) -> list[np.ndarray]:
    """Centre a doodle's bounding box on the canvas and scale its longer side to ``extent`` of it."""
    pts = [np.asarray(st, np.float64).reshape(-1, 2) for st in strokes]
    allp = np.concatenate(pts)
    lo, hi = allp.min(0), allp.max(0)
    k = extent * canvas / max(float((hi - lo).max()), 1.0)
    c = (lo + hi) / 2
    return [((p - c) * k + canvas / 2).astype(np.float32) for p in pts]


def doodle_images(doodles, size: int, width: float = 3.0) -> torch.Tensor:
    """Framed, rasterised doodles as uint8 ``[N, 3, size, size]`` (the widget's default pen width)."""
    if not doodles:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    imgs = [np.asarray(rasterize_strokes(frame_doodle(d.strokes), size=size, width=width, canvas=CANVAS))
            for d in doodles]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
