"""GPU check: a few training steps of every trainable method in the ``paper`` preset, img/s and peak memory.

Issue 13. On CUDA every trainable method of the results table (``b-ft``, ``b-lin``, ``b-cond``, ``b-ip``,
``b-mm``, ``b-deep``, ``clip-at``, ``dp-clip``, ``splip``; ``frozen`` has nothing to train) trains
``--steps`` (50) optimiser steps on ViT-B-32 with **random weights** (nothing is downloaded) at 224 px,
with the ``paper`` preset's batch (64 = 16 classes x 4 sketches) and its per-method options (learning
rates, ``method_by_name``), under mixed precision. On CPU the same code runs as a 2-step smoke on a
small backbone (below), so the script itself is tested (``tests/unit/test_bench_gpu.py``).

What one step is: exactly the training loop's own step, because the steps run through
:func:`sbirlab.train.loop.train_one_epoch` with the ``paper`` :class:`~sbirlab.train.loop.TrainConfig`
(``max_steps`` = warm-up + timed steps): the batch moved to the device (``non_blocking``), the method's
loss under ``_autocast`` (``amp="auto"``: fp16 autocast on CUDA, off on CPU), ``GradScaler`` (enabled
for fp16 on CUDA), ``backward``, unscale + gradient clipping (1.0), AdamW (:func:`make_optimizer`, the
method's ``param_groups``: e.g. CLIP-AT's LayerNorms at ``lr_ln``) and the scheduler step. The method
is built as :func:`sbirlab.experiment.build` builds it (seeded, :func:`build_method` with
``RunConfig(preset="paper").resolved_method()``, on the device).

Data (``--data``):

* ``world`` (default): real batches of the synthetic world through the project's data loading
  (:func:`sbirlab.experiment.load_data` + :class:`~sbirlab.train.data.TripletData`: class-balanced
  triplets, pair-consistent augmentation, ``progress`` for DP-CLIP's curriculum), decoded at the
  backbone's size (the world's 64 px images are resized to 224 px for ViT-B-32: the cost of a step does
  not depend on the pixels). The world is generated on first use (about a minute on 2 CPU cores,
  cached in ``data/synthetic``).
* ``world-small``: the same classes from the ``ci`` preset's small world (4 photos per class; generated
  in seconds), for a fresh checkout.
* ``random``: random normal image tensors of the right shape with class-balanced labels of the world's
  training classes (no world needed).

At most :data:`DISTINCT_BATCHES` (4) batches are decoded per method **before** timing and cycled, so
data decoding is not timed (the host-to-device copy is, as in training).

Timing: ``--warmup-steps`` (3 on CUDA, 1 on CPU) are excluded; the clock reads after
``torch.cuda.synchronize()`` at the end of every step (the training loop's per-step callback), and
s/step is the timed span over the timed steps (its median over steps is reported too). img/s counts
the batch's input images: ``3 x batch`` per step (sketch, positive photo, negative photo; methods with
in-batch negatives, DP-CLIP and SpLIP, do not encode every negative photo, SpLIP encodes shuffled
sketches in addition: the count is of the batch, not of encoder passes).

Memory: on CUDA ``torch.cuda.max_memory_allocated`` per method (statistics reset before the method's
backbone copy goes to the device, after the previous method is freed), plus the memory the built model
holds before training. On CPU there is no per-method peak: the process's peak resident set size so far
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), which only grows over the methods.

CPU smoke defaults: 1 warm-up + 2 steps, batch 8 (4 classes x 2), one torch thread, backbone
``sbirlab-micro`` with random weights (the shipped tiny CLIP's architecture, 64 px, through the same
:func:`load_backbone`): all nine methods in 10-20 s on 2 loaded cores. ViT-B-32 on CPU is opt-in
(``--backbone ViT-B-32 --image-size 64``: an open_clip architecture at another size than its own is
built with open_clip's ``force_image_size``): it runs every method too, but takes about 2.5 minutes,
mostly ViT-B-32's 12-layer text tower (DP-CLIP's template embeddings of the classes at construction;
B-MM's and SpLIP's prompted class texts, with gradients, in every step: ~6 s a step).

Usage::

    python benchmarks/bench_gpu.py                       # CUDA: 50 steps per method, writes gpu_cuda.json
    python benchmarks/bench_gpu.py --device cpu          # CPU smoke, writes gpu_cpu_smoke.json
    python benchmarks/bench_gpu.py --methods clip-at,splip --steps 100 --batch-size 32

Exit status: 2 on bad arguments (an unknown method is named), 1 when a method failed (an exception such
as CUDA out of memory: the others still run and the error is in the JSON; or a non-finite loss), else 0.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import logging
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: every trainable method of the results table, in its order (``frozen`` trains nothing)
TRAINABLE = ("b-ft", "b-lin", "b-cond", "b-ip", "b-mm", "b-deep", "clip-at", "dp-clip", "splip")
PRESET = "paper"
#: distinct batches decoded per method before timing (cycled over the steps)
DISTINCT_BATCHES = 4
#: per device: backbone, image size (None = the architecture's), batch, classes per batch, steps, warm-up,
#: torch CPU threads (1 on CPU: with a background load, 2 OpenMP threads on 2 cores made the smoke 10x
#: slower, 117 s instead of 8 s, waiting on each other)
DEFAULTS = {
    "cuda": {"backbone": "ViT-B-32", "image_size": None, "batch_size": None, "classes_per_batch": None,
             "steps": 50, "warmup_steps": 3, "threads": None, "out": "gpu_cuda.json"},
    "cpu": {"backbone": "sbirlab-micro", "image_size": None, "batch_size": 8, "classes_per_batch": 4,
            "steps": 2, "warmup_steps": 1, "threads": 1, "out": "gpu_cpu_smoke.json"},
}


class _Usage(Exception):
    """A bad argument found after parsing (reported through ``argparse``'s ``error``: exit status 2)."""


class _Batches:
    """Pre-decoded batches cycled for ``steps`` steps, with the ``TripletData`` interface the loop uses."""

    def __init__(self, batches: list, steps: int, setting: str):
        self.batches, self.steps, self.setting = batches, steps, setting

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        for i in range(self.steps):
            yield self.batches[i % len(self.batches)]


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                    help="auto: cuda when available (default)")
    ap.add_argument("--methods", default=",".join(TRAINABLE),
                    help=f"comma-separated method names (default: {','.join(TRAINABLE)})")
    ap.add_argument("--setting", default="zs", choices=("zs", "fg"))
    ap.add_argument("--steps", type=int, default=None, help="timed optimiser steps per method (50 CUDA / 2 CPU)")
    ap.add_argument("--warmup-steps", type=int, default=None, help="untimed steps first (3 CUDA / 1 CPU)")
    ap.add_argument("--backbone", default=None,
                    help="open_clip architecture with random weights (NAME or NAME:random) or tiny-synthetic "
                         "(default: ViT-B-32 on CUDA, sbirlab-micro on CPU); pretrained tags are refused")
    ap.add_argument("--image-size", type=int, default=None,
                    help="input side in px (default: the architecture's: 224 for ViT-B-32, 64 for sbirlab-micro)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the paper preset's (64) on CUDA, 8 on CPU")
    ap.add_argument("--classes-per-batch", type=int, default=None,
                    help="default: the paper preset's (16) on CUDA, 4 on CPU")
    ap.add_argument("--amp", default=None, choices=("auto", "fp16", "bf16", "off"),
                    help="default: the paper preset's ('auto': fp16 on CUDA, off on CPU)")
    ap.add_argument("--data", default="world", choices=("world", "world-small", "random"))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on CPU, torch's on CUDA)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/gpu_cuda.json on CUDA, "
                                                "gpu_cpu_smoke.json on CPU)")
    return ap, ap.parse_args(argv)


