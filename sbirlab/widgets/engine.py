"""Retrieval behind the sketch widget: galleries, their cached embeddings, and one query per stroke.

On-the-fly retrieval (Bhunia et al., *Sketch Less for More: On-the-Fly Fine-Grained Sketch Based Image
Retrieval*, CVPR 2020) asks how few strokes are enough; the widget answers it live by querying after
every stroke. That only feels live if a query is cheap, so the expensive part is done once:

* :class:`Gallery`: the photos to search, from a dataset partition (the unseen classes of the
  synthetic world) or from any folder of images (:meth:`Gallery.from_folder`); its
  :meth:`~Gallery.fingerprint` hashes the files' **content**.
* :class:`GalleryCache`: the gallery's photo embeddings, stored with the run (``<run>/gallery_cache/``)
  in one ``.npz`` per (run, gallery) pair, keyed by a hash of the method's weights and the gallery
  fingerprint, written atomically (tmp + ``os.replace``). A changed photo or a retrained run gives a
  new key, never a stale result.
* :class:`RetrievalEngine`: rasterise the strokes (:class:`~sbirlab.widgets.raster.StrokeModel`, the
  dataset's rasteriser), encode one sketch, one matrix-vector product with the cached photo embeddings,
  top-k, and the zero-shot class guess from CLIP's text encoder (cosine to "a photo of a {class}." at
  CLIP's temperature, as in CLIP's zero-shot classifier). No ipywidgets here: everything is testable
  without a kernel, and :func:`stroke_by_stroke` replays recorded strokes for the notebook's analysis.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..data.base import Item
from ..data.images import load_image
from ..io import atomic_savez
from .raster import CANVAS, StrokeModel

log = logging.getLogger(__name__)

#: File name endings a folder gallery looks at (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CACHE_FORMAT = 1


class GalleryError(ValueError):
    """A gallery cannot be used: missing folder, no image files, no readable image. Names the folder."""


# ---------------------------------------------------------------------------------------------- gallery
@dataclass
class Gallery:
    """Photos to search.

    Attributes:
        name: shown in the widget.
        items: the photos (:class:`~sbirlab.data.base.Item`, absolute paths); ``label`` is the class
            (the sub-folder of a folder gallery, ``""`` for loose files).
        source: where the photos come from (a folder, a dataset partition), for messages.
    """

    name: str
    items: list
    source: str = ""

    @classmethod
    def from_items(cls, items: Sequence[Item], name: str, source: str = "") -> "Gallery":
        """A gallery of dataset photos (e.g. ``run.parts.test_gallery``, the unseen classes)."""
        items = [it for it in items if it.modality == "photo"] or list(items)
        if not items:
            raise GalleryError(f"gallery {name!r} has no photos")
        return cls(name, list(items), source or name)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, name: str | None = None,
                    max_images: int | None = None) -> "Gallery":
        """Every image file under ``folder`` (recursively, sorted); the first sub-folder is the class.

        Raises:
            GalleryError: the folder does not exist, is not a folder, or holds no image file. (Files that
                do not decode are found when the embeddings are computed, see :meth:`RetrievalEngine.set_gallery`.)
        """
        raw = str(folder).strip()
        if not raw:
            raise GalleryError("no gallery folder given: type the path of a folder of photos")
        root = Path(raw).expanduser()
        if not root.exists():
            raise GalleryError(f"gallery folder {root} does not exist")
        if not root.is_dir():
            raise GalleryError(f"{root} is a file, not a folder of photos")
        n_files, items = 0, []
        for p in sorted(root.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(root).parts) or not p.is_file():
                continue
            n_files += 1
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                rel = p.relative_to(root)
                label = rel.parts[0] if len(rel.parts) > 1 else ""
                items.append(Item(str(p.resolve()), label, "photo", p.stem))
        if not items:
            raise GalleryError(f"no image file in {root} ({n_files} file(s) looked at; expected "
                               f"{', '.join(IMAGE_EXTENSIONS)})")
        if max_images is not None:
            items = items[:max_images]
        return cls(name or f"folder: {root}", items, str(root))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[str]:
        return [it.label for it in self.items]

    @property
    def classes(self) -> list[str]:
        """The distinct non-empty class labels, sorted."""
        return sorted({it.label for it in self.items if it.label})

    def fingerprint(self) -> str:
        """SHA-1 of the gallery's content: every file's label and bytes (missing files hash as such)."""
        h = hashlib.sha1(f"gallery-v1:{len(self.items)}".encode())
        for it in self.items:
            h.update(b"\0" + it.label.encode() + b"\0")
            try:
                h.update(hashlib.sha1(Path(it.path).read_bytes()).digest())
            except OSError as e:
                h.update(f"unreadable:{type(e).__name__}".encode())
        return h.hexdigest()


# ------------------------------------------------------------------------------------------------ cache
def method_fingerprint(method: torch.nn.Module, extra: str = "") -> str:
    """SHA-1 of a method's identity: its class, setting and every tensor of its state (weights included)."""
    h = hashlib.sha1(f"method-v1:{type(method).__name__}:{getattr(method, 'name', '')}:"
                     f"{getattr(method, 'setting', '')}:{extra}".encode())
    for k, v in sorted(method.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(k.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class GalleryCache:
    """Photo embeddings on disk, one ``<run key>-<gallery key>.npz`` per pair, written atomically."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, run_key: str, gallery_key: str) -> Path:
        return self.directory / f"{run_key[:16]}-{gallery_key[:16]}.npz"

    def load(self, run_key: str, gallery_key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(feats [M, E] float32, kept [M] int64)`` or ``None`` (absent, unreadable or another key)."""
        p = self.path(run_key, gallery_key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                feats, kept = z["feats"].astype(np.float32), z["kept"].astype(np.int64)
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable gallery cache %s (%s); recomputing", p, e)
            return None
        if meta.get("run_key") != run_key or meta.get("gallery_key") != gallery_key or len(feats) != len(kept):
            return None
        return feats, kept

    def save(self, run_key: str, gallery_key: str, feats: np.ndarray, kept: np.ndarray, **meta) -> Path:
        """Write the embeddings atomically (:func:`sbirlab.io.atomic_savez`: readers never see half a file)."""
        p = self.path(run_key, gallery_key)
        info = {"format": CACHE_FORMAT, "run_key": run_key, "gallery_key": gallery_key, **meta}
        atomic_savez(p, feats=np.asarray(feats, np.float32), kept=np.asarray(kept, np.int64),
                     meta=np.array(json.dumps(info, default=str)))
        return p


def default_cache_dir(run_dir: str | os.PathLike | None) -> Path:
    """``<run_dir>/gallery_cache`` (the cache lives with the run), or ``$SBIRLAB_CACHE/gallery`` /
    ``~/.cache/sbirlab/gallery`` for a method without a run folder."""
    if run_dir is not None:
        return Path(run_dir) / "gallery_cache"
    base = os.environ.get("SBIRLAB_CACHE") or Path.home() / ".cache" / "sbirlab"
    return Path(base) / "gallery"


# ----------------------------------------------------------------------------------------------- engine
@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (``None``: unchanged), then restore the old count.

    One sketch through a small ViT is faster on one thread: measured 3 ms vs 6.5 ms on two busy cores,
    where the second thread also waits behind other processes (p100 130 ms vs 5 ms).
    """
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None and n != old:
            torch.set_num_threads(old)


@dataclass
class GalleryInfo:
    """What :meth:`RetrievalEngine.set_gallery` did."""

    name: str
    n_photos: int
    n_skipped: int
    from_cache: bool
    seconds: float
    cache_file: str
    skipped_example: str = ""


@dataclass
class Result:
    """One query's answer.

    Attributes:
        indices: top-k gallery positions, best first.
        scores: their cosine similarities.
        labels / paths: their classes and files.
        guess: ``[(class, probability), ...]`` of the zero-shot class guess, most likely first (all classes).
        sims: cosine similarity to every gallery photo ``[N]`` (for ranks).
        sketch: the rasterised query, as the model saw it.
        n_strokes: strokes in the query.
        seconds: wall time of the query (rasterise + encode + rank + guess).
    """

    indices: np.ndarray
    scores: np.ndarray
    labels: list
    paths: list
    guess: list
    sims: np.ndarray
    sketch: Image.Image
    n_strokes: int
    seconds: float
    gallery_labels: list = field(default_factory=list, repr=False)

    def rank_of(self, label: str) -> int | None:
        """1-based rank of the first photo of class ``label`` (ties broken by gallery index), or ``None``."""
        lab = np.asarray(self.gallery_labels)
        pos = np.flatnonzero(lab == label)
        if len(pos) == 0:
            return None
        best = self.sims[pos].max()
        first = pos[self.sims[pos] == best].min()
        return int((self.sims > best).sum() + ((self.sims == best) & (np.arange(len(self.sims)) < first)).sum() + 1)

    def class_rank(self, label: str) -> int | None:
        """1-based rank of ``label`` in the zero-shot class guess, or ``None`` if it is not a candidate."""
        names = [c for c, _ in self.guess]
        return names.index(label) + 1 if label in names else None

    def precision(self, label: str) -> float:
        """Fraction of the top-k photos of class ``label``."""
        return float(np.mean([lab == label for lab in self.labels])) if len(self.labels) else 0.0


class RetrievalEngine:
    """A trained method + a gallery with cached embeddings; :meth:`query` answers one sketch.

    Args:
        method: an :class:`~sbirlab.models.methods.base.SBIRMethod` (``encode_sketch`` / ``encode_photo``,
            ``frozen_text_features``, ``logit_scale``).
        image_size / mean / std: the backbone's input size and normalisation.
        device: where the method lives.
        cache_dir: where gallery embeddings go (:func:`default_cache_dir`); ``None`` disables the cache.
        name: shown in the widget.
        canvas: side of the stroke frame.
        query_threads: torch threads of one query (1: see :func:`torch_threads`; ``None``: unchanged).
    """

    def __init__(self, method, image_size: int, mean, std, device="cpu", cache_dir: str | os.PathLike | None = None,
                 name: str = "", canvas: float = CANVAS, query_threads: int | None = 1):
        self.method = method.eval()
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.device = torch.device(device)
        self.cache = GalleryCache(cache_dir) if cache_dir is not None else None
        self.name = name or getattr(method, "name", "method")
        self.canvas = float(canvas)
        self.query_threads = query_threads
        self._run_key: str | None = None
        self.gallery: Gallery | None = None
        self.feats: torch.Tensor | None = None        # [M, E] kept photos
        self.kept: np.ndarray = np.zeros(0, np.int64)  # gallery positions of the kept photos
        self.info: GalleryInfo | None = None
        self.classes: list[str] = []
        self.class_text: torch.Tensor | None = None    # [C, E]
        self._thumbs: OrderedDict = OrderedDict()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run, run_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = "auto",
                 name: str | None = None) -> "RetrievalEngine":
        """An engine over a :class:`~sbirlab.experiment.LoadedRun`; the cache goes to ``<run_dir>/gallery_cache``."""
        if cache_dir == "auto":
            cache_dir = default_cache_dir(run_dir)
        bb = run.backbone
        label = name or (f"{run.cfg.method} ({Path(run_dir).name})" if run_dir else run.cfg.method)
        return cls(run.method, bb.image_size, bb.mean, bb.std, run.device, cache_dir, label)

    @classmethod
    def from_run_dir(cls, run_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = "auto",
                     name: str | None = None) -> "RetrievalEngine":
        """Load a run folder (:func:`sbirlab.experiment.load_run`) and wrap it."""
        from ..experiment import load_run

        return cls.from_run(load_run(run_dir), run_dir, cache_dir, name)

    @property
    def run_key(self) -> str:
        """Hash of the method's weights (computed once)."""
        if self._run_key is None:
            self._run_key = method_fingerprint(self.method, f"{self.image_size}")
        return self._run_key

    # -- gallery ---------------------------------------------------------------------------------------
    def _normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        return (x_u8.float() / 255.0 - self.mean) / self.std

    @torch.no_grad()
    def _encode_gallery(self, gallery: Gallery, batch_size: int, progress: bool):
        from tqdm.auto import tqdm

        feats, kept, bad = [], [], []
        batch, pos = [], []

        def flush():
            if batch:
                x = self._normalize(torch.stack(batch)).to(self.device)
                feats.append(self.method.encode_photo(x).float().cpu())
                kept.extend(pos)
                batch.clear()
                pos.clear()

        for i, it in enumerate(tqdm(gallery.items, desc=f"encode {gallery.name}", disable=not progress, leave=False)):
            try:
                img = load_image(it, self.image_size)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                bad.append(f"{Path(it.path).name}: {type(e).__name__}")
                continue
            batch.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1))  # [3, H, W]
            pos.append(i)
            if len(batch) == batch_size:
                flush()
        flush()
        if not kept:
            raise GalleryError(f"no readable image in {gallery.source or gallery.name}: all {len(gallery)} image "
                               f"file(s) failed to decode (e.g. {bad[0] if bad else '?'})")
        return torch.cat(feats).numpy(), np.asarray(kept, np.int64), bad

    def set_gallery(self, gallery: Gallery, progress: bool = False, batch_size: int = 128,
                    classes: Sequence[str] | None = None) -> GalleryInfo:
        """Use ``gallery``: load its embeddings from the cache, or compute and cache them.

        ``classes`` are the candidates of the class guess (default: the gallery's classes when it has
        at least two, else every class of the synthetic world).

        Raises:
            GalleryError: no photo of the gallery can be decoded.
        """
        t0 = time.perf_counter()
        gkey = gallery.fingerprint()
        hit = self.cache.load(self.run_key, gkey) if self.cache else None
        bad = []
        if hit is None:
            feats, kept, bad = self._encode_gallery(gallery, batch_size, progress)
            if self.cache:
                try:
                    self.cache.save(self.run_key, gkey, feats, kept, gallery=gallery.name, source=gallery.source,
                                    n_photos=len(gallery), n_skipped=len(bad), method=self.name)
                except OSError as e:  # a read-only run folder: still works, just not cached
                    log.warning("could not write the gallery cache to %s (%s)", self.cache.directory, e)
        else:
            feats, kept = hit
        self.gallery, self.kept = gallery, kept
        self.feats = torch.from_numpy(np.ascontiguousarray(feats))
        self._labels = [gallery.items[i].label for i in kept]
        self._paths = [gallery.items[i].path for i in kept]
        self._thumbs.clear()
        self.set_classes(classes if classes is not None else (gallery.classes if len(gallery.classes) >= 2 else None))
        self.info = GalleryInfo(gallery.name, len(kept), len(gallery) - len(kept), hit is not None,
                                time.perf_counter() - t0,
                                str(self.cache.path(self.run_key, gkey)) if self.cache else "",
                                bad[0] if bad else "")
        return self.info

    @torch.no_grad()
    def set_classes(self, classes: Sequence[str] | None = None) -> list[str]:
        """Candidates of the zero-shot class guess (``None``: every class of the synthetic world)."""
        if classes is None:
            from ..data.categories import all_categories

            classes = all_categories()
        self.classes = list(classes)
        if self.classes and getattr(self.method, "text", None) is not None:
            self.class_text = self.method.frozen_text_features(self.classes).float().cpu()
        else:
            self.class_text = None
        return self.classes

    # -- queries --------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_sketch(self, img: Image.Image) -> torch.Tensor:
        """L2-normalised embedding ``[E]`` of one sketch image (already at ``image_size``)."""
        x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)[None]
        return self.method.encode_sketch(self._normalize(x).to(self.device)).float().cpu()[0]

    def query(self, sketch: StrokeModel | Sequence, widths: Sequence[float] | None = None, k: int = 8) -> Result:
        """Top-``k`` photos and the class guess for a sketch (a :class:`StrokeModel` or a list of strokes).

        Raises:
            RuntimeError: no gallery is set (:meth:`set_gallery`).
        """
        if self.feats is None:
            raise RuntimeError("no gallery: call set_gallery() first")
        t0 = time.perf_counter()
        if not isinstance(sketch, StrokeModel):
            m = StrokeModel(canvas=self.canvas)
            m.load(sketch, widths)
            sketch = m
        img = sketch.rasterize(self.image_size)
        with torch_threads(self.query_threads if self.device.type == "cpu" else None):
            q = self.encode_sketch(img)
        sims = (self.feats @ q).numpy()  # [M] cosine similarities
        k = max(1, min(int(k), len(sims)))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]  # best first, ties by gallery index
        guess = []
        if self.class_text is not None:
            p = torch.softmax(float(self.method.logit_scale) * (self.class_text @ q), 0).numpy()
            guess = [(self.classes[j], float(p[j])) for j in np.argsort(-p, kind="stable")]
        return Result(top, sims[top], [self._labels[j] for j in top], [self._paths[j] for j in top], guess, sims,
                      img, len(sketch), time.perf_counter() - t0, self._labels)

    def thumbnail(self, j: int, size: int = 72) -> bytes:
        """PNG bytes of kept photo ``j`` at ``size`` px (cached, at most 256)."""
        key = (int(j), int(size))
        if key not in self._thumbs:
            try:
                img = load_image(Item(self._paths[j], self._labels[j], "photo"), size)
            except (OSError, ValueError, SyntaxError):
                img = Image.new("RGB", (size, size), (200, 200, 200))
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=1)
            self._thumbs[key] = buf.getvalue()
            while len(self._thumbs) > 256:
                self._thumbs.popitem(last=False)
        self._thumbs.move_to_end(key)
        return self._thumbs[key]


