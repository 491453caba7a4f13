"""Retrieval metrics for (zero-shot) sketch-based image retrieval, vectorised and chunked.

Three entry points, each returning a flat dict with self-describing keys (CLIP_benchmark style):

* :func:`retrieval_metrics` -- category-level ZS-SBIR: ``mAP@all``, ``mAP@200``, ``P@100``, ``P@200``.
* :func:`gzs_metrics` -- generalised ZS-SBIR: the same, overall and for the seen / unseen queries.
* :func:`fg_accuracy` -- fine-grained (instance-level) ZS-SBIR: ``Acc@1``, ``Acc@5``, ``Acc@10``.

Definitions (docs/methods.md §1.3). For one query, ``R`` is the number of relevant gallery items
(same class), ``rank_j`` the 1-based rank of its ``j``-th best-ranked relevant item, ``R_k`` the
number of relevant items in the top ``k``:

* ``P@k = R_k / k`` (``k`` is not clipped to the gallery size).
* ``AP@all = (1/R) * sum_j j / rank_j`` -- non-interpolated average precision over the full
  ranking; equal to ``sklearn.metrics.average_precision_score`` and torchmetrics'
  ``retrieval_average_precision`` when there are no tied scores.
* ``AP@k``, convention ``"rk"`` (default, decision of docs/methods.md §1.3): ``(1/R_k) * sum_{rank_j<=k} j/rank_j``,
  the AP of the top-``k`` list alone (SEM-PCYC ``apsak``, torchmetrics ``top_k``, ClipPrompt).
  A query with ``R_k = 0`` scores 0.
* ``AP@k``, convention ``"min_k_r"``: the same sum divided by ``min(k, R)`` -- the denominators of the
  VOC-style evaluation of SAKE / ZSE-SBIR / DRCPL, **but not interpolated** (those codes also replace
  each precision by the maximum precision at a deeper rank, which raises the number; we never
  interpolate). Record which convention a table uses.
* ``mAP@...`` / ``P@...`` are the means of the per-query values over the queries.
* ``Acc@k`` (fine-grained): fraction of queries whose paired photo ranks ``<= k``.

Conventions:

* **Ties**: items are ranked by decreasing similarity; equal similarities are ordered by gallery
  index, lower index first (a stable sort of ``-sim``). sklearn instead gives every member of a tied
  group the precision of the whole group, and torchmetrics follows ``torch.topk`` (unspecified tie
  order), so with ties the numbers differ slightly from both; without ties all three agree.
* **Queries with no relevant item** (``R = 0``): every per-query value is 0 and the query counts in
  the means (as SEM-PCYC's ``apsak``). With ``skip_no_relevant=True`` they are excluded from every
  mean instead and their per-query values are NaN (sklearn would warn and return 0; torchmetrics
  returns 0).
* Similarities must not contain NaN (``ValueError``); ``+-inf`` is allowed (exact, slower path).
* Queries and gallery labels may be any integer or string arrays, numpy or torch; ``sim`` is
  ``[Q, G]``, higher = more similar, numpy or torch (any float or int dtype, any device).

How it is computed: rows are processed in chunks (memory stays ``O(chunk_size * G)``) and only the
ranks of the relevant items are computed, so every metric above costs one pass. Two interchangeable
cores give identical results (tested): by default a compiled numba kernel (:mod:`sbirlab._ranks_numba`)
that *counts* instead of sorting (equal-width bins of each row, exact comparisons inside the bin of
each relevant item), else (``SBIRLAB_METRICS_BACKEND=numpy``, or without numba) a numpy path that
quantises each chunk to 16-bit keys by an affine, order-preserving map, ranks them with numpy's O(n)
radix argsort and re-ranks the relevant items whose key is shared by comparing raw similarities. Rows
with heavy ties, +-inf or a constant value go through a stable argsort of the row. All results are
exact (no binning error). On one core of the development machine the Sketchy-Ext-21-sized problem
(12,694 x 12,553) takes ~1.1 s with the kernel, ~1.7 s with the numpy path
(``benchmarks/bench_metrics.py``), with ~20 MB of working memory per thread by default.

Per-query values (``per_query=True``) serve per-class AP and paired comparisons of runs; the ranks of
all relevant items are available from :func:`relevant_ranks`, the FG ranks from
``fg_accuracy(..., return_ranks=True)``.

Peer conventions that differ (measured on the same scores, docs/methods.md §8.2): SAKE / ZSE-SBIR / DRCPL report a
VOC-interpolated mAP@200 divided by ``min(200, R)`` (0.60 where ``"rk"`` gives 0.72) and an interpolated
mAP@all (+0.002 to +0.011); torchmetrics >= 1.7.4 treats items scored ``<= 0`` as not relevant, so
cosine *distances* passed as scores read 0 there.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
import os
from typing import Any

import numpy as np

__all__ = [
    "retrieval_metrics",
    "gzs_metrics",
    "fg_accuracy",
    "relevant_ranks",
    "MAP_CONVENTIONS",
]

MAP_CONVENTIONS = ("rk", "min_k_r")

_KEY_MAX = 65535  # 16-bit quantisation keys
_RUN_CAP = 32  # longer runs of equal keys around a relevant item: exact per-row fallback
_TARGET_CHUNK_ELEMS = 1 << 20  # default chunk: ~1M similarities (~20 MB of work arrays; cache-friendly)


# --------------------------------------------------------------------------------------------
# input handling


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _to_numpy_1d(x: Any, name: str) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


class _Rows:
    """Row-chunk access to a similarity matrix (numpy or torch), converted chunk by chunk."""

    def __init__(self, sim: Any):
        self.torch = _is_torch(sim)
        if self.torch:
            if sim.dim() != 2:
                raise ValueError(f"sim must be 2-D [Q, G], got shape {tuple(sim.shape)}")
            self.shape = (int(sim.shape[0]), int(sim.shape[1]))
            self.sim = sim.detach()
        else:
            sim = np.asarray(sim)
            if sim.ndim != 2:
                raise ValueError(f"sim must be 2-D [Q, G], got shape {sim.shape}")
            self.shape = sim.shape
            self.sim = sim

    def get(self, a: int, b: int) -> np.ndarray:
        if self.torch:
            import torch

            t = self.sim[a:b]
            if t.dtype not in (torch.float32, torch.float64):
                t = t.to(torch.float64 if not t.is_floating_point() else torch.float32)
            x = t.cpu().numpy()
        else:
            x = self.sim[a:b]
        return np.ascontiguousarray(_as_float(x))


def _as_float(x: np.ndarray) -> np.ndarray:
    """float32 / float64 view or exact copy of a block of similarities."""
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x
    if x.dtype.kind == "f" and x.dtype.itemsize < 4:  # float16 etc.: float32 is exact
        return x.astype(np.float32)
    return x.astype(np.float64)  # integers and bools: exact up to 2**53


def _encode_labels(query_labels: Any, gallery_labels: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Map labels to compact codes; query classes absent from the gallery get code -1."""
    q = _to_numpy_1d(query_labels, "query_labels")
    g = _to_numpy_1d(gallery_labels, "gallery_labels")
    classes, g_codes = np.unique(g, return_inverse=True)
    n = len(classes)
    pos = np.searchsorted(classes, q)
    pos_c = np.minimum(pos, max(n - 1, 0))
    found = (pos < n) & (classes[pos_c] == q) if n else np.zeros(len(q), bool)
    q_codes = np.where(found, pos_c, -1)
    dtype = np.int16 if n < 32767 else np.int32
    return q_codes.astype(dtype), g_codes.astype(dtype).ravel(), n


