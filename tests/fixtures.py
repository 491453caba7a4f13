"""Builders of tiny dataset trees in every supported on-disk layout, for tests (never real data).

Every ``make_*_tree(tmp, ...)`` writes small PNG / JPEG files (16 px, one colour per class) under
``tmp`` and returns the dataset root, ready for ``sbirlab.data.registry.load_dataset(name, root)``.
Counts are deterministic, so tests can assert on them:

=====================  =======================================  ==================================
builder                layout                                   sketches / photos
=====================  =======================================  ==================================
make_sketchy_tree      "sempcyc" | "flat"                       C*n_photos*n_sketches / C*(n_photos+n_extra_photos)
make_sketchy_fg_tree   "sketchy" | "flat"                       C*n_photos*n_sketches / C*(n_photos+n_extra_photos)
make_tuberlin_tree     "sketches/images" | "sketch/photo"       C*n_sketches / C*n_photos
make_quickdraw_tree    sketch_source "images" | "ndjson"        C*n_sketches / C*n_photos
make_synthetic_tree    photo/ sketch/ strokes/ splits/          C*n_photos*n_sketches / C*n_photos
=====================  =======================================  ==================================

``classes="all"`` uses the dataset's full class list from ``data/splits`` (so the default splits
work); ``folder_names={"palm tree": "palm_tree"}`` writes a class under another folder spelling.
Bad inputs: :func:`write_zero_byte`, :func:`write_truncated_png`, :func:`write_text_as_jpg`.
Usage from any test: ``from tests.fixtures import make_sketchy_tree`` (``tests/conftest.py`` puts the
repository root on ``sys.path``).
"""
from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image, ImageDraw

SKETCHY_TX = "tx_000000000000"

#: Class names spelled like the real split files (underscores, hyphens, parentheses, spaces).
SKETCHY_CLASSES = ("airplane", "bat", "car_(sedan)", "cow", "hot-air_balloon", "wading_bird")
TUBERLIN_CLASSES = ("alarm clock", "banana", "bottle opener", "hot air balloon", "t-shirt", "wrist-watch")
QUICKDRAW_CLASSES = ("airplane", "bat", "eiffel tower", "fire_hydrant", "hot-air_balloon", "palm tree")
SYNTHETIC_CLASSES = ("apple", "boat", "cup", "fish", "house", "tree")

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def _color(k: int) -> tuple[int, int, int]:
    return (40 + 37 * k % 200, 90 + 53 * k % 160, 200 - 29 * k % 180)


@lru_cache(maxsize=None)
def image_bytes(ext: str = ".png", size: int = 16, color: tuple[int, int, int] = (200, 60, 60),
                mode: str = "RGB", sketch: bool = False) -> bytes:
    """Encoded bytes of a tiny image (cached: writing thousands of files stays fast)."""
    if sketch:  # black strokes on white (or on transparent for RGBA)
        bg = (255, 255, 255, 0) if mode == "RGBA" else (255, 255, 255)
        img = Image.new(mode, (size, size), bg if mode != "L" else 255)
        d = ImageDraw.Draw(img)
        ink = (0, 0, 0, 255) if mode == "RGBA" else (0 if mode == "L" else (0, 0, 0))
        d.line([(2, 2), (size - 3, size - 3)], fill=ink, width=2)
        d.rectangle([3, 3, size - 4, size - 4], outline=ink)
    else:
        img = Image.new(mode, (size, size), color if mode == "RGB" else 128)
    buf = io.BytesIO()
    img.save(buf, format=_FORMATS[ext.lower()])
    return buf.getvalue()


def write_image(path: str | Path, *, size: int = 16, color=(200, 60, 60), mode: str = "RGB",
                sketch: bool = False) -> Path:
    """Write a tiny valid image; the format follows the extension (any case)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(path.suffix, size, tuple(color), mode, sketch))
    return path


def write_zero_byte(path: str | Path) -> Path:
    """An empty file (a failed download)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_truncated_png(path: str | Path, size: int = 48, keep: float = 0.5) -> Path:
    """A PNG cut after ``keep`` of its bytes (valid header, truncated image data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.effect_noise((size, size), 64).convert("RGB")  # noise: data does not compress away
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = buf.getvalue()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_text_as_jpg(path: str | Path) -> Path:
    """A text file (an HTML error page) saved under an image name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html><body>404 Not Found</body></html>\n", encoding="utf-8")
    return path


