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
import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import PRESETS, Preset, RunConfig, from_dict  # noqa: F401  (re-exported: the run's config)
from .io import atomic_copy, atomic_write_json, versions
from .train.loop import evaluate, fit

log = logging.getLogger(__name__)


def load_data(cfg: RunConfig):
    """The dataset index and its partitions for ``cfg`` (the synthetic world is generated on first use)."""
    from .data.base import make_partitions
    from .data.registry import get_split, load_dataset

    kw = {}
    if cfg.dataset == "synthetic":
        from .data.synthetic import WorldConfig
        kw["cfg"] = from_dict(WorldConfig, {"seed": 0, **cfg.resolved_world()}, "world option")
    index = load_dataset(cfg.dataset, root=cfg.root, **kw)
    split = get_split(cfg.dataset, cfg.split, index=index, root=index.root)
    parts = make_partitions(index, split)
    if cfg.data:
        from .data.base import restrict_training
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
    loader = ImageLoader.for_backbone(bb, cache=True)
    return bb, method, loader, index, parts, classes, device


#: share of seen-class items added to the generalised ZS test set (SEM-PCYC's recipe, docs/methods.md §1.4)
GZS_FRACTION = 0.2


def gzs_test_set(parts, fraction: float = GZS_FRACTION, seed: int = 0):
    """The generalised ZS-SBIR test set: the unseen test queries and gallery plus seen-class items.

    SEM-PCYC's recipe (Dutta and Akata, CVPR 2019; docs/methods.md §1.4), which SpLIP follows: add seen-class
    sketches and photos numbering ``fraction`` (20%) of the unseen test sketches / photos (rounded),
    drawn without replacement from the items of the split's seen classes (training and validation
    classes; SEM-PCYC draws from the training files, so a model has trained on them: GZS tests
    whether seen classes *attract* unseen queries, not generalisation to new seen images). The draw
    depends on ``seed`` only (not on the run's seed), so every method of a table meets the same test
    set. Seen items come first, in partition order. Training is unchanged: a GZS run trains as ZS.

    Returns:
        ``(queries, gallery, query_is_seen)``, ``query_is_seen`` a list of bools aligned with queries.

    Raises:
        ValueError: the seen classes hold fewer items than needed.
    """
    import numpy as np

    seen_sk = [*parts.train_sketches, *parts.val_sketches]
    seen_ph = [*parts.train_photos, *parts.val_photos]
    n_sk, n_ph = round(fraction * len(parts.test_queries)), round(fraction * len(parts.test_gallery))
    if n_sk > len(seen_sk) or n_ph > len(seen_ph):
        raise ValueError(f"GZS needs {n_sk} seen sketches and {n_ph} seen photos; the seen classes hold "
                         f"{len(seen_sk)} and {len(seen_ph)}")
    rng = np.random.default_rng([seed, 2019])
    isk = np.sort(rng.choice(len(seen_sk), n_sk, replace=False))
    iph = np.sort(rng.choice(len(seen_ph), n_ph, replace=False))
    queries = [seen_sk[i] for i in isk] + list(parts.test_queries)
    gallery = [seen_ph[i] for i in iph] + list(parts.test_gallery)
    return queries, gallery, [True] * n_sk + [False] * len(parts.test_queries)


def evaluation_set(parts, setting: str):
    """``(queries, gallery, query_is_seen)`` evaluated in ``setting``: the unseen test partitions
    (``query_is_seen`` None) for ``zs`` / ``fg``, :func:`gzs_test_set` for ``gzs``."""
    if setting == "gzs":
        return gzs_test_set(parts)
    return list(parts.test_queries), list(parts.test_gallery), None


