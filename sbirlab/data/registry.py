"""One entry point for every dataset: ``load_dataset(name)``, its default split, and a summary.

Datasets: ``synthetic`` (the offline world), ``sketchy`` (Sketchy Extended), ``tuberlin``
(TU-Berlin Extended), ``quickdraw`` (QuickDraw Extended), ``sketchy_fg`` (Sketchy basic, FG).

Default roots, when ``root`` is not given:

- ``$SBIRLAB_DATA/<dir>`` if the environment variable ``SBIRLAB_DATA`` is set, else
  ``<repo>/data/<dir>`` (the ``data/`` folder next to the ``sbirlab`` package; ``./data`` when the
  package is installed elsewhere);
- ``<dir>`` is the first existing of the names in :data:`ROOT_DIRS` (e.g. ``sketchy`` or ``Sketchy``;
  ``sketchy_fg`` falls back to the ``sketchy`` folder, which holds the basic photos in both the
  Sketchy release and the SEM-PCYC download), else the dataset name;
- ``synthetic``: ``$SBIRLAB_DATA/synthetic`` if ``SBIRLAB_DATA`` is set, else ``root=None`` is passed
  to ``sbirlab.data.synthetic.ensure_dataset`` (its own default, ``data/synthetic``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from . import folders
from .base import DatasetIndex, UnknownNameError, ZSSplit, align_split, make_partitions
from .splits import DEFAULT_SPLITS, load_split

DATA_ENV = "SBIRLAB_DATA"

#: name -> loader(root, **kw)
LOADERS: dict[str, Callable[..., DatasetIndex]] = {
    "synthetic": folders.load_synthetic,
    "sketchy": folders.load_sketchy,
    "tuberlin": folders.load_tuberlin,
    "quickdraw": folders.load_quickdraw,
    "sketchy_fg": folders.load_sketchy_fg,
}

#: Folder names tried under the data folder, in order, for the default root.
ROOT_DIRS: dict[str, tuple[str, ...]] = {
    "synthetic": ("synthetic",),
    "sketchy": ("sketchy", "Sketchy"),
    "tuberlin": ("tuberlin", "TU-Berlin", "TUBerlin"),
    "quickdraw": ("quickdraw", "QuickDraw"),
    "sketchy_fg": ("sketchy_fg", "sketchy", "Sketchy"),
}

_ALIASES = {"tu_berlin": "tuberlin", "tu-berlin": "tuberlin", "sketchy-fg": "sketchy_fg",
            "sketchyfg": "sketchy_fg", "sketchy_ext": "sketchy", "quickdraw_ext": "quickdraw"}


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` accepts."""
    return list(LOADERS)


def canonical_name(name: str) -> str:
    """``"TU-Berlin"`` -> ``"tuberlin"`` etc.; raises :class:`UnknownNameError` listing the names."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LOADERS:
        raise UnknownNameError(f"unknown dataset {name!r}; available datasets: {', '.join(LOADERS)}")
    return key


def data_dir() -> Path:
    """``$SBIRLAB_DATA``, else ``<repo>/data`` (``./data`` if the package is not in a checkout)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import sbirlab

    repo_data = Path(sbirlab.__file__).resolve().parent.parent / "data"
    return repo_data if (repo_data / "splits").is_dir() else Path.cwd() / "data"


def default_root(name: str) -> Path | None:
    """Where :func:`load_dataset` looks when no root is given (see the module docstring)."""
    name = canonical_name(name)
    if name == "synthetic" and not os.environ.get(DATA_ENV):
        return None
    base = data_dir()
    for d in ROOT_DIRS[name]:
        if (base / d).exists():
            return base / d
    return base / ROOT_DIRS[name][0]


def load_dataset(name: str, root=None, **kw) -> DatasetIndex:
    """Index a dataset by name.

    Args:
        name: one of :func:`dataset_names` (``"TU-Berlin"``-style spellings accepted).
        root: its folder; default :func:`default_root`.
        **kw: passed to the loader (e.g. ``classes=[...]``, ``layout="flat"``,
            ``sketch_source="ndjson"``, ``max_per_class=3000``); see :mod:`sbirlab.data.folders`.

    Raises:
        UnknownNameError: unknown dataset name.
        DatasetError: the data is missing or malformed (the message names the path and the
            expected layout).
    """
    name = canonical_name(name)
    if root is None:
        root = default_root(name)
    return LOADERS[name](root, **kw)


def get_split(dataset_name: str, split: str | ZSSplit | None = None, *, index: DatasetIndex | None = None,
              root=None) -> ZSSplit:
    """The zero-shot split of a dataset: ``split`` by name, or the dataset's default.

    Defaults: sketchy ``sketchy_yelamarthi21``, tuberlin ``tuberlin_30``, quickdraw ``quickdraw_30``,
    sketchy_fg ``sketchy_fg21``, synthetic ``synthetic_zs``. With ``index`` the class names are
    respelled as the dataset's folders spell them; for ``synthetic`` the split files are read from
    ``index.root`` (or ``root``, or the default synthetic tree).
    """
    name = canonical_name(dataset_name)
    if isinstance(split, ZSSplit):
        return align_split(split, index.classes) if index is not None else split
    split = split or DEFAULT_SPLITS[name]
    if index is not None:
        return load_split(split, dataset=index)
    if name == "synthetic":
        r = root if root is not None else default_root(name)
        return load_split(split, dataset=r if r is not None else "synthetic")
    return load_split(split, dataset=name)


def data_summary(dataset: str | DatasetIndex, root=None, split: str | ZSSplit | None = None,
                 **load_kw) -> dict:
    """Class and item counts of a dataset and of the four partitions of a split.

    Args:
        dataset: a dataset name (loaded with :func:`load_dataset`) or an already loaded index.
        root: the dataset folder (names only).
        split: a split name or :class:`ZSSplit`; default the dataset's default split.
        **load_kw: passed to :func:`load_dataset`.

    Returns:
        ``{"dataset", "root", "layout", "split", "split_classes": {"seen", "unseen", "val"},
        "totals": {"classes", "sketches", "photos"}, "train": {"sketches": {"classes", "items"},
        "photos": {...}}, "val": {...}, "test_queries": {"classes", "items"},
        "test_gallery": {...}}`` (JSON-serialisable).

    Raises:
        DatasetError: as :func:`load_dataset`; or the split names classes the dataset lacks.
    """
    index = dataset if isinstance(dataset, DatasetIndex) else load_dataset(dataset, root, **load_kw)
    if isinstance(split, ZSSplit):
        zs = align_split(split, index.classes)
    elif index.name in LOADERS:
        zs = get_split(index.name, split, index=index)
    elif split is not None:
        zs = load_split(split, dataset=index)
    else:
        raise UnknownNameError(f"dataset {index.name!r} has no default split; pass split=... "
                               f"(a ZSSplit or one of the named splits)")
    counts = make_partitions(index, zs).counts()
    out = {
        "dataset": index.name,
        "root": index.root,
        "layout": index.meta.get("layout", ""),
        "split": zs.name,
        "split_classes": {"seen": len(zs.seen), "unseen": len(zs.unseen), "val": len(zs.val)},
        "totals": {"classes": len(index.classes), "sketches": len(index.sketches),
                   "photos": len(index.photos)},
    }
    out.update({k: v for k, v in counts.items() if k != "split"})
    return out
