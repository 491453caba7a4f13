"""What every teaching notebook does first and last: :func:`setup` after the parameters, :func:`record` at the end.

A notebook's cells, in order (``notebooks/_template.ipynb``): the title, one cell of imports, the cell
tagged ``parameters`` (papermill injects its values after it), then::

    nb = setup("03_clip_baselines", preset=PRESET, out_dir=OUT_DIR, runs_dir=RUNS_DIR, seed=SEED,
               backbone=BACKBONE, dataset=DATASET)
    print(nb)

:func:`setup` seeds ``random`` / numpy / torch from ``seed``, picks the device (cuda when present), makes
the output folder and starts the wall-clock and CPU timers. The :class:`Notebook` it returns holds what
the notebooks used to rebuild in a copied block: ``nb.out`` (the folder of the key numbers and figures),
``nb.runs`` (where trained runs go: ``RUNS_DIR``, or a throwaway temporary folder in the ``ci`` preset, or
``runs/`` at the repository root), ``nb.progress`` (progress bars except in ``ci``), ``nb.data_preset``
(the world the runs of this preset use), ``nb.backbone`` (loaded on first use, never trained itself) and
``nb.fresh_backbone()`` (a copy per run), and ``nb.load(method, setting)`` for ``load_or_train``.

The last cell writes ``<out>/<notebook>.json``, which ``tests/notebooks`` and ``sbirlab report`` read::

    RESULTS = nb.record({"n_queries": len(queries), "metrics": metrics}, timings=("seconds",))

:func:`record` puts the notebook's identity first (``notebook``, ``preset``, then ``dataset`` and
``backbone`` when they were given to :func:`setup`, then ``seed``), the numbers after it and the timings
last, and writes the file atomically (:func:`sbirlab.io.atomic_write_text`): a crash never leaves half a
record for the report to read.

This module sits at the top of the package (with the CLI): it may import any sbirlab module, and none
imports it.
"""
from __future__ import annotations

import copy
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import sbirlab

from .experiment import RunConfig, load_data, load_or_train, load_run
from .io import atomic_write, atomic_write_text
from .models.backbone import load_backbone, resolve_device
from .train.loop import seed_everything
from .viz.training import run_dir_for

__all__ = ["REPO", "TIMINGS", "Notebook", "setup", "record", "pick", "parse_list", "table_record"]

#: the repository root (``runs/`` of the default presets lives there)
REPO = Path(sbirlab.__file__).resolve().parents[1]

#: the timing keys :func:`record` can add, and what each measures (since :func:`setup`)
TIMINGS: dict[str, str] = {
    "seconds": "wall-clock seconds",
    "cpu_seconds": "CPU seconds of the kernel process (all threads)",
    "wall_time_s": "wall-clock seconds (the name notebook 11 records them under)",
}