def evaluate_setting(method, parts, setting: str, loader, device="cpu", progress: bool = False,
                     return_features: bool = False):
    """Test metrics of ``method`` in ``setting``.

    ``zs`` / ``fg``: :func:`sbirlab.train.loop.evaluate` on the unseen test partitions. ``gzs``: the
    ZS metrics over all queries of :func:`gzs_test_set` plus the same keys prefixed ``seen/`` and
    ``unseen/`` (:func:`sbirlab.metrics.gzs_metrics`; every query ranks the whole mixed gallery; a seen
    query whose class drew no photo scores 0, as in SEM-PCYC, and ``seen/no_relevant`` counts them).
    A method with a ``prepare_eval(queries, gallery, loader)`` hook (DP-CLIP's test categories) gets it
    first. ``return_features`` also returns the query and gallery embeddings.
    """
    queries, gallery, seen = evaluation_set(parts, setting)
    prepare = getattr(method, "prepare_eval", None)
    if prepare is not None:
        prepare(queries, gallery, loader)
    if setting != "gzs":
        return evaluate(method, queries, gallery, setting, loader, device, progress=progress,
                        return_features=return_features)
    from .metrics import gzs_metrics
    from .train.loop import encode_items

    q = encode_items(method, queries, "sketch", loader, device=device, progress=progress)
    g = encode_items(method, gallery, "photo", loader, device=device, progress=progress)
    m = gzs_metrics(q @ g.T, [x.label for x in queries], [x.label for x in gallery], seen)
    m = {k: int(v) if k.endswith("num_queries") else float(v) for k, v in m.items() if k != "per_query"}
    m["n_queries"], m["n_gallery"] = len(queries), len(gallery)
    m["n_gallery_seen"] = len(gallery) - len(parts.test_gallery)
    have = {x.label for x in gallery}  # SEM-PCYC's convention: a query without relevant photo scores 0
    m["seen/no_relevant"] = sum(1 for x, s in zip(queries, seen) if s and x.label not in have)
    return (m, q, g) if return_features else m


def run_experiment(cfg: RunConfig, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                   callbacks=(), epoch_callbacks=(), backbone=None) -> dict:
    """Train ``cfg.method`` and evaluate it on the test classes; returns the metrics dict."""
    from .train.data import TripletData

    t0 = time.time()
    tcfg = cfg.resolved_train()
    bb, method, loader, index, parts, classes, device = build(cfg, backbone)
    if getattr(method, "batch_classes", None):  # a method's own sampler (DP-CLIP FG: one category per batch)
        tcfg = dataclasses.replace(tcfg, classes_per_batch=method.batch_classes)
    data = TripletData(parts.train_sketches, parts.train_photos, classes, loader,
                       "zs" if cfg.setting == "gzs" else cfg.setting, tcfg.batch_size,  # GZS trains as ZS
                       tcfg.classes_per_batch, cfg.seed, tcfg.steps_per_epoch)
    data.total_steps = min(tcfg.epochs * len(data), tcfg.max_steps or tcfg.epochs * len(data))  # batch "progress"
    val = (parts.val_sketches, parts.val_photos) if parts.val_sketches and parts.val_photos else None
    if val is not None and hasattr(method, "prepare_eval"):
        method.prepare_eval(*val, loader)  # validation categories (DP-CLIP)
    full = {**asdict(cfg), "train": asdict(tcfg), "world": cfg.resolved_world(),
            "method_resolved": {**dataclasses.asdict(method.cfg)} if dataclasses.is_dataclass(getattr(method, "cfg", None)) else cfg.resolved_method()}
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(full, out / "config.json", main_only=True)
    if method.trainable_named_parameters():
        state = fit(method, data, val, tcfg, out, resume=resume, run_config=full, callbacks=callbacks,
                    epoch_callbacks=epoch_callbacks, progress=progress, device=device)
    else:  # zero-shot reference: nothing to train
        from .train.loop import TrainState
        state = TrainState()
    doodles = cfg.setting == "zs" and cfg.dataset == "synthetic"  # the report's "real doodles" columns
    test = evaluate_setting(method, parts, cfg.setting, loader, device, return_features=doodles)
    if doodles:
        test, _, g = test
        test.update(doodle_columns(LoadedRun(method, cfg, {}, bb, loader, parts, device), gallery_features=g))
    loader.report()
    metrics = {
        **test,
        "method": cfg.method, "setting": cfg.setting, "dataset": cfg.dataset, "split": parts.split.name,
        "backbone": cfg.backbone, "preset": cfg.preset, "seed": cfg.seed,
        "metric_convention": "mAP@200 = AP over the top 200 normalised by relevant items in the top 200 (docs/methods.md §1.3)"
        + ("; GZS: unseen test set + 20% seen-class sketches / photos, seen/ and unseen/ = per-part means"
           if cfg.setting == "gzs" else "") if cfg.setting in ("zs", "gzs")
        else "Acc@k within the query's category (docs/methods.md §1.5)",
        "best_epoch": state.best_epoch, "val_best": state.best if state.best_epoch > 0 else None,
        "trainable_parameters": sum(p.numel() for _, p in method.trainable_named_parameters()),
        "train_steps": state.step, "wall_time_s": round(time.time() - t0, 1), "versions": versions(),
    }
    if out:
        atomic_write_json(metrics, out / "metrics.json", main_only=True)
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


