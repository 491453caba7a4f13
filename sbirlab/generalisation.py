"""Generalisation potential: unseen-class mAP as a function of the training data (CLIP-AT's last figures).

CLIP-AT (Sain et al., CVPR 2023) closes with two curves: how retrieval on the *unseen* classes grows
with (a) the fraction of the training data used and (b) the number of seen classes, for CLIP-AT against
the prompt baselines; a method that generalises better reaches a given unseen mAP with less data, and
keeps gaining when more classes are seen. This module runs the same sweep on any dataset sbirlab
loads (the synthetic world by default):

* :func:`restrict_training` is the data option (``RunConfig.data``): keep a fraction of each seen
  class's photos (with their sketches) and / or only some seen classes. Subsets are **nested** (the 10%
  subset is inside the 30% one, the 5-class set inside the 15-class one; drawn once per seed), the
  validation classes and the test partitions never change, and the number of training steps stays the
  preset's, so a point differs from another only in the data it may see.
* :func:`sweep_configs` lists the runs of a sweep; the full-data point is shared by both axes.
* :func:`run_sweep` trains each point with :func:`sbirlab.experiment.run_experiment` into its own folder
  and skips finished ones (an interrupted sweep resumes); ``sweep.json`` (written atomically) holds
  every point's test metrics.
* :func:`sweep_table` / :func:`plot_generalisation` read the results back as a table and the two
  panels, with the frozen CLIP as the zero-training reference.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

from .data.base import restrict_training
from .io import atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["restrict_training", "SweepPoint", "sweep_configs", "SweepPlan", "sweep_plan", "run_sweep", "sweep_table",
           "plot_generalisation"]

DEFAULT_METHODS = ("clip-at", "b-deep", "b-lin")


# --------------------------------------------------------------------------------------------------
# the sweep


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: a method trained on ``train_fraction`` of the data of ``train_classes`` classes."""

    method: str
    train_fraction: float = 1.0
    train_classes: Optional[int] = None  # None = every training class

    @property
    def folder(self) -> str:
        c = "all" if self.train_classes is None else str(self.train_classes)
        return f"{self.method}/frac{self.train_fraction:g}_cls{c}"

    def data(self) -> dict:
        d = {}
        if self.train_fraction != 1.0:
            d["train_fraction"] = float(self.train_fraction)
        if self.train_classes is not None:
            d["train_classes"] = int(self.train_classes)
        return d


def sweep_configs(methods: Sequence[str] = DEFAULT_METHODS, fractions: Sequence[float] = (0.1, 0.3, 1.0),
                  class_counts: Sequence[Optional[int]] = (5, 15, None), n_train_classes: Optional[int] = None,
                  **common):
    """The points of a sweep and their :class:`~sbirlab.experiment.RunConfig`.

    Axis (a) varies ``train_fraction`` over ``fractions`` with every class; axis (b) varies
    ``train_classes`` over ``class_counts`` with all the data. The full-data, all-classes point belongs to
    both axes and runs once. A class count equal to ``n_train_classes`` (the split's training classes) is
    the same as ``None``.

    Args:
        common: passed to every ``RunConfig`` (``dataset``, ``backbone``, ``preset``, ``seed``, ``train``...).

    Returns:
        ``[(SweepPoint, RunConfig)]`` in run order.
    """
    from .experiment import RunConfig

    for f in fractions:
        if not 0.0 < float(f) <= 1.0:
            raise ValueError(f"fractions must be in (0, 1], got {f}")
    pts: list[SweepPoint] = []
    for m in methods:
        for f in fractions:
            pts.append(SweepPoint(m, float(f), None))
        for c in class_counts:
            c = None if c is None or (n_train_classes is not None and int(c) >= n_train_classes) else int(c)
            pts.append(SweepPoint(m, 1.0, c))
    seen, out = set(), []
    for p in pts:
        if p in seen:
            continue
        seen.add(p)
        out.append((p, RunConfig(method=p.method, data=p.data(), **common)))
    return out



