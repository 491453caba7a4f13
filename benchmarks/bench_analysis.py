"""Benchmark the analysis tools: UMAP of 10,000 embeddings, attention maps of 64 images.

1. **UMAP of 10,000 embeddings** (target < 60 s on the 2-core development machine) through
   :class:`sbirlab.viz.embeddings.Projector` (exact cosine kNN by one matrix product, 200 layout epochs,
   fixed seed), on 10,000 embeddings of the tiny CLIP's size (``E`` read from the shipped model): 70
   classes x 2 modalities, unit-norm cluster centres plus noise and a modality offset (the geometry of
   sketch / photo embeddings; a real run's embeddings give the same timings). Timed: ``import umap``
   (numba's compiled-function cache is loaded then; the very first import in a fresh environment also
   compiles), the first fit in the process (includes numba JIT of the layout), a second fit. With
   ``--compare-default`` umap-learn's defaults (approximate NN-descent, 500 epochs) are timed as well.
2. **Attention maps of 64 images** (target < 5 s) with the shipped tiny CLIP and CLIP-AT's prompts:
   capture of every layer and head during the forward (:func:`sbirlab.viz.attention.method_attention`),
   the CLS and prompt maps of the last layer, the rollout, and the overlays on the 64 images. The first
   call (cold) and the median of 3 warm calls are reported.

Usage::

    python benchmarks/bench_analysis.py                 # both (idle machine!), ~1-2 minutes
    python benchmarks/bench_analysis.py --quick         # a functional check: 2,000 points, 16 images

Writes ``benchmarks/results/analysis.json`` (``analysis_quick.json`` with ``--quick``). The load average
and the share of wall-clock time the process got the CPU (``process_time / wall`` over 2 cores) are
recorded; ``"loaded": true`` marks numbers taken beside other CPU-heavy jobs, which are not speeds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

TARGET_UMAP_S = 60.0
TARGET_ATTENTION_S = 5.0
RESULTS = Path(__file__).resolve().parent / "results"


class Clock:
    """Wall and CPU time of a block; ``share`` = CPU time / (wall time x cores the job may use)."""

    def __init__(self, cores: int):
        self.cores = cores

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        self.share = self.cpu / max(self.wall * self.cores, 1e-9)

    def record(self) -> dict:
        return {"wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3), "cpu_share": round(self.share, 2)}


def fake_embeddings(n: int, dim: int, n_classes: int = 70, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors in ``n_classes`` clusters, sketches and photos offset from each other."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    offset = rng.normal(size=dim)
    offset *= 0.4 / np.linalg.norm(offset)
    y = rng.integers(0, n_classes, n)
    modality = rng.integers(0, 2, n)
    x = centres[y] + 0.35 * rng.normal(size=(n, dim)) / np.sqrt(dim) * 4 + modality[:, None] * offset
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def bench_umap(n: int, dim: int, cores: int, compare_default: bool) -> dict:
    from sbirlab.data.base import Item
    from sbirlab.viz.embeddings import EmbeddingTable, Projector

    x = fake_embeddings(n, dim)
    items = [Item(f"p{i}.png", "c", "photo") for i in range(n)]
    table = EmbeddingTable("bench", x, items, ["photo"] * n, [True] * n)
    out = {"n_points": n, "dim": dim}
    with Clock(cores) as c:
        import umap  # noqa: F401
    out["import_umap"] = c.record()
    for name in ("first_fit", "second_fit"):
        p = Projector(seed=0)
        with Clock(cores) as c:
            xy = p.fit([table])["bench"]
        out[name] = {**c.record(), "n_fits": p.n_fits, "finite": bool(np.isfinite(xy).all())}
    if compare_default:
        import umap

        with Clock(cores) as c, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP(metric="cosine", random_state=0).fit_transform(x)
        out["umap_learn_defaults"] = c.record()
    out["seconds_for_target"] = out["second_fit"]["wall_s"]
    out["target_s"] = TARGET_UMAP_S
    out["meets_target"] = out["second_fit"]["wall_s"] < TARGET_UMAP_S
    return out


def bench_attention(n_images: int, cores: int) -> dict:
    from sbirlab.models.backbone import load_backbone
    from sbirlab.models.registry import build_method
    from sbirlab.viz import attention as A

    bb = load_backbone("tiny-synthetic")
    torch.manual_seed(0)
    method = build_method("clip-at", bb, "zs", classnames=["apple", "cat"]).eval()
    u8 = (torch.rand(n_images, 3, bb.image_size, bb.image_size) * 255).to(torch.uint8)
    mean, std = torch.tensor(bb.mean).view(1, 3, 1, 1), torch.tensor(bb.std).view(1, 3, 1, 1)
    x = (u8.float() / 255 - mean) / std

    def everything():
        maps = A.method_attention(method, x, "sketch", images_u8=u8)
        cols = {"CLS": maps.cls_map(), **{f"prompt {k}": m for k, m in enumerate(maps.prompt_maps().unbind(1))},
                "rollout": maps.rollout()}
        ovs = {k: A.overlay(u8, v) for k, v in cols.items()}
        return maps, ovs

    with Clock(cores) as c:
        maps, ovs = everything()
    cold = c.record()
    warm = []
    for _ in range(3):
        with Clock(cores) as c:
            everything()
        warm.append(c.record())
    with Clock(cores) as c:
        A.method_attention(method, x, "sketch")
    capture_only = c.record()
    med = statistics.median(w["wall_s"] for w in warm)
    return {"n_images": n_images, "model": f"{bb.spec} ({bb.arch}, {bb.image_size} px)",
            "layers": maps.num_layers, "heads": maps.num_heads, "tokens": int(maps.attentions[0].shape[-1]),
            "maps_per_image": len(ovs), "cold": cold, "warm": warm, "warm_median_wall_s": med,
            "capture_only": capture_only, "target_s": TARGET_ATTENTION_S, "meets_target": med < TARGET_ATTENTION_S}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 points and 16 images (a functional check)")
    ap.add_argument("--compare-default", action="store_true", help="also time umap-learn's defaults")
    ap.add_argument("--out", default=None, help="result file (default benchmarks/results/analysis[_quick].json)")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    from sbirlab.models.backbone import load_backbone

    dim = int(load_backbone("tiny-synthetic").model.visual.output_dim)
    load0 = os.getloadavg()
    umap_res = bench_umap(2000 if args.quick else 10000, dim, cores, args.compare_default)
    att = bench_attention(16 if args.quick else 64, cores)
    load1 = os.getloadavg()
    shares = [umap_res["second_fit"]["cpu_share"], *(w["cpu_share"] for w in att["warm"])]
    import umap

    res = {
        "benchmark": "analysis tools (UMAP, attention maps)", "quick": args.quick,
        "machine": {"cpu_count": cores, "platform": platform.platform(), "python": platform.python_version(),
                    "torch_threads": torch.get_num_threads(), "load_average_before": [round(v, 2) for v in load0],
                    "load_average_after": [round(v, 2) for v in load1],
                    "min_cpu_share": min(shares), "loaded": min(shares) < 0.45 or max(load0[0], load1[0]) > 1.5},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "umap-learn": umap.__version__},
        "umap": umap_res, "attention": att,
    }
    out = Path(args.out) if args.out else RESULTS / ("analysis_quick.json" if args.quick else "analysis.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    from sbirlab.io import atomic_write_json
    atomic_write_json(res, out)
    print(json.dumps({"umap_s": umap_res["second_fit"]["wall_s"], "umap_first_fit_s": umap_res["first_fit"]["wall_s"],
                      "attention_64_s": att["warm_median_wall_s"], "loaded": res["machine"]["loaded"],
                      "written": str(out)}, indent=1))
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