def run_distributed(cfg, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                    backbone=None, destroy: bool = True) -> dict:
    """:func:`~sbirlab.experiment.run_experiment` under torchrun (or in one process without it).

    Rank 0 prepares the dataset first (the synthetic world is generated on first use), then every
    rank runs the experiment; :func:`sbirlab.train.loop.fit` detects the process group and trains
    with DDP. Returns the test metrics (identical on every rank; written by rank 0 only).

    Args:
        cfg: a :class:`~sbirlab.experiment.RunConfig`; ``cfg.train["batch_size"]`` is the global batch.
        out_dir: the run folder (shared by the ranks; rank 0 writes it).
        resume: continue from ``out_dir/checkpoint.pt``.
        progress: progress bars (rank 0 only).
        backbone: a loaded backbone to reuse (as ``run_experiment``).
        destroy: destroy the process group at the end (if this call created it).
    """
    from .train.distributed import barrier, cleanup, init_distributed

    created = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = init_distributed()
    try:
        if info.world_size > 1:
            if info.is_main:
                load_data(cfg)
            barrier()
        metrics = run_experiment(cfg, out_dir, resume=resume, progress=progress and info.is_main, backbone=backbone)
        barrier()
        return metrics
    finally:
        if destroy and created:
            cleanup()


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
    if hasattr(method, "prepare_eval"):  # the test categories of methods that need them (DP-CLIP)
        q, g, _ = evaluation_set(parts, cfg.setting)
        method.prepare_eval(q, g, loader)
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    return LoadedRun(method, cfg, metrics, bb, loader, parts, device)


#: the zero-shot template of the doodle class accuracy (CLIP's own single template)
DOODLE_TEMPLATE = "a photo of a {}."


@functools.cache
def pretrain_doodle_keys() -> frozenset[str]:
    """``key_id`` of every doodle the shipped tiny CLIP may have seen in pretraining (the *pretrain*
    part of sbirlab's own ``data/real/quickdraw``); :func:`evaluate_doodles` leaves them out."""
    from .data.doodles import default_doodle_dir, load_doodles

    folder = default_doodle_dir()
    return frozenset(d.key_id for d in load_doodles(folder, "pretrain")) if folder.is_dir() else frozenset()


