"""Image grids: photos next to their sketches, for notebooks, the data card and reports.

Two steps, so each is reusable on its own:

1. *rows*: a list of rows, each a list of images (PIL images, ``[H, W(, 3)]`` arrays, file paths or
   ``None`` for an empty cell), with titles, as a dict. :func:`world_rows` builds them from the synthetic world (one instance
   per class: its photo, sketches by distinct drawers and, optionally, the clean drawing style used
   only for pretraining); :func:`index_rows` from any loaded dataset (a photo and its paired sketches
   when the dataset is paired, else sketches of the same class).
2. :func:`sample_grid` (``sample_grid(**world_rows([...]))``) draws rows as a matplotlib figure with column and row titles, or
   :func:`image_grid` pastes them into one PIL image without matplotlib.

matplotlib is imported inside :func:`sample_grid` only.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

#: The title of the clean-drawing column: a style the SBIR sketches never use.
DRAWING_TITLE = "pretraining\ndrawing style"

Cell = Any  # PIL image | np.ndarray | str | Path | None


def _to_pil(cell: Cell, size: int | None = None) -> Image.Image | None:
    if cell is None:
        return None
    if isinstance(cell, (str, Path)):
        with Image.open(cell) as im:
            img = im.convert("RGB")
    elif isinstance(cell, np.ndarray):
        a = cell
        if a.dtype != np.uint8:
            a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        img = Image.fromarray(a).convert("RGB")
    else:
        img = cell.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    return img


def image_grid(rows: Sequence[Sequence[Cell]], size: int | None = None, pad: int = 2,
               background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Paste ``rows`` of images into one RGB image (no titles; no matplotlib).

    Args:
        rows: a list of rows of cells (PIL image, array, path, or ``None`` for a blank cell).
        size: resize every cell to ``size`` x ``size``; default the first image's width.
        pad: pixels between cells.
        background: colour of the padding and blank cells.
    """
    pil = [[_to_pil(c, size) for c in row] for row in rows]
    first = next((c for row in pil for c in row if c is not None), None)
    if first is None:
        raise ValueError("image_grid: no images in rows")
    side = size or first.width
    ncol = max(len(r) for r in pil)
    out = Image.new("RGB", (ncol * side + (ncol + 1) * pad, len(pil) * side + (len(pil) + 1) * pad), background)
    for i, row in enumerate(pil):
        for j, img in enumerate(row):
            if img is not None:
                if img.size != (side, side):
                    img = img.resize((side, side), Image.BICUBIC)
                out.paste(img, (pad + j * (side + pad), pad + i * (side + pad)))
    return out


def sample_grid(rows: Sequence[Sequence[Cell]], col_titles: Sequence[str] | None = None,
                row_titles: Sequence[str] | None = None, cell_labels: Sequence[Sequence[str]] | None = None,
                title: str | None = None,
                cell_inches: float = 1.0, dpi: int = 100, fontsize: float = 8.0,
                highlight_cols: Sequence[int] | None = None, as_image: bool = False):
    """Draw ``rows`` of images as a grid with titles.

    Args:
        rows: a list of rows of cells (PIL image, array, path, or ``None`` for a blank cell).
        col_titles: one title per column (shown above the first row).
        row_titles: one label per row (shown left of the row).
        cell_labels: optional rows of small captions shown under the cells (``""`` for none).
        title: the figure title.
        cell_inches: side of one cell in inches.
        dpi: figure resolution.
        fontsize: font size of the titles.
        highlight_cols: columns framed in colour; default the column titled :data:`DRAWING_TITLE`
            (the pretraining-only drawing style), if any.
        as_image: return a PIL image instead of the figure (the figure is closed).

    Returns:
        a ``matplotlib.figure.Figure`` (or a PIL image with ``as_image=True``).
    """
    if as_image:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    else:
        import matplotlib.pyplot as plt

    nrow, ncol = len(rows), max(len(r) for r in rows)
    if highlight_cols is None:
        highlight_cols = [j for j, t in enumerate(col_titles or ()) if t == DRAWING_TITLE]
    left = 0.9 if row_titles else 0.1
    top = (0.45 if col_titles else 0.1) + (0.3 if title else 0.0)
    row_h = cell_inches + (fontsize / 72 * 1.6 if cell_labels else 0.0)  # room for the cell captions
    figsize = (left + ncol * cell_inches + 0.1, top + nrow * row_h + 0.1)
    fig = Figure(figsize=figsize, dpi=dpi) if as_image else plt.figure(figsize=figsize, dpi=dpi)
    if as_image:
        FigureCanvasAgg(fig)
    W, H = figsize
    for i, row in enumerate(rows):
        for j in range(ncol):
            cell = row[j] if j < len(row) else None
            ax = fig.add_axes([(left + j * cell_inches) / W, 1 - (top + i * row_h + cell_inches) / H,
                               cell_inches * 0.96 / W, cell_inches * 0.96 / H])
            ax.set_xticks([])
            ax.set_yticks([])
            img = _to_pil(cell)
            if img is None:
                ax.axis("off")
            else:
                ax.imshow(np.asarray(img), interpolation="nearest")
            for s in ax.spines.values():
                s.set_color("tab:orange" if j in highlight_cols else "0.8")
                s.set_linewidth(2.0 if j in highlight_cols else 0.5)
            if i == 0 and col_titles and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=fontsize,
                             color="tab:orange" if j in highlight_cols else "black")
            if cell_labels and i < len(cell_labels) and j < len(cell_labels[i]) and cell_labels[i][j]:
                ax.set_xlabel(cell_labels[i][j], fontsize=fontsize - 1, labelpad=1)
            if j == 0 and row_titles and i < len(row_titles):
                ax.set_ylabel(row_titles[i], fontsize=fontsize, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=fontsize + 2, y=1 - 0.12 / H, va="top")
    if not as_image:
        return fig
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())