def write_class_list(path: str | Path, names: Iterable[str]) -> Path:
    """A split file: one class per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def _fresh(root: Path) -> Path:
    if root.exists():
        raise FileExistsError(f"{root} exists: build each tree in its own tmp folder")
    return root


def _classes(classes, dataset: str) -> list[str]:
    if classes == "all":
        from sbirlab.data.splits import all_classes

        return all_classes(dataset)
    return list(classes)


def _photo_id(k: int, j: int) -> str:
    return f"n{k + 1:08d}_{j + 1}"  # like Sketchy's n02691156_58


# ------------------------------------------------------------------------------------------ strokes

def drawing_for(k: int, j: int = 0) -> list[list[list[int]]]:
    """A deterministic QuickDraw ``drawing`` (0-255 coordinates) varying with class k and item j."""
    a = 20 + (11 * k + 7 * j) % 60
    b = 235 - (13 * k + 5 * j) % 60
    return [[[a, b, b, a, a], [a, a, b, b, a]],           # a closed square
            [[a, b], [b, a]],                              # a diagonal
            [[128], [128]]]                                # a dot


def quickdraw_record(word: str, drawing, key_id: str = "0", recognized: bool = True, **extra) -> dict:
    """A record of Google's simplified QuickDraw format."""
    rec = {"word": word, "countrycode": "DE", "timestamp": "2017-03-01 12:00:00.00000 UTC",
           "recognized": recognized, "key_id": key_id, "drawing": drawing}
    rec.update(extra)
    return rec