@torch.no_grad()
def evaluate_doodles(run, doodle_dir: str | Path, width: float = 3.0, batch_size: int = 128,
                     gallery_features: torch.Tensor | None = None) -> dict:
    """Real human doodles as queries of a trained run (``sbirlab eval --run RUN --doodles DIR``).

    ``doodle_dir`` holds QuickDraw simplified ndjson files named by their QuickDraw word (mapped to
    world classes by :data:`sbirlab.data.doodles.QUICKDRAW_WORDS`). Doodles the shipped tiny CLIP
    may have pretrained on (same ``key_id`` as the pretrain part of ``data/real/quickdraw``) are left
    out and counted in ``n_excluded_pretrain``. Each doodle is framed and rasterised like a widget
    drawing (pen ``width``) and embedded as a sketch by the run's method.

    Returns a dict with ``n`` (doodles used), ``class_accuracy`` (zero-shot over **all** world
    classes: the sketch embedding against the frozen text encoder's "a photo of a {class}." of every
    class; None for a method whose embedding has another width than CLIP's text space), and, for the
    ``n_retrieval`` doodles of the run's unseen test classes as queries against
    the run's unseen test gallery (photos; relevant = same class), ``mAP@all``, ``mAP@200``,
    ``P@100``, ``P@200``.

    ``gallery_features``: the embeddings of ``run.parts.test_gallery`` when the caller has them
    already (``run_experiment``), so the gallery is not encoded twice.

    Raises:
        FileNotFoundError / ValueError: from :func:`sbirlab.data.doodles.load_doodles` (the folder,
            file and line at fault are named); ValueError when no doodle is left.
    """
    from .data.categories import all_categories
    from .data.doodles import doodle_images, load_doodles
    from .metrics import retrieval_metrics
    from .train.loop import encode_items

    r = run if isinstance(run, LoadedRun) else load_run(run)
    classes = all_categories()
    doodles = load_doodles(doodle_dir, "all", classes)
    seen_keys = pretrain_doodle_keys()
    kept = [d for d in doodles if d.key_id not in seen_keys]
    if not kept:
        raise ValueError(f"{doodle_dir}: no doodle left to evaluate ({len(doodles)} read, all of them in "
                         "the pretraining part of sbirlab's data/real/quickdraw)")
    method, loader, device = r.method, r.loader, r.device
    method.eval()
    x_u8 = doodle_images(kept, loader.size, width)
    q = torch.cat([method.encode_sketch(loader.normalize(x_u8[i:i + batch_size]).to(device)).float().cpu()
                   for i in range(0, len(x_u8), batch_size)])
    q = torch.nn.functional.normalize(q, dim=-1)
    t = method.frozen_text_features(classes, DOODLE_TEMPLATE).cpu()
    y = torch.tensor([classes.index(d.label) for d in kept])
    out = {"run": None if isinstance(run, LoadedRun) else str(run), "method": r.cfg.method, "setting": r.cfg.setting,
           "doodle_dir": str(doodle_dir), "n": len(kept), "n_excluded_pretrain": len(doodles) - len(kept),
           "n_classes": len(classes), "template": DOODLE_TEMPLATE,
           # None when the method's embedding is not CLIP's joint space (DP-CLIP concatenates local parts)
           "class_accuracy": float(((q @ t.T).argmax(1) == y).float().mean()) if q.shape[1] == t.shape[1] else None}
    gallery = list(r.parts.test_gallery)
    test_classes = {g.label for g in gallery}
    use = [i for i, d in enumerate(kept) if d.label in test_classes]
    out["n_retrieval"], out["n_gallery"] = len(use), len(gallery)
    if use:
        g = gallery_features if gallery_features is not None else \
            encode_items(method, gallery, "photo", loader, batch_size, device)
        m = retrieval_metrics(q[use] @ g.T, [kept[i].label for i in use], [x.label for x in gallery])
        out.update({k: float(m[k]) for k in ("mAP@all", "mAP@200", "P@100", "P@200")})
    else:
        out.update({k: None for k in ("mAP@all", "mAP@200", "P@100", "P@200")})
    return out


