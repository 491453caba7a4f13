"""Error analysis of a retrieval run: per-class AP, top-k class confusion, worst queries, FG ranks, run vs run.

Everything starts from one :class:`Retrieval`: the sketch queries, the photo gallery, their
embeddings and the similarity matrix of a trained method (:func:`retrieve`). Embeddings are cached on
disk (:func:`embed_cached`), keyed by a digest of the method's weights, the items and the image
pipeline, so a notebook re-run is fast and a changed model never reads a stale cache. The numbers
come from :mod:`sbirlab.metrics` (per-query AP from ``retrieval_metrics(per_query=True)``, the ranks
of relevant items from ``relevant_ranks``, fine-grained ranks from ``fg_accuracy(return_ranks=True)``);
nothing here re-implements a metric.

* :func:`per_class_ap` -- mean AP@all of the queries of each class (which unseen classes fail);
* :func:`topk_confusion` -- ``[C, C]``: of the top-``k`` photos retrieved for the sketches of class ``i``,
  the share that belongs to class ``j`` (which unseen class pulls which); :func:`top_confusions` lists
  the largest off-diagonal cells;
* :func:`worst_queries` / :func:`plot_worst_queries` -- the lowest-AP queries with their top false
  positives and the rank of their first true match;
* :func:`fg_ranks` -- the rank of each sketch's paired photo (within its category by default), for
  the rank histogram (:func:`sbirlab.viz.training.plot_rank_histogram`);
* :func:`compare_runs` -- two runs on the same queries, query by query: which got better, which worse,
  a paired sign test, per-class deltas.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .io import atomic_savez
from .metrics import fg_accuracy, relevant_ranks, retrieval_metrics

log = logging.getLogger(__name__)

__all__ = [
    "state_digest",
    "items_digest",
    "embed_cached",
    "cache_dir_for",
    "Retrieval",
    "retrieve",
    "per_class_ap",
    "plot_per_class_ap",
    "topk_indices",
    "topk_confusion",
    "top_confusions",
    "plot_topk_confusion",
    "first_relevant_rank",
    "worst_queries",
    "plot_worst_queries",
    "fg_ranks",
    "RunComparison",
    "compare_runs",
    "plot_comparison",
    "plot_query_pairs",
]

CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------------
# embeddings, cached


def state_digest(module: torch.nn.Module) -> str:
    """SHA-1 of every tensor of ``module.state_dict()`` (names, shapes, dtypes and values).

    Any change of a weight, a prompt or a LayerNorm changes the digest; hashing the tiny CLIP takes a
    few tens of milliseconds.
    """
    h = hashlib.sha1()
    for name, t in module.state_dict().items():
        t = t.detach().cpu()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        if t.numel():
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def items_digest(items: Sequence) -> str:
    """SHA-1 of the items' paths and stroke indices, in order."""
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.path}#{getattr(it, 'strokes', -1)}\n".encode())
    return h.hexdigest()


def _cache_key(method, items, modality: str, loader, extra: str = "") -> str:
    pipe = {"size": int(loader.size), "mean": [round(float(v), 6) for v in loader.mean.flatten()],
            "std": [round(float(v), 6) for v in loader.std.flatten()]}
    hook = getattr(method, "embedding_cache_key", None)  # state outside state_dict (e.g. evaluation categories)
    parts = [f"v{CACHE_VERSION}", type(method).__name__, getattr(method, "name", ""),
             getattr(method, "setting", ""), modality, json.dumps(pipe, sort_keys=True), state_digest(method),
             items_digest(items), str(len(items)), extra, str(hook()) if callable(hook) else ""]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


def cache_dir_for(run_dir) -> Path:
    """Where the analysis caches of a run go: ``<run>/analysis_cache``.

    The runs shipped in the repository (``data/runs/<name>``) keep the repository clean: their caches go
    to the git-ignored ``data/cache/runs/<name>`` instead.
    """
    from .experiment import shipped_runs_dir

    run_dir = Path(run_dir).resolve()
    shipped = shipped_runs_dir().resolve()
    if run_dir == shipped or shipped in run_dir.parents:
        return shipped.parent / "cache" / "runs" / run_dir.relative_to(shipped)
    return run_dir / "analysis_cache"



