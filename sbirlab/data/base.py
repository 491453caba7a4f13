"""The dataset index every loader returns, and the zero-shot partitions built from it.

A loader (synthetic world, Sketchy, TU-Berlin, QuickDraw, Sketchy FG) only has to list files:
:class:`DatasetIndex` holds one :class:`Item` per sketch and per photo. Splits are class lists
(:class:`ZSSplit`); :func:`make_partitions` turns index + split into the four partitions every
experiment uses: ``train`` (seen classes minus validation classes), ``val`` (held-out **seen**
classes, for model selection; never the test classes), ``test_queries`` (unseen sketches) and
``test_gallery`` (unseen photos).
"""
from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass, field, replace


class DatasetError(RuntimeError):
    """A dataset is missing, malformed or does not match its split. The message names the path."""


class UnknownNameError(DatasetError, ValueError):
    """An unknown dataset or split name. The message lists the known names."""


_SEPARATORS = re.compile(r"[\s_\-]+")


def class_key(name: str) -> str:
    """Spelling-insensitive key of a class name, for matching split names to folder names.

    Lower case; parentheses dropped; runs of spaces, underscores and hyphens become one space. So
    ``palm_tree`` / ``palm tree``, ``hot-air_balloon`` / ``hot air balloon`` and ``car_(sedan)`` /
    ``car_sedan`` share a key (the naming caveats of the public split lists, data/splits/README.md).
    """
    s = name.strip().lower().replace("(", " ").replace(")", " ")
    return _SEPARATORS.sub(" ", s).strip()


@dataclass(frozen=True)
class Item:
    """One image on disk.

    Attributes:
        path: file path (absolute, or relative to the dataset root).
        label: class name, spelled as in the split files.
        modality: ``"sketch"`` or ``"photo"``.
        instance: the photo id this item belongs to (a photo's own stem; for a sketch, the stem of its
            paired photo, e.g. ``n02691156_58`` for ``n02691156_58-1.png``); ``""`` when unpaired.
        strokes: index of the item's stroke record (QuickDraw / synthetic), or ``-1``.
    """

    path: str
    label: str
    modality: str
    instance: str = ""
    strokes: int = -1


@dataclass
class DatasetIndex:
    """All items of a dataset. ``classes`` is sorted; class ids are positions in it."""

    name: str
    root: str
    classes: list[str]
    sketches: list[Item]
    photos: list[Item]
    meta: dict = field(default_factory=dict)

    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}


@dataclass(frozen=True)
class ZSSplit:
    """A zero-shot class split. ``val`` is a subset of ``seen`` held out from training."""

    name: str
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    val: tuple[str, ...] = ()

    @property
    def train(self) -> tuple[str, ...]:
        v = set(self.val)
        return tuple(c for c in self.seen if c not in v)


def draw_val_classes(seen, fraction: float = 0.1, minimum: int = 2, seed: int = 0) -> tuple[str, ...]:
    """Hold out ``fraction`` of the seen classes (at least ``minimum``) for validation, reproducibly."""
    seen = sorted(seen)
    n = max(minimum, round(fraction * len(seen)))
    return tuple(sorted(random.Random(seed).sample(seen, n)))


@dataclass
class Partitions:
    """The four partitions of a zero-shot experiment (see module docstring)."""

    train_sketches: list[Item]
    train_photos: list[Item]
    val_sketches: list[Item]
    val_photos: list[Item]
    test_queries: list[Item]
    test_gallery: list[Item]
    split: ZSSplit

    def counts(self) -> dict:
        """Class and item counts of every partition (what ``sbirlab data summary`` prints)."""
        def c(items):
            return {"classes": len({i.label for i in items}), "items": len(items)}
        return {
            "split": self.split.name,
            "train": {"sketches": c(self.train_sketches), "photos": c(self.train_photos)},
            "val": {"sketches": c(self.val_sketches), "photos": c(self.val_photos)},
            "test_queries": c(self.test_queries),
            "test_gallery": c(self.test_gallery),
        }


def check_split(index: DatasetIndex, split: ZSSplit) -> None:
    """Raise :class:`DatasetError` if the split names a class the dataset does not have."""
    have = set(index.classes)
    missing = [c for c in (*split.seen, *split.unseen) if c not in have]
    if missing:
        hints = []
        keys = {class_key(c): c for c in index.classes}
        for c in missing[:5]:
            close = difflib.get_close_matches(class_key(c), list(keys), n=2, cutoff=0.75)
            if close:
                hints.append(f"{c!r} -> did you mean {', '.join(repr(keys[k]) for k in close)}?")
        parts = []
        for role, names in (("unseen", split.unseen), ("seen", split.seen)):
            miss = [c for c in names if c not in have]
            if miss:
                parts.append(f"{len(miss)} of {len(names)} {role}: {miss[:10]}{' ...' if len(miss) > 10 else ''}")
        raise DatasetError(
            f"split {split.name!r} names {len(missing)} class(es) missing from dataset {index.name!r} "
            f"at {index.root} (which has {len(index.classes)} class folders): {'; '.join(parts)}"
            + (f"; {'; '.join(hints)}" if hints else "")
            + ". Check that the root holds the whole dataset and that the split belongs to it.")
    overlap = set(split.seen) & set(split.unseen)
    if overlap:
        raise DatasetError(f"split {split.name!r}: classes both seen and unseen: {sorted(overlap)[:10]}")


