"""Benchmark: seconds per training step of CLIP-AT, DP-CLIP and SpLIP in the ``cpu`` preset.

Target (issue 5): a DP-CLIP or SpLIP step costs at most ~1.5x a CLIP-AT step on the same data:
the shipped tiny CLIP (``tiny-synthetic``, 64 px), batch 32, the ``cpu`` preset's method options
(batch-hard negatives) and batch composition (8 classes per batch; DP-CLIP's FG runs use one category
per batch, as its sampler does).

A step = the method's loss on one batch + ``backward`` + an AdamW step (what ``train_one_epoch`` does,
without data loading): the batches are decoded once, before timing, so only the model is measured.
Methods alternate within every repeat, so background load hits all alike; the median over repeats
is reported, as wall-clock seconds and as CPU seconds of this process. On a loaded machine the CPU
time with one torch thread (``--threads 1``, the default) measures the work itself; the wall time
depends on the load. Ratios are of CPU time.

Usage::

    python benchmarks/bench_method_steps.py            # full run (the lead runs it on an idle machine)
    python benchmarks/bench_method_steps.py --small    # quick check (few repeats)

Writes ``benchmarks/results/method_steps.json`` (``method_steps_small.json`` with ``--small``).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from pathlib import Path

TARGET_RATIO = 1.5
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: (label, method, setting): CLIP-AT is the reference
CASES = (("clip-at zs", "clip-at", "zs"), ("dp-clip zs", "dp-clip", "zs"), ("dp-clip fg", "dp-clip", "fg"),
         ("splip zs", "splip", "zs"), ("clip-at fg", "clip-at", "fg"), ("splip fg", "splip", "fg"))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="few repeats (a quick check)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time = the work)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from sbirlab.experiment import PRESETS, RunConfig, load_data
    from sbirlab.models.backbone import load_backbone
    from sbirlab.models.registry import build_method
    from sbirlab.train.data import ImageLoader, TripletData

    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.small else 10)
    steps = 2 if args.small else 4  # steps per timed repeat
    cfg = RunConfig(preset="cpu")
    train = PRESETS["cpu"]["train"]
    _, parts = load_data(cfg)
    bb = load_backbone("tiny-synthetic")
    loader = ImageLoader(bb.image_size, bb.mean, bb.std, cache=True)
    classes = sorted({i.label for i in parts.train_sketches})

    runs = {}
    for label, name, setting in CASES:
        torch.manual_seed(0)
        method = build_method(name, copy.deepcopy(bb), setting, classnames=classes, **cfg.resolved_method())
        cpb = getattr(method, "batch_classes", None) or train["classes_per_batch"]
        data = TripletData(parts.train_sketches, parts.train_photos, classes, loader, setting, train["batch_size"],
                           cpb, seed=0, steps_per_epoch=steps + 1)
        data.total_steps = 10 * (steps + 1)
        batches = list(data)  # decoded once: only the model is timed
        opt = torch.optim.AdamW(method.param_groups(), weight_decay=0.0)
        method.train()
        runs[label] = {"method": method, "opt": opt, "batches": batches, "times": [], "cpu": [],
                       "classes_per_batch": cpb}

    def one_step(r, batch):
        loss, _ = r["method"](batch)
        r["opt"].zero_grad(set_to_none=True)
        loss.backward()
        r["opt"].step()

    for r in runs.values():  # warm-up
        one_step(r, r["batches"][0])
    for _ in range(repeats):
        for r in runs.values():
            t0, c0 = time.perf_counter(), time.process_time()
            for b in r["batches"][1:steps + 1]:
                one_step(r, b)
            r["times"].append((time.perf_counter() - t0) / steps)
            r["cpu"].append((time.process_time() - c0) / steps)

    ref = {s: statistics.median(runs[f"clip-at {s}"]["cpu"]) for s in ("zs", "fg")}
    rows = {}
    for label, r in runs.items():
        wall, cpu = statistics.median(r["times"]), statistics.median(r["cpu"])
        setting = label.split()[-1]
        rows[label] = {"wall_s_per_step": round(wall, 4), "cpu_s_per_step": round(cpu, 4),
                       "ratio_to_clip_at": round(cpu / ref[setting], 3), "classes_per_batch": r["classes_per_batch"],
                       "trainable_parameters": sum(p.numel() for _, p in r["method"].trainable_named_parameters())}
        print(f"{label:12s} wall {wall:6.3f} s/step  cpu {cpu:6.3f} s/step  x{cpu / ref[setting]:.2f} of clip-at {setting}")
    out = {"benchmark": "method_steps", "target_ratio": TARGET_RATIO, "batch_size": train["batch_size"],
           "backbone": "tiny-synthetic", "repeats": repeats, "steps_per_repeat": steps, "rows": rows,
           "torch_threads": torch.get_num_threads(), "load_avg_at_end": os.getloadavg(),
           "machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__}
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / ("method_steps_small.json" if args.small else "method_steps.json")
    from sbirlab.io import atomic_write_json
    atomic_write_json(out, path)
    print("wrote", path)
    return out


if __name__ == "__main__":
    main()
