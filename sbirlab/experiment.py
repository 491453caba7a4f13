"""A whole experiment from one config: data, backbone, method, training, test metrics, run folder.

``run_experiment(RunConfig(method="clip-at", setting="zs", preset="cpu"), out_dir="runs/clip-at")``
is what ``sbirlab train`` and the notebooks call. A run folder holds ``config.json`` (the resolved
config), ``metrics.json`` (test metrics with dataset, split, metric convention, seed, preset,
versions, wall time), ``best.pt`` / ``checkpoint.pt`` (trainable state only) and ``history.json``.
:func:`load_run` rebuilds the trained method from such a folder (load-checkpoint-else-train).

Presets: ``ci`` (seconds: a tiny world, a few steps), ``cpu`` (converged on the synthetic world in
minutes on a laptop CPU), ``paper`` (the papers' schedule, for a GPU and the real datasets).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .train.loop import TrainConfig, _atomic_json, evaluate, fit, versions

log = logging.getLogger(__name__)

PRESETS: dict[str, dict] = {
    "ci": {"train": {"epochs": 1, "max_steps": 3, "batch_size": 8, "classes_per_batch": 4, "warmup": 1},
           "method": {"negatives": "batch-hard"},
           "world": {"photos_per_class": 4, "sketches_per_photo": 2}},
    # 150 steps: the whole Table 1 (19 runs) in < 30 min on 2 CPU cores. Batch-hard negatives: the
    # sampled random negatives of the synthetic world are separated from step 1 (loss ~0.06).
    "cpu": {"train": {"epochs": 3, "steps_per_epoch": 50, "batch_size": 32, "classes_per_batch": 8, "warmup": 10},
            "method": {"negatives": "batch-hard"},
            "world": {}},
    "paper": {"train": {"epochs": 60, "batch_size": 64, "classes_per_batch": 16, "warmup": 500, "amp": "auto"},
              "world": {}},
}


@dataclass
class RunConfig:
    """Everything that defines a run. Saved as ``config.json``; ``from_dict`` rejects unknown keys."""

    method: str = "clip-at"
    setting: str = "zs"
    dataset: str = "synthetic"
    root: str | None = None
    split: str | None = None
    backbone: str = "tiny-synthetic"
    preset: str = "cpu"
    seed: int = 0
    device: str = "auto"
    method_cfg: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    world: dict = field(default_factory=dict)
    #: training-data options (generalisation sweeps): ``train_fraction`` (0 < f <= 1 of each seen class's
    #: photos, with their sketches) and ``train_classes`` (how many seen classes train); validation and
    #: test partitions never change. See :func:`sbirlab.generalisation.restrict_training`.
    data: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TypeError(f"unknown RunConfig key(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def resolved_train(self) -> TrainConfig:
        if self.preset not in PRESETS:
            raise KeyError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        t = {**PRESETS[self.preset]["train"], **self.train, "seed": self.seed, "device": self.device}
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(t) - names)
        if unknown:
            raise TypeError(f"unknown train option(s) {unknown}; known: {sorted(names)}")
        return TrainConfig(**t)

    def resolved_method(self) -> dict:
        """The preset's method options (e.g. ``negatives``) overridden by ``method_cfg``."""
        return {**PRESETS.get(self.preset, {}).get("method", {}), **self.method_cfg}

    def resolved_world(self) -> dict:
        return {**PRESETS.get(self.preset, {}).get("world", {}), **self.world}


def load_data(cfg: RunConfig):
    """The dataset index and its partitions for ``cfg`` (the synthetic world is generated on first use)."""
    from .data.base import make_partitions
    from .data.registry import get_split, load_dataset

    kw = {}
    if cfg.dataset == "synthetic":
        from .data.synthetic import WorldConfig
        kw["cfg"] = WorldConfig(seed=0, **cfg.resolved_world())
    index = load_dataset(cfg.dataset, root=cfg.root, **kw)
    split = get_split(cfg.dataset, cfg.split, index=index, root=index.root)
    parts = make_partitions(index, split)
    if cfg.data:
        from .generalisation import restrict_training
        parts = restrict_training(parts, seed=cfg.seed, **cfg.data)
    return index, parts