# -------------------------------------------------------------------------------------------- replays
def recorded_sketches(index, items: Sequence[Item]) -> dict[str, tuple[list, list, str]]:
    """The recorded strokes of dataset sketches: ``{sketch id: (strokes, widths, label)}``.

    Reads the synthetic world's ``strokes/<class>.ndjson`` (``index.meta["strokes_dir"]``), whose
    ``key_id`` is the sketch file's stem. Sketches without a record are left out.
    """
    from ..data.strokes import quickdraw_to_strokes, read_ndjson

    sdir = index.meta.get("strokes_dir") if hasattr(index, "meta") else None
    if not sdir:
        raise ValueError(f"dataset {getattr(index, 'name', '?')!r} has no recorded strokes (no strokes/ folder)")
    want: dict[str, dict[str, Item]] = {}
    for it in items:
        want.setdefault(it.label, {})[Path(it.path).stem] = it
    out = {}
    for label, stems in want.items():
        f = Path(sdir) / f"{label}.ndjson"
        if not f.is_file():
            continue
        for _, rec in read_ndjson(f):
            key = rec.get("key_id")
            if key in stems:
                strokes = quickdraw_to_strokes(rec["drawing"])
                widths = rec.get("width") if isinstance(rec.get("width"), list) else None
                out[key] = (strokes, widths, label)
    return {k: out[k] for k in sorted(out)}


def stroke_by_stroke(engine: RetrievalEngine, strokes: Sequence, widths: Sequence[float] | None, label: str,
                     k: int = 8) -> list[dict]:
    """Query after each stroke of a recorded sketch, as the widget does while someone draws.

    Returns one record per prefix (1, 2, ... strokes): ``n_strokes``, ``photo_rank`` (rank of the first
    photo of ``label``), ``class_rank`` (rank of ``label`` in the class guess), ``p_at_k`` (fraction of
    the top-``k`` of class ``label``), ``guess`` (the top class) and ``seconds``.
    """
    ws = list(widths) if widths is not None else [None] * len(strokes)
    out = []
    for n in range(1, len(strokes) + 1):
        r = engine.query(list(strokes[:n]), ws[:n] if widths is not None else None, k=k)
        out.append({"n_strokes": n, "photo_rank": r.rank_of(label), "class_rank": r.class_rank(label),
                    "p_at_k": r.precision(label), "guess": r.guess[0][0] if r.guess else None,
                    "seconds": r.seconds})
    return out