def doodle_columns(run, doodle_dir: str | Path | None = None, gallery_features: torch.Tensor | None = None) -> dict:
    """:func:`evaluate_doodles` of sbirlab's held-out real doodles as ``doodles/...`` metrics of a run
    (``{}`` when the doodle folder is absent, e.g. a trimmed install)."""
    from .data.doodles import default_doodle_dir

    folder = Path(doodle_dir) if doodle_dir else default_doodle_dir()
    if not folder.is_dir():
        return {}
    d = evaluate_doodles(run, folder, gallery_features=gallery_features)
    out = {f"doodles/{k}": d[k] for k in ("class_accuracy", "mAP@all", "mAP@200", "P@100", "P@200")
           if d.get(k) is not None}
    out["doodles/n"], out["doodles/n_retrieval"] = d["n"], d["n_retrieval"]
    return out


def record_doodle_columns(run_dir: str | Path) -> dict:
    """Add :func:`doodle_columns` to a finished run's ``metrics.json`` (atomically); returns them."""
    run_dir = Path(run_dir)
    r = load_run(run_dir)
    cols = doodle_columns(r)
    atomic_write_json({**r.metrics, **cols}, run_dir / "metrics.json", main_only=True)
    return cols


def evaluate_run(run_dir: str | Path) -> dict:
    """Re-evaluate a saved run on its test classes (``sbirlab eval --run DIR``)."""
    r = load_run(run_dir)
    m = evaluate_setting(r.method, r.parts, r.cfg.setting, r.loader, r.device)
    m.update({"method": r.cfg.method, "setting": r.cfg.setting, "dataset": r.cfg.dataset,
              "split": r.parts.split.name, "seed": r.cfg.seed, "preset": r.cfg.preset})
    return m