def embed_cached(method, items: Sequence, modality: str, loader, device="cpu", cache_dir=None,
                 batch_size: int = 128, progress: bool = False, extra_key: str = "") -> np.ndarray:
    """L2-normalised embeddings ``[N, E]`` (float32) of ``items``, read from / written to ``cache_dir``.

    The file name holds a key made of the method's class, name and setting, a digest of every tensor
    of its state (backbone, prompts, heads), the items (paths, order), the modality and the image
    pipeline (size, mean, std), so a changed model or item list is a cache miss, never a stale hit.
    Files are written atomically (temporary file + ``os.replace``).

    Args:
        method: an :class:`~sbirlab.models.methods.base.SBIRMethod` (anything with ``encode_sketch`` /
            ``encode_photo``).
        items: the items to encode.
        modality: ``"sketch"`` or ``"photo"`` (which encoder branch).
        loader: the :class:`~sbirlab.train.data.ImageLoader`.
        cache_dir: folder of the cache; ``None`` = no cache.
        extra_key: anything else the embedding depends on (e.g. a category for category prompts).

    Embeddings that depend on state outside ``state_dict()`` (DP-CLIP's evaluation categories and their
    support images, set by ``prepare_eval``) need that state in the key: a method may define
    ``embedding_cache_key() -> str`` (included automatically), or the caller passes ``extra_key``.
    """
    from .train.loop import encode_items

    if modality not in ("sketch", "photo"):
        raise ValueError(f"modality must be 'sketch' or 'photo', got {modality!r}")
    if not len(items):
        raise ValueError(f"no {modality} items to encode")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"emb-{modality}-{_cache_key(method, items, modality, loader, extra_key)}.npz"
        if path.exists():
            try:
                with np.load(path) as z:
                    feats = z["feats"]
                if feats.shape[0] == len(items):
                    log.info("embedding cache hit: %s", path.name)
                    return feats
            except (OSError, ValueError, KeyError) as e:  # a damaged file: recompute
                log.warning("ignoring unreadable embedding cache %s (%s)", path, e)
    feats = encode_items(method, list(items), modality, loader, batch_size, device, progress).numpy()
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    if path is not None:
        atomic_savez(path, feats=feats)
        log.info("embedding cache written: %s", path)
    return feats


# --------------------------------------------------------------------------------------------------
# a retrieval


@dataclass
class Retrieval:
    """Sketch queries against a photo gallery for one model, with the per-query numbers.

    Attributes:
        name: a label for plots (e.g. ``"clip-at"``).
        queries, gallery: the items (``label``, ``instance``, ``path``).
        q_feats, g_feats: L2-normalised embeddings ``[Q, E]`` / ``[G, E]``.
        sim: ``[Q, G]`` cosine similarities (float32).
        ap: ``[Q]`` AP@all per query (from :func:`sbirlab.metrics.retrieval_metrics`).
        metrics: the aggregate metrics (mAP@all, mAP@200, P@100, P@200).
    """

    name: str
    queries: list
    gallery: list
    q_feats: np.ndarray
    g_feats: np.ndarray
    sim: np.ndarray = field(repr=False, default=None)
    ap: np.ndarray = field(repr=False, default=None)
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.q_feats.shape[0] != len(self.queries) or self.g_feats.shape[0] != len(self.gallery):
            raise ValueError(f"{self.name}: {self.q_feats.shape[0]} query / {self.g_feats.shape[0]} gallery "
                             f"embeddings for {len(self.queries)} / {len(self.gallery)} items")
        if self.sim is None:
            self.sim = (self.q_feats @ self.g_feats.T).astype(np.float32)
        if self.ap is None:
            m = retrieval_metrics(self.sim, self.query_labels, self.gallery_labels, per_query=True)
            self.ap = m.pop("per_query")["AP@all"]
            self.metrics = {**m, **self.metrics}

    @property
    def query_labels(self) -> np.ndarray:
        return np.array([q.label for q in self.queries])

    @property
    def gallery_labels(self) -> np.ndarray:
        return np.array([g.label for g in self.gallery])

    @property
    def classes(self) -> list[str]:
        """The query classes, sorted."""
        return sorted({q.label for q in self.queries})


