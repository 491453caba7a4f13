"""Zero-shot class splits, read from the split files shipped in ``data/splits/``.

The files hold one class name per line (line order = the label ids of the public zero-shot file
lists); see ``data/splits/README.md`` for their sources. A split is a :class:`ZSSplit`: seen classes
(training), unseen classes (test) and validation classes, a subset of the seen ones held out for
model selection. For the real datasets the validation classes are drawn from the seen ones with
:func:`sbirlab.data.base.draw_val_classes` (10%, at least 2, seed 0); the synthetic world ships its own
``splits/synthetic_val.txt``.

Named splits (:func:`available_splits`):

=====================  ==========  ===========  =================================================
name                   dataset     seen/unseen  source
=====================  ==========  ===========  =================================================
sketchy_yelamarthi21   sketchy     104 / 21     Yelamarthi et al., ECCV 2018 ("Sketchy-2")
sketchy_shen25         sketchy     100 / 25     Shen et al., CVPR 2018, list released with SAKE
tuberlin_30            tuberlin    220 / 30     Shen et al. protocol, list released with SAKE
quickdraw_30           quickdraw   80 / 30      Dey et al., CVPR 2019 (Doodle2Search)
sketchy_fg21           sketchy_fg  104 / 21     the Yelamarthi classes on Sketchy basic (FG)
sketchy_fg25           sketchy_fg  100 / 25     the Shen/SAKE classes on Sketchy basic (FG)
synthetic_zs           synthetic   from tree    ``<synthetic root>/splits/synthetic_*.txt``
=====================  ==========  ===========  =================================================

The folder is ``<repo>/data/splits`` (found relative to the installed package), or the directory
named by the environment variable ``SBIRLAB_SPLITS_DIR``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .base import DatasetError, DatasetIndex, UnknownNameError, ZSSplit, align_split, draw_val_classes

SPLITS_ENV = "SBIRLAB_SPLITS_DIR"

#: Validation classes drawn from the seen classes of the real datasets (see module docstring).
VAL_FRACTION = 0.1
VAL_SEED = 0


@dataclass(frozen=True)
class SplitSpec:
    """Where a named split lives. ``dataset`` is the dataset family it is defined on."""

    dataset: str
    seen: str
    unseen: str
    val: str | None = None
    description: str = ""


SPLITS: dict[str, SplitSpec] = {
    "sketchy_yelamarthi21": SplitSpec(
        "sketchy", "sketchy_ext_seen_yelamarthi104.txt", "sketchy_ext_unseen_yelamarthi21.txt",
        description="Sketchy Extended 104/21 (Yelamarthi et al. ECCV 2018, 'Sketchy-2')"),
    "sketchy_shen25": SplitSpec(
        "sketchy", "sketchy_ext_seen_shen100.txt", "sketchy_ext_unseen_shen25.txt",
        description="Sketchy Extended 100/25 (Shen et al. CVPR 2018 protocol, SAKE list, 'Sketchy-1')"),
    "tuberlin_30": SplitSpec(
        "tuberlin", "tuberlin_ext_seen220.txt", "tuberlin_ext_unseen30.txt",
        description="TU-Berlin Extended 220/30 (Shen et al. protocol, SAKE list)"),
    "quickdraw_30": SplitSpec(
        "quickdraw", "quickdraw_ext_seen80.txt", "quickdraw_ext_unseen30.txt",
        description="QuickDraw Extended 80/30 (Dey et al. CVPR 2019, Doodle2Search)"),
    "sketchy_fg21": SplitSpec(
        "sketchy_fg", "sketchy_ext_seen_yelamarthi104.txt", "sketchy_ext_unseen_yelamarthi21.txt",
        description="Sketchy FG, the 21 unseen classes of Yelamarthi et al."),
    "sketchy_fg25": SplitSpec(
        "sketchy_fg", "sketchy_ext_seen_shen100.txt", "sketchy_ext_unseen_shen25.txt",
        description="Sketchy FG, the 25 unseen classes of the Shen/SAKE list"),
    "synthetic_zs": SplitSpec(
        "synthetic", "synthetic_seen.txt", "synthetic_unseen.txt", "synthetic_val.txt",
        description="the synthetic world's own split (files in <synthetic root>/splits/)"),
}

#: The default split of every dataset.
DEFAULT_SPLITS: dict[str, str] = {
    "synthetic": "synthetic_zs",
    "sketchy": "sketchy_yelamarthi21",
    "tuberlin": "tuberlin_30",
    "quickdraw": "quickdraw_30",
    "sketchy_fg": "sketchy_fg21",
}

#: All classes of each real dataset, spelled as in its folders (used to canonicalise folder names).
ALL_CLASSES: dict[str, str] = {
    "sketchy": "sketchy_all125.txt",
    "sketchy_fg": "sketchy_all125.txt",
    "tuberlin": "tuberlin_all250.txt",
    "quickdraw": "quickdraw_ext_all110.txt",
}

# Datasets with the same classes: their splits are interchangeable.
_FAMILY = {"sketchy": "sketchy", "sketchy_fg": "sketchy", "tuberlin": "tuberlin",
           "quickdraw": "quickdraw", "synthetic": "synthetic"}


def splits_dir() -> Path:
    """The folder of the split files: ``$SBIRLAB_SPLITS_DIR`` or ``<repo>/data/splits``."""
    env = os.environ.get(SPLITS_ENV)
    if env:
        return Path(env).expanduser()
    import sbirlab

    return Path(sbirlab.__file__).resolve().parent.parent / "data" / "splits"


def available_splits(dataset: str | None = None) -> list[str]:
    """Names of the known splits (those usable with ``dataset`` if given)."""
    if dataset is None:
        return list(SPLITS)
    fam = _FAMILY.get(dataset, dataset)
    return [n for n, s in SPLITS.items() if _FAMILY.get(s.dataset) == fam]


def read_class_list(path: str | Path, allow_empty: bool = False) -> list[str]:
    """Read a class-list file: one name per line; blank lines and ``#`` comments skipped.

    Raises:
        DatasetError: if the file is missing, empty (unless ``allow_empty``) or repeats a class
            (naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file not found: {path} (set {SPLITS_ENV} to the folder of the "
                           f"split files, or restore data/splits/ in the repository)")
    names, seen_at = [], {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name in seen_at:
            raise DatasetError(f"{path}: line {n}: class {name!r} repeats line {seen_at[name]}")
        seen_at[name] = n
        names.append(name)
    if not names and not allow_empty:
        raise DatasetError(f"split file {path} lists no classes")
    return names


def all_classes(dataset: str) -> list[str]:
    """Every class of a real dataset, sorted, as spelled in its folders and split files."""
    if dataset not in ALL_CLASSES:
        raise UnknownNameError(f"no class list for dataset {dataset!r}; known: {sorted(ALL_CLASSES)}")
    return sorted(read_class_list(splits_dir() / ALL_CLASSES[dataset]))


def make_split(name: str, seen, unseen, val=None, *, val_fraction: float = VAL_FRACTION,
               seed: int = VAL_SEED) -> ZSSplit:
    """Build a checked :class:`ZSSplit`; ``val=None`` draws the validation classes from ``seen``.

    Raises:
        DatasetError: if seen and unseen overlap or a validation class is not a seen class.
    """
    seen, unseen = tuple(seen), tuple(unseen)
    overlap = sorted(set(seen) & set(unseen))
    if overlap:
        raise DatasetError(f"split {name!r}: classes both seen and unseen: {overlap[:10]}")
    if val is None:
        val = draw_val_classes(seen, fraction=val_fraction, seed=seed) if val_fraction > 0 else ()
    val = tuple(val)
    stray = sorted(set(val) - set(seen))
    if stray:
        raise DatasetError(f"split {name!r}: validation classes must be seen classes; not seen: {stray[:10]}")
    return ZSSplit(name=name, seen=seen, unseen=unseen, val=val)


def split_from_files(name: str, seen_file, unseen_file, val_file=None, *,
                     val_fraction: float = VAL_FRACTION, seed: int = VAL_SEED) -> ZSSplit:
    """A split from your own class-list files (same format as ``data/splits/*.txt``)."""
    val = read_class_list(val_file, allow_empty=True) if val_file is not None else None
    return make_split(name, read_class_list(seen_file), read_class_list(unseen_file), val,
                      val_fraction=val_fraction, seed=seed)


def _synthetic_root(dataset) -> Path:
    if isinstance(dataset, DatasetIndex):
        return Path(dataset.root)
    if isinstance(dataset, (str, Path)) and dataset != "synthetic":
        return Path(dataset)
    import importlib

    return Path(importlib.import_module("sbirlab.data.synthetic").ensure_dataset(root=None))


def load_split(name: str, dataset=None, *, val_fraction: float = VAL_FRACTION,
               seed: int = VAL_SEED) -> ZSSplit:
    """Load a named zero-shot split (see the module docstring for the names).

    Args:
        name: a split name from :func:`available_splits`.
        dataset: optional. A dataset name (checked: the split must be defined on that dataset's
            classes), or a :class:`DatasetIndex` (checked likewise; class names are then respelled
            as the dataset's folders spell them, e.g. ``palm_tree`` -> ``palm tree``). For
            ``synthetic_zs`` this tells where the synthetic tree is: its index or its root path;
            ``None`` calls ``sbirlab.data.synthetic.ensure_dataset()``.
        val_fraction, seed: how validation classes are drawn from the seen ones (real datasets).

    Raises:
        UnknownNameError: unknown split name (the message lists the available ones), or a split
            that belongs to another dataset.
        DatasetError: a split file is missing or malformed.
    """
    if name not in SPLITS:
        raise UnknownNameError(f"unknown split {name!r}; available splits: {', '.join(SPLITS)}")
    spec = SPLITS[name]
    ds_name = dataset.name if isinstance(dataset, DatasetIndex) else dataset
    if isinstance(ds_name, str) and ds_name in _FAMILY and _FAMILY[ds_name] != _FAMILY[spec.dataset]:
        raise UnknownNameError(f"split {name!r} is defined on dataset {spec.dataset!r}, not {ds_name!r}; "
                               f"splits for {ds_name!r}: {', '.join(available_splits(ds_name))}")
    if spec.dataset == "synthetic":
        folder = _synthetic_root(dataset) / "splits"
        val_path = folder / spec.val
        split = split_from_files(name, folder / spec.seen, folder / spec.unseen,
                                 val_path if val_path.is_file() else None,
                                 val_fraction=val_fraction, seed=seed)
    else:
        folder = splits_dir()
        split = split_from_files(name, folder / spec.seen, folder / spec.unseen,
                                 val_fraction=val_fraction, seed=seed)
    if isinstance(dataset, DatasetIndex):
        split = align_split(split, dataset.classes)
    return split
