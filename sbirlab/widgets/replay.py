"""Replaying recorded sketches stroke by stroke: how does the rank of the right class evolve?

On-the-fly SBIR (Bhunia et al., CVPR 2020) retrieves after every stroke and asks how early the right
photos come up. :func:`~sbirlab.widgets.engine.stroke_by_stroke` gives one trajectory per sketch (a record
per stroke); this module summarises trajectories on a common axis, the **fraction of the sketch's strokes
drawn** (sketches have different stroke counts), and plots them.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..data.strokes import rasterize_strokes
from .engine import recorded_sketches

#: Fractions of a sketch's strokes at which trajectories are compared.
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def pick_recorded(index, queries: Sequence, n: int, seed: int = 0) -> dict[str, tuple[list, list, str]]:
    """``n`` recorded sketches of ``queries`` spread over their classes (round robin, reproducible).

    Returns ``{sketch id: (strokes, widths, label)}`` as :func:`~sbirlab.widgets.engine.recorded_sketches`.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list] = {}
    for q in queries:
        by_class.setdefault(q.label, []).append(q)
    pools = {c: [items[i] for i in rng.permutation(len(items))] for c, items in sorted(by_class.items())}
    chosen = []
    while len(chosen) < n and any(pools.values()):
        for c in sorted(pools):
            if pools[c] and len(chosen) < n:
                chosen.append(pools[c].pop())
    return recorded_sketches(index, chosen)


def prefix_at(n_strokes: int, fraction: float) -> int:
    """Strokes drawn at ``fraction`` of a sketch of ``n_strokes`` strokes (at least 1)."""
    return max(1, min(n_strokes, math.ceil(fraction * n_strokes - 1e-9)))


def rank_curves(trajectories: Sequence[Sequence[Mapping]], fractions: Sequence[float] = FRACTIONS) -> dict:
    """Median photo rank, median class rank and mean P@k at each fraction of the strokes drawn.

    Args:
        trajectories: one list per sketch of :func:`~sbirlab.widgets.engine.stroke_by_stroke` records.
        fractions: where to read the trajectories.

    Returns:
        ``{"fraction": [...], "photo_rank": [...], "class_rank": [...], "p_at_k": [...],
        "photo_rank_1": [...] (share of sketches whose first correct photo is at rank 1),
        "class_top1": [...] (share whose class guess is right)}``.
    """
    if not trajectories:
        raise ValueError("rank_curves needs at least one trajectory")
    rows = {"photo_rank": [], "class_rank": [], "p_at_k": []}
    for f in fractions:
        at = [t[prefix_at(len(t), f) - 1] for t in trajectories]
        for key in rows:
            rows[key].append([np.nan if r[key] is None else float(r[key]) for r in at])
    pr, cr, pk = (np.asarray(rows[k]) for k in ("photo_rank", "class_rank", "p_at_k"))
    return {"fraction": [float(f) for f in fractions],
            "photo_rank": np.nanmedian(pr, 1).tolist(), "class_rank": np.nanmedian(cr, 1).tolist(),
            "p_at_k": np.nanmean(pk, 1).tolist(),
            "photo_rank_1": np.mean(pr == 1, 1).tolist(), "class_top1": np.mean(cr == 1, 1).tolist()}


def on_the_fly_metrics(trajectories: Sequence[Sequence[Mapping]], n_gallery: int,
                       key: str = "photo_rank") -> dict:
    """m@A and m@B of on-the-fly retrieval (Bhunia et al., CVPR 2020) over stroke-by-stroke trajectories.

    After each stroke ``t`` of a sketch the target's rank ``r_t`` (1-based, in a gallery of ``N``
    photos) gives a **ranking percentile** ``(N - r_t) / (N - 1)`` and a **reciprocal rank** ``1 / r_t``.
    Plotted against the strokes drawn, their areas under the curve (the mean over the sketch's
    strokes) are the sketch's m@A and m@B; the reported values are their means over sketches. Both
    reward retrieving *early*: 1.0 means the target was first from the first stroke on.

    Bhunia et al. measure fine-grained retrieval, the target being the paired photo. Here ``key``
    names the rank used: by default ``photo_rank`` of :func:`~sbirlab.widgets.engine.stroke_by_stroke`,
    the first photo of the right **class** (the category-level analogue: real doodles have no paired
    photo). A step where the target is absent from the gallery counts as rank ``N``.

    Returns ``{"m@A", "m@B", "n"}`` (``n`` sketches; NaN metrics without trajectories).
    """
    if n_gallery < 2:
        raise ValueError(f"n_gallery must be at least 2, got {n_gallery}")
    per_a, per_b = [], []
    for tr in trajectories:
        if not tr:
            continue
        ranks = np.array([r[key] if r.get(key) is not None else n_gallery for r in tr], dtype=np.float64)
        per_a.append(float(np.mean((n_gallery - ranks) / (n_gallery - 1))))
        per_b.append(float(np.mean(1.0 / ranks)))
    if not per_a:
        return {"m@A": math.nan, "m@B": math.nan, "n": 0}
    return {"m@A": float(np.mean(per_a)), "m@B": float(np.mean(per_b)), "n": len(per_a)}