def write_ndjson_file(path: str | Path, records: Sequence[dict], blank_lines_after: Sequence[int] = ()) -> Path:
    """Write records one per line (optionally a blank line after record i, as some files have)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, r in enumerate(records):
        lines.append(json.dumps(r, separators=(",", ":")))
        if i in blank_lines_after:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- trees

def make_sketchy_tree(tmp: str | Path, layout: str = "sempcyc", classes=SKETCHY_CLASSES, n_photos: int = 2,
                      n_sketches: int = 2, n_extra_photos: int = 1, folder_names: dict | None = None) -> Path:
    """Sketchy Extended: ``sempcyc`` (sketch/tx_000000000000 + EXTEND_image_sketchy) or ``flat``.

    Each class has ``n_photos`` paired photos (``n<k>_<j>.jpg``) with ``n_sketches`` sketches each
    (``n<k>_<j>-<s>.png``) and ``n_extra_photos`` unpaired extension photos (``ext<k>_<j>.jpg``).
    """
    root = _fresh(Path(tmp) / f"sketchy_{layout}")
    sk_dir, ph_dir = {"sempcyc": (root / "sketch" / SKETCHY_TX, root / "EXTEND_image_sketchy"),
                      "flat": (root / "sketch", root / "photo")}[layout]
    _paired_tree(sk_dir, ph_dir, _classes(classes, "sketchy"), n_photos, n_sketches, n_extra_photos,
                 folder_names)
    return root


def make_sketchy_fg_tree(tmp: str | Path, layout: str = "sketchy", classes=SKETCHY_CLASSES, n_photos: int = 2,
                         n_sketches: int = 2, n_extra_photos: int = 0) -> Path:
    """Sketchy basic: ``sketchy`` ({photo,sketch}/tx_000000000000/<class>) or ``flat``."""
    root = _fresh(Path(tmp) / f"sketchy_fg_{layout}")
    sk_dir, ph_dir = {"sketchy": (root / "sketch" / SKETCHY_TX, root / "photo" / SKETCHY_TX),
                      "flat": (root / "sketch", root / "photo")}[layout]
    _paired_tree(sk_dir, ph_dir, _classes(classes, "sketchy"), n_photos, n_sketches, n_extra_photos, None)
    return root


def _paired_tree(sk_dir: Path, ph_dir: Path, classes, n_photos, n_sketches, n_extra, folder_names,
                 photo_ext: str = ".jpg") -> None:
    folder_names = folder_names or {}
    for k, c in enumerate(classes):
        folder = folder_names.get(c, c)
        for j in range(n_photos):
            pid = _photo_id(k, j)
            write_image(ph_dir / folder / f"{pid}{photo_ext}", color=_color(k))
            for s in range(n_sketches):
                write_image(sk_dir / folder / f"{pid}-{s + 1}.png", sketch=True)
        for j in range(n_extra):
            write_image(ph_dir / folder / f"ext{k + 1}_{j + 1}{photo_ext}", color=_color(k))


def make_tuberlin_tree(tmp: str | Path, layout: str = "sketches/images", classes=TUBERLIN_CLASSES,
                       n_sketches: int = 2, n_photos: int = 3,
                       photo_exts: Sequence[str] = (".JPEG", ".jpg", ".png")) -> Path:
    """TU-Berlin Extended: ``sketches/images`` (SEM-PCYC) or ``sketch/photo``; photo extensions cycle."""
    root = _fresh(Path(tmp) / f"tuberlin_{layout.replace('/', '_')}")
    s, p = layout.split("/")
    for k, c in enumerate(_classes(classes, "tuberlin")):
        for j in range(n_sketches):
            write_image(root / s / c / f"{k * 100 + j + 1}.png", mode="L", sketch=True)
        for j in range(n_photos):
            write_image(root / p / c / f"{c.replace(' ', '_')}_{j + 1}{photo_exts[j % len(photo_exts)]}",
                        color=_color(k))
    return root


def make_quickdraw_tree(tmp: str | Path, sketch_source: str = "images", classes=QUICKDRAW_CLASSES,
                        n_sketches: int = 3, n_photos: int = 2, photo_dir: str = "images",
                        folder_names: dict | None = None) -> Path:
    """QuickDraw Extended: photos in ``images/`` (or ``photo_dir``), sketches in ``sketch/<class>/``
    (``sketch_source="images"``) or ``ndjson/<class>.ndjson`` (``"ndjson"``, Google's format; record
    i of class k draws :func:`drawing_for(k, i) <drawing_for>`, ``key_id`` ``"<k><i>"``).
    ``folder_names`` maps a class to the folder / file stem written (e.g. ``palm_tree``).
    """
    root = _fresh(Path(tmp) / f"quickdraw_{sketch_source}")
    folder_names = folder_names or {}
    for k, c in enumerate(_classes(classes, "quickdraw")):
        folder = folder_names.get(c, c)
        for j in range(n_photos):
            write_image(root / photo_dir / folder / f"{j + 1}.jpg", color=_color(k))
        if sketch_source == "images":
            for j in range(n_sketches):
                write_image(root / "sketch" / folder / f"{j + 1}.png", sketch=True)
        else:
            recs = [quickdraw_record(c, drawing_for(k, i), key_id=f"{k + 1}{i:04d}") for i in range(n_sketches)]
            write_ndjson_file(root / "ndjson" / f"{folder}.ndjson", recs)
    return root


def make_synthetic_tree(tmp: str | Path, classes=SYNTHETIC_CLASSES, n_photos: int = 2, n_sketches: int = 2,
                        unseen: Sequence[str] | None = None, val: Sequence[str] | None = None) -> Path:
    """The synthetic world's shape: ``photo/<class>/<id>.png``, ``sketch/<class>/<id>-<k>.png``,
    ``strokes/<class>.ndjson`` and ``splits/synthetic_{seen,unseen,val}.txt`` (default: last two
    classes unseen, first class val).
    """
    root = _fresh(Path(tmp) / "synthetic")
    classes = list(classes)
    unseen = list(unseen) if unseen is not None else classes[-2:]
    seen = [c for c in classes if c not in unseen]
    val = list(val) if val is not None else seen[:1]
    for k, c in enumerate(classes):
        recs = []
        for j in range(n_photos):
            pid = f"{c}_{j:04d}"
            write_image(root / "photo" / c / f"{pid}.png", color=_color(k))
            for s in range(n_sketches):
                write_image(root / "sketch" / c / f"{pid}-{s}.png", sketch=True)
                recs.append(quickdraw_record(c, drawing_for(k, j * n_sketches + s), key_id=f"{pid}-{s}"))
        write_ndjson_file(root / "strokes" / f"{c}.ndjson", recs)
    write_class_list(root / "splits" / "synthetic_seen.txt", seen)
    write_class_list(root / "splits" / "synthetic_unseen.txt", unseen)
    write_class_list(root / "splits" / "synthetic_val.txt", val)
    return root


BUILDERS = {
    "sketchy": make_sketchy_tree,
    "sketchy_fg": make_sketchy_fg_tree,
    "tuberlin": make_tuberlin_tree,
    "quickdraw": make_quickdraw_tree,
    "synthetic": make_synthetic_tree,
}


def make_dataset_tree(name: str, tmp: str | Path, **kw) -> Path:
    """Dispatch to the builder of dataset ``name`` (a ``load_dataset`` name)."""
    return BUILDERS[name](tmp, **kw)