def _machine(device) -> dict:
    import torch

    m = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
         "torch": torch.__version__, "cuda": torch.version.cuda, "nice": os.nice(0),
         "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        m.update(gpu=p.name, gpu_memory_mb=round(p.total_memory / 2 ** 20), gpu_capability=f"{p.major}.{p.minor}",
                 cudnn=torch.backends.cudnn.version())
    return m


class _QuietRandomInit(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # open_clip's warning for every random model
        return not str(record.getMessage()).startswith("No pretrained weights loaded")


def make_backbone(spec: str, image_size: int | None):
    """The backbone on CPU: random weights of an open_clip architecture, or the shipped tiny CLIP.

    ``load_backbone`` (the project's loader) whenever the architecture's own size is asked for; another
    size builds the architecture with open_clip's ``force_image_size`` (``load_backbone`` has no size
    option) and puts it into the loader's :class:`~sbirlab.models.backbone.Backbone` (``dataclasses.replace``:
    model, image size, and the size of sbirlab's ``Preprocess``).
    """
    import open_clip

    from sbirlab.models.backbone import TINY_SPEC, BackboneError, load_backbone, parse_spec

    if spec == TINY_SPEC:
        bb = load_backbone(spec)
        if image_size not in (None, bb.image_size):
            raise _Usage(f"{spec} is trained at {bb.image_size} px; --image-size {image_size} needs a random-weight "
                         "architecture")
        return bb
    try:
        name, tag = parse_spec(spec)
    except BackboneError as e:
        raise _Usage(str(e)) from e
    if tag is not None or name.startswith(("hf-hub:", "local-dir:")):
        raise _Usage(f"backbone {spec!r}: only random weights are used here (nothing is downloaded); "
                     f"pass the architecture name ('{name}' or '{name}:random') or '{TINY_SPEC}'")
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        try:
            load_backbone(name)  # its error names close architectures
        except BackboneError as e:
            raise _Usage(str(e)) from e
        raise _Usage(f"backbone {spec!r}: no open_clip model config to read its image size from")
    vision = cfg.get("vision_cfg", {})
    native, patch = vision.get("image_size", 224), vision.get("patch_size")
    native = native[0] if isinstance(native, (list, tuple)) else native
    if image_size in (None, native):
        return load_backbone(name)
    if image_size < 1 or (patch and image_size % patch):
        raise _Usage(f"--image-size {image_size}: must be a positive multiple of {name}'s patch size {patch}")
    ref = load_backbone(name)  # the loader's Backbone (tokenizer, normalisation, preprocess) at the native size
    model = open_clip.create_model(name, pretrained=None, force_image_size=image_size).eval()
    pre = ref.preprocess
    if dataclasses.is_dataclass(pre) and hasattr(pre, "image_size"):  # sbirlab's Preprocess: the new size
        pre = dataclasses.replace(pre, image_size=image_size)
    return dataclasses.replace(ref, model=model, preprocess=pre, image_size=image_size, spec=f"{name}@{image_size}px")


def _world_training(kind: str, seed: int):
    """``(parts, classes)`` of the synthetic world (the ``paper`` preset's, or the ``ci`` preset's small one)."""
    from sbirlab.experiment import PRESETS, RunConfig, load_data

    world = PRESETS["ci"]["world"] if kind == "world-small" else {}
    _, parts = load_data(RunConfig(preset=PRESET, seed=seed, world=dict(world)))
    return parts, sorted({i.label for i in parts.train_sketches})


def _training_classes() -> list[str]:
    """The world's training classes (seen minus validation) without generating the world."""
    from sbirlab.data.synthetic import WorldConfig, zero_shot_split

    w = WorldConfig(seed=0)
    sp = zero_shot_split(w.class_list(), w.unseen_fraction, w.val_fraction, w.seed)
    return sorted(set(sp["seen"]) - set(sp["val"]))


def random_batches(n: int, classes_per_batch: int, per_class: int, n_classes: int, size: int, setting: str,
                   seed: int, total_steps: int) -> list[dict]:
    """``n`` batches with the keys and shapes of :class:`~sbirlab.train.data.TripletData`'s, random images.

    Labels are class-balanced (``classes_per_batch`` classes x ``per_class``); every positive photo is its
    own instance (``photo_index``); the negative is another class (``zs``) or another photo of the same
    class (``fg``).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    B = classes_per_batch * per_class
    out = []
    for step in range(n):
        cls = torch.randperm(n_classes, generator=g)[:classes_per_batch]
        y = cls.repeat_interleave(per_class)
        if setting == "zs":
            y_neg = (y + torch.randint(1, n_classes, (B,), generator=g)) % n_classes
        else:
            y_neg = y.clone()
        img = lambda: torch.randn(B, 3, size, size, generator=g)  # noqa: E731
        out.append({"progress": torch.tensor(step / max(1, total_steps), dtype=torch.float32),
                    "sketch": img(), "photo": img(), "photo_neg": img(), "label": y, "label_neg": y_neg,
                    "index": torch.arange(B) + step * B, "photo_index": torch.arange(B) + 2 * step * B,
                    "photo_neg_index": torch.arange(B) + (2 * step + 1) * B})
    return out


def _amp_mode(device, amp: str) -> str:
    """What ``amp`` means on ``device`` (the rule of :func:`sbirlab.train.loop._autocast`)."""
    return ("fp16" if device.type == "cuda" else "off") if amp == "auto" else amp


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_method(name: str, bb, device, args, classes, batches_for, tcfg_base) -> dict:
    """Build ``name`` as the ``paper`` preset does and time ``args.steps`` steps after the warm-up."""
    import resource

    import torch

    from sbirlab.experiment import RunConfig
    from sbirlab.models.registry import build_method
    from sbirlab.train.loop import TrainState, _autocast, make_optimizer, seed_everything, train_one_epoch

    cfg = RunConfig(method=name, setting=args.setting, preset=PRESET, seed=args.seed)
    mcfg = cfg.resolved_method()
    _free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before_mb = torch.cuda.memory_allocated(device) / 2 ** 20  # ~0: the previous method is freed
    t_build = time.perf_counter()
    b = copy.deepcopy(bb)  # every method on a fresh copy (B-FT / LayerNorm tuning change the backbone)
    b.model.to(device)
    b.device = device
    torch.manual_seed(args.seed)  # as sbirlab.experiment.build
    method = build_method(name, b, args.setting, classnames=classes, **mcfg).to(device)
    cpb = getattr(method, "batch_classes", None) or args.classes_per_batch  # DP-CLIP FG: one category a batch
    tcfg = dataclasses.replace(tcfg_base, classes_per_batch=cpb)
    _sync(device)
    build_s = time.perf_counter() - t_build
    t_data = time.perf_counter()
    batches = batches_for(cpb)  # decoded once per batch composition, before timing
    data_s = time.perf_counter() - t_data
    model_mb = torch.cuda.memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None

    total = args.warmup_steps + args.steps
    data = _Batches(batches, total, args.setting)
    seed_everything(tcfg.seed)  # as fit
    opt, sched = make_optimizer(method, tcfg, total)
    marks, losses = [], []

    def on_step(step, logs):
        _sync(device)
        marks.append(time.perf_counter())
        losses.append(float(logs.get("loss", float("nan"))))

    _sync(device)
    t_start = time.perf_counter()
    train_one_epoch(method, data, opt, sched, TrainState(), tcfg, device, callbacks=(on_step,), progress=False)
    if len(marks) != total:
        raise RuntimeError(f"{name}: the loop ran {len(marks)} steps, {total} asked for")
    t0 = marks[args.warmup_steps - 1] if args.warmup_steps else t_start
    span = marks[-1] - t0
    per_step = [t2 - t1 for t1, t2 in zip([t0, *marks[args.warmup_steps:-1]], marks[args.warmup_steps:])]
    bsz = int(batches[0]["sketch"].shape[0])
    s_step = span / args.steps
    row = {
        "s_per_step": round(s_step, 5), "s_per_step_median": round(statistics.median(per_step), 5),
        "img_per_s": round(3 * bsz / s_step, 2), "sketches_per_s": round(bsz / s_step, 2),
        "batch_size": bsz, "classes_per_batch": cpb, "images_per_step": 3 * bsz,
        "warmup_s": round(t0 - t_start, 3), "build_s": round(build_s, 3), "data_s": round(data_s, 3),
        "loss_first": losses[0], "loss_last": losses[-1], "losses": losses,
        "loss_finite": all(math.isfinite(v) for v in losses),
        "trainable_parameters": sum(p.numel() for _, p in method.trainable_named_parameters()),
        "parameters": sum(p.numel() for p in method.parameters()),
        "lr": {g.get("name", str(i)): g.get("initial_lr", g["lr"]) for i, g in enumerate(opt.param_groups)},
        "method_options": {k: v for k, v in mcfg.items()},
        "amp": _amp_mode(device, tcfg.amp), "grad_scaler": _autocast(device, tcfg.amp)[1],
    }
    if device.type == "cuda":
        row["peak_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
        row["peak_reserved_mb"] = round(torch.cuda.max_memory_reserved(device) / 2 ** 20, 1)
        row["model_mem_mb"] = round(model_mb, 1)
        row["mem_before_mb"] = round(before_mb, 1)
        row["mem_kind"] = "torch.cuda.max_memory_allocated (this method)"
    else:
        row["peak_mem_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KB on Linux
        row["mem_kind"] = "process peak RSS so far (ru_maxrss; not per method)"
    del method, opt, sched, b
    return row


def main(argv=None) -> dict:
    ap, args = _parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never reach for the hub

    import torch

    from sbirlab.experiment import RunConfig
    from sbirlab.models.registry import METHODS

    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(map(repr, unknown))}; trainable methods: {', '.join(TRAINABLE)}")
    if "frozen" in methods:
        ap.error("'frozen' has nothing to train (zero-shot CLIP); leave it out")
    if not methods:
        ap.error("--methods names no method")
    if len(set(methods)) != len(methods):
        ap.error(f"--methods repeats a method: {args.methods}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available on this machine (torch "
                 f"{torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu for the smoke")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    d = DEFAULTS[device.type]
    paper = RunConfig(preset=PRESET).resolved_train()
    args.steps = d["steps"] if args.steps is None else args.steps
    args.warmup_steps = d["warmup_steps"] if args.warmup_steps is None else args.warmup_steps
    args.backbone = args.backbone or d["backbone"]
    args.image_size = args.image_size if args.image_size is not None else d["image_size"]
    if args.batch_size is None:
        args.batch_size = d["batch_size"] or paper.batch_size
    if args.classes_per_batch is None:
        args.classes_per_batch = d["classes_per_batch"] or paper.classes_per_batch
    args.amp = args.amp or paper.amp
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    if args.warmup_steps < 0:
        ap.error(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if args.classes_per_batch < 1:
        ap.error(f"--classes-per-batch must be >= 1, got {args.classes_per_batch}")
    if args.classes_per_batch < 2 and args.setting == "zs":
        ap.error("--classes-per-batch must be >= 2 in zs (in-batch negatives need another class)")
    if args.batch_size < args.classes_per_batch or args.batch_size % args.classes_per_batch:
        ap.error(f"--batch-size {args.batch_size} must be a multiple of --classes-per-batch {args.classes_per_batch} "
                 "(class-balanced batches)")
    if args.image_size is not None and args.image_size < 1:
        ap.error(f"--image-size must be positive, got {args.image_size}")
    args.threads = args.threads if args.threads is not None else d["threads"]
    if args.threads is not None and args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet, root = _QuietRandomInit(), logging.getLogger()
    root.addFilter(quiet)
    try:
        return _run(ap, args, device, d, methods, list(sys.argv[1:] if argv is None else argv))
    finally:
        root.removeFilter(quiet)


def _run(ap, args, device, d, methods: list[str], argv: list[str]) -> dict:
    """Everything after the argument checks of :func:`main`."""
    import torch

    from sbirlab.experiment import RunConfig
    from sbirlab.models.backbone import BackboneError

    try:
        bb = make_backbone(args.backbone, args.image_size)
    except (_Usage, BackboneError) as e:
        ap.error(str(e))
    t_all, load_before = time.time(), os.getloadavg()

    if args.data == "random":
        classes = _training_classes()
        parts = None
    else:
        parts, classes = _world_training(args.data, args.seed)
    if len(classes) < args.classes_per_batch:
        ap.error(f"--classes-per-batch {args.classes_per_batch}: the world has {len(classes)} training classes")
    tcfg_base = RunConfig(preset=PRESET, seed=args.seed, device=str(device), train={
        "batch_size": args.batch_size, "classes_per_batch": args.classes_per_batch, "amp": args.amp,
        "max_steps": args.warmup_steps + args.steps, "epochs": 1}).resolved_train()
    n_batches = min(DISTINCT_BATCHES, args.warmup_steps + args.steps)
    cache: dict[int, list] = {}
    loader = None

    def batches_for(cpb: int) -> list:
        """The decoded batches for ``cpb`` classes per batch (the same for every method)."""
        nonlocal loader
        if cpb not in cache:
            per_class = args.batch_size // cpb
            if parts is None:
                cache[cpb] = random_batches(n_batches, cpb, per_class, len(classes), bb.image_size, args.setting,
                                            args.seed, tcfg_base.max_steps)
            else:
                from sbirlab.train.data import ImageLoader, TripletData

                loader = loader or ImageLoader(bb.image_size, bb.mean, bb.std, cache=True)
                data = TripletData(parts.train_sketches, parts.train_photos, classes, loader, args.setting,
                                   args.batch_size, cpb, args.seed, steps_per_epoch=n_batches)
                data.total_steps = tcfg_base.max_steps
                cache[cpb] = list(data)
        return cache[cpb]

    print(f"bench_gpu: {device} ({_machine(device).get('gpu', platform.processor() or platform.machine())}), "
          f"backbone {bb.spec} ({bb.arch}, {bb.image_size} px, random weights: {bb.pretrained is None}), "
          f"batch {args.batch_size} ({args.classes_per_batch} classes), setting {args.setting}, "
          f"amp {args.amp} ({_amp_mode(device, args.amp)}), threads {torch.get_num_threads()}, "
          f"data {args.data}, {args.warmup_steps} warm-up + {args.steps} timed steps per method", flush=True)
    rows, failed = {}, []
    for name in methods:
        try:
            rows[name] = bench_method(name, bb, device, args, classes, batches_for, tcfg_base)
        except Exception as e:  # e.g. CUDA out of memory: report it, run the other methods
            failed.append(name)
            rows[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}
            print(f"{name}: FAILED {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        _free(device)
        r = rows[name]
        if "error" not in r and not r["loss_finite"]:  # e.g. fp16 overflow in the forward pass
            failed.append(name)
            print(f"{name}: FAILED non-finite loss {r['losses']}", file=sys.stderr, flush=True)
        if "error" not in r:
            print(f"  {name:8s} {r['s_per_step']:8.4f} s/step  {r['img_per_s']:9.1f} img/s  "
                  f"peak {r['peak_mem_mb']:9.1f} MB  loss {r['loss_last']:.4f}", flush=True)

    mem_head = "peak MB (cuda alloc)" if device.type == "cuda" else "peak RSS MB (process)"
    lines = [f"{'method':8s} | {'s/step':>8s} | {'median':>8s} | {'img/s':>9s} | {mem_head:>21s} | "
             f"{'trainable':>10s} | {'loss':>8s} | amp"]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"{name:8s} | FAILED: {r['error']}")
            continue
        lines.append(f"{name:8s} | {r['s_per_step']:8.4f} | {r['s_per_step_median']:8.4f} | {r['img_per_s']:9.1f} | "
                     f"{r['peak_mem_mb']:21.1f} | {r['trainable_parameters']:10d} | {r['loss_last']:8.4f} | "
                     f"{r['amp']}{'+scaler' if r['grad_scaler'] else ''}")
    table = "\n".join(lines)
    print(table)
    from sbirlab.io import atomic_write_json, versions

    out = {
        "benchmark": "gpu_check", "device": str(device), "preset": PRESET, "setting": args.setting,
        "backbone": bb.spec, "arch": bb.arch, "random_weights": bb.pretrained is None, "image_size": bb.image_size,
        "batch_size": args.batch_size, "classes_per_batch": args.classes_per_batch, "amp": args.amp,
        "amp_resolved": _amp_mode(device, args.amp), "steps": args.steps, "warmup_steps": args.warmup_steps,
        "distinct_batches": n_batches, "data": args.data,
        "n_train_classes": len(classes), "methods": methods, "rows": rows, "failed": failed, "table": table,
        "img_per_s_counts": "3 x batch input images per step (sketch, positive photo, negative photo)",
        "memory": "torch.cuda.max_memory_allocated per method" if device.type == "cuda"
        else "CPU: process peak RSS (resource.getrusage ru_maxrss), cumulative over the methods, not per method",
        "wall_s": round(time.time() - t_all, 1), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "machine": _machine(device),
        "versions": versions(), "argv": argv,
    }
    path = Path(args.out) if args.out else RESULTS_DIR / d["out"]
    atomic_write_json(out, path)
    print(f"{len(methods) - len(failed)}/{len(methods)} methods ok in {out['wall_s']} s "
          f"(load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}); wrote {path}")
    return out


if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)