@dataclass(eq=False)
class Notebook:
    """A notebook's session: its name, preset and seed, folders, device, backbone and timers.

    Build it with :func:`setup`. The run folder and the backbone are made on first use, so a notebook
    that trains nothing never creates a temporary folder or loads a CLIP it does not need.
    """

    name: str
    preset: str = "default"
    seed: int = 0
    out: Path = field(default_factory=Path.cwd)
    runs_dir: str | None = None
    backbone_spec: str | None = None
    dataset: str | None = None
    device: Any = "cpu"
    t_start: float = field(default_factory=time.time)
    t_cpu: float = field(default_factory=time.process_time)
    repo: Path = REPO
    _runs: Path | None = field(default=None, repr=False)
    _tmp_runs: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _backbone: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------------------ what the preset implies
    @property
    def progress(self) -> bool:
        """Progress bars, except in the ``ci`` preset (the tests' smoke runs)."""
        return self.preset != "ci"

    @property
    def data_preset(self) -> str:
        """The world the runs of this preset use: ``default`` loads runs trained in the ``cpu`` preset."""
        return "cpu" if self.preset == "default" else self.preset

    @property
    def runs(self) -> Path:
        """Where trained runs go: ``runs_dir``; else, in ``ci``, a temporary folder removed when the kernel
        exits (smoke runs are throwaway, never a run of an earlier session); else ``<repo>/runs``.
        Made on first use (:func:`setup` makes it at once when the notebook has a ``RUNS_DIR``)."""
        if self._runs is None:
            if self.runs_dir:
                self._runs = Path(self.runs_dir)
                self._runs.mkdir(parents=True, exist_ok=True)
            elif self.preset == "ci":
                self._tmp_runs = tempfile.TemporaryDirectory(prefix="sbirlab-ci-runs-")
                self._runs = Path(self._tmp_runs.name)
            else:
                self._runs = self.repo / "runs"
        return self._runs

    # ------------------------------------------------------------------------------------------ backbone
    @property
    def backbone(self):
        """The notebook's CLIP (``backbone_spec``, default the tiny CLIP), loaded once on first use.
        Never train it: build methods on :meth:`fresh_backbone`."""
        if self._backbone is None:
            self._backbone = load_backbone(self.backbone_spec or "tiny-synthetic", device=self.device)
        return self._backbone

    def fresh_backbone(self):
        """A deep copy of :attr:`backbone`, one per run: B-FT and LayerNorm tuning change the backbone a
        method is built on."""
        return copy.deepcopy(self.backbone)

    def backbone_summary(self) -> str:
        """``"tiny-synthetic (ViT-tiny, 64 px, 12,345 parameters)"``: what was loaded (loads it)."""
        bb = self.backbone
        n = sum(p.numel() for p in bb.model.parameters())
        return f"{bb.spec} ({bb.arch}, {bb.image_size} px, {n:,d} parameters)"

    # ----------------------------------------------------------------------------------------------- runs
    def config(self, method: str, setting: str = "zs", **opts) -> RunConfig:
        """The :class:`~sbirlab.experiment.RunConfig` of ``method`` in ``setting`` on this notebook's dataset,
        backbone and seed; ``opts`` are method options (an ablation: ``tune_ln=False``)."""
        return RunConfig(method=method, setting=setting, dataset=self.dataset or "synthetic",
                         backbone=self.backbone_spec or "tiny-synthetic", seed=self.seed, method_cfg=opts)

    def load(self, method: str, setting: str = "zs", *, progress: bool | None = None, callbacks=(),
             epoch_callbacks=(), **opts):
        """``load_or_train`` of :meth:`config` in this preset into :attr:`runs`, on a :meth:`fresh_backbone`.

        Loads the shipped run (``default``), or trains it (resuming, and reusing a finished one); a gzs
        run is derived from its zs twin. ``progress`` defaults to :attr:`progress`; ``callbacks`` and
        ``epoch_callbacks`` go to the training loop (live curves). Returns the
        :class:`~sbirlab.experiment.LoadedRun`."""
        return load_or_train(self.config(method, setting, **opts), preset=self.preset, out_root=self.runs,
                             progress=self.progress if progress is None else progress,
                             backbone=self.fresh_backbone(), callbacks=callbacks, epoch_callbacks=epoch_callbacks)

    def run_dir(self, cfg: RunConfig) -> Path:
        """The folder :meth:`load` (``load_or_train``) reads ``cfg``'s run from or trains it into."""
        return run_dir_for(cfg, self.preset, self.runs)

    def open_run(self, path: str = "", method: str = "clip-at", progress: bool | None = None):
        """The run an analysis notebook looks at, and its folder: the saved run folder ``path`` when given,
        else the shipped or trained run of ``method`` (``RunConfig(method=method)``: the default dataset,
        backbone and seed, its own backbone). Returns ``(LoadedRun, Path)``."""
        if path:
            return load_run(path), Path(path)
        cfg = RunConfig(method=method)
        run = load_or_train(cfg, preset=self.preset, out_root=self.runs,
                            progress=self.progress if progress is None else progress)
        return run, self.run_dir(cfg)

    def load_data(self):
        """``(index, parts)`` of the world the runs of this preset use (:attr:`data_preset`), on this
        notebook's dataset, backbone and seed (:func:`sbirlab.experiment.load_data`)."""
        return load_data(RunConfig(dataset=self.dataset or "synthetic", preset=self.data_preset,
                                   backbone=self.backbone_spec or "tiny-synthetic", seed=self.seed))

    # ------------------------------------------------------------------------------------ figures, timers
    def figure_path(self, suffix: str) -> Path:
        """``<out>/<notebook>_<suffix>.png``: the report shows a notebook's first figures by this name."""
        return self.out / f"{self.name}_{suffix}.png"

    def savefig(self, fig, suffix: str, dpi: int = 110) -> Path:
        """Save ``fig`` as :meth:`figure_path` (PNG, atomically); returns the path."""
        return atomic_write(self.figure_path(suffix), lambda f: fig.savefig(f, format="png", dpi=dpi))

    def elapsed(self) -> float:
        """Wall-clock seconds since :func:`setup`, rounded to 0.1 s."""
        return round(time.time() - self.t_start, 1)

    def cpu_elapsed(self) -> float:
        """CPU seconds of this process since :func:`setup`, rounded to 0.1 s."""
        return round(time.process_time() - self.t_cpu, 1)

    def timings(self, names: Sequence[str] = ("seconds", "cpu_seconds")) -> dict[str, float]:
        """``{name: value}`` for the :data:`TIMINGS` keys in ``names`` (a typo raises ``ValueError``)."""
        unknown = [n for n in names if n not in TIMINGS]
        if unknown:
            raise ValueError(f"unknown timing(s) {unknown}; known: {', '.join(TIMINGS)}")
        return {n: self.cpu_elapsed() if n == "cpu_seconds" else self.elapsed() for n in names}

    # --------------------------------------------------------------------------------------------- record
    def header(self) -> dict:
        """The identity every record starts with: notebook, preset, dataset / backbone (when given), seed."""
        head = {"notebook": self.name, "preset": self.preset}
        if self.dataset is not None:
            head["dataset"] = self.dataset
        if self.backbone_spec is not None:
            head["backbone"] = self.backbone_spec
        head["seed"] = self.seed
        return head

    def record(self, numbers: Mapping[str, Any], **kwargs) -> dict:
        """:func:`record` of this notebook (same arguments)."""
        return record(self, numbers, **kwargs)

    @property
    def record_path(self) -> Path:
        """``<out>/<notebook>.json``, the file :func:`record` writes."""
        return self.out / f"{self.name}.json"

    def __str__(self) -> str:
        """What the setup cell prints: name, preset, seed, device, folders, and the backbone."""
        where = f"outputs in {self.out.resolve()}"
        if self.runs_dir is not None or self._runs is not None:
            where += f", runs in {self.runs}"
        text = f"{self.name}: preset {self.preset}, seed {self.seed}, device {self.device}; {where}"
        if self._backbone is not None:  # never loads it just to print it
            text += f"\nbackbone {self.backbone_summary()}"
        elif self.backbone_spec is not None:
            text += f"\nbackbone {self.backbone_spec} (not loaded yet)"
        return text