def world_rows(classes: Sequence[str], seed: int = 0, n_sketches: int = 3, size: int = 64,
               drawing: bool = True, instance: int = 0, difficulty: float = 1.0,
               pose_range: float | None = None) -> dict:
    """One row per class of the synthetic world: photo, sketches by distinct drawers, clean drawing.

    Row ``c`` shows instance ``instance`` of class ``c`` exactly as the dataset of world seed ``seed``
    (and ``sketch_difficulty=difficulty``, ``pose_range``: default the world's default) writes it: same
    instance seed and pose, same drawers, same sketch seeds as :func:`sbirlab.data.synthetic.ensure_dataset`,
    so the grid shows real dataset items.

    Returns:
        ``{"rows", "col_titles", "row_titles", "cell_labels"}``, to pass as ``sample_grid(**d)``.
        Sketch cells are labelled with their drawer's name. With ``drawing=True`` the last column
        is the clean drawing style that only the CLIP pretraining corpus uses, titled
        :data:`DRAWING_TITLE`; no SBIR sketch is ever drawn in that style.
    """
    from ..data import synthetic as sw

    if pose_range is None:
        pose_range = sw.WorldConfig().pose_range
    rows, labels = [], []
    for label in classes:
        inst_seed = sw._seed("world", seed, label, instance) % (2 ** 31)
        inst = sw.make_instance(label, inst_seed, pose_range)
        drawers = np.random.default_rng(inst_seed).permutation(len(sw.DRAWERS))[:n_sketches]
        row = [sw.render_photo(inst, size)]
        row += [sw.render_sketch(inst, int(d), seed=k, size=size, difficulty=difficulty) for k, d in enumerate(drawers, start=1)]
        cells = [f"{label}_{instance:04d}"] + [sw.DRAWERS[int(d)].name for d in drawers]
        if drawing:
            row.append(sw.render_drawing(inst, size))
            cells.append("")
        rows.append(row)
        labels.append(cells)
    col_titles = ["photo"] + [f"sketch {k}" for k in range(1, n_sketches + 1)]
    if drawing:
        col_titles.append(DRAWING_TITLE)
    return {"rows": rows, "col_titles": col_titles, "row_titles": [sw.class_text(c) for c in classes],
            "cell_labels": labels}


def index_rows(index, classes: Sequence[str] | None = None, n_classes: int = 6, n_sketches: int = 3,
               size: int = 64, seed: int = 0) -> dict:
    """Rows from a loaded :class:`~sbirlab.data.base.DatasetIndex` (synthetic or real).

    Each row: one photo of the class and ``n_sketches`` sketches. In a paired dataset (Sketchy,
    the synthetic world) the photo is one that has sketches and the sketches are **its** sketches
    (``Item.instance``); otherwise they are random sketches of the class.

    Returns:
        ``{"rows", "col_titles", "row_titles"}``, to pass as ``sample_grid(**d)``.
    """
    from ..data.images import load_image

    rng = random.Random(seed)
    if classes is None:
        classes = sorted(rng.sample(list(index.classes), min(n_classes, len(index.classes))))
    by_class: dict[str, list] = {}
    for s in index.sketches:
        by_class.setdefault(s.label, []).append(s)
    rows, row_titles = [], []
    for label in classes:
        sketches = by_class.get(label, [])
        photos = [p for p in index.photos if p.label == label]
        paired = {s.instance for s in sketches if s.instance}
        with_sketches = [p for p in photos if p.instance in paired]
        photo = rng.choice(with_sketches or photos) if photos else None
        mine = [s for s in sketches if photo is not None and s.instance == photo.instance] if with_sketches else []
        pool = mine or sketches
        picks = rng.sample(pool, min(n_sketches, len(pool)))
        row = [load_image(photo, size) if photo is not None else None]
        row += [load_image(s, size) for s in picks] + [None] * (n_sketches - len(picks))
        rows.append(row)
        row_titles.append(label.replace("_", " "))
    paired_any = any(s.instance for s in index.sketches)
    col_titles = ["photo"] + [f"{'its ' if paired_any else ''}sketch {k}" for k in range(1, n_sketches + 1)]
    return {"rows": rows, "col_titles": col_titles, "row_titles": row_titles}