def align_split(split: ZSSplit, classes) -> ZSSplit:
    """Respell the class names of ``split`` as the dataset spells them (matched by :func:`class_key`).

    Names with no counterpart in ``classes`` are kept as they are, so :func:`check_split` still
    reports them. Returns ``split`` itself when nothing changes.
    """
    have = set(classes)
    keys = {class_key(c): c for c in classes}

    def fix(names):
        return tuple(c if c in have else keys.get(class_key(c), c) for c in names)

    new = replace(split, seen=fix(split.seen), unseen=fix(split.unseen), val=fix(split.val))
    return split if new == split else new


def make_partitions(index: DatasetIndex, split: ZSSplit) -> Partitions:
    """Partition ``index`` by the class lists of ``split`` (checked against the dataset first)."""
    check_split(index, split)
    train, val, unseen = set(split.train), set(split.val), set(split.unseen)
    pick = lambda items, keep: [i for i in items if i.label in keep]  # noqa: E731
    return Partitions(
        train_sketches=pick(index.sketches, train), train_photos=pick(index.photos, train),
        val_sketches=pick(index.sketches, val), val_photos=pick(index.photos, val),
        test_queries=pick(index.sketches, unseen), test_gallery=pick(index.photos, unseen),
        split=split)


# --------------------------------------------------------------------------------------------------
# training-data restriction (the generalisation sweeps of sbirlab.generalisation)


def _nested_order(keys, seed: int, salt: str) -> list[str]:
    """A fixed random order of ``keys`` (sorted first), so prefixes of it are nested subsets."""
    import zlib

    import numpy as np

    keys = sorted(keys)
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    return [keys[i] for i in rng.permutation(len(keys))]


def restrict_training(parts, train_fraction: float = 1.0, train_classes: int | None = None, seed: int = 0):
    """Keep part of the training partition; validation and test partitions are returned unchanged.

    Args:
        parts: :class:`~sbirlab.data.base.Partitions`.
        train_fraction: fraction of each training class's photos to keep (``ceil``, at least one), with
            the sketches drawn from them (paired sketches follow their photo; unpaired sketches are
            subsampled with the same fraction).
        train_classes: number of training (seen) classes to keep, at least 2 (a triplet needs a negative
            class); ``None`` = all.
        seed: the draw; subsets of one seed are nested across fractions and class counts.

    Returns:
        New :class:`~sbirlab.data.base.Partitions` (the split object is kept as it is: it names the
        dataset's seen classes, some of which may now be unused).

    Raises:
        ValueError: a fraction outside ``(0, 1]``, or a class count outside ``[2, #training classes]``.
    """
    import math

    if not (isinstance(train_fraction, (int, float)) and 0.0 < float(train_fraction) <= 1.0):
        raise ValueError(f"data option train_fraction must be in (0, 1], got {train_fraction!r}")
    classes = sorted({i.label for i in parts.train_sketches} | {i.label for i in parts.train_photos})
    keep_classes = set(classes)
    if train_classes is not None:
        n = int(train_classes)
        if n != train_classes or not 2 <= n <= len(classes):
            raise ValueError(f"data option train_classes must be an integer in [2, {len(classes)}] (the training "
                             f"classes of split {parts.split.name!r}), got {train_classes!r}")
        keep_classes = set(_nested_order(classes, seed, "classes")[:n])
    photos, sketches = [], []
    by_cls_ph: dict[str, list] = {}
    for p in parts.train_photos:
        if p.label in keep_classes:
            by_cls_ph.setdefault(p.label, []).append(p)
    by_cls_sk: dict[str, list] = {}
    for s in parts.train_sketches:
        if s.label in keep_classes:
            by_cls_sk.setdefault(s.label, []).append(s)
    f = float(train_fraction)
    for c in sorted(keep_classes):
        ph = by_cls_ph.get(c, [])
        by_path = {p.path: p for p in ph}
        order = _nested_order(list(by_path), seed, f"photos/{c}")
        kept = [by_path[k] for k in order[:max(1, math.ceil(f * len(order)))]] if order else []
        kept_ids = {p.instance for p in kept if p.instance}
        photos += sorted(kept, key=lambda p: p.path)
        sk = by_cls_sk.get(c, [])
        photo_ids = {p.instance for p in ph if p.instance}
        paired = [s for s in sk if s.instance and s.instance in photo_ids]
        unpaired = [s for s in sk if not (s.instance and s.instance in photo_ids)]
        sketches += [s for s in paired if s.instance in kept_ids]
        if unpaired:
            u = {s.path: s for s in unpaired}
            uo = _nested_order(list(u), seed, f"sketches/{c}")
            sketches += [u[k] for k in uo[:max(1, math.ceil(f * len(uo)))]]
    sketches.sort(key=lambda s: (s.label, s.path))
    return replace(parts, train_sketches=sketches, train_photos=photos)