def strokes_needed(trajectory: Sequence[Mapping], key: str = "photo_rank", max_rank: int = 1) -> int | None:
    """Fewest strokes from which ``key`` stays at or below ``max_rank`` until the sketch is finished.

    ``None`` if the finished sketch does not get there.
    """
    need = None
    for r in reversed(trajectory):
        v = r[key]
        if v is None or v > max_rank:
            break
        need = r["n_strokes"]
    return need


def plot_rank_evolution(trajectories: Sequence[Sequence[Mapping]], n_gallery: int, n_classes: int,
                        title: str = "", fractions: Sequence[float] = FRACTIONS):
    """Two panels against the fraction of strokes drawn: the rank of the first photo of the right class
    (log scale, 1 = top) and the rank of the right class in the zero-shot class guess. Thin lines are
    sketches, the thick line the median. Returns the figure."""
    import matplotlib.pyplot as plt

    curves = rank_curves(trajectories, fractions)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, top, name in ((axes[0], "photo_rank", n_gallery, "rank of the first photo of the right class"),
                               (axes[1], "class_rank", n_classes, "rank of the right class in the class guess")):
        for t in trajectories:
            x = [r["n_strokes"] / len(t) for r in t]
            y = [np.nan if r[key] is None else r[key] for r in t]
            ax.plot(x, y, color="0.6", lw=0.8, alpha=0.6)
        ax.plot(curves["fraction"], curves[key], color="C3", lw=2.5, marker="o", label="median")
        ax.set_yscale("log")
        ax.set_ylim(top * 1.2, 0.8)  # rank 1 at the top
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= top]
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("fraction of the sketch's strokes drawn")
        ax.set_ylabel(name)
        ax.axhline(1, color="C2", lw=0.8, ls="--")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title(f"retrieval among {n_gallery} photos")
    axes[1].set_title(f"zero-shot class guess among {n_classes} classes")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def partial_steps(n_strokes: int) -> list[int]:
    """The stroke counts at which a sketch of ``n_strokes`` strokes is shown while drawn: the first
    stroke, a quarter, half, three quarters and all of them (duplicates removed, increasing)."""
    n = n_strokes
    return sorted({1, max(1, n // 4), max(1, n // 2), max(1, 3 * n // 4), n})


def plot_partial_sketches(strokes: Sequence, widths: Sequence | None, trajectory: Sequence[Mapping], title: str = "",
                          size: int = 64):
    """One sketch as the model sees it while it is drawn: the partial sketch after :func:`partial_steps`
    strokes, each titled with the rank of the first photo of the right class at that point.

    Args:
        strokes: the sketch's strokes (``[n, 2]`` arrays on the 256 canvas).
        widths: their widths (``None``: the rasteriser's default).
        trajectory: its :func:`~sbirlab.widgets.engine.stroke_by_stroke` records (one per stroke, with
            ``"photo_rank"``).
        title: the figure title.
        size: pixels of the rasterised partial sketches.

    Returns:
        the figure.
    """
    import matplotlib.pyplot as plt

    t = trajectory
    steps = partial_steps(len(t))
    fig, axes = plt.subplots(1, len(steps), figsize=(2.2 * len(steps), 2.6))
    for ax, n in zip(np.atleast_1d(axes), steps):
        ax.imshow(rasterize_strokes(strokes[:n], size=size, widths=None if widths is None else widths[:n]))
        ax.set_title(f"{n}/{len(t)} strokes\nphoto rank {t[n - 1]['photo_rank']}", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return fig
