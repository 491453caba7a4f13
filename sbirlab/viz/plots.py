"""Small matplotlib figures shared by the notebooks: image grids, top-k views, confusion matrices, bars.

Every function builds one figure and returns it (the notebook shows it; ``fig.savefig`` writes it).
Images are uint8 ``[N, 3, H, W]`` tensors / arrays or a list of ``[H, W, 3]`` arrays; nothing here
computes features or metrics.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["as_hwc", "image_grid", "topk_panel", "confusion_matrix", "plot_confusion", "accuracy_bars"]

_OK, _BAD = "#1a7f37", "#cf222e"


def _plt():
    import matplotlib.pyplot as plt

    return plt


def as_hwc(images) -> list[np.ndarray]:
    """uint8 ``[N, 3, H, W]`` (tensor or array) or a list of ``[H, W, 3]`` / PIL images -> list of ``[H, W, 3]``."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 4 and images.shape[1] in (1, 3):
            images = images.transpose(0, 2, 3, 1)  # [N, H, W, 3]
        return [np.asarray(im) for im in images]
    return [np.asarray(im) for im in images]


def image_grid(images, titles: Sequence[str] | None = None, ok: Sequence[bool] | None = None, ncols: int = 8,
               size: float = 1.35, suptitle: str | None = None):
    """A grid of images with optional titles, coloured green / red by ``ok`` (e.g. prediction correct).

    Args:
        images: uint8 images (see module docstring).
        titles: one short title per image (``"pred\\n(true)"`` fits two lines).
        ok: per image, whether to colour its title as correct (green) or wrong (red).
        ncols: images per row.
        size: inches per image.
        suptitle: figure title.
    """
    plt = _plt()
    ims = as_hwc(images)
    n = len(ims)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.45) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(ims[i], interpolation="nearest")
        if titles is not None:
            color = "black" if ok is None else (_OK if ok[i] else _BAD)
            ax.set_title(titles[i], fontsize=7.5, color=color)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def topk_panel(images, scores, classes: Sequence[str], labels: Sequence[int], k: int = 5,
               row_titles: Sequence[str] | None = None, temperature: float = 100.0):
    """One row per image: the image, then a bar chart of its top-``k`` classes (softmax of ``scores``).

    Args:
        images: uint8 images, one per row.
        scores: ``[N, C]`` image-text similarities (cosines).
        classes: the ``C`` class names.
        labels: true class id of every image; its bar is green, the others grey.
        k: classes shown per image.
        row_titles: optional title above each image.
        temperature: softmax scale (CLIP's ``logit_scale.exp()``).
    """
    plt = _plt()
    ims = as_hwc(images)
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    p = np.exp(temperature * (s - s.max(1, keepdims=True)))
    p /= p.sum(1, keepdims=True)
    n = len(ims)
    fig, axes = plt.subplots(n, 2, figsize=(5.2, 1.25 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 3.2]})
    for i in range(n):
        ax_im, ax_b = axes[i]
        ax_im.imshow(ims[i], interpolation="nearest")
        ax_im.axis("off")
        if row_titles is not None:
            ax_im.set_title(row_titles[i], fontsize=7.5)
        top = np.argsort(-p[i])[:k][::-1]
        colors = [_OK if int(c) == int(labels[i]) else "#8c959f" for c in top]
        ax_b.barh(range(len(top)), p[i, top], color=colors)
        ax_b.set_yticks(range(len(top)), [classes[int(c)].replace("_", " ") for c in top], fontsize=7.5)
        ax_b.set_xlim(0, 1)
        ax_b.tick_params(axis="x", labelsize=7)
        rank = int((p[i] > p[i, int(labels[i])]).sum()) + 1
        ax_b.set_title(f"true: {classes[int(labels[i])].replace('_', ' ')} (rank {rank})", fontsize=7.5,
                       color=_OK if rank == 1 else _BAD)
    fig.tight_layout()
    return fig


def confusion_matrix(labels, preds, num_classes: int, normalize: bool = True) -> np.ndarray:
    """``[C, C]`` counts (rows: true class, columns: predicted), row-normalised by default."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(cm, (y, p), 1.0)
    if normalize:
        cm /= np.maximum(cm.sum(1, keepdims=True), 1.0)
    return cm


def plot_confusion(cms: Mapping[str, np.ndarray], classes: Sequence[str], size: float = 4.2):
    """Side-by-side row-normalised confusion matrices (one panel per entry of ``cms``), diagonal = recall."""
    plt = _plt()
    names = [c.replace("_", " ") for c in classes]
    fig, axes = plt.subplots(1, len(cms), figsize=(size * len(cms) + 0.8, size), squeeze=False)
    im = None
    for j, (ax, (title, cm)) in enumerate(zip(axes[0], cms.items())):
        im = ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names if j == 0 else [], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        if j == 0:
            ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{title}: mean recall {np.mean(np.diag(cm)):.2f}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    return fig


def accuracy_bars(table: Mapping[str, Mapping[str, float]], chance: float | None = None,
                  title: str = "", xlabel: str = "zero-shot accuracy"):
    """Horizontal grouped bars: ``table[row][series]`` (e.g. template -> {"photos": .., "sketches": ..})."""
    plt = _plt()
    rows = list(table)
    series = list(dict.fromkeys(s for r in rows for s in table[r]))
    h = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(rows) * max(1, len(series)) / 1.5 + 1.0))
    for j, s in enumerate(series):
        y = np.arange(len(rows)) + (j - (len(series) - 1) / 2) * h
        vals = [table[r].get(s, np.nan) for r in rows]
        bars = ax.barh(y, vals, height=h, label=s)
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.text(v + 0.005, b.get_y() + b.get_height() / 2, f"{v:.2f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.invert_yaxis()
    if chance is not None:
        ax.axvline(chance, color="k", ls=":", lw=1, label=f"chance ({chance:.3f})")
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, 1.08 * max(0.05, np.nanmax([table[r].get(s, np.nan) for r in rows for s in series])))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
