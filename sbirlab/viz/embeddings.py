"""The embedding space of sketches and photos, before and after prompt learning, in 2-D (UMAP).

* :func:`sample_items` picks sketches and photos of seen (training) and unseen (test) classes;
* :func:`embedding_table` encodes them with a model (cached on disk with
  :func:`sbirlab.analysis.embed_cached`: keyed by the model's weights and the items, written
  atomically) into an :class:`EmbeddingTable` with class, modality and seen / unseen per point;
* :class:`Projector` fits **one** UMAP (McInnes, Healy & Melville, *UMAP: Uniform Manifold
  Approximation and Projection*, 2018) on several tables at once, e.g. the frozen CLIP ("before") and
  the trained run ("after"), so both land in the same 2-D coordinates and can be compared point by
  point; the exact cosine k-nearest-neighbour graph is computed with one matrix product (faster than
  UMAP's approximate search at these sizes) and the 2-D result is cached too;
* :func:`plot_projection` / :func:`plot_before_after` draw static figures coloured by class, modality
  or seen / unseen (matplotlib);
* :func:`interactive_projection` is a widget (ipycanvas + ipywidgets) where hovering a point shows its
  image and clicking a sketch shows its nearest photos; without a browser (papermill) it is inert, and
  without the widget libraries it falls back to the static figure;
* :func:`space_stats` gives numbers for the same story: how often a sketch's nearest photo has its
  class, the gap between the sketch and photo clouds, class separation.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..io import atomic_savez

log = logging.getLogger(__name__)

__all__ = [
    "EmbeddingTable",
    "sample_items",
    "embedding_table",
    "knn_graph",
    "Projector",
    "class_palette",
    "plot_projection",
    "plot_before_after",
    "space_stats",
    "interactive_projection",
]

_MODALITY_COLORS = {"sketch": "#d62728", "photo": "#1f77b4"}
_SEEN_COLORS = {True: "#9aa4ae", False: "#e36209"}
_MARKERS = {"sketch": "^", "photo": "o"}


# --------------------------------------------------------------------------------------------------
# data


@dataclass
class EmbeddingTable:
    """Embeddings of a set of items under one model, with what each point is.

    Attributes:
        name: the model's label (``"before"``, ``"after"``, a method name).
        feats: ``[N, E]`` L2-normalised embeddings (float32).
        items: the ``N`` items (``label``, ``path``, ``instance``).
        modality: ``[N]`` ``"sketch"`` / ``"photo"``.
        seen: ``[N]`` bool, True for classes seen in training.
    """

    name: str
    feats: np.ndarray
    items: list
    modality: np.ndarray
    seen: np.ndarray

    def __post_init__(self):
        n = len(self.items)
        self.feats = np.asarray(self.feats, dtype=np.float32)
        self.modality = np.asarray(self.modality)
        self.seen = np.asarray(self.seen, dtype=bool)
        if self.feats.ndim != 2 or self.feats.shape[0] != n or len(self.modality) != n or len(self.seen) != n:
            raise ValueError(f"EmbeddingTable {self.name!r}: {self.feats.shape} feats, {n} items, "
                             f"{len(self.modality)} modalities, {len(self.seen)} seen flags")
        bad = sorted(set(self.modality.tolist()) - {"sketch", "photo"})
        if bad:
            raise ValueError(f"EmbeddingTable {self.name!r}: unknown modalities {bad}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        return np.array([i.label for i in self.items])

    def same_points(self, other: "EmbeddingTable") -> bool:
        """Whether ``other`` holds the same items in the same order (point ``i`` is the same image)."""
        return len(self) == len(other) and all(a.path == b.path for a, b in zip(self.items, other.items))


def sample_items(parts, n_sketches: int = 10, n_photos: int = 10, seen_classes: Optional[int] = None,
                 seed: int = 0, unseen_factor: int = 2):
    """Sketches and photos to project: ``n_*`` per seen (training) class, ``unseen_factor`` x that per unseen class.

    Args:
        parts: :class:`~sbirlab.data.base.Partitions` (train = seen, test = unseen).
        n_sketches, n_photos: items per seen class.
        seen_classes: keep only this many seen classes (a random subset; ``None`` = all).
        seed: the draw.
        unseen_factor: unseen classes are fewer; drawing more of them keeps both halves readable.

    Returns:
        ``(items, modality, seen)`` lists, grouped by part (seen, then unseen) and modality.
    """
    rng = np.random.default_rng(seed)

    def draw(items, n):
        by = {}
        for it in items:
            by.setdefault(it.label, []).append(it)
        return {c: [v[i] for i in sorted(rng.choice(len(v), min(n, len(v)), replace=False))]
                for c, v in sorted(by.items())}

    seen_sk, seen_ph = draw(parts.train_sketches, n_sketches), draw(parts.train_photos, n_photos)
    classes = sorted(seen_sk)
    if seen_classes is not None and seen_classes < len(classes):
        classes = sorted(rng.choice(classes, seen_classes, replace=False).tolist())
    un_sk = draw(parts.test_queries, n_sketches * unseen_factor)
    un_ph = draw(parts.test_gallery, n_photos * unseen_factor)
    items, modality, seen = [], [], []
    for group, mod, flag in ((seen_sk, "sketch", True), (seen_ph, "photo", True), (un_sk, "sketch", False),
                             (un_ph, "photo", False)):
        for c in (classes if flag else sorted(group)):
            for it in group.get(c, []):
                items.append(it)
                modality.append(mod)
                seen.append(flag)
    if not items:
        raise ValueError("sample_items: no items (empty partitions?)")
    return items, modality, seen


def embedding_table(method, items, modality, seen, loader, device="cpu", cache_dir=None, name: str = "",
                    progress: bool = False) -> EmbeddingTable:
    """Encode ``items`` with ``method`` (sketches with its sketch branch, photos with its photo branch).

    Embeddings are cached in ``cache_dir`` (see :func:`sbirlab.analysis.embed_cached`).
    """
    from ..analysis import embed_cached

    modality = np.asarray(modality)
    feats = None
    for mod in ("sketch", "photo"):
        idx = np.flatnonzero(modality == mod)
        if not len(idx):
            continue
        f = embed_cached(method, [items[i] for i in idx], mod, loader, device, cache_dir, progress=progress)
        if feats is None:
            feats = np.zeros((len(items), f.shape[1]), dtype=np.float32)
        feats[idx] = f
    if feats is None:
        raise ValueError("embedding_table: no items")
    return EmbeddingTable(name or getattr(method, "name", "model"), feats, list(items), modality, seen)


# --------------------------------------------------------------------------------------------------
# projection


def knn_graph(feats: np.ndarray, k: int, chunk: int = 2048):
    """Exact cosine k-nearest neighbours (each point first, as UMAP expects): ``(indices, distances)``.

    One matrix product per chunk of rows (torch): about a second for 10,000 points on a CPU.
    """
    import torch

    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(feats, dtype=np.float32)), dim=1)
    k = min(int(k), x.shape[0])
    idx, dist = [], []
    for a in range(0, x.shape[0], chunk):
        s = x[a:a + chunk] @ x.T  # [c, N]
        rows = torch.arange(a, min(a + chunk, x.shape[0]))
        s[torch.arange(len(rows)), rows] = 2.0  # the point itself first (ties with duplicates)
        v, i = s.topk(k, dim=1)
        v[:, 0] = 1.0
        idx.append(i)
        dist.append((1.0 - v).clamp_min(0.0))
    return torch.cat(idx).numpy().astype(np.int64), torch.cat(dist).numpy().astype(np.float32)


class Projector:
    """One 2-D projection fitted once on several embedding tables (``"before"``, ``"after"``, ...).

    All tables are stacked and UMAP is fitted **once** on the union, so every point of every table is
    placed in the same coordinates: a class that moves between "before" and "after" moved in the
    embedding space, not because two separate fits chose different layouts. (Fitting on one table and
    ``transform``-ing the other would instead snap the second onto the first one's neighbourhoods.)

    Args:
        n_neighbors, min_dist, metric: UMAP's parameters (``metric="cosine"``: CLIP embeddings are
            compared by cosine).
        n_epochs: layout epochs (UMAP's default is 500 up to 10,000 points; 200 looks the same here and
            is 2.5x faster).
        seed: random state (a fixed seed makes UMAP single-threaded but reproducible).
        method: ``"umap"`` or ``"pca"`` (instant, linear, for quick looks and tests).
        cache_dir: folder where the 2-D result is cached, keyed by the inputs and the parameters.

    Attributes:
        n_fits: how many times a reducer was fitted (1 after :meth:`fit`; a cache hit leaves it at 0).
        xy: ``{table name: [N, 2]}`` after :meth:`fit`.
    """

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine", n_epochs: int = 200,
                 seed: int = 0, method: str = "umap", cache_dir=None):
        if method not in ("umap", "pca"):
            raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
        self.params = {"n_neighbors": int(n_neighbors), "min_dist": float(min_dist), "metric": metric,
                       "n_epochs": int(n_epochs), "seed": int(seed), "method": method}
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.n_fits = 0
        self.xy: dict[str, np.ndarray] = {}
        self.tables: dict[str, EmbeddingTable] = {}
        self.cache_hit = False

    def _key(self, names, feats) -> str:
        h = hashlib.sha1(json.dumps({**self.params, "names": list(names), "v": 1}, sort_keys=True).encode())
        for f in feats:
            h.update(np.ascontiguousarray(f, dtype=np.float32).tobytes())
        return h.hexdigest()[:20]

    def fit(self, tables: Sequence[EmbeddingTable] | dict) -> dict:
        """Fit one reducer on all ``tables`` stacked; returns ``{name: [N_t, 2]}`` (also in :attr:`xy`)."""
        tabs = list(tables.values()) if isinstance(tables, dict) else list(tables)
        names = [t.name for t in tabs]
        if len(set(names)) != len(names):
            raise ValueError(f"table names must be distinct, got {names}")
        if not tabs:
            raise ValueError("Projector.fit: no tables")
        dims = {t.feats.shape[1] for t in tabs}
        if len(dims) != 1:
            raise ValueError(f"tables of different embedding sizes cannot share a projection: {dims}")
        feats = [t.feats for t in tabs]
        X = np.concatenate(feats)
        key = self._key(names, feats)
        path = self.cache_dir / f"proj-{key}.npz" if self.cache_dir else None
        Y = None
        if path is not None and path.exists():
            try:
                with np.load(path) as z:
                    Y = z["xy"]
                if Y.shape != (len(X), 2):
                    Y = None
            except (OSError, ValueError, KeyError):
                Y = None
            self.cache_hit = Y is not None
        if Y is None:
            Y = self._fit(X)
            self.n_fits += 1
            if path is not None:
                atomic_savez(path, xy=Y.astype(np.float32))
        off = np.cumsum([0] + [len(t) for t in tabs])
        self.xy = {n: Y[a:b] for n, a, b in zip(names, off[:-1], off[1:])}
        self.tables = {t.name: t for t in tabs}
        return self.xy

    def _fit(self, X: np.ndarray) -> np.ndarray:
        p = self.params
        if p["method"] == "pca" or len(X) <= p["n_neighbors"] + 1:
            Xc = X - X.mean(0)
            _, _, vt = np.linalg.svd(Xc, full_matrices=False)
            return (Xc @ vt[:2].T).astype(np.float32)
        import warnings

        import umap

        if p["metric"] == "cosine":
            knn = knn_graph(X, p["n_neighbors"])
            extra = {"precomputed_knn": (knn[0], knn[1], None)}
        else:
            extra = {}
        reducer = umap.UMAP(n_neighbors=p["n_neighbors"], min_dist=p["min_dist"], metric=p["metric"],
                            n_epochs=p["n_epochs"], random_state=p["seed"], **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", precomputed-knn notes
            return reducer.fit_transform(X).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# static plots


def class_palette(classes: Sequence[str]) -> dict:
    """A stable, distinct colour per class: tab10, then the rest of tab20, tab20b, tab20c (cycled)."""
    import matplotlib

    t20 = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    cols = t20[0::2] + t20[1::2] + [matplotlib.colormaps[m](i) for m in ("tab20b", "tab20c") for i in range(20)]
    return {c: cols[i % len(cols)] for i, c in enumerate(sorted(classes))}


def plot_projection(table: EmbeddingTable, xy: np.ndarray, color_by: str = "class", ax=None, title: str = "",
                    classes_palette: Optional[dict] = None, size: float = 9.0, legend: bool = True,
                    highlight_unseen: bool = True):
    """Scatter of one table's projection: sketches as triangles, photos as circles.

    Args:
        color_by: ``"class"`` (unseen classes in distinct colours named in the legend and seen classes
            in grey when ``highlight_unseen``, else every class coloured), ``"modality"`` or ``"seen"``.
        classes_palette: ``{class: colour}`` (default :func:`class_palette` of the coloured classes).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 4.6))
    else:
        fig = ax.figure
    labels = table.labels
    handles = []
    if color_by == "class":
        unseen_classes = sorted(set(labels[~table.seen]))
        if highlight_unseen:  # unseen classes in distinct colours, seen classes in light grey
            pal = classes_palette or class_palette(unseen_classes)
            colors = np.array([pal[c] if not s else (0.78, 0.80, 0.82, 0.6) for c, s in zip(labels, table.seen)],
                              dtype=float)
            handles = [Line2D([], [], marker="o", ls="", color=(0.78, 0.80, 0.82), label="(seen classes)", ms=5)]
        else:
            pal = classes_palette or class_palette(set(labels))
            colors = np.array([pal[c] for c in labels], dtype=float)
        handles = [Line2D([], [], marker="o", ls="", color=pal[c], label=c.replace("_", " "), ms=5)
                   for c in unseen_classes] + handles
    elif color_by == "modality":
        colors = np.array([_MODALITY_COLORS[m] for m in table.modality], dtype=object)
        handles = [Line2D([], [], marker=_MARKERS[m], ls="", color=c, label=m, ms=5)
                   for m, c in _MODALITY_COLORS.items()]
    elif color_by == "seen":
        colors = np.array([_SEEN_COLORS[bool(s)] for s in table.seen], dtype=object)
        handles = [Line2D([], [], marker="o", ls="", color=_SEEN_COLORS[s], label=n, ms=5)
                   for s, n in ((True, "seen classes"), (False, "unseen classes"))]
    else:
        raise ValueError(f"color_by must be 'class', 'modality' or 'seen', got {color_by!r}")
    order = np.argsort(~table.seen, kind="stable")  # unseen drawn last (on top)
    for mod in ("photo", "sketch"):
        sel = order[table.modality[order] == mod]
        c = colors[sel]
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, c=list(c), marker=_MARKERS[mod], lw=0, alpha=0.85)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{table.name}: coloured by {color_by}", fontsize=9)
    if legend and handles:
        ax.legend(handles=handles, fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  title=("unseen classes" if color_by == "class" else None), title_fontsize=7)
    return fig