def retrieve(method, queries: Sequence, gallery: Sequence, loader, device="cpu", cache_dir=None,
             name: str = "", progress: bool = False) -> Retrieval:
    """Encode ``queries`` (sketches) and ``gallery`` (photos) with ``method`` (cached) and rank."""
    q = embed_cached(method, queries, "sketch", loader, device, cache_dir, progress=progress)
    g = embed_cached(method, gallery, "photo", loader, device, cache_dir, progress=progress)
    return Retrieval(name or getattr(method, "name", "run"), list(queries), list(gallery), q, g)


# --------------------------------------------------------------------------------------------------
# per-class AP


def per_class_ap(r: Retrieval):
    """Mean AP@all of each query class, worst first: a DataFrame ``class, AP, queries``."""
    import pandas as pd

    df = pd.DataFrame({"class": r.query_labels, "AP": r.ap})
    out = df.groupby("class")["AP"].agg(["mean", "size"]).rename(columns={"mean": "AP", "size": "queries"})
    return out.sort_values("AP").reset_index()


def plot_per_class_ap(runs: Sequence[Retrieval] | Retrieval, ax=None, title: str = "AP@all per unseen class"):
    """Horizontal bars of per-class AP, one series per run (sorted by the first run, worst at the top)."""
    import matplotlib.pyplot as plt

    runs = [runs] if isinstance(runs, Retrieval) else list(runs)
    tables = [per_class_ap(r).set_index("class")["AP"] for r in runs]
    order = list(tables[0].sort_values().index)
    n = len(order)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.2, 0.28 * n * max(1, len(runs)) / 1.4 + 1.2))
    else:
        fig = ax.figure
    h = 0.8 / len(runs)
    for j, (r, t) in enumerate(zip(runs, tables)):
        y = np.arange(n) + (j - (len(runs) - 1) / 2) * h
        ax.barh(y, [t.get(c, np.nan) for c in order], height=h,
                label=f"{r.name} (mAP@all {r.metrics.get('mAP@all', float(np.mean(r.ap))):.3f})")
    ax.set_yticks(range(n), [c.replace("_", " ") for c in order], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean AP@all of the class's sketch queries")
    ax.legend(fontsize=7.5, loc="upper right")  # worst classes (short bars) at the top: free space there
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# top-k confusion


def topk_indices(sim, k: int, chunk: int = 1024) -> np.ndarray:
    """``[Q, k]`` gallery indices of the top-``k`` items per row, ordered as :mod:`sbirlab.metrics` ranks.

    Decreasing similarity, ties by lower gallery index (a stable sort), exactly as the metrics rank.
    """
    s = np.asarray(sim.detach().cpu() if hasattr(sim, "detach") else sim)
    if s.ndim != 2:
        raise ValueError(f"sim must be [Q, G], got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("sim contains NaN")
    Q, G = s.shape
    k = int(k)
    if not 1 <= k <= G:
        raise ValueError(f"k must be in [1, {G}] (the gallery size), got {k}")
    out = np.empty((Q, k), dtype=np.int64)
    for a in range(0, Q, chunk):
        x = s[a:a + chunk]
        if k < G:
            kth = np.partition(x, G - k, axis=1)[:, G - k][:, None]  # k-th largest value per row
            cand = x >= kth  # every tie of the k-th value is a candidate
        else:
            cand = np.ones_like(x, dtype=bool)
        for i in range(x.shape[0]):
            idx = np.flatnonzero(cand[i])
            o = np.lexsort((idx, -x[i, idx]))  # by -sim, then by index
            out[a + i] = idx[o[:k]]
    return out


def topk_confusion(r: Retrieval, k: int = 10, normalize: bool = True, classes: Optional[Sequence[str]] = None):
    """``[C, C]`` class confusion of top-``k`` retrievals.

    Row ``i`` = the sketches of class ``i``; entry ``(i, j)`` = how many of their top-``k`` photos show
    class ``j`` (``normalize=True``: divided by ``k`` x the number of class-``i`` queries, so each row sums
    to 1 and the diagonal is the class's P@k).

    Returns:
        ``(matrix, classes)``; ``classes`` orders rows and columns (default: sorted union of query and
        gallery classes).
    """
    top = topk_indices(r.sim, k)  # [Q, k]
    g = r.gallery_labels
    qlab = r.query_labels
    classes = list(classes) if classes is not None else sorted(set(qlab) | set(g))
    pos = {c: i for i, c in enumerate(classes)}
    missing = sorted({c for c in set(qlab) | set(g) if c not in pos})
    if missing:
        raise ValueError(f"classes given to topk_confusion miss {missing[:5]}")
    qi = np.array([pos[c] for c in qlab])
    gi = np.array([pos[c] for c in g])
    cm = np.zeros((len(classes), len(classes)))
    np.add.at(cm, (np.repeat(qi, k), gi[top].ravel()), 1.0)
    if normalize:
        cm /= np.maximum(cm.sum(1, keepdims=True), 1.0)
    return cm, classes


def top_confusions(cm: np.ndarray, classes: Sequence[str], n: int = 10):
    """The ``n`` largest off-diagonal cells: a DataFrame ``query class, pulled class, share``."""
    import pandas as pd

    off = cm.copy()
    np.fill_diagonal(off, -np.inf)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    rows = [(classes[i], classes[j], float(cm[i, j])) for i, j in zip(*np.unravel_index(flat, cm.shape))
            if np.isfinite(off[i, j]) and cm[i, j] > 0]
    return pd.DataFrame(rows, columns=["query class", "pulled class", "share of top-k"])


def plot_topk_confusion(cm: np.ndarray, classes: Sequence[str], k: int, ax=None, title: str = "",
                        annotate: bool = True):
    """Heat map of :func:`topk_confusion` (rows: query sketch class, columns: class of the retrieved photo)."""
    import matplotlib.pyplot as plt

    n = len(classes)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.36 * n + 2.2, 0.36 * n + 1.4))
    else:
        fig = ax.figure
    im = ax.imshow(cm, cmap="viridis", vmin=0, vmax=max(1e-9, float(cm.max())))
    names = [c.replace("_", " ") for c in classes]
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel(f"class of the retrieved photo (top {k})", fontsize=8)
    ax.set_ylabel("class of the query sketch", fontsize=8)
    if annotate and n <= 24:
        for i in range(n):
            for j in range(n):
                if cm[i, j] >= 0.05:
                    ax.text(j, i, f"{cm[i, j]:.2f}"[1:] if cm[i, j] < 1 else "1", ha="center", va="center",
                            fontsize=5.5, color="white" if cm[i, j] < 0.6 * cm.max() else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the top-k photos")
    ax.set_title(title or f"which class fills the top {k}", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# worst queries


def first_relevant_rank(r: Retrieval) -> np.ndarray:
    """``[Q]`` rank of the best-ranked photo of the query's class (``relevant_ranks``); 0 if none exists."""
    qi, rank, j = relevant_ranks(r.sim, r.query_labels, r.gallery_labels)
    out = np.zeros(len(r.queries), dtype=np.int64)
    first = j == 1
    out[qi[first]] = rank[first]
    return out


def worst_queries(r: Retrieval, n: int = 8, k: int = 5, one_per_class: bool = False):
    """The ``n`` lowest-AP queries: DataFrame with index, class, AP, first true rank, top false positives.

    ``false_positives`` holds the gallery indices of the best-ranked photos of other classes (up to ``k``),
    ``pulled_by`` their classes. ``one_per_class`` keeps only the worst query of each class.
    """
    import pandas as pd

    order = np.argsort(r.ap, kind="stable")
    first = first_relevant_rank(r)
    g = r.gallery_labels
    rows, seen = [], set()
    for qi in order:
        lab = r.queries[qi].label
        if one_per_class and lab in seen:
            continue
        seen.add(lab)
        other = np.flatnonzero(g != lab)
        s = r.sim[qi, other]
        fps = [int(j) for j in other[np.lexsort((other, -s))[:k]]]  # best-ranked wrong photos, metric tie rule
        rows.append({"query": int(qi), "class": lab, "AP": float(r.ap[qi]), "first_true_rank": int(first[qi]),
                     "false_positives": fps, "pulled_by": [str(g[j]) for j in fps]})
        if len(rows) == n:
            break
    return pd.DataFrame(rows)


def plot_worst_queries(r: Retrieval, loader, n: int = 6, k: int = 5, one_per_class: bool = True, size: float = 1.15):
    """Gallery of the worst queries: the sketch, its top-``k`` false positives, and its first true match."""
    import matplotlib.pyplot as plt

    worst = worst_queries(r, n, k, one_per_class)
    first = first_relevant_rank(r)
    fig, axes = plt.subplots(len(worst), k + 2, figsize=(size * (k + 2), (size + 0.35) * len(worst) + 0.4),
                             squeeze=False)
    red, green = "#cf222e", "#1a7f37"
    for row, rec in enumerate(worst.itertuples()):
        q = r.queries[rec.query]
        axes[row, 0].imshow(loader.uint8(q).permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[row, 0].set_title(f"{q.label.replace('_', ' ')}\nAP {rec.AP:.2f}", fontsize=7)
        ranks = _ranks_of(r, rec.query, rec.false_positives)
        for j in range(k):
            ax = axes[row, 1 + j]
            if j < len(rec.false_positives):
                gi = rec.false_positives[j]
                ax.imshow(loader.uint8(r.gallery[gi]).permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_title(f"#{ranks[j]} {r.gallery[gi].label.replace('_', ' ')}", fontsize=6.5, color=red)
        # the best-ranked photo of the right class
        rel = np.flatnonzero(r.gallery_labels == q.label)
        ax = axes[row, k + 1]
        if len(rel):
            best = rel[np.argmax(r.sim[rec.query, rel])]
            ax.imshow(loader.uint8(r.gallery[best]).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(f"first true: #{first[rec.query]}", fontsize=6.5, color=green)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    fig.suptitle(f"{r.name}: worst queries, their top false positives (#rank, class) and first true match",
                 fontsize=8.5)
    fig.tight_layout()
    return fig


def _ranks_of(r: Retrieval, q: int, gallery_idx: Sequence[int]) -> list[int]:
    """1-based ranks of some gallery items for query ``q`` (the metrics' tie rule)."""
    s = r.sim[q]
    out = []
    for gi in gallery_idx:
        v = s[gi]
        out.append(int((s > v).sum() + (s[:gi] == v).sum() + 1))
    return out


# --------------------------------------------------------------------------------------------------
# fine-grained ranks


def fg_ranks(r: Retrieval, within_category: bool = True) -> np.ndarray:
    """``[Q']`` rank of each sketch's paired photo (``fg_accuracy(return_ranks=True)``).

    Sketches whose paired photo is not in the gallery are left out (as :func:`sbirlab.train.loop.evaluate`
    does); the ranks follow ``r.queries`` order among the kept sketches.
    """
    have = {g.instance for g in r.gallery if g.instance}
    keep = np.array([bool(q.instance) and q.instance in have for q in r.queries])
    if not keep.any():
        raise ValueError(f"{r.name}: no query sketch has its paired photo in the gallery (no instance ids?)")
    res = fg_accuracy(r.sim[keep], [q.instance for q, k in zip(r.queries, keep) if k],
                      [g.instance for g in r.gallery], r.query_labels[keep], r.gallery_labels,
                      within_category=within_category, return_ranks=True)
    return res["ranks"]


# --------------------------------------------------------------------------------------------------
# two runs, query by query


@dataclass
class RunComparison:
    """Query-by-query comparison of run ``a`` and run ``b`` (``delta = b - a``).

    Attributes:
        table: DataFrame with one row per query: ``query, class, a, b, delta, change``
            (``change`` is ``"better"`` / ``"worse"`` / ``"same"`` for ``b`` relative to ``a``).
        per_class: DataFrame per class: mean ``a``, mean ``b``, mean delta, queries better / worse.
        summary: dict with counts, mean delta and the two-sided sign-test p-value.
        metric: the per-query value compared (``"AP@all"`` or ``"rank"``).
    """

    names: tuple
    table: object
    per_class: object
    summary: dict
    metric: str

    def most(self, change: str = "better", n: int = 5):
        """The ``n`` queries with the largest gain (``"better"``) or loss (``"worse"``)."""
        t = self.table
        t = t[t["change"] == change]
        key = t["delta"] if self.metric != "rank" else -t["delta"]
        return t.loc[key.sort_values(ascending=(change == "worse")).index[:n]]


def _sign_test(n_better: int, n_worse: int) -> float:
    """Exact two-sided sign test p-value (ties dropped)."""
    n = n_better + n_worse
    if n == 0:
        return 1.0
    k = min(n_better, n_worse)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * p))


def compare_runs(a: Retrieval, b: Retrieval, tol: float = 1e-6, metric: str = "AP@all") -> RunComparison:
    """Compare two runs on the same queries and gallery, query by query.

    Args:
        a, b: retrievals over the *same* queries and gallery (same items, same order; checked).
        tol: absolute change below which a query counts as ``"same"``.
        metric: ``"AP@all"`` (higher is better) or ``"rank"`` (the paired photo's FG rank within its
            category, lower is better).

    Raises:
        ValueError: the two runs do not share the queries / gallery, or an unknown metric.
    """
    import pandas as pd

    for what, x, y in (("queries", a.queries, b.queries), ("gallery", a.gallery, b.gallery)):
        if len(x) != len(y):
            raise ValueError(f"compare_runs: {a.name} has {len(x)} {what}, {b.name} has {len(y)}")
        bad = next((i for i, (u, v) in enumerate(zip(x, y)) if (u.path, u.label) != (v.path, v.label)), None)
        if bad is not None:
            raise ValueError(f"compare_runs: {what} differ at position {bad}: {x[bad].path} vs {y[bad].path}")
    if metric == "AP@all":
        va, vb, labels, idx = a.ap, b.ap, a.query_labels, np.arange(len(a.queries))
        higher_better = True
    elif metric == "rank":
        va, vb = fg_ranks(a).astype(float), fg_ranks(b).astype(float)
        have = {g.instance for g in a.gallery if g.instance}
        idx = np.array([i for i, q in enumerate(a.queries) if q.instance and q.instance in have])
        labels = a.query_labels[idx]
        higher_better = False
    else:
        raise ValueError(f"metric must be 'AP@all' or 'rank', got {metric!r}")
    delta = vb - va
    gain = delta if higher_better else -delta
    change = np.where(gain > tol, "better", np.where(gain < -tol, "worse", "same"))
    table = pd.DataFrame({"query": idx, "class": labels, a.name: va, b.name: vb, "delta": delta, "change": change})
    g = table.groupby("class")
    per_class = pd.DataFrame({
        a.name: g[a.name].mean(), b.name: g[b.name].mean(), "delta": g["delta"].mean(),
        "better": g["change"].apply(lambda s: int((s == "better").sum())),
        "worse": g["change"].apply(lambda s: int((s == "worse").sum())),
        "queries": g.size(),
    }).sort_values("delta", ascending=not higher_better).reset_index()
    nb, nw = int((change == "better").sum()), int((change == "worse").sum())
    summary = {"a": a.name, "b": b.name, "metric": metric, "queries": int(len(idx)), "better": nb, "worse": nw,
               "same": int(len(idx) - nb - nw), "mean_a": float(np.mean(va)), "mean_b": float(np.mean(vb)),
               "mean_delta": float(np.mean(delta)), "sign_test_p": _sign_test(nb, nw)}
    return RunComparison((a.name, b.name), table, per_class, summary, metric)


def plot_comparison(cmp: RunComparison, ax=None):
    """Scatter of the per-query values of run ``a`` (x) and ``b`` (y), coloured by better / worse / same."""
    import matplotlib.pyplot as plt

    a, b = cmp.names
    t = cmp.table
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.4, 4.2))
    else:
        fig = ax.figure
    colors = {"better": "#1a7f37", "worse": "#cf222e", "same": "#8c959f"}
    for ch, c in colors.items():
        s = t[t["change"] == ch]
        ax.scatter(s[a], s[b], s=7, alpha=0.55, color=c, label=f"{ch}: {len(s)}", lw=0)
    lo = float(min(t[a].min(), t[b].min()))
    hi = float(max(t[a].max(), t[b].max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    if cmp.metric == "rank":
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"{a}: per-query {cmp.metric}")
    ax.set_ylabel(f"{b}: per-query {cmp.metric}")
    s = cmp.summary
    ax.set_title(f"{b} vs {a}: mean Δ {s['mean_delta']:+.3f}, sign test p = {s['sign_test_p']:.2g}", fontsize=9)
    ax.legend(fontsize=7.5, loc="upper left" if cmp.metric != "rank" else "lower right", markerscale=2)
    fig.tight_layout()
    return fig


def plot_query_pairs(cmp: RunComparison, a: Retrieval, b: Retrieval, loader, change: str = "better", n: int = 4,
                     k: int = 4, size: float = 1.05):
    """The queries that changed most: per row the sketch, then run ``a``'s top ``k`` and run ``b``'s top ``k``.

    Photos of the query's class have green titles, others red.
    """
    import matplotlib.pyplot as plt

    rows = cmp.most(change, n)
    if not len(rows):
        raise ValueError(f"no query got {change} ({cmp.summary})")
    fig, axes = plt.subplots(len(rows), 1 + 2 * k, figsize=(size * (1 + 2 * k) + 0.3, (size + 0.35) * len(rows) + 0.4),
                             squeeze=False)
    red, green = "#cf222e", "#1a7f37"
    for row, rec in enumerate(rows.itertuples(index=False)):
        qi, va, vb = int(rec[0]), float(rec[2]), float(rec[3])  # query, run a's value, run b's value
        q = a.queries[qi]
        axes[row, 0].imshow(loader.uint8(q).permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[row, 0].set_title(f"{q.label.replace('_', ' ')}\n{va:.2f} → {vb:.2f}", fontsize=7)
        for side, r in enumerate((a, b)):
            top = topk_indices(r.sim[qi:qi + 1], k)[0]
            for j, gi in enumerate(top):
                ax = axes[row, 1 + side * k + j]
                ax.imshow(loader.uint8(r.gallery[gi]).permute(1, 2, 0).numpy(), interpolation="nearest")
                lab = r.gallery[gi].label
                title = (f"{r.name}\n" if row == 0 and j == 0 else "") + lab.replace("_", " ")
                ax.set_title(title, fontsize=6.5, color=green if lab == q.label else red)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    fig.suptitle(f"queries that got {change} ({cmp.metric}: {a.name} → {b.name}); top {k} of each run", fontsize=8.5)
    fig.tight_layout()
    return fig