def build(cfg: RunConfig, backbone=None):
    """Backbone, method and image loader for ``cfg`` (no training)."""
    from .models.backbone import load_backbone, resolve_device
    from .models.registry import build_method
    from .train.data import ImageLoader

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # first: random-weight backbones (tests) must be reproducible too
    bb = backbone or load_backbone(cfg.backbone, device=device)
    index, parts = load_data(cfg)
    classes = sorted({i.label for i in parts.train_sketches})
    torch.manual_seed(cfg.seed)
    method = build_method(cfg.method, bb, cfg.setting, classnames=classes, **cfg.resolved_method()).to(device)
    loader = ImageLoader(bb.image_size, bb.mean, bb.std, cache=True, root=None)
    return bb, method, loader, index, parts, classes, device


def run_experiment(cfg: RunConfig, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                   callbacks=(), epoch_callbacks=(), backbone=None) -> dict:
    """Train ``cfg.method`` and evaluate it on the test classes; returns the metrics dict."""
    from .train.data import TripletData

    t0 = time.time()
    tcfg = cfg.resolved_train()
    bb, method, loader, index, parts, classes, device = build(cfg, backbone)
    data = TripletData(parts.train_sketches, parts.train_photos, classes, loader, cfg.setting, tcfg.batch_size,
                       tcfg.classes_per_batch, cfg.seed, tcfg.steps_per_epoch)
    val = (parts.val_sketches, parts.val_photos) if parts.val_sketches and parts.val_photos else None
    full = {**asdict(cfg), "train": asdict(tcfg), "world": cfg.resolved_world(),
            "method_resolved": {**dataclasses.asdict(method.cfg)} if dataclasses.is_dataclass(getattr(method, "cfg", None)) else cfg.resolved_method()}
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        _atomic_json(full, out / "config.json")
    if method.trainable_named_parameters():
        state = fit(method, data, val, tcfg, out, resume=resume, run_config=full, callbacks=callbacks,
                    epoch_callbacks=epoch_callbacks, progress=progress, device=device)
    else:  # zero-shot reference: nothing to train
        from .train.loop import TrainState
        state = TrainState()
    test = evaluate(method, parts.test_queries, parts.test_gallery, cfg.setting, loader, device)
    loader.report()
    metrics = {
        **test,
        "method": cfg.method, "setting": cfg.setting, "dataset": cfg.dataset, "split": parts.split.name,
        "backbone": cfg.backbone, "preset": cfg.preset, "seed": cfg.seed,
        "metric_convention": "mAP@200 = AP over the top 200 normalised by relevant items in the top 200 (METHODS §1)"
        if cfg.setting == "zs" else "Acc@k within the query's category (METHODS §1)",
        "best_epoch": state.best_epoch, "val_best": state.best if state.best_epoch > 0 else None,
        "trainable_parameters": sum(p.numel() for _, p in method.trainable_named_parameters()),
        "train_steps": state.step, "wall_time_s": round(time.time() - t0, 1), "versions": versions(),
    }
    if out:
        _atomic_json(metrics, out / "metrics.json")
    return metrics


@dataclass
class LoadedRun:
    """A trained run, rebuilt: the method with its weights, and what is needed to evaluate it."""

    method: object
    cfg: RunConfig
    metrics: dict
    backbone: object
    loader: object
    parts: object
    device: object