def plot_before_after(projector: Projector, names: Optional[Sequence[str]] = None,
                      color_by: Sequence[str] = ("class", "modality", "seen"), size: float = 3.4):
    """Rows = tables (e.g. before / after), columns = colourings; every panel shares the same axes limits."""
    import matplotlib.pyplot as plt

    names = list(names or projector.xy)
    if not names:
        raise ValueError("plot_before_after: fit the projector first")
    allxy = np.concatenate([projector.xy[n] for n in names])
    lo, hi = allxy.min(0), allxy.max(0)
    pad = 0.04 * (hi - lo)
    pal = class_palette({c for n in names for c in projector.tables[n].labels[~projector.tables[n].seen]})
    fig, axes = plt.subplots(len(names), len(color_by), figsize=(size * len(color_by) + 1.6, size * len(names)),
                             squeeze=False)
    for i, n in enumerate(names):
        for j, cb in enumerate(color_by):
            ax = axes[i, j]
            plot_projection(projector.tables[n], projector.xy[n], cb, ax=ax, classes_palette=pal,
                            legend=(j == len(color_by) - 1 or i == 0) and not (cb == "class" and i > 0),
                            title=f"{n}: {cb}", size=6.0)
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    fig.suptitle("one UMAP fitted on all panels' points together: positions are comparable across rows",
                 fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# numbers


def space_stats(table: EmbeddingTable, k: int = 10) -> dict:
    """Numbers for the picture, in the embedding space itself (not the 2-D projection).

    Returns (each for the unseen and the seen part, keys prefixed ``unseen/`` / ``seen/``):
        ``sketch_to_photo_P@1`` / ``P@k``: share of a sketch's nearest ``k`` photos (of that part)
        that have its class; ``modality_gap``: distance between the mean sketch and the mean photo
        embedding; ``class_margin``: mean cosine to same-class points minus mean cosine to other-class
        points (all modalities).
    """
    out = {}
    f = table.feats / np.maximum(np.linalg.norm(table.feats, axis=1, keepdims=True), 1e-12)
    lab = table.labels
    for part, mask in (("unseen", ~table.seen), ("seen", table.seen)):
        sk = np.flatnonzero(mask & (table.modality == "sketch"))
        ph = np.flatnonzero(mask & (table.modality == "photo"))
        if not len(sk) or not len(ph):
            continue
        s = f[sk] @ f[ph].T
        kk = min(k, len(ph))
        top = np.argsort(-s, axis=1, kind="stable")[:, :kk]
        hit = lab[ph][top] == lab[sk][:, None]
        out[f"{part}/sketch_to_photo_P@1"] = float(hit[:, 0].mean())
        out[f"{part}/sketch_to_photo_P@{k}"] = float(hit.mean())
        out[f"{part}/modality_gap"] = float(np.linalg.norm(f[sk].mean(0) - f[ph].mean(0)))
        idx = np.flatnonzero(mask)
        c = f[idx] @ f[idx].T
        same = lab[idx][:, None] == lab[idx][None, :]
        np.fill_diagonal(same, False)
        other = lab[idx][:, None] != lab[idx][None, :]
        out[f"{part}/class_margin"] = float(c[same].mean() - c[other].mean()) if same.any() and other.any() else 0.0
    return out


# --------------------------------------------------------------------------------------------------
# interactive


def _png(img_u8_hwc: np.ndarray, scale: int = 2) -> bytes:
    from PIL import Image

    im = Image.fromarray(img_u8_hwc)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class _Pick:
    """State of the interactive view (testable without a browser)."""

    hovered: int = -1
    clicked: int = -1
    neighbours: list = field(default_factory=list)


def interactive_projection(table: EmbeddingTable, xy: np.ndarray, loader, color_by: str = "class",
                           k_photos: int = 5, width: float = 6.0, height: float = 5.0, dpi: int = 100,
                           radius_px: float = 8.0):
    """A widget: the projection as a canvas; hover shows a point's image, click a sketch shows its nearest photos.

    Built from ipycanvas (mouse events) and ipywidgets: the static matplotlib figure is rendered once
    and painted on the canvas; each point's pixel position comes from the figure's own transform, so a
    mouse position maps back to the nearest point exactly. The nearest photos of a clicked sketch are
    searched in the *embedding space* (cosine), not in 2-D.

    Degrades gracefully: under papermill (no browser) the widget is created and displayed as a plain
    model, no event ever fires and nothing fails; without ipycanvas / ipywidgets the static figure is
    returned instead (a warning is logged).

    Returns:
        The widget (``VBox``) with attributes ``pick`` (a :class:`_Pick`: the hovered / clicked point and
        the clicked sketch's neighbours), ``points_px`` (``[N, 2]`` canvas pixels) and the handlers
        ``on_move(x, y)`` / ``on_click(x, y)`` (callable directly, e.g. in tests).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    plot_projection(table, xy, color_by, ax=ax)
    fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # [H, W, 3]
    H, W = rgba.shape[:2]
    disp = ax.transData.transform(np.asarray(xy, dtype=float))
    pts = np.stack([disp[:, 0], H - disp[:, 1]], axis=1)  # canvas pixels, origin top-left
    plt.close(fig)
    try:
        import ipywidgets as w
        from ipycanvas import MultiCanvas
    except ImportError as e:  # pragma: no cover - both are sbirlab dependencies
        log.warning("interactive projection needs ipywidgets and ipycanvas (%s); showing the static figure", e)
        return plot_projection(table, xy, color_by)

    labels = table.labels
    canvas = MultiCanvas(2, width=W, height=H)
    base, top = canvas[0], canvas[1]
    image = w.Image(format="png", width=128, height=128)
    info = w.HTML("<i>hover a point to see its image; click a sketch to see its nearest photos</i>")
    strip = w.HBox([])
    pick = _Pick()
    photos = np.flatnonzero(table.modality == "photo")
    f = table.feats / np.maximum(np.linalg.norm(table.feats, axis=1, keepdims=True), 1e-12)
    thumbs: dict[int, bytes] = {}

    def thumb(i: int, scale: int = 2) -> bytes:
        if (i, scale) not in thumbs:
            thumbs[(i, scale)] = _png(loader.uint8(table.items[i]).permute(1, 2, 0).numpy(), scale)
        return thumbs[(i, scale)]

    def nearest(x: float, y: float) -> int:
        d = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
        i = int(np.argmin(d))
        return i if d[i] <= radius_px else -1

    def describe(i: int) -> str:
        it = table.items[i]
        part = "seen" if table.seen[i] else "unseen"
        return (f"<b>{it.label.replace('_', ' ')}</b> · {table.modality[i]} · {part} class"
                f"<br><code>{Path(it.path).name}</code>")

    def ring(i: int, color: str) -> None:
        top.clear()
        if i >= 0:
            top.stroke_style = color
            top.line_width = 2
            top.stroke_circle(float(pts[i, 0]), float(pts[i, 1]), radius_px)

    def on_move(x: float, y: float) -> None:
        i = nearest(x, y)
        if i == pick.hovered or i < 0:
            return
        pick.hovered = i
        image.value = thumb(i)
        info.value = describe(i)
        ring(i, "black")

    def on_click(x: float, y: float) -> None:
        i = nearest(x, y)
        if i < 0:
            return
        pick.clicked = i
        sims = f[photos] @ f[i]
        order = photos[np.argsort(-sims, kind="stable")]
        order = order[order != i][:k_photos]
        pick.neighbours = [int(j) for j in order]
        boxes = []
        for j in pick.neighbours:
            ok = labels[j] == labels[i]
            boxes.append(w.VBox([w.Image(value=thumb(j, 1), format="png", width=64, height=64),
                                 w.HTML(f"<span style='color:{'#1a7f37' if ok else '#cf222e'};font-size:10px'>"
                                        f"{labels[j].replace('_', ' ')}</span>")]))
        strip.children = [w.HTML(f"<b>{table.modality[i]} '{labels[i].replace('_', ' ')}': nearest photos "
                                 f"(embedding space)</b>")] + boxes
        ring(i, "#cf222e")

    def paint(*_):
        base.put_image_data(rgba, 0, 0)

    canvas.on_client_ready(paint)
    canvas.on_mouse_move(on_move)
    canvas.on_mouse_down(on_click)
    box = w.VBox([w.HBox([canvas, w.VBox([image, info])]), strip])
    for widget, css in ((box, "sbirlab-embedding-view"), (info, "sbirlab-embedding-info"),
                        (image, "sbirlab-embedding-image"), (strip, "sbirlab-embedding-neighbours")):
        widget.add_class(css)  # stable hooks for browser tests and custom CSS
    box.pick, box.points_px, box.on_move, box.on_click = pick, pts, on_move, on_click
    box.canvas = canvas
    return box