def gzs_from_zs_run(zs_run_dir: str | Path, out_dir: str | Path, backbone=None) -> dict:
    """A finished GZS run from the finished ZS run of the same config, without training again.

    A GZS run trains exactly as the ZS run (same data, seed, batches and model; only the test set
    differs), so the ZS run's weights are copied and only the GZS evaluation runs. Writes
    ``config.json`` (setting ``"gzs"``), the checkpoints, ``history.json`` and ``metrics.json``, whose
    ``derived_from`` names the ZS run and whose ``wall_time_s`` is this evaluation's.
    """
    t0 = time.time()
    src, out = Path(zs_run_dir), Path(out_dir)
    d = json.loads((src / "config.json").read_text())
    if d.get("setting") != "zs" or not (src / "metrics.json").exists():
        raise ValueError(f"{src} is not a finished ZS run")
    out.mkdir(parents=True, exist_ok=True)
    for f in ("best.pt", "checkpoint.pt", "history.json"):
        if (src / f).exists():
            atomic_copy(src / f, out / f, main_only=True)
    atomic_write_json({**d, "setting": "gzs"}, out / "config.json", main_only=True)
    import copy

    r = load_run(out, copy.deepcopy(backbone) if backbone is not None else None)  # loading tunes its LayerNorms
    zs = json.loads((src / "metrics.json").read_text())
    keep = ("method", "dataset", "split", "backbone", "preset", "seed", "best_epoch", "val_best",
            "trainable_parameters", "train_steps", "versions")
    metrics = {**evaluate_setting(r.method, r.parts, "gzs", r.loader, r.device), **{k: zs[k] for k in keep if k in zs},
               "setting": "gzs", "metric_convention": zs.get("metric_convention", "") + "; GZS: unseen test set + 20% "
               "seen-class sketches / photos, seen/ and unseen/ = per-part means",
               "derived_from": src.name, "wall_time_s": round(time.time() - t0, 1)}
    atomic_write_json(metrics, out / "metrics.json", main_only=True)
    return metrics


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
    A ``gzs`` run whose ``zs`` twin is finished (shipped, or in the same folder) is derived from it
    without training (:func:`gzs_from_zs_run`).
    """
    preset = preset or cfg.preset
    name = run_name(cfg)
    if preset == "default":
        shipped = shipped_runs_dir() / name
        synthetic = cfg.dataset == "synthetic" and cfg.backbone == "tiny-synthetic"
        if (shipped / "metrics.json").exists() and synthetic:
            return load_run(shipped, backbone)
        twin = shipped_runs_dir() / run_name(dataclasses.replace(cfg, setting="zs"))
        run_dir = Path(out_root or "runs") / "cpu" / name
        if cfg.setting == "gzs" and synthetic and (twin / "metrics.json").exists():  # GZS trains as ZS
            if not (run_dir / "metrics.json").exists():
                gzs_from_zs_run(twin, run_dir, backbone)
            return load_run(run_dir, backbone)
        preset = "cpu"
    cfg = dataclasses.replace(cfg, preset=preset)
    run_dir = Path(out_root or "runs") / preset / name
    if not (run_dir / "metrics.json").exists():
        twin = run_dir.parent / run_name(dataclasses.replace(cfg, setting="zs"))
        if cfg.setting == "gzs" and (twin / "metrics.json").exists():  # GZS trains as ZS: evaluate the twin
            gzs_from_zs_run(twin, run_dir, backbone)
        else:
            run_experiment(cfg, run_dir, resume=True, progress=progress, callbacks=callbacks,
                           epoch_callbacks=epoch_callbacks, backbone=backbone)
    return load_run(run_dir, backbone)


#: CLIP-AT's ablations (docs/methods.md §4.6), by setting: the options that switch one component off.
ABLATIONS = {
    "zs": ({"tune_ln": False}, {"lambda_cls": 0}),
    "fg": ({"lambda_cls": 0}, {"lambda_ps": 0}, {"lambda_fdiv": 0}),
}


def table_configs(methods=None, settings=("zs", "fg"), ablations: bool = True, **common) -> list[RunConfig]:
    """The runs of the results table: every method in every setting (``zs``, ``gzs``, ``fg``), then the
    ablations of the listed methods that have some: CLIP-AT (:data:`ABLATIONS`), ``dp-clip`` and
    ``splip`` (their modules' ``ABLATIONS``; none in ``gzs``)."""
    from .models.methods import dp_clip, splip
    from .models.registry import TABLE1

    methods = list(methods or ("frozen", *TABLE1))
    bad = [s for s in settings if s not in ("zs", "gzs", "fg")]
    if bad:
        raise ValueError(f"unknown setting(s) {bad}; known: zs, gzs, fg")
    cfgs = [RunConfig(method=m, setting=s, **common) for s in settings for m in methods]
    if ablations:
        for name, abl in (("clip-at", ABLATIONS), ("dp-clip", dp_clip.ABLATIONS), ("splip", splip.ABLATIONS)):
            if name in methods:
                cfgs += [RunConfig(method=name, setting=s, method_cfg=dict(a), **common)
                         for s in settings for a in abl.get(s, ())]
    return cfgs


def train_table(out_root: str | Path, preset: str = "cpu", methods=None, settings=("zs", "fg"),
                ablations: bool = True, resume: bool = True, progress: bool = False, **common) -> dict:
    """Train (or resume) every run of the table into ``out_root/<run_name>``; returns name -> metrics.

    Finished runs (with ``metrics.json``) are skipped, so an interrupted table resumes where it stopped.
    A ``gzs`` run whose ``zs`` twin is finished is derived from it (:func:`gzs_from_zs_run`).
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
        twin = out_root / run_name(dataclasses.replace(cfg, setting="zs"))
        if cfg.setting == "gzs" and (twin / "metrics.json").exists():  # GZS trains as ZS: evaluate only
            log.info("table: %s from %s", name, twin.name)
            results[name] = gzs_from_zs_run(twin, run_dir)
            continue
        log.info("table: training %s", name)
        results[name] = run_experiment(cfg, run_dir, resume=resume, progress=progress)
    total = sum(r.get("wall_time_s", 0) for r in results.values())
    atomic_write_json({"preset": preset, "runs": results, "sum_of_run_wall_times_s": round(total, 1),
                       "this_call_s": round(time.time() - t0, 1)}, out_root / "table.json", main_only=True)
    return results