def load_run(run_dir: str | Path, backbone=None, which: str = "best") -> LoadedRun:
    """Rebuild a trained method from a run folder (``config.json`` + ``best.pt`` / ``checkpoint.pt``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    d = json.loads((run_dir / "config.json").read_text())
    d.pop("method_resolved", None)  # a record of the options used; rebuilt from method_cfg + preset
    train = d.pop("train", {})
    d["train"] = {k: v for k, v in train.items() if k not in ("seed", "device")}
    cfg = RunConfig.from_dict(d)
    bb, method, loader, _, parts, _, device = build(cfg, backbone)
    if method.trainable_named_parameters():
        ck = run_dir / ("best.pt" if which == "best" and (run_dir / "best.pt").exists() else "checkpoint.pt")
        if not ck.exists():
            raise FileNotFoundError(f"{run_dir} has no trained weights ({ck.name})")
        st = torch.load(ck, map_location="cpu", weights_only=False)
        method.load_trainable_state_dict(st["trainable"])
    method.eval()
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    return LoadedRun(method, cfg, metrics, bb, loader, parts, device)


def evaluate_run(run_dir: str | Path) -> dict:
    """Re-evaluate a saved run on its test classes (``sbirlab eval --run DIR``)."""
    r = load_run(run_dir)
    m = evaluate(r.method, r.parts.test_queries, r.parts.test_gallery, r.cfg.setting, r.loader, r.device)
    m.update({"method": r.cfg.method, "setting": r.cfg.setting, "dataset": r.cfg.dataset,
              "split": r.parts.split.name, "seed": r.cfg.seed, "preset": r.cfg.preset})
    return m


def shipped_runs_dir() -> Path:
    """``data/runs``: the trained runs of the results tables, shipped with the repository."""
    return Path(__file__).resolve().parents[1] / "data" / "runs"


def run_name(cfg: RunConfig) -> str:
    """Folder name of a run: ``<method>-<setting>`` plus any method options (ablations) and data options."""
    extra = "".join(f"_{k}={v}" for k, v in sorted({**cfg.method_cfg, **cfg.data}.items()))
    return f"{cfg.method}-{cfg.setting}{extra}"


def load_or_train(cfg: RunConfig, preset: str | None = None, out_root: str | Path | None = None,
                  progress: bool = True, callbacks=(), epoch_callbacks=(), backbone=None) -> LoadedRun:
    """Load-checkpoint-else-train (as uvadlc_notebooks does), the notebooks' entry point.

    ``preset="default"``: load the shipped run from :func:`shipped_runs_dir` (trained in the ``cpu``
    preset) when it exists, else train it in the ``cpu`` preset into ``out_root``. ``"ci"`` / ``"cpu"`` /
    ``"paper"``: train in that preset into ``out_root`` (``runs/`` by default), resuming if interrupted.
    """
    preset = preset or cfg.preset
    name = run_name(cfg)
    if preset == "default":
        shipped = shipped_runs_dir() / name
        if (shipped / "metrics.json").exists() and cfg.dataset == "synthetic" and cfg.backbone == "tiny-synthetic":
            return load_run(shipped, backbone)
        preset = "cpu"
    cfg = dataclasses.replace(cfg, preset=preset)
    run_dir = Path(out_root or "runs") / preset / name
    if not (run_dir / "metrics.json").exists():
        run_experiment(cfg, run_dir, resume=True, progress=progress, callbacks=callbacks,
                       epoch_callbacks=epoch_callbacks, backbone=backbone)
    return load_run(run_dir, backbone)


#: CLIP-AT's ablations (METHODS.md §4), by setting: the options that switch one component off.
ABLATIONS = {
    "zs": ({"tune_ln": False}, {"lambda_cls": 0}),
    "fg": ({"lambda_cls": 0}, {"lambda_ps": 0}, {"lambda_fdiv": 0}),
}


def table_configs(methods=None, settings=("zs", "fg"), ablations: bool = True, **common) -> list[RunConfig]:
    """The runs of the results table: every method in every setting, then CLIP-AT's ablations."""
    from .models.registry import TABLE1

    methods = list(methods or ("frozen", *TABLE1))
    cfgs = [RunConfig(method=m, setting=s, **common) for s in settings for m in methods]
    if ablations and "clip-at" in methods:
        cfgs += [RunConfig(method="clip-at", setting=s, method_cfg=dict(a), **common)
                 for s in settings for a in ABLATIONS[s]]
    return cfgs


def train_table(out_root: str | Path, preset: str = "cpu", methods=None, settings=("zs", "fg"),
                ablations: bool = True, resume: bool = True, progress: bool = False, **common) -> dict:
    """Train (or resume) every run of the table into ``out_root/<run_name>``; returns name -> metrics.

    Finished runs (with ``metrics.json``) are skipped, so an interrupted table resumes where it stopped.
    A ``table.json`` with every run's metrics and the total wall time is written atomically at the end.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    results, t0 = {}, time.time()
    for cfg in table_configs(methods, settings, ablations, preset=preset, **common):
        name = run_name(cfg)
        run_dir = out_root / name
        if resume and (run_dir / "metrics.json").exists():
            results[name] = json.loads((run_dir / "metrics.json").read_text())
            continue
        log.info("table: training %s", name)
        results[name] = run_experiment(cfg, run_dir, resume=resume, progress=progress)
    total = sum(r.get("wall_time_s", 0) for r in results.values())
    _atomic_json({"preset": preset, "runs": results, "sum_of_run_wall_times_s": round(total, 1),
                  "this_call_s": round(time.time() - t0, 1)}, out_root / "table.json")
    return results