def setup(name: str, *, preset: str = "default", out_dir: str = "", runs_dir: str | None = None, seed: int = 0,
          backbone: str | None = None, dataset: str | None = None, device: str = "auto",
          seed_all: bool = True) -> Notebook:
    """The start of every notebook, right after its ``parameters`` cell.

    Args:
        name: the notebook's stem (``"03_clip_baselines"``): the record is ``<out>/<name>.json``.
        preset: the ``PRESET`` parameter (``"ci"``, ``"default"``, ``"cpu"``, ``"paper"``).
        out_dir: the ``OUT_DIR`` parameter; ``""`` means the working directory (next to the notebook).
            The folder is created.
        runs_dir: the ``RUNS_DIR`` parameter of a notebook that trains or loads runs (``""``: the preset's
            default, see :attr:`Notebook.runs`, made now); ``None``: the notebook has no such parameter
            (a run folder is still made on first use).
        seed: the ``SEED`` parameter; ``random``, numpy and torch are seeded from it (``seed_all``).
        backbone: the ``BACKBONE`` parameter, if the notebook has one (then recorded, and loaded by
            :attr:`Notebook.backbone` on first use); ``None``: not recorded, the tiny CLIP when used.
        dataset: the ``DATASET`` parameter, if the notebook has one (then recorded).
        device: ``"auto"`` (cuda when present, else cpu) or a device string.
        seed_all: seed the generators now (:func:`sbirlab.train.loop.seed_everything`).

    Returns:
        the :class:`Notebook`; its timers start now.
    """
    if seed_all:
        seed_everything(seed)
    out = Path(out_dir) if out_dir else Path.cwd()
    out.mkdir(parents=True, exist_ok=True)
    nb = Notebook(name=name, preset=preset, seed=seed, out=out, runs_dir=runs_dir, backbone_spec=backbone,
                  dataset=dataset, device=resolve_device(device))
    if runs_dir is not None:
        nb.runs  # noqa: B018 - make the run folder now, as the notebooks always did
    return nb


