"""Decoding dataset items safely: photos and sketches as RGB images, and a torch ``Dataset``.

Real datasets contain bad files (zero-byte downloads, truncated JPEGs, HTML error pages saved as
``.jpg``). They never crash a run mid-epoch:

- :func:`scan_items` drops unreadable items before training with **one** warning that counts them:
  missing and zero-byte files by ``stat`` (cheap, the default), and with ``verify=True`` every
  image is decoded too (slow; catches truncated and non-image files up front).
- :class:`ImageDataset` runs the cheap scan when built, and if an item still fails to decode in
  ``__getitem__`` it returns the next readable item instead, counts the skip in
  :attr:`ImageDataset.skipped` and warns once (the first time); :meth:`ImageDataset.report_skipped`
  warns once more with the total.

QuickDraw-style items (``Item.strokes >= 0``, ``Item.path`` an ``.ndjson`` file) are read from their
line and rasterised by :func:`sbirlab.data.strokes.rasterize_strokes`, the one rasteriser.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .base import DatasetError, Item
from .strokes import quickdraw_to_strokes, rasterize_strokes

log = logging.getLogger(__name__)

#: Side of the canvas of QuickDraw's simplified drawings (coordinates 0-255).
STROKE_CANVAS = 256
#: Stroke width in canvas units used when rasterising stroke items.
STROKE_WIDTH = 3.0


def resolve_path(item: Item, root: str | Path | None = None) -> Path:
    """The item's file; a relative ``item.path`` is taken relative to ``root`` when given."""
    p = Path(item.path)
    return p if (root is None or p.is_absolute()) else Path(root) / p


# ------------------------------------------------------------------------------------- strokes

