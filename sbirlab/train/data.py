"""Training batches for SBIR: triplets from a class-balanced sampler, and image tensors.

A batch (dict) holds ``sketch`` ``[B, 3, H, W]``, ``photo`` (positive), ``photo_neg`` (negative),
``label`` / ``label_neg`` (ids into the training classes) and ``index`` (sketch item index).

* ``setting="zs"``: positive = a random photo of the sketch's class, negative = a random photo of
  another training class;
* ``setting="fg"``: positive = the sketch's paired photo (``Item.instance``), negative = another photo
  of the **same** class (the hard FG triplet).

:class:`ClassBalancedBatchSampler` fills each batch with ``classes_per_batch`` classes and the same
number of sketches from each (CLIP-AT's f-divergence and DP-CLIP's one-category batches need this;
``classes_per_batch=1`` gives DP-CLIP's one-category sampler, which :class:`~sbirlab.models.methods.dp_clip.DPCLIP`
asks for in FG through its ``batch_classes``). Every random choice is a pure function of
``(seed, epoch, position)``, so a resumed run sees exactly the batches an uninterrupted one would.

Data-parallel training (:mod:`sbirlab.train.distributed`): ``batch_size`` is the **global** batch.
Every rank draws the same global batch (same seed) and :meth:`TripletData.shard` makes each rank keep
a disjoint slice of it (:func:`shard_positions`): whole classes when ``classes_per_batch`` is a
multiple of the world size, else an equal share of every class. The triplet choices and the
augmentation are drawn for the whole global batch before slicing, so the union of the ranks' batches
is exactly the single-process batch.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.base import Item
from ..data.images import Preprocess, load_image

log = logging.getLogger(__name__)


class ImageLoader:
    """Decode items to normalised tensors at the backbone's size, with an optional uint8 memory cache.

    Bad files are skipped: the item is replaced by another readable item of the same list and counted;
    :meth:`report` logs one warning with the count.
    """

    def __init__(self, image_size: int | None = None, mean=None, std=None, cache: bool = True, root=None,
                 preprocess: Preprocess | None = None):
        if preprocess is None:
            if image_size is None or mean is None or std is None:
                raise TypeError("ImageLoader needs a preprocess (ImageLoader.for_backbone) or image_size, mean and std")
            preprocess = Preprocess(int(image_size), tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self.preprocess = preprocess
        self.size = preprocess.image_size
        self.mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(preprocess.std, dtype=torch.float32).view(3, 1, 1)
        self.cache = {} if cache else None
        self.root = root
        self.bad: set[str] = set()

    @classmethod
    def for_backbone(cls, backbone, cache: bool = True, root=None) -> "ImageLoader":
        """The loader of ``backbone``: its own :attr:`~sbirlab.models.backbone.Backbone.preprocess`."""
        return cls(cache=cache, root=root, preprocess=backbone.preprocess)

    def uint8(self, item: Item) -> torch.Tensor | None:
        key = f"{item.path}#{item.strokes}"
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        try:
            img = load_image(item, self.size, root=self.root)
        except (OSError, ValueError, SyntaxError):
            self.bad.add(key)
            return None
        t = self.preprocess.to_uint8(img)  # [3, H, W]
        if self.cache is not None:
            self.cache[key] = t
        return t

    def normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        return (x_u8.float() / 255.0 - self.mean.to(x_u8.device)) / self.std.to(x_u8.device)

    def load(self, item: Item, fallback: Sequence[Item] = ()) -> torch.Tensor:
        t = self.uint8(item)
        for alt in fallback:
            if t is not None:
                break
            t = self.uint8(alt)
        if t is None:
            raise OSError(f"no readable image among {item.path} and its {len(fallback)} fallbacks")
        return t

    def batch(self, items: Sequence[Item]) -> torch.Tensor:
        """Normalised ``[B, 3, H, W]``; an unreadable item is replaced by its neighbour (and counted)."""
        out = []
        for i, it in enumerate(items):
            out.append(self.load(it, [items[(i + k) % len(items)] for k in range(1, min(len(items), 8))]))
        return self.normalize(torch.stack(out))

    def report(self) -> int:
        if self.bad:
            log.warning("skipped %d unreadable image file(s) (e.g. %s)", len(self.bad), sorted(self.bad)[0])
        return len(self.bad)


def augment_draw(gen: torch.Generator, total: int, size: int) -> tuple[torch.Tensor, int, int]:
    """One random draw of :func:`augment`: per-row flips of a batch of ``total`` and one shift.

    Drawing once and applying the draw to several tensors keeps them spatially consistent (a sketch
    and its paired photo must be flipped and shifted alike, or fine-grained targets are wrong).
    """
    flip = torch.rand(total, generator=gen) < 0.5
    p = max(1, size // 16)
    dx, dy = (int(v) for v in torch.randint(0, 2 * p + 1, (2,), generator=gen))
    return flip, dx, dy


def augment(x: torch.Tensor, gen: torch.Generator | None, rows: Sequence[int] | None = None,
            total: int | None = None, draw: tuple[torch.Tensor, int, int] | None = None) -> torch.Tensor:
    """Light augmentation on a normalised batch: random horizontal flip and shift (<= 1/16 side).

    Args:
        x: ``[B, 3, H, W]``.
        gen: the batch's generator (used when ``draw`` is None).
        rows: when ``x`` holds only rows ``rows`` of a batch of ``total`` images (a data-parallel
            shard), the random draws are made for the whole batch and the shard's rows are used, so
            the shard is augmented exactly as in the full batch.
        total: size of the full batch (default ``B``).
        draw: a draw from :func:`augment_draw` to apply (to augment several tensors alike).
    """
    B, _, H, W = x.shape
    flip, dx, dy = draw if draw is not None else augment_draw(gen, total or B, H)
    if rows is not None:
        flip = flip[torch.as_tensor(list(rows), dtype=torch.long)]
    x = torch.where(flip.view(B, 1, 1, 1), x.flip(3), x)
    p = max(1, H // 16)
    return F.pad(x, (p, p, p, p), mode="replicate")[:, :, dy:dy + H, dx:dx + W]


def shard_positions(classes_per_batch: int, per_class: int, rank: int, world_size: int) -> list[int]:
    """Positions of rank ``rank``'s slice of a class-major global batch (``P`` classes x ``K`` items).

    The slices of the ``world_size`` ranks are disjoint, of equal size ``P * K / world_size``, and
    cover the batch. Each slice stays class-balanced:

    * ``P % world_size == 0``: each rank gets ``P / world_size`` **whole classes** (the per-class
      statistics of the batch, e.g. the f-divergence's ``B_c``, are those of the single-process run);
    * else ``K % world_size == 0``: each rank gets ``K / world_size`` items of **every** class;
    * else :class:`ValueError`.
    """
    P, K, W = int(classes_per_batch), int(per_class), int(world_size)
    if not 0 <= rank < W:
        raise ValueError(f"rank {rank} out of range for world size {W}")
    if W == 1:
        return list(range(P * K))
    if P % W == 0:
        per = P // W
        return list(range(rank * per * K, (rank + 1) * per * K))
    if K % W == 0:
        per = K // W
        return [c * K + rank * per + j for c in range(P) for j in range(per)]
    raise ValueError(f"cannot split batches of {P} classes x {K} items evenly over {W} ranks: make "
                     f"classes_per_batch or batch_size // classes_per_batch a multiple of {W}")


class ClassBalancedBatchSampler:
    """Batches of ``classes_per_batch`` classes x ``batch_size // classes_per_batch`` sketches.

    One epoch visits every class about ``len(sketches) / batch_size`` times, in a fresh random order
    per epoch (seeded by ``(seed, epoch)``).
    """

    def __init__(self, labels: Sequence[int], batch_size: int, classes_per_batch: int, seed: int = 0,
                 steps_per_epoch: int | None = None):
        self.by_class = defaultdict(list)
        for i, y in enumerate(labels):
            self.by_class[int(y)].append(i)
        self.classes = sorted(self.by_class)
        self.P = max(1, min(classes_per_batch, len(self.classes)))
        self.K = max(1, batch_size // self.P)
        self.seed = seed
        self.epoch = 0
        n = len(labels)
        self.steps = steps_per_epoch or max(1, n // (self.P * self.K))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    @property
    def global_batch_size(self) -> int:
        """Items per batch (``P * K``; can be below the requested ``batch_size``)."""
        return self.P * self.K

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        for _ in range(self.steps):
            cls = rng.choice(self.classes, self.P, replace=False)
            batch = []
            for c in cls:
                pool = self.by_class[int(c)]
                batch += rng.choice(pool, self.K, replace=len(pool) < self.K).tolist()
            yield batch


class TripletData:
    """Triplet batches over a training partition (see module docstring)."""

    def __init__(self, sketches: Sequence[Item], photos: Sequence[Item], classes: Sequence[str],
                 loader: ImageLoader, setting: str = "zs", batch_size: int = 32, classes_per_batch: int = 8,
                 seed: int = 0, steps_per_epoch: int | None = None, do_augment: bool = True):
        if setting not in ("zs", "fg"):
            raise ValueError(f"setting must be 'zs' or 'fg', got {setting!r}")
        self.setting = setting
        self.classes = list(classes)
        cidx = {c: i for i, c in enumerate(self.classes)}
        self.sketches = [s for s in sketches if s.label in cidx]
        self.photos = [p for p in photos if p.label in cidx]
        self.photos_by_class = defaultdict(list)
        for j, p in enumerate(self.photos):
            self.photos_by_class[p.label].append(j)
        self.photo_by_instance = {p.instance: j for j, p in enumerate(self.photos) if p.instance}
        if setting == "fg":
            before = len(self.sketches)
            self.sketches = [s for s in self.sketches if s.instance in self.photo_by_instance]
            if len(self.sketches) < before:
                log.info("fg: %d sketch(es) without a paired photo left out", before - len(self.sketches))
        if not self.sketches:
            raise ValueError("no training sketches (check the split and the dataset)")
        missing = [c for c in self.classes if not self.photos_by_class.get(c)]
        if missing:
            raise ValueError(f"training classes without photos: {missing[:10]}")
        self.labels = [cidx[s.label] for s in self.sketches]
        self.loader = loader
        self.seed = seed
        self.do_augment = do_augment
        self.sampler = ClassBalancedBatchSampler(self.labels, batch_size, classes_per_batch, seed, steps_per_epoch)
        self.cidx = cidx
        self.rank, self.world_size = 0, 1
        self._rows: list[int] | None = None
        #: total optimiser steps of the run; when set, every batch carries ``progress`` (a float tensor,
        #: ``global step / total_steps``, a pure function of ``(epoch, step)``: exact on resume) for
        #: schedules inside a method's loss (DP-CLIP's curriculum of hard negatives)
        self.total_steps: int | None = None

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def shard(self, rank: int, world_size: int) -> "TripletData":
        """Keep only rank ``rank``'s slice of every global batch (see :func:`shard_positions`).

        Every rank iterates the same number of batches; ``shard(0, 1)`` undoes the sharding.
        Returns ``self``.
        """
        rows = shard_positions(self.sampler.P, self.sampler.K, rank, world_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self._rows = None if world_size == 1 else rows
        return self

    def _triplet(self, i: int, rng: np.random.Generator) -> tuple[int, int, int]:
        s = self.sketches[i]
        same = self.photos_by_class[s.label]
        if self.setting == "zs":
            pos = int(rng.choice(same))
            others = [c for c in self.classes if c != s.label]
            neg_cls = others[int(rng.integers(len(others)))] if others else s.label
            neg = int(rng.choice(self.photos_by_class[neg_cls]))
        else:
            pos = self.photo_by_instance[s.instance]
            cand = [j for j in same if j != pos] or same
            neg = int(rng.choice(cand))
        return i, pos, neg

    def __iter__(self):
        epoch = self.sampler.epoch
        rows = self._rows
        for step, idx in enumerate(self.sampler):
            rng = np.random.default_rng([self.seed, epoch, step, 11])
            trip = [self._triplet(i, rng) for i in idx]  # drawn for the whole global batch
            gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
            if rows is not None:  # this rank's slice (data-parallel)
                trip = [trip[r] for r in rows]
            sk = self.loader.batch([self.sketches[i] for i, _, _ in trip])
            ph = self.loader.batch([self.photos[p] for _, p, _ in trip])
            ng = self.loader.batch([self.photos[n] for _, _, n in trip])
            if self.do_augment:
                # a sketch and its paired photo share one draw (same flip and shift); the negative has its own
                pair = augment_draw(gen, len(idx), sk.shape[-1])
                sk, ph = augment(sk, None, rows, draw=pair), augment(ph, None, rows, draw=pair)
                ng = augment(ng, gen, rows, len(idx))
            extra = {} if not self.total_steps else \
                {"progress": torch.tensor((epoch * len(self) + step) / self.total_steps, dtype=torch.float32)}
            yield {
                **extra,
                "sketch": sk, "photo": ph, "photo_neg": ng,
                "label": torch.tensor([self.labels[i] for i, _, _ in trip]),
                "label_neg": torch.tensor([self.cidx[self.photos[n].label] for _, _, n in trip]),
                "index": torch.tensor([i for i, _, _ in trip]),
                "photo_index": torch.tensor([q for _, q, _ in trip]),
                "photo_neg_index": torch.tensor([n for _, _, n in trip]),
            }