def record(nb: Notebook, numbers: Mapping[str, Any], *, timings: Sequence[str] = ("seconds", "cpu_seconds"),
           figures: Mapping[str, Any] | None = None, indent: int | None = 1,
           default: Callable[[Any], Any] | None = None) -> dict:
    """Write the notebook's key numbers to ``<out>/<notebook>.json`` (atomically) and return them.

    The record is ``{**nb.header(), **numbers, **nb.timings(timings)}``: identity first, the timings last
    (a key of ``numbers`` overrides the header's). It must be JSON as it is (``json.dumps`` raises on a
    numpy array or a tensor: convert them), unless ``default`` converts what JSON cannot hold
    (``default=float`` for numpy scalars).

    Args:
        nb: the notebook (:func:`setup`).
        numbers: the key numbers, JSON-ready.
        timings: which of :data:`TIMINGS` to add (``()``: none).
        figures: ``{suffix: matplotlib figure}`` saved as ``<out>/<notebook>_<suffix>.png`` too.
        indent: of the JSON file.
        default: ``json.dumps``'s ``default``.
    """
    results = {**nb.header(), **numbers, **nb.timings(timings)}
    text = json.dumps(results, indent=indent, default=default)  # before writing anything: fail whole
    for suffix, fig in (figures or {}).items():
        nb.savefig(fig, suffix)
    atomic_write_text(nb.record_path, text)
    return results


def pick(metrics: Mapping[str, Any], keys: Iterable[str]) -> dict:
    """``{k: metrics[k]}`` for the ``keys`` that ``metrics`` has, in the order of ``keys``."""
    return {k: metrics[k] for k in keys if k in metrics}


def parse_list(text: str, convert: Callable[[str], Any] = str) -> list:
    """A comma-separated parameter (papermill passes plain strings) as a list: ``"0.1, 0.3"`` ->
    ``[0.1, 0.3]`` with ``convert=float``; items are stripped and empty ones dropped."""
    return [convert(x.strip()) for x in text.split(",") if x.strip()]


#: the metrics of the complete table's entries in a record (notebooks 06 and 07)
TABLE_KEYS: tuple[str, ...] = ("mAP@all", "mAP@200", "P@100", "P@200", "seen/mAP@all", "unseen/mAP@all",
                               "Acc@1", "Acc@5", "Acc@10", "wall_time_s", "train_steps", "derived_from")


def table_record(table_runs: Mapping[tuple[str, str], Mapping], methods: Sequence[str],
                 settings: Sequence[str] = ("zs", "gzs", "fg"), extra_runs: Sequence[Mapping] = ()) -> dict:
    """The complete results table as notebooks 06 and 07 record it.

    Args:
        table_runs: ``{(method, setting): metrics}`` of the table's runs.
        methods: the table's rows, in order.
        settings: the order of the settings in ``"runs"``.
        extra_runs: more run metrics for the report (ablations, each with its ``"variant"``).

    Returns:
        ``{"table_methods": [...], "table": {"<method>-<setting>": {TABLE_KEYS present}},
        "runs": [every table run, setting by setting, then extra_runs]}``: ``"runs"`` is what
        :func:`sbirlab.reports.collect_runs` puts in the report's table.
    """
    return {"table_methods": list(methods),
            "table": {f"{m}-{s}": pick(r, TABLE_KEYS) for (m, s), r in table_runs.items()},
            "runs": [table_runs[(m, s)] for s in settings for m in methods] + list(extra_runs)}