@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a notebook's sweep parameters mean in a preset (:func:`sweep_plan`)."""

    preset: str                         # the experiment preset: world and schedule ("ci" or "cpu")
    methods: list                       # the methods swept, in order
    fractions: list                     # axis (a), increasing
    class_counts: list                  # axis (b), as given; None = every training class
    train: dict                         # schedule overrides for RunConfig.train ({}: the preset's)
    sweep_dir: Path                     # where the sweep's points are (or are read from)
    shipped_dir: Path                   # where a sweep shipped with sbirlab would be
    reuse_from: Optional[Path] = None   # finished runs reused for identical points (the shipped runs)

    @property
    def record(self) -> bool:
        """Write ``sweep.json``: False when the sweep is the shipped one, read back and never written to."""
        return self.sweep_dir != self.shipped_dir


def sweep_plan(preset: str, methods: str = "clip-at,b-deep,b-lin", fractions: str = "0.1,0.3,1.0",
               seen_classes: str = "5,15,all", steps: int = 0, seed: int = 0, runs: Path | str = "runs",
               shipped_root: Path | str | None = None) -> SweepPlan:
    """The sweep of notebook 12's parameters in a notebook preset.

    The experiment preset is ``ci`` in the ``ci`` preset and ``cpu`` otherwise. ``ci`` keeps only the
    smallest and the full point of each axis and trains 2 steps a point; ``steps`` (not 0) sets the
    steps of every point. In the ``default`` preset with the preset schedule (``steps=0``), a sweep
    shipped in ``<shipped_root>/generalisation/cpu/seed<seed>/`` (with its ``sweep.json``) is read back
    instead of trained, and finished shipped runs identical to a point (the full-data Table 1 runs) are
    reused.

    Args:
        preset: the notebook preset (``"ci"``, ``"default"``, ``"cpu"``, ``"paper"``).
        methods: comma-separated method names (``"clip-at,b-deep,b-lin"``).
        fractions: comma-separated fractions of each seen class's data (``"0.1,0.3,1.0"``).
        seen_classes: comma-separated numbers of seen classes, ``all`` for every training class.
        steps: training steps per point; 0 = the preset's schedule.
        seed: the sweep's seed (its folder ``seed<seed>``).
        runs: the root of trained runs (``nb.runs``); the sweep goes to ``<runs>/generalisation/<preset>/seed<seed>``.
        shipped_root: the shipped runs (default :func:`sbirlab.experiment.shipped_runs_dir`).

    Returns:
        the :class:`SweepPlan`.
    """
    from .experiment import shipped_runs_dir

    shipped_root = Path(shipped_root) if shipped_root is not None else shipped_runs_dir()
    exp_preset = "ci" if preset == "ci" else "cpu"
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    fraction_list = sorted({float(f) for f in fractions.split(",")})
    class_counts = [None if c.strip() == "all" else int(c) for c in seen_classes.split(",")]
    if preset == "ci":  # the smallest and the full point of each axis
        fraction_list = [fraction_list[0], 1.0]
        class_counts = [min(c for c in class_counts if c is not None), None]
    train = {"max_steps": 2} if preset == "ci" else ({"max_steps": steps} if steps else {})
    sweep = Path(runs) / "generalisation" / exp_preset / f"seed{seed}"
    shipped = shipped_root / "generalisation" / exp_preset / f"seed{seed}"
    preset_schedule = preset == "default" and not steps
    if preset_schedule and (shipped / "sweep.json").exists():
        sweep = shipped  # read back (every point finished), never written to
    return SweepPlan(preset=exp_preset, methods=method_list, fractions=fraction_list, class_counts=class_counts,
                     train=train, sweep_dir=sweep, shipped_dir=shipped,
                     reuse_from=shipped_root if preset_schedule else None)


def _config_diff(run_dir: Path, cfg) -> list:
    """The config fields in which the run saved in ``run_dir`` differs from ``cfg`` (``None``: no saved config)."""
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return None
    saved = json.loads(saved_path.read_text())
    now = {**dataclasses.asdict(cfg), "train": dataclasses.asdict(cfg.resolved_train()), "world": cfg.resolved_world()}
    keys = ("method", "setting", "dataset", "backbone", "preset", "seed", "method_cfg", "data", "train", "world")
    return [k for k in keys if json.loads(json.dumps(now.get(k), default=str)) != saved.get(k, {} if k == "data" else None)]


