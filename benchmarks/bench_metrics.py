"""Benchmark sbirlab.metrics.retrieval_metrics against two per-query baselines.

Problem: Sketchy-Ext "Sketchy-2" test size (12,694 sketch queries x 12,553 photos, 21 unseen classes),
random float32 similarities with a per-class signal; all four ZS metrics (mAP@all, mAP@200, P@100,
P@200) per method, measured side by side in one process, for each thread count:

* ``sbirlab``: :func:`sbirlab.metrics.retrieval_metrics` (``num_threads`` = the thread count).
* ``torchmetrics loop``: one query at a time with torchmetrics' functional
  ``retrieval_average_precision`` (full and ``top_k=200``) and ``retrieval_precision`` (``top_k=100``,
  ``200``). Scores are kept positive: torchmetrics >= 1.7.4 treats items scored <= 0 as irrelevant.
* ``SEM-PCYC style``: our re-implementation, from its description, of SEM-PCYC's evaluation: an
  integer relevance matrix, a full ``argsort`` of the similarity matrix for each metric, sklearn's
  ``average_precision_score`` per query on the (top-k) sorted rows, and precision@k as the size of the
  intersection of Python sets of relevant and top-k indices. Like SEM-PCYC it spreads the per-query
  loops over joblib workers when more than one thread is allowed.

Threads: numpy / BLAS pools via threadpoolctl and ``torch.set_num_threads``, both set to the thread
count. Memory: the peak resident set size during each call (the kernel's high-water mark, reset
before the call; joblib workers sampled every 10 ms and added), which includes the resident input
matrix, and, for sbirlab, the tracemalloc peak of its own numpy allocations.

Usage::

    python benchmarks/bench_metrics.py               # full size, threads 1 and 2 (idle machine!)
    python benchmarks/bench_metrics.py --small       # 1/10 of the queries: a quick check
    python benchmarks/bench_metrics.py --threads 1   # one thread count only

Writes ``benchmarks/results/metrics.json`` (``metrics_small.json`` with ``--small``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

FULL_QUERIES, FULL_GALLERY, N_CLASSES = 12_694, 12_553, 21
METRIC_KEYS = ("mAP@all", "mAP@200", "P@100", "P@200")


# ------------------------------------------------------------------------------ problem


def make_problem(n_queries: int, n_gallery: int, n_classes: int, seed: int = 0):
    """Random float32 similarities in ~[0.5, 1.7] with a class-dependent signal (some classes easy)."""
    rng = np.random.default_rng(seed)
    q_labels = rng.permutation(np.arange(n_queries) % n_classes)
    g_labels = rng.permutation(np.arange(n_gallery) % n_classes)
    signal = rng.uniform(0.05, 0.3, n_classes).astype(np.float32)
    sim = rng.standard_normal((n_queries, n_gallery), dtype=np.float32)
    sim *= np.float32(0.1)
    for c in range(n_classes):
        sim[np.ix_(q_labels == c, g_labels == c)] += signal[c]
    sim += np.float32(1.0)  # positive scores, see the module docstring
    return sim, q_labels, g_labels


# ------------------------------------------------------------------------------ baselines


def torchmetrics_loop(sim: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray, threads: int) -> dict:
    import torch
    from torchmetrics.functional.retrieval import retrieval_average_precision, retrieval_precision

    preds = torch.from_numpy(sim)
    gl = torch.from_numpy(g_labels)
    out = {k: torch.zeros(len(q_labels)) for k in METRIC_KEYS}
    for i, q in enumerate(q_labels.tolist()):
        target = gl == q
        out["mAP@all"][i] = retrieval_average_precision(preds[i], target)
        out["mAP@200"][i] = retrieval_average_precision(preds[i], target, top_k=200)
        out["P@100"][i] = retrieval_precision(preds[i], target, top_k=100)
        out["P@200"][i] = retrieval_precision(preds[i], target, top_k=200)
    return {k: float(v.double().mean()) for k, v in out.items()}


def _ap_rows(str_sim_rows: np.ndarray, sim_rows: np.ndarray) -> list[float]:
    from sklearn.metrics import average_precision_score

    return [float(average_precision_score(t, s)) for t, s in zip(str_sim_rows, sim_rows)]


def _prec_rows(act_lists, pred_lists, k: int) -> list[float]:
    out = []
    for act, pred in zip(act_lists, pred_lists):
        top = set(pred[:k].tolist())
        out.append(len(set(act.tolist()) & top) / min(k, len(pred)))
    return out


def _per_query(fn, args_lists: tuple, threads: int) -> list[float]:
    """Run ``fn`` over query blocks, in joblib workers when threads > 1 (as SEM-PCYC does)."""
    n = len(args_lists[0])
    if threads <= 1:
        return fn(*args_lists)
    from joblib import Parallel, delayed

    bounds = np.linspace(0, n, 8 * threads + 1).astype(int)
    parts = Parallel(n_jobs=threads)(
        delayed(fn)(*(a[lo:hi] for a in args_lists)) for lo, hi in zip(bounds[:-1], bounds[1:])
    )
    return [v for p in parts for v in p]


def sempcyc_style(sim: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray, threads: int) -> dict:
    str_sim = (q_labels[:, None] == g_labels[None, :]) * 1  # integer relevance matrix [Q, G]

    def apsak(k: int | None) -> np.ndarray:
        idx = np.argsort(-sim, axis=1)[:, :k]  # full sort, keep the top k (all when k is None)
        sim_k = np.take_along_axis(sim, idx, axis=1)
        str_k = np.take_along_axis(str_sim, idx, axis=1)
        has = np.flatnonzero(str_k.sum(axis=1) != 0)  # queries without a hit in the top k score 0
        aps = np.zeros(len(sim))
        aps[has] = _per_query(_ap_rows, (str_k[has], sim_k[has]), threads)
        return aps

    def precak(k: int) -> float:
        act_lists = [np.nonzero(s)[0] for s in str_sim]
        pred_lists = np.argsort(-sim, axis=1)
        prec = _per_query(lambda a, p: _prec_rows(a, p, k), (act_lists, pred_lists), threads)
        return float(np.mean(prec))

    return {
        "mAP@all": float(apsak(None).mean()),
        "mAP@200": float(apsak(200).mean()),
        "P@100": precak(100),
        "P@200": precak(200),
    }


def sbirlab_metrics(sim: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray, threads: int) -> dict:
    from sbirlab.metrics import retrieval_metrics

    return retrieval_metrics(sim, q_labels, g_labels, num_threads=threads)


METHODS = {
    "sbirlab": sbirlab_metrics,
    "torchmetrics loop": torchmetrics_loop,
    "SEM-PCYC style": sempcyc_style,
}


# ------------------------------------------------------------------------------ measurement


class PeakRSS:
    """Peak resident set size of this process (+ its worker processes) during a block.

    This process: the kernel's high-water mark ``VmHWM``, reset on entry through
    ``/proc/self/clear_refs`` (Linux); elsewhere, or for joblib workers, sampled every 10 ms.
    The input matrix is resident throughout, so the peak includes it.
    """

    def __init__(self, interval: float = 0.01):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self._stop = threading.Event()
        self.hwm_ok = False

    @staticmethod
    def _hwm() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise OSError("no VmHWM")

    def _children(self) -> int:
        total = 0
        try:
            for child in self.proc.children(recursive=True):
                total += child.memory_info().rss
        except Exception:  # a worker may exit while sampled
            pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.self_peak = max(self.self_peak, self.proc.memory_info().rss)
            self.children_peak = max(self.children_peak, self._children())
            time.sleep(self.interval)

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            self._hwm()
            self.hwm_ok = True
        except OSError:
            self.hwm_ok = False
        self.self_peak = self.proc.memory_info().rss
        self.children_peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.hwm_ok:
            self.self_peak = max(self.self_peak, self._hwm())

    @property
    def peak_mb(self) -> float:
        return (self.self_peak + self.children_peak) / 2**20


def measure(name: str, fn, sim, ql, gl, threads: int, repeats: int) -> dict:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    best = None
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            rss_before = PeakRSS().proc.memory_info().rss / 2**20
            with PeakRSS() as mem:
                t0, c0 = time.perf_counter(), time.process_time()
                values = fn(sim, ql, gl, threads)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            run = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": mem.peak_mb, "rss_before_mb": rss_before}
            if best is None or wall < best["wall_s"]:
                best = run
    row = {"method": name, "threads": threads, "repeats": repeats, **best, "values": values}
    if name == "sbirlab":
        tracemalloc.start()
        with threadpool_limits(limits=threads):
            fn(sim, ql, gl, threads)
        row["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return row


def print_table(rows: list[dict]) -> None:
    head = f"{'method':18s} {'thr':>3s} {'wall s':>8s} {'cpu s':>8s} {'x ours':>7s} {'peak MB':>8s} {'+MB':>6s}  "
    head += "  ".join(f"{k:>8s}" for k in METRIC_KEYS)
    print(head)
    print("-" * len(head))
    ours = {r["threads"]: r["wall_s"] for r in rows if r["method"] == "sbirlab"}
    for r in rows:
        ratio = r["wall_s"] / ours[r["threads"]] if r["threads"] in ours else float("nan")
        vals = "  ".join(f"{r['values'][k]:8.5f}" for k in METRIC_KEYS)
        print(
            f"{r['method']:18s} {r['threads']:3d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {ratio:7.1f} "
            f"{r['peak_rss_mb']:8.0f} {r['peak_rss_mb'] - r['rss_before_mb']:6.0f}  {vals}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="1/10 of the queries (a quick check)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3, help="repeats for sbirlab (best wall time kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)

    n_q = FULL_QUERIES // 10 if args.small else FULL_QUERIES
    t0 = time.perf_counter()
    sim, ql, gl = make_problem(n_q, FULL_GALLERY, N_CLASSES, args.seed)
    print(f"problem: {n_q} queries x {FULL_GALLERY} gallery, {N_CLASSES} classes, float32 "
          f"({sim.nbytes / 2**20:.0f} MB), built in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()}")

    rows = []
    load_before = os.getloadavg()
    for threads in args.threads:
        for name in args.methods:
            repeats = args.repeats if name == "sbirlab" else 1
            print(f"  running {name} with {threads} thread(s) ...", flush=True)
            rows.append(measure(name, METHODS[name], sim, ql, gl, threads, repeats))
    print()
    print_table(rows)
    traced = [f"{r['tracemalloc_peak_mb']:.0f} MB ({r['threads']} thr)" for r in rows if "tracemalloc_peak_mb" in r]
    print("(peak MB: peak resident memory of the process and its workers during the call, input matrix "
          "included; +MB: growth over the memory resident before the call; sbirlab's own numpy "
          f"allocations peak at {', '.join(traced)})")

    # agreement with sbirlab (ties and sklearn's tie grouping make tiny differences)
    ours = next((r["values"] for r in rows if r["method"] == "sbirlab"), None)
    if ours:
        for r in rows:
            r["max_abs_diff_vs_sbirlab"] = max(abs(r["values"][k] - ours[k]) for k in METRIC_KEYS)
        print("\nmax |difference| of the metric values vs sbirlab:",
              {f"{r['method']} ({r['threads']})": f"{r['max_abs_diff_vs_sbirlab']:.2e}" for r in rows})
    speedups, speedups_cpu = {}, {}
    for r in rows:
        base = next((o for o in rows if o["method"] == "sbirlab" and o["threads"] == r["threads"]), None)
        if base and r["method"] != "sbirlab":
            name = f"{r['method']} / sbirlab, {r['threads']} thread(s)"
            speedups[name] = r["wall_s"] / base["wall_s"]
            speedups_cpu[name] = r["cpu_s"] / base["cpu_s"]
    for k in speedups:
        print(f"speed-up {k}: {speedups[k]:.1f}x wall, {speedups_cpu[k]:.1f}x cpu")
    print("(cpu s: CPU time of this process, all its threads; joblib worker processes not included. "
          "On a busy machine wall times are inflated by waiting for a core: compare cpu s there.)")

    import sbirlab
    import sklearn
    import torch

    try:
        import torchmetrics

        tm_version = torchmetrics.__version__
    except ImportError:  # pragma: no cover
        tm_version = None
    result = {
        "problem": {"queries": n_q, "gallery": FULL_GALLERY, "classes": N_CLASSES, "dtype": "float32",
                    "seed": args.seed, "small": args.small},
        "sbirlab_backend": __import__("sbirlab.metrics", fromlist=["_backend"])._backend(),
        "metric_convention": {"mAP@200": "rk (AP of the top-200 list / relevant items in it)",
                              "ties": "lower gallery index first"},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "versions": {"sbirlab": sbirlab.__version__, "numpy": np.__version__, "torch": torch.__version__,
                     "sklearn": sklearn.__version__, "torchmetrics": tm_version},
        "results": rows,
        "speedups_wall": speedups,
        "speedups_cpu": speedups_cpu,
    }
    out = args.out or Path(__file__).parent / "results" / ("metrics_small.json" if args.small else "metrics.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