@lru_cache(maxsize=64)
def _line_offsets(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """Byte offset of the start of every line of ``path`` (index 0 = line 1)."""
    offsets = [0]
    with open(path, "rb") as f:
        pos = 0
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            start = 0
            while True:
                k = chunk.find(b"\n", start)
                if k < 0:
                    break
                offsets.append(pos + k + 1)
                start = k + 1
            pos += len(chunk)
    return np.asarray(offsets, dtype=np.int64)


def read_stroke_record(path: str | Path, line: int) -> dict:
    """The JSON record on 1-based ``line`` of an ``.ndjson`` file (random access, offsets cached).

    Raises:
        ValueError: naming the file and line if the line does not exist or is malformed.
    """
    path = str(path)
    st = os.stat(path)
    offsets = _line_offsets(path, st.st_mtime_ns, st.st_size)
    if not 1 <= line <= len(offsets) or offsets[line - 1] >= st.st_size:
        raise ValueError(f"{path}: line {line}: no such line")
    with open(path, "rb") as f:
        f.seek(int(offsets[line - 1]))
        raw = f.readline()
    try:
        rec = json.loads(raw)
        if not isinstance(rec, dict) or "drawing" not in rec:
            raise ValueError("no 'drawing' field")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: line {line}: malformed QuickDraw record ({e})") from None
    return rec


def _strokes_and_widths(item: Item, root) -> tuple[list[np.ndarray], list[float] | None]:
    if item.strokes < 0:
        raise ValueError(f"{item.path} is not a stroke item (Item.strokes = {item.strokes})")
    path = resolve_path(item, root)
    rec = read_stroke_record(path, item.strokes)
    try:
        strokes = quickdraw_to_strokes(rec["drawing"])
    except ValueError as e:
        raise ValueError(f"{path}: line {item.strokes}: malformed QuickDraw record ({e})") from None
    widths = rec.get("width")
    ok = isinstance(widths, list) and len(widths) == len(strokes) \
        and all(isinstance(w, (int, float)) for w in widths)
    return strokes, (widths if ok else None)


def load_strokes(item: Item, root: str | Path | None = None) -> list[np.ndarray]:
    """The strokes of a stroke item, as ``[n, 2]`` arrays in canvas coordinates."""
    return _strokes_and_widths(item, root)[0]


# -------------------------------------------------------------------------------------- images

def to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; transparent pixels (e.g. RGBA sketch PNGs) become white, not black."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float greyscale
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.size and a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a * (255.0 / hi), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def resize_to(img: Image.Image, size: int) -> Image.Image:
    """``img`` at ``size`` x ``size``: the shortest side resized to ``size`` (bicubic), then the centre
    cropped (open_clip's ``resize_mode="shortest"`` eval transform); square images are only resized,
    and an image already at ``size`` x ``size`` is returned as it is."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    if w == h:
        return img.resize((size, size), Image.BICUBIC)
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class Preprocess:
    """The image transform of a backbone: PIL image -> normalised ``[3, S, S]`` float tensor.

    One object serves both paths: :attr:`sbirlab.models.backbone.Backbone.preprocess` (a single image,
    ``preprocess(img)``) and :class:`sbirlab.train.data.ImageLoader` (which caches the uint8 tensors
    of :meth:`to_uint8` and applies :meth:`normalize` after augmentation), so what a backbone
    declares is what every image fed to it gets.

    Attributes:
        image_size: the model's input side.
        mean / std: per-channel normalisation (of images in ``[0, 1]``).
    """

    image_size: int
    mean: tuple
    std: tuple

    def resize(self, img: Image.Image) -> Image.Image:
        return resize_to(to_rgb(img), self.image_size)

    @staticmethod
    def to_uint8(img: Image.Image) -> torch.Tensor:
        """``[3, H, W]`` uint8 tensor of an RGB PIL image."""
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)

    def normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 ``[..., 3, H, W]`` -> ``(x / 255 - mean) / std``, float32."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x_u8.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x_u8.device).view(3, 1, 1)
        return (x_u8.float() / 255.0 - mean) / std

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.normalize(self.to_uint8(self.resize(img)))


def load_image(item: Item, size: int | None = None, *, root: str | Path | None = None,
               stroke_width: float = STROKE_WIDTH) -> Image.Image:
    """Decode one item as an RGB PIL image (photos and sketches alike).

    Args:
        item: a photo or sketch. Stroke items (``item.strokes >= 0``) are rasterised.
        size: if given, the image is brought to ``size`` x ``size`` by :func:`resize_to` (shortest side
            to ``size``, bicubic, centre crop; square images are just resized); stroke items are drawn
            directly at that size. ``None``: the file's own size (256 for strokes).
        root: base folder for relative ``item.path``.
        stroke_width: stroke width in canvas units for stroke items, unless the record has a
            per-stroke ``"width"`` list (the synthetic world writes one), which is used instead.

    Raises:
        OSError / ValueError / SyntaxError: the file is missing, truncated or not an image
        (:class:`ImageDataset` catches these and skips the item).
    """
    if item.strokes >= 0:
        strokes, widths = _strokes_and_widths(item, root)
        return rasterize_strokes(strokes, size=size or STROKE_CANVAS, width=stroke_width,
                                 canvas=STROKE_CANVAS, widths=widths)
    path = resolve_path(item, root)
    with Image.open(path) as im:
        im.load()  # decode now: truncated files fail here, not later inside a transform
        img = to_rgb(im)
    return resize_to(img, size) if size is not None else img


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """``[3, H, W]`` float tensor in ``[0, 1]`` (the default transform of :class:`ImageDataset`)."""
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255.0)  # [3, H, W]


# -------------------------------------------------------------------------------------- scanning

def check_item(item: Item, *, verify: bool = False, root: str | Path | None = None) -> str | None:
    """Why ``item`` cannot be read (a short reason), or ``None`` if it looks fine.

    Cheap checks (``stat``): the file exists and is not empty. ``verify=True`` also decodes it
    (images fully; stroke items: the record is parsed).
    """
    path = resolve_path(item, root)
    try:
        size = path.stat().st_size
    except OSError as e:
        return f"cannot stat ({e.__class__.__name__})"
    if size == 0:
        return "zero-byte file"
    if verify:
        try:
            if item.strokes >= 0:
                load_strokes(item, root)
            else:
                with Image.open(path) as im:
                    im.load()
        except Exception as e:  # noqa: BLE001 - any decoder failure means unreadable
            return f"{e.__class__.__name__}: {e}"
    return None


def find_unreadable(items: Sequence[Item], *, verify: bool = False,
                    root: str | Path | None = None) -> list[tuple[int, Item, str]]:
    """``(position, item, reason)`` of every unreadable item (see :func:`check_item`)."""
    bad, stat_ok = [], {}
    for k, it in enumerate(items):
        key = (it.path, it.strokes if verify else -1)
        if key not in stat_ok:
            stat_ok[key] = check_item(it, verify=verify, root=root)
        if stat_ok[key] is not None:
            bad.append((k, it, stat_ok[key]))
    return bad


def scan_items(items: Sequence[Item], *, verify: bool = False, root: str | Path | None = None,
               warn: bool = True) -> list[Item]:
    """Drop unreadable items, with one warning counting them (and naming the first few).

    Args:
        items: items to check.
        verify: also decode every file (slow; default: only ``stat``: missing and zero-byte files).
        root: base folder for relative paths.
        warn: emit the summary warning.
    """
    bad = find_unreadable(items, verify=verify, root=root)
    if not bad:
        return list(items)
    drop = {k for k, _, _ in bad}
    if warn:
        first = "; ".join(f"{resolve_path(it, root)} ({why})" for _, it, why in bad[:3])
        warnings.warn(f"skipped {len(bad)} of {len(items)} unreadable item(s): {first}"
                      f"{' ...' if len(bad) > 3 else ''}", RuntimeWarning, stacklevel=2)
    return [it for k, it in enumerate(items) if k not in drop]


# ----------------------------------------------------------------------------------------- dataset

class ImageDataset(torch.utils.data.Dataset):
    """Items as ``(image_tensor, label_idx, index)`` for a ``DataLoader``.

    ``index`` is the position in :attr:`items` of the item actually returned: it differs from the
    requested one only when that item could not be decoded and the next readable one was returned
    instead. Use ``dataset.items[index]`` (not the list you passed in) to map outputs back to
    files: with ``scan=True`` missing and zero-byte files are dropped when the dataset is built.

    Args:
        items: the items (e.g. ``partitions.test_gallery``).
        transform: PIL image -> tensor; default :func:`pil_to_tensor`.
        class_to_idx: label -> class id; default ids of the sorted labels of ``items``.
        size: passed to :func:`load_image` (resize before ``transform``; stroke raster size).
        root: base folder for relative paths.
        scan: drop missing / zero-byte files up front (:func:`scan_items`, one warning).
        verify: with ``scan``, also decode every file up front (slow).
    """

    def __init__(self, items: Sequence[Item], transform: Callable | None = None,
                 class_to_idx: dict[str, int] | None = None, *, size: int | None = None,
                 root: str | Path | None = None, scan: bool = True, verify: bool = False):
        items = list(items)
        self.n_dropped = 0
        if scan:
            kept = scan_items(items, verify=verify, root=root, warn=True)
            self.n_dropped = len(items) - len(kept)
            items = kept
        self.items = items
        self.transform = transform or pil_to_tensor
        if class_to_idx is None:
            class_to_idx = {c: i for i, c in enumerate(sorted({it.label for it in items}))}
        unknown = sorted({it.label for it in items} - set(class_to_idx))
        if unknown:
            raise DatasetError(f"class_to_idx has no id for label(s) {unknown[:10]}")
        self.class_to_idx = class_to_idx
        self.size = size
        self.root = root
        self.skipped: dict[int, str] = {}  # index -> reason, items that failed to decode
        self._warned = False

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, k: int):
        try:
            return load_image(self.items[k], self.size, root=self.root)
        except Exception as e:  # noqa: BLE001 - never crash mid-epoch on one bad file
            self.skipped[k] = f"{e.__class__.__name__}: {e}"
            if not self._warned:
                self._warned = True
                warnings.warn(f"unreadable image {resolve_path(self.items[k], self.root)} "
                              f"({self.skipped[k]}): returning the next readable item instead; "
                              f"further skips are counted in ImageDataset.skipped, not warned",
                              RuntimeWarning, stacklevel=3)
            return None

    def __getitem__(self, index: int):
        n = len(self.items)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        for step in range(n):
            k = (index + step) % n
            if k in self.skipped:
                continue
            img = self._load(k)
            if img is not None:
                return self.transform(img), self.class_to_idx[self.items[k].label], k
        raise DatasetError(f"no readable image among the {n} items of this dataset "
                           f"(first: {resolve_path(self.items[0], self.root)})")

    def report_skipped(self) -> int:
        """Warn with the number of items skipped so far and return it (0: no warning).

        Counts only this process: with ``DataLoader(num_workers > 0)`` each worker holds its own
        copy of the dataset (and warns once itself); run :func:`scan_items` with ``verify=True``
        beforehand for an exact count.
        """
        n = len(self.skipped)
        if n:
            first = next(iter(self.skipped))
            warnings.warn(f"{n} of {len(self.items)} item(s) could not be decoded and were replaced by "
                          f"the next readable item (first: {resolve_path(self.items[first], self.root)})",
                          RuntimeWarning, stacklevel=2)
        return n