def _check_same_run(run_dir: Path, cfg) -> None:
    """Raise if the finished run in ``run_dir`` was made with another config than ``cfg`` (stale results)."""
    diff = _config_diff(run_dir, cfg)
    if diff:
        saved = json.loads((run_dir / "config.json").read_text())
        raise ValueError(f"{run_dir} holds a finished run with another {', '.join(diff)} than this sweep asks for "
                         f"(e.g. {diff[0]}: saved {saved.get(diff[0])!r}, now {getattr(cfg, diff[0], None)!r}); "
                         f"use another out_root or delete the folder")


def _reusable(reuse_from, cfg):
    """``reuse_from/<run_name(cfg)>`` if it holds a finished run made with exactly ``cfg``, else ``None``."""
    if reuse_from is None:
        return None
    from .experiment import run_name

    d = Path(reuse_from) / run_name(cfg)
    return d if (d / "metrics.json").exists() and _config_diff(d, cfg) == [] else None


def run_sweep(out_root, methods: Sequence[str] = DEFAULT_METHODS, fractions: Sequence[float] = (0.1, 0.3, 1.0),
              class_counts: Sequence[Optional[int]] = (5, 15, None), preset: str = "cpu",
              train: Optional[dict] = None, reference: bool = True, progress: bool = False,
              backbone_model=None, on_point=None, reuse_from=None, record: bool = True, **common) -> dict:
    """Train (or resume) every point of a sweep into ``out_root/<method>/frac<f>_cls<c>``.

    Finished points (with ``metrics.json``) are read back, unfinished ones resume from their checkpoint.

    Args:
        out_root: the sweep's folder.
        methods, fractions, class_counts: the sweep (see :func:`sweep_configs`).
        preset: the experiment preset (world and schedule); ``train`` overrides its schedule, e.g.
            ``{"epochs": 2, "steps_per_epoch": 40}`` for a short sweep.
        reference: also evaluate the frozen CLIP once (nothing trains), the zero-training reference.
        backbone_model: a loaded :class:`~sbirlab.models.backbone.Backbone` to deep-copy for every run
            (saves reloading; methods that tune LayerNorms change the backbone they are built on, so each
            run gets its own copy). Its ``spec`` is recorded as the runs' ``backbone`` unless ``backbone``
            is given.
        on_point: ``callback(point, metrics, seconds)`` after each point (progress in notebooks).
        reuse_from: a folder of finished runs named by :func:`~sbirlab.experiment.run_name` (e.g. the
            shipped ``data/runs``); a point whose config matches one of them exactly (same method, data,
            schedule, world, seed...) is read from there instead of trained. The full-data points of a
            ``cpu`` sweep are the shipped Table 1 runs.
        record: write ``out_root/sweep.json`` (off to read a shipped, read-only sweep without touching it).
        common: more ``RunConfig`` fields (``dataset``, ``backbone``, ``seed``...).

    Returns:
        The content of ``sweep.json``: ``{"preset", "train", "points": [{method, train_fraction,
        train_classes, n_train_classes, metrics...}], "reference": {...}, "seconds"}``.
    """
    import copy

    from .experiment import RunConfig, load_data, run_experiment

    out_root = Path(out_root)
    if record:
        out_root.mkdir(parents=True, exist_ok=True)
    train = dict(train or {})
    if backbone_model is not None:
        common.setdefault("backbone", backbone_model.spec)
        if common["backbone"] != backbone_model.spec:
            raise ValueError(f"run_sweep: backbone={common['backbone']!r} but backbone_model is "
                             f"{backbone_model.spec!r}")
    _, parts = load_data(RunConfig(preset=preset, **{k: v for k, v in common.items() if k in ("dataset", "root",
                                                                                             "split", "world")}))
    n_classes = len({i.label for i in parts.train_sketches})
    t0 = time.time()
    records = []
    todo = sweep_configs(methods, fractions, class_counts, n_classes, preset=preset, train=train, **common)
    for point, cfg in todo:
        run_dir = out_root / point.folder
        t1 = time.time()
        reused = _reusable(reuse_from, cfg)
        if (run_dir / "metrics.json").exists():
            _check_same_run(run_dir, cfg)
            metrics = json.loads((run_dir / "metrics.json").read_text())
        elif reused is not None:
            metrics = json.loads((reused / "metrics.json").read_text())
        elif not record:
            raise ValueError(f"run_sweep(record=False) reads a finished sweep, but {run_dir} has no metrics.json")
        else:
            log.info("generalisation sweep: %s", point)
            bb = copy.deepcopy(backbone_model) if backbone_model is not None else None
            metrics = run_experiment(cfg, run_dir, resume=True, progress=progress, backbone=bb)
        rec = {"method": point.method, "train_fraction": point.train_fraction,
               "train_classes": point.train_classes if point.train_classes is not None else n_classes,
               "all_classes": point.train_classes is None,
               "folder": str(reused) if reused is not None and not (run_dir / "metrics.json").exists() else point.folder,
               **{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}
        records.append(rec)
        if on_point is not None:
            on_point(point, metrics, time.time() - t1)
    ref = None
    if reference:
        ref_dir = out_root / "frozen"
        ref_cfg = RunConfig(method="frozen", preset=preset, train=train, **common)
        ref_reused = _reusable(reuse_from, ref_cfg)
        if (ref_dir / "metrics.json").exists():
            _check_same_run(ref_dir, ref_cfg)
            ref = json.loads((ref_dir / "metrics.json").read_text())
        elif ref_reused is not None:
            ref = json.loads((ref_reused / "metrics.json").read_text())
        else:
            bb = copy.deepcopy(backbone_model) if backbone_model is not None else None
            ref = run_experiment(ref_cfg, ref_dir, progress=False, backbone=bb)
        ref = {k: v for k, v in ref.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    result = {"preset": preset, "train": train, "methods": list(methods), "fractions": [float(f) for f in fractions],
              "class_counts": [c if c is not None else n_classes for c in class_counts],
              "n_train_classes": n_classes, "points": records, "reference": ref,
              "seconds_this_call": round(time.time() - t0, 1)}
    if record:
        atomic_write_json(result, out_root / "sweep.json")
    return result


def sweep_table(result: dict, metric: str = "mAP@all"):
    """The sweep as a DataFrame: one row per point (``method, axis, value, metric``).

    A full-data all-classes point appears on both axes (``axis`` ``"fraction"`` and ``"classes"``).
    """
    import pandas as pd

    rows = []
    for p in result["points"]:
        if p["all_classes"]:
            rows.append({"method": p["method"], "axis": "fraction", "value": p["train_fraction"], metric: p[metric]})
        if p["train_fraction"] == 1.0:
            rows.append({"method": p["method"], "axis": "classes", "value": p["train_classes"], metric: p[metric]})
    return pd.DataFrame(rows).sort_values(["axis", "method", "value"]).reset_index(drop=True)


def plot_generalisation(result: dict, metric: str = "mAP@all", title: str = ""):
    """Two panels: unseen ``metric`` vs (a) fraction of training data and (b) number of seen classes."""
    import matplotlib.pyplot as plt

    t = sweep_table(result, metric)
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 3.6), sharey=True)
    markers = {"clip-at": "o", "b-deep": "s", "b-lin": "^"}
    for ax, axis, xl in ((axes[0], "fraction", "fraction of the training data"),
                         (axes[1], "classes", "number of seen (training) classes")):
        for m in result["methods"]:
            s = t[(t["axis"] == axis) & (t["method"] == m)]
            ax.plot(s["value"], s[metric], marker=markers.get(m, "D"), label=m, lw=1.6)
        ref = result.get("reference")
        if ref and metric in ref:
            ax.axhline(ref[metric], color="k", ls=":", lw=1.1, label=f"frozen CLIP ({ref[metric]:.3f})")
        ax.set_xlabel(xl)
        if axis == "fraction":
            ax.set_xticks(result["fractions"], [f"{f:.0%}" for f in result["fractions"]])
        else:
            ax.set_xticks(sorted(set(result["class_counts"])))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"unseen-class {metric}")
    axes[0].set_title("(a) more data per seen class", fontsize=9.5)
    axes[1].set_title("(b) more seen classes", fontsize=9.5)
    axes[1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
