"""Benchmark the synthetic world: photo + sketch pairs per second on one core, and the default dataset.

1. **Pairs per second**, one process, numpy / BLAS / torch threads = 1. A *pair* is one instance
   (the class's drawing program, :func:`~sbirlab.data.synthetic.make_instance`), its photo
   (:func:`~sbirlab.data.synthetic.render_photo`) and one sketch (:func:`sketch_strokes` +
   :func:`~sbirlab.data.strokes.rasterize_strokes`), as PIL images in memory (no PNG encoding). Classes
   are visited round-robin over all registered classes (70), drawers in turn, after one warm-up round.
   Measured at 64 px (target >= 300 pairs/s) and 224 px. The stages are also timed alone (instances,
   photos, sketches per second), and each rate is given per wall-clock second and per CPU second
   (``time.process_time``), which is less sensitive to other jobs on the machine.
2. **The default dataset** (:class:`~sbirlab.data.synthetic.WorldConfig` defaults: 70 classes x 50
   photos x 5 sketches at 64 px) generated with 2 worker processes into a temporary folder (deleted
   afterwards): wall time, files and size on disk (file bytes, and allocated blocks).

Usage::

    python benchmarks/bench_world.py            # full run (idle machine!), ~1-2 minutes
    python benchmarks/bench_world.py --quick    # a functional check: fewer pairs, a 5-photo world

Writes ``benchmarks/results/world.json`` (``world_quick.json`` with ``--quick``). The load average
and the share of wall-clock time the timed loops got the CPU are recorded; ``"loaded": true`` (share
< 90%) marks numbers taken beside other CPU-heavy jobs, which are not speeds.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import PIL  # noqa: E402

from sbirlab.data.categories import all_categories  # noqa: E402
from sbirlab.data.strokes import rasterize_strokes  # noqa: E402
from sbirlab.data.synthetic import (CANVAS, DRAWERS, WORLD_VERSION, WorldConfig, default_root,  # noqa: E402
                                    generate_dataset, make_instance, render_photo, sketch_strokes)

TARGET_PAIRS_PER_S = 300.0


def _timed(fn, n: int) -> dict:
    """Run ``fn(i)`` for i < n; wall and CPU seconds and the rates."""
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"n": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "per_s": round(n / wall, 1), "per_cpu_s": round(n / max(cpu, 1e-9), 1)}


def bench_pairs(size: int, n: int) -> dict:
    """Pairs per second at ``size`` px, round-robin over all classes; plus the stages alone."""
    classes = all_categories()
    C = len(classes)

    def job(i):
        return classes[i % C], 10_000 + i // C, i % len(DRAWERS)

    def pair(i):
        label, seed, d = job(i)
        inst = make_instance(label, seed)
        render_photo(inst, size)
        strokes, widths = sketch_strokes(inst, d, seed=1)
        rasterize_strokes(strokes, size=size, widths=widths, canvas=CANVAS)

    for i in range(C):  # warm-up: one round of every class
        pair(i)
    out = {"size": size, "classes": C, "pairs": _timed(pair, n)}
    m = min(n, 4 * C)
    insts = [make_instance(*job(i)[:2]) for i in range(m)]
    out["instances"] = _timed(lambda i: make_instance(*job(i)[:2]), m)
    out["photos"] = _timed(lambda i: render_photo(insts[i], size), m)

    def sketch(i):
        strokes, widths = sketch_strokes(insts[i], job(i)[2], seed=1)
        rasterize_strokes(strokes, size=size, widths=widths, canvas=CANVAS)

    out["sketches"] = _timed(sketch, m)
    return out


def disk_usage(folder: Path) -> dict:
    files, nbytes, blocks = 0, 0, 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            files += 1
            nbytes += st.st_size
            blocks += st.st_blocks * 512
    return {"files": files, "MB": round(nbytes / 1e6, 1), "MB_allocated": round(blocks / 1e6, 1)}


def bench_generate(cfg: WorldConfig, workers: int, tmp_parent: str | None = None, keep: bool = False) -> dict:
    """Generate ``cfg`` with ``workers`` processes into a temporary folder; time and size.

    With ``keep`` the dataset is moved into the cache (:func:`sbirlab.data.synthetic.default_root`)
    afterwards, where :func:`~sbirlab.data.synthetic.ensure_dataset` finds it, unless one is there.
    """
    tmp = Path(tempfile.mkdtemp(prefix="bench_world_", dir=tmp_parent))
    try:
        w0 = time.perf_counter()
        out = generate_dataset(tmp / "world", cfg, workers=workers, progress=False)
        wall = time.perf_counter() - w0
        n_photos = len(cfg.class_list()) * cfg.photos_per_class
        usage = disk_usage(out)
        if keep:
            cached = default_root() / f"world-{cfg.size}px-s{cfg.seed}-{cfg.key()}"
            if not (cached / "world.json").exists():
                cached.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(cached, ignore_errors=True)
                shutil.move(str(out), str(cached))
                print(f"kept the dataset in {cached}", flush=True)
        return {"config": {k: v for k, v in cfg.__dict__.items() if k != "classes"} | {
                    "classes": len(cfg.class_list())},
                "workers": workers, "wall_s": round(wall, 1),
                "photos": n_photos, "sketches": n_photos * cfg.sketches_per_photo,
                "items_per_s": round(n_photos * (1 + cfg.sketches_per_photo) / wall, 1),
                **usage}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a functional check: fewer pairs, a small world")
    p.add_argument("--pairs", type=int, default=None, help="pairs timed at 64 px (default 2100; quick 140)")
    p.add_argument("--workers", type=int, default=2, help="processes for the dataset generation")
    p.add_argument("--no-generate", action="store_true", help="skip the dataset generation")
    p.add_argument("--tmp", default=None, help="parent folder of the temporary dataset")
    p.add_argument("--keep", action="store_true",
                   help="move the generated default dataset into the cache (data/synthetic or $SBIRLAB_DATA)")
    p.add_argument("--out", default=None, help="result file")
    args = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None

    n64 = args.pairs or (140 if args.quick else 2100)
    load_before = os.getloadavg()
    result = {
        "benchmark": "synthetic world rendering",
        "quick": args.quick,
        "world_version": WORLD_VERSION,
        "threads": 1,
        "target_pairs_per_s_64px": TARGET_PAIRS_PER_S,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before]},
        "versions": {"numpy": np.__version__, "pillow": PIL.__version__, "torch": torch_version},
    }
    result["pairs_64px"] = bench_pairs(64, n64)
    print(f"64 px: {result['pairs_64px']['pairs']['per_s']} pairs/s "
          f"({result['pairs_64px']['pairs']['per_cpu_s']} per CPU s)", flush=True)
    result["pairs_224px"] = bench_pairs(224, max(70, n64 // 3))
    print(f"224 px: {result['pairs_224px']['pairs']['per_s']} pairs/s "
          f"({result['pairs_224px']['pairs']['per_cpu_s']} per CPU s)", flush=True)
    if not args.no_generate:
        cfg = WorldConfig(photos_per_class=5) if args.quick else WorldConfig()
        result["generate_default" if not args.quick else "generate_small"] = g = bench_generate(
            cfg, args.workers, args.tmp, keep=args.keep and not args.quick)
        print(f"generate ({g['config']['classes']} classes x {cfg.photos_per_class} photos x "
              f"{cfg.sketches_per_photo} sketches, {args.workers} workers): {g['wall_s']} s, "
              f"{g['files']} files, {g['MB']} MB", flush=True)
    load_after = os.getloadavg()
    result["machine"]["load_average_after"] = [round(x, 2) for x in load_after]
    # contention, measured: the share of wall-clock time the single-threaded loops got the CPU
    shares = [r["pairs"]["cpu_s"] / max(r["pairs"]["wall_s"], 1e-9) for r in (result["pairs_64px"], result["pairs_224px"])]
    result["machine"]["cpu_share_during_pairs"] = round(min(shares), 3)
    busy = min(shares) < 0.9
    result["machine"]["loaded"] = busy
    if busy:
        result["machine"]["note"] = ("other jobs were running (the timed loops got < 90% of a core): wall-clock "
                                     "rates are lower bounds; per-CPU-second rates are closer; rerun idle")
    rate = result["pairs_64px"]["pairs"]["per_s"]
    result["meets_target_64px"] = rate >= TARGET_PAIRS_PER_S
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / (
        "world_quick.json" if args.quick else "world.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}{' (machine loaded: rates are lower bounds)' if busy else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