def _chunk_rows(chunk_size: int | None, n_gallery: int) -> int:
    if chunk_size is None:
        return max(1, _TARGET_CHUNK_ELEMS // max(n_gallery, 1))
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return int(chunk_size)


def _map_chunks(fn: Callable[[int, int], Any], n: int, rows: int, num_threads: int) -> list:
    bounds = [(a, min(a + rows, n)) for a in range(0, n, rows)]
    if num_threads <= 1 or len(bounds) == 1:
        return [fn(a, b) for a, b in bounds]
    # numpy releases the GIL in the heavy steps (sorting, gathers, ufuncs)
    with ThreadPoolExecutor(max_workers=int(num_threads)) as pool:
        return list(pool.map(lambda ab: fn(*ab), bounds))


# --------------------------------------------------------------------------------------------
# ranking core


def _exact_rows(
    x: np.ndarray, rows: np.ndarray, g_codes: np.ndarray, q_codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference path for some rows of a block: a stable argsort of ``-x`` (any ties, +-inf)."""
    G = x.shape[1]
    order = np.argsort(-x[rows], axis=1, kind="stable")  # [n, G]
    rel2 = np.take(g_codes, order) == q_codes[rows][:, None]
    pos = np.flatnonzero(rel2)
    nrel = np.count_nonzero(rel2, axis=1)
    r_local = np.repeat(np.arange(len(rows)), nrel)
    rank = pos - r_local * G + 1
    j = np.arange(len(pos)) - np.repeat(np.cumsum(nrel) - nrel, nrel) + 1
    return rows[r_local], rank, j


def _backend() -> str:
    """``"numba"`` (compiled counting kernel, :mod:`sbirlab._ranks_numba`) or ``"numpy"`` (radix sort).

    ``SBIRLAB_METRICS_BACKEND=numpy`` forces the numpy path; both give identical results (tested).
    """
    from . import _ranks_numba

    want = os.environ.get("SBIRLAB_METRICS_BACKEND", "auto").lower()
    if want not in ("auto", "numba", "numpy"):
        raise ValueError(f"SBIRLAB_METRICS_BACKEND must be auto, numba or numpy, got {want!r}")
    if want == "numba" and not _ranks_numba.AVAILABLE:
        raise ImportError("SBIRLAB_METRICS_BACKEND=numba but numba is not installed")
    return "numba" if want != "numpy" and _ranks_numba.AVAILABLE else "numpy"


def _ranks_block(
    x: np.ndarray, g_codes: np.ndarray, q_codes: np.ndarray, nrel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of the relevant items of a block of query rows, by the compiled kernel when available.

    Same contract as :func:`_ranks_block_numpy`; rows the kernel declines (heavy ties, +-inf, constant
    rows) are ranked by :func:`_exact_rows`.
    """
    if _backend() == "numpy":
        return _ranks_block_numpy(x, g_codes, q_codes, nrel)
    from ._ranks_numba import ranks_block

    row, rank, j, status = ranks_block(x, g_codes, q_codes, nrel)
    if status.any():
        if (status == 2).any():
            raise ValueError("sim contains NaN")
        slow = np.flatnonzero(status)
        keep = ~np.isin(row, slow)
        r2, rank2, j2 = _exact_rows(x, slow, g_codes, q_codes)
        row = np.concatenate([row[keep], r2])
        rank = np.concatenate([rank[keep], rank2])
        j = np.concatenate([j[keep], j2])
        o = np.lexsort((j, row))
        row, rank, j = row[o], rank[o], j[o]
    return row, rank, j


def _ranks_block_numpy(
    x: np.ndarray, g_codes: np.ndarray, q_codes: np.ndarray, nrel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of the relevant items of a block of query rows (the heavy part of every metric).

    Args:
        x: ``[C, G]`` float32 / float64 similarities.
        g_codes: ``[G]`` class code of each gallery item.
        q_codes: ``[C]`` class code of each query (-1: no relevant item).
        nrel: ``[C]`` number of relevant gallery items of each query.

    Returns:
        ``(row, rank, j)`` for every relevant item: its row in the block, its 1-based rank under the
        tie rule (decreasing similarity, then increasing gallery index), and its 1-based position
        among the relevant items of its row (``AP = (1/R) sum j / rank``). Rows are non-decreasing.

    Method: an affine, order-preserving 16-bit key per similarity (key 0 = best), ranked by numpy's
    O(n) radix argsort (stable: equal keys stay in gallery-index order). That order is exact except
    inside runs of equal keys, so each relevant item whose key is shared by a neighbour is re-ranked
    by comparing raw similarities with the members of its run. Rows with a run longer than
    ``_RUN_CAP`` (heavy ties), with +-inf, constant rows and rows whose range overflows go through
    :func:`_exact_rows`.
    """
    C, G = x.shape
    hi = x.max(axis=1)
    lo = x.min(axis=1)
    bad = ~(np.isfinite(hi) & np.isfinite(lo))
    any_bad = bool(bad.any())
    if any_bad and (np.isnan(hi[bad]).any() or np.isnan(lo[bad]).any()):
        raise ValueError("sim contains NaN")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        span = hi - lo
        ok_span = (span > 0) & np.isfinite(span)
        # constant rows and rows whose range overflows also take the exact path
        bad |= ~ok_span
        any_bad = bool(bad.any())
        # KEY_MAX - 1: rounding can never push (hi - x) * scale past KEY_MAX, so no clipping pass
        scale = np.where(ok_span, (_KEY_MAX - 1) / np.where(ok_span, span, 1), 0).astype(x.dtype)
        hi_q = np.where(bad, 0, hi).astype(x.dtype)
        tmp = np.subtract(hi_q[:, None], x)  # [C, G], >= 0
        tmp *= scale[:, None]
        if any_bad:
            tmp[bad] = 0
        # monotone (IEEE rounding is monotone): a smaller key never means a lower similarity
        key = tmp.astype(np.uint16)
    del tmp
    order = np.argsort(key, axis=1, kind="stable")  # [C, G] radix sort
    rel2 = np.take(g_codes, order) == q_codes[:, None]  # [C, G] relevance in ranked order
    if any_bad:
        rel2[bad] = False
    rel = rel2.ravel()
    pos = np.flatnonzero(rel)  # flat ranked positions of relevant items, row-major
    nrel_b = np.where(bad, 0, nrel)
    row = np.repeat(np.arange(C), nrel_b)
    base = row * G
    p = pos - base  # 0-based position inside the row
    relstart = np.cumsum(nrel_b) - nrel_b
    rank = p + 1
    j = np.arange(len(pos)) - np.repeat(relstart, nrel_b) + 1

    # relevant items whose key equals the key of a ranked neighbour
    of = order.ravel()
    kf = key.ravel()
    g = of.take(pos)
    k_here = kf.take(base + g)
    eq_l = kf.take(base + of.take(pos - 1)) == k_here  # pos - 1 = -1 wraps; masked by p > 0
    eq_l &= p > 0
    eq_r = kf.take(base + of.take(np.minimum(pos + 1, C * G - 1))) == k_here
    eq_r &= p < G - 1
    flag = np.flatnonzero(eq_l | eq_r)
    slow = np.flatnonzero(bad)
    if len(flag):
        fpos = pos[flag]
        fk = k_here[flag]
        frow0 = base[flag]  # flat position of the row start
        s = fpos - eq_l[flag]  # run [s, e) of equal keys, flat ranked positions
        e = fpos + 1 + eq_r[flag]
        too_long = []
        for left in (True, False):
            act = np.flatnonzero(eq_l[flag] if left else eq_r[flag])
            for _ in range(_RUN_CAP):
                q = s[act] - 1 if left else e[act].copy()
                inside = q >= frow0[act] if left else q < frow0[act] + G
                q[~inside] = 0
                inside &= kf.take(frow0[act] + of.take(q)) == fk[act]
                act = act[inside]
                if len(act) == 0:
                    break
                if left:
                    s[act] -= 1
                else:
                    e[act] += 1
            too_long.append(act)
        long_rows = np.unique(row[flag[np.concatenate(too_long)]])
        if len(long_rows):
            slow = np.union1d(slow, long_rows)
        # each flagged item against every member of its run, on the raw similarities
        L = e - s
        nf = len(flag)
        owner = np.repeat(np.arange(nf), L)
        mpos = np.arange(int(L.sum())) - np.repeat(np.cumsum(L) - L - s, L)
        xf = x.ravel()
        m_g = of.take(mpos)
        m_x = xf.take(frow0.take(owner) + m_g)
        f_g = g.take(flag)
        f_x = xf.take(frow0 + f_g).take(owner)
        above = m_x > f_x
        above |= (m_x == f_x) & (m_g < f_g.take(owner))
        n_above = np.bincount(owner, weights=above, minlength=nf).astype(np.intp)
        n_rel_above = np.bincount(owner, weights=above & rel.take(mpos), minlength=nf).astype(np.intp)
        rel_before = np.searchsorted(pos, s) - relstart[row[flag]]
        rank[flag] = s - frow0 + n_above + 1
        j[flag] = rel_before + n_rel_above + 1
    if len(slow):
        keep = ~np.isin(row, slow)
        r2, rank2, j2 = _exact_rows(x, slow, g_codes, q_codes)
        row = np.concatenate([row[keep], r2])
        rank = np.concatenate([rank[keep], rank2])
        j = np.concatenate([j[keep], j2])
        o = np.argsort(row, kind="stable")
        row, rank, j = row[o], rank[o], j[o]
    return row, rank, j


def relevant_ranks(
    sim: Any,
    query_labels: Any,
    gallery_labels: Any,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of every relevant (same-label) gallery item, for every query.

    Returns:
        ``(query, rank, j)``: query index, 1-based rank of the relevant item (tie rule of the module
        docstring) and its 1-based position among the query's relevant items, sorted by query then
        rank. Useful for rank histograms and custom metrics.
    """
    rows = _Rows(sim)
    Q, G = rows.shape
    q_codes, g_codes, n_cls = _encode_labels(query_labels, gallery_labels)
    _check_lengths(Q, G, q_codes, g_codes)
    R = _num_relevant(q_codes, g_codes, n_cls)
    step = _chunk_rows(chunk_size, G)
    out_q, out_r, out_j = [], [], []
    for a in range(0, Q, step):
        b = min(a + step, Q)
        row, rank, j = _ranks_block(rows.get(a, b), g_codes, q_codes[a:b], R[a:b])
        out_q.append(row + a)
        out_r.append(rank)
        out_j.append(j)
    qi, rk, jj = (np.concatenate(v) for v in (out_q, out_r, out_j))
    o = np.lexsort((rk, qi))
    return qi[o], rk[o], jj[o]


def _num_relevant(q_codes: np.ndarray, g_codes: np.ndarray, n_cls: int) -> np.ndarray:
    counts = np.bincount(g_codes, minlength=n_cls)
    return np.where(q_codes >= 0, counts[np.maximum(q_codes, 0)], 0).astype(np.int64)


def _check_lengths(Q: int, G: int, q: np.ndarray, g: np.ndarray) -> None:
    if Q == 0 or G == 0:
        raise ValueError(f"empty similarity matrix of shape {(Q, G)}")
    if len(q) != Q:
        raise ValueError(f"query_labels has {len(q)} entries, sim has {Q} rows")
    if len(g) != G:
        raise ValueError(f"gallery_labels has {len(g)} entries, sim has {G} columns")


def _check_ks(ks: Iterable[int], name: str) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (int(ks),)
    out = tuple(int(k) for k in ks)
    if any(k < 1 for k in out):
        raise ValueError(f"{name} must hold positive integers, got {out}")
    return out


# --------------------------------------------------------------------------------------------
# category-level metrics


def _per_query(
    sim: Any,
    query_labels: Any,
    gallery_labels: Any,
    ks: Sequence[int],
    map_k: Sequence[int],
    map_convention: str,
    chunk_size: int | None,
    num_threads: int,
) -> dict[str, np.ndarray]:
    rows = _Rows(sim)
    Q, G = rows.shape
    q_codes, g_codes, n_cls = _encode_labels(query_labels, gallery_labels)
    _check_lengths(Q, G, q_codes, g_codes)
    R = _num_relevant(q_codes, g_codes, n_cls)
    out: dict[str, np.ndarray] = {"AP@all": np.zeros(Q)}
    for k in map_k:
        out[f"AP@{k}"] = np.zeros(Q)
    for k in ks:
        out[f"P@{k}"] = np.zeros(Q)
    out["R"] = R

    def work(a: int, b: int) -> None:
        C = b - a
        row, rank, j = _ranks_block(rows.get(a, b), g_codes, q_codes[a:b], R[a:b])
        terms = j / rank  # precision at the rank of each relevant item
        Rc = R[a:b]
        safe = np.maximum(Rc, 1)
        out["AP@all"][a:b] = np.bincount(row, weights=terms, minlength=C) / safe
        for k in sorted(set(ks) | set(map_k)):
            m = rank <= k
            rk = np.bincount(row[m], minlength=C)
            if k in ks:
                out[f"P@{k}"][a:b] = rk / k
            if k in map_k:
                s = np.bincount(row[m], weights=terms[m], minlength=C)
                den = rk if map_convention == "rk" else np.minimum(k, Rc)
                out[f"AP@{k}"][a:b] = s / np.maximum(den, 1)

    _map_chunks(work, Q, _chunk_rows(chunk_size, G), num_threads)
    return out


def _aggregate(pq: dict[str, np.ndarray], ks, map_k, skip_no_relevant: bool, mask=None) -> dict[str, float]:
    valid = np.ones(len(pq["R"]), bool) if mask is None else np.asarray(mask, bool).copy()
    if skip_no_relevant:
        valid &= pq["R"] > 0
    n = int(valid.sum())

    def mean(v: np.ndarray) -> float:
        return float(v[valid].mean()) if n else float("nan")

    res = {"mAP@all": mean(pq["AP@all"])}
    for k in map_k:
        res[f"mAP@{k}"] = mean(pq[f"AP@{k}"])
    for k in ks:
        res[f"P@{k}"] = mean(pq[f"P@{k}"])
    return res


def retrieval_metrics(
    sim: Any,
    query_labels: Any,
    gallery_labels: Any,
    ks: Sequence[int] = (100, 200),
    map_k: Sequence[int] = (200,),
    map_convention: str = "rk",
    chunk_size: int | None = None,
    skip_no_relevant: bool = False,
    per_query: bool = False,
    num_threads: int = 1,
) -> dict[str, Any]:
    """Category-level retrieval metrics: mAP@all, mAP@k and P@k (definitions in the module docstring).

    Args:
        sim: ``[Q, G]`` similarities, higher = more similar (numpy or torch, any device / dtype).
        query_labels: ``[Q]`` class of each query (ints or strings, numpy / torch / list).
        gallery_labels: ``[G]`` class of each gallery item. Relevant = same class.
        ks: cut-offs for precision, one ``"P@k"`` key each.
        map_k: cut-offs for truncated mAP, one ``"mAP@k"`` key each.
        map_convention: ``"rk"`` (default, decision of docs/methods.md §1.3: AP of the top-k list divided by the
            relevant items found in it) or ``"min_k_r"`` (divided by ``min(k, R)``, VOC-style
            denominator without interpolation). Record it next to the numbers.
        chunk_size: query rows per chunk; default ~1M similarities per chunk (working memory
            ~20 bytes per similarity per thread).
        skip_no_relevant: exclude queries without any relevant gallery item from the means
            (default: they count with AP = P = 0).
        per_query: also return ``result["per_query"]``, a dict of ``[Q]`` numpy arrays: ``"AP@all"``,
            ``"AP@k"``, ``"P@k"`` (same keys without the leading ``m``) and ``"R"`` (relevant items per
            query). Excluded queries hold NaN.
        num_threads: chunks processed in parallel by a thread pool (numpy releases the GIL); 1 = serial.

    Returns:
        ``{"mAP@all": float, "mAP@200": float, "P@100": float, "P@200": float}`` (one key per
        requested cut-off), plus ``"per_query"`` when asked.

    Example:
        >>> import numpy as np
        >>> sim = np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.3]])
        >>> retrieval_metrics(sim, [0, 1], [0, 1, 0], ks=(1,), map_k=(2,))
        {'mAP@all': 0.9166666666666666, 'mAP@2': 1.0, 'P@1': 1.0}
    """
    ks = _check_ks(ks, "ks")
    map_k = _check_ks(map_k, "map_k")
    _check_convention(map_convention)
    pq = _per_query(sim, query_labels, gallery_labels, ks, map_k, map_convention, chunk_size, num_threads)
    res: dict[str, Any] = _aggregate(pq, ks, map_k, skip_no_relevant)
    if per_query:
        res["per_query"] = _per_query_out(pq, skip_no_relevant)
    return res


def _check_convention(map_convention: str) -> None:
    if map_convention not in MAP_CONVENTIONS:
        raise ValueError(f"map_convention must be one of {MAP_CONVENTIONS}, got {map_convention!r}")


def _per_query_out(pq: dict[str, np.ndarray], skip_no_relevant: bool) -> dict[str, np.ndarray]:
    if skip_no_relevant:
        none = pq["R"] == 0
        for name, v in pq.items():
            if name != "R":
                v[none] = np.nan
    return pq


def gzs_metrics(
    sim: Any,
    query_labels: Any,
    gallery_labels: Any,
    query_is_seen: Any,
    ks: Sequence[int] = (100, 200),
    map_k: Sequence[int] = (200,),
    map_convention: str = "rk",
    chunk_size: int | None = None,
    skip_no_relevant: bool = False,
    per_query: bool = False,
    num_threads: int = 1,
) -> dict[str, Any]:
    """Generalised ZS-SBIR metrics: overall, and for the seen-class and unseen-class queries.

    The gallery is the whole mixed gallery (unseen photos plus the sampled seen photos, docs/methods.md
    §1.4) for every query: a seen-class sketch competes with the unseen photos too and vice versa.
    Only the set of queries averaged over changes; one ranking pass serves all three results.

    Args:
        sim, query_labels, gallery_labels: as :func:`retrieval_metrics`, over the mixed test set.
        query_is_seen: ``[Q]`` bool, True for queries of seen classes.
        ks, map_k, map_convention, chunk_size, skip_no_relevant, per_query, num_threads: as
            :func:`retrieval_metrics`.

    Returns:
        The keys of :func:`retrieval_metrics` over all queries (``"mAP@all"``, ...), the same keys
        prefixed with ``"seen/"`` and ``"unseen/"`` (mean over that part's queries), and
        ``"seen/num_queries"`` / ``"unseen/num_queries"`` (ints). A part without queries gets NaN.
    """
    ks = _check_ks(ks, "ks")
    map_k = _check_ks(map_k, "map_k")
    _check_convention(map_convention)
    seen = _to_numpy_1d(query_is_seen, "query_is_seen").astype(bool)
    pq = _per_query(sim, query_labels, gallery_labels, ks, map_k, map_convention, chunk_size, num_threads)
    if len(seen) != len(pq["R"]):
        raise ValueError(f"query_is_seen has {len(seen)} entries, sim has {len(pq['R'])} rows")
    res: dict[str, Any] = _aggregate(pq, ks, map_k, skip_no_relevant)
    for part, mask in (("seen", seen), ("unseen", ~seen)):
        for name, v in _aggregate(pq, ks, map_k, skip_no_relevant, mask).items():
            res[f"{part}/{name}"] = v
        res[f"{part}/num_queries"] = int(mask.sum())
    if per_query:
        res["per_query"] = _per_query_out(pq, skip_no_relevant)
    return res


# --------------------------------------------------------------------------------------------
# fine-grained


def fg_accuracy(
    sim: Any,
    query_instance: Any,
    gallery_instance: Any,
    query_labels: Any = None,
    gallery_labels: Any = None,
    ks: Sequence[int] = (1, 5, 10),
    within_category: bool = True,
    return_ranks: bool = False,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Fine-grained accuracy: fraction of queries whose paired photo ranks ``<= k``.

    The paired photo of a query is the gallery item with the same instance id (Sketchy: sketch
    ``n02691156_58-1`` pairs with photo ``n02691156_58``). If several gallery items share the id, the
    best-ranked one counts. Ranks follow the module's tie rule (decreasing similarity, then lower
    gallery index first).

    Args:
        sim: ``[Q, G]`` similarities, higher = more similar.
        query_instance: ``[Q]`` instance id of each query sketch (ints or strings).
        gallery_instance: ``[G]`` instance id of each gallery photo. Within a category a match is
            (category, id); pooled, ids must be unique across categories (Sketchy's file stems are).
        query_labels, gallery_labels: categories; required when ``within_category`` is True.
        ks: cut-offs, one ``"Acc@k"`` key each.
        within_category: decision of docs/methods.md §1.5 (DP-CLIP convention): a query is ranked only against the
            photos of its own category. False = against the whole (pooled) gallery.
        return_ranks: also return ``result["ranks"]``, the ``[Q]`` 1-based rank of the true match
            (for rank histograms).
        chunk_size: query rows per chunk (default ~1M similarities).

    Returns:
        ``{"Acc@1": float, "Acc@5": float, "Acc@10": float}`` (fractions in [0, 1]), plus ``"ranks"``.

    Raises:
        ValueError: a query has no paired photo in its gallery (data error: the FG gallery is the set
            of paired photos).
    """
    ks = _check_ks(ks, "ks")
    rows = _Rows(sim)
    Q, G = rows.shape
    qi = _to_numpy_1d(query_instance, "query_instance")
    gi = _to_numpy_1d(gallery_instance, "gallery_instance")
    qi_codes, gi_codes, _ = _encode_labels(qi, gi)
    _check_lengths(Q, G, qi_codes, gi_codes)
    if within_category:
        if query_labels is None or gallery_labels is None:
            raise ValueError("within_category=True needs query_labels and gallery_labels")
        qc, gc, _ = _encode_labels(query_labels, gallery_labels)
        _check_lengths(Q, G, qc, gc)
    ranks = np.zeros(Q, dtype=np.int64)
    step = _chunk_rows(chunk_size, G)
    gidx = np.arange(G)
    for a in range(0, Q, step):
        b = min(a + step, Q)
        x = rows.get(a, b)
        if np.isnan(x).any():
            raise ValueError("sim contains NaN")
        allowed = gc[None, :] == qc[a:b, None] if within_category else np.ones((b - a, G), bool)
        match = (gi_codes[None, :] == qi_codes[a:b, None]) & allowed
        has = match.any(axis=1)
        if not has.all():
            bad = a + int(np.flatnonzero(~has)[0])
            raise ValueError(
                f"query {bad} (instance {qi[bad]!r}) has no paired photo in its gallery"
                + (" (same category)" if within_category else "")
            )
        masked = np.where(match, x, -np.inf)
        best = masked.argmax(axis=1)  # first (lowest index) of the best-scored matches
        # all matches scored -inf: argmax may land on a non-match; take the first match instead
        fix = ~match[np.arange(b - a), best]
        if fix.any():
            best[fix] = match[fix].argmax(axis=1)
        xb = x[np.arange(b - a), best][:, None]
        before = (x > xb) | ((x == xb) & (gidx[None, :] < best[:, None]))
        ranks[a:b] = 1 + (before & allowed).sum(axis=1)
    res: dict[str, Any] = {f"Acc@{k}": float((ranks <= k).mean()) for k in ks}
    if return_ranks:
        res["ranks"] = ranks
    return res

