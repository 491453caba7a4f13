"""Loaders of the real SBIR datasets (and of any ``{sketch,photo}/<class>/`` tree) into a DatasetIndex.

A loader only lists files; nothing is decoded here (see :mod:`sbirlab.data.images`). Every loader:

- returns a :class:`~sbirlab.data.base.DatasetIndex` with sorted classes and absolute item paths,
  files sorted by name within a class;
- accepts image files by extension, case-insensitively (``.png .jpg .jpeg``, so ``.JPEG`` too) and
  ignores hidden files and folders (``.DS_Store``, ``._x.png``, ``__MACOSX``) and other files;
- spells class labels as the split files do: a folder name is matched to the dataset's class list
  (``data/splits/*_all*.txt``) by :func:`~sbirlab.data.base.class_key`, which ignores case,
  parentheses and the difference between spaces, underscores and hyphens. So a ``palm_tree`` folder
  (the spelling of Doodle2Search's zero-shot list) gets the label ``palm tree`` (its class list and
  folders). Unknown folders keep their own name. Relabelled folders are listed in
  ``index.meta["renamed_classes"]``;
- auto-detects the on-disk layout (``layout="auto"``) and also looks one level down for the folder
  the public archives unpack to (``Sketchy/``, ``TU-Berlin/``, ``QuickDraw/``);
- raises :class:`~sbirlab.data.base.DatasetError` naming the path when the root is missing (with the
  expected layouts and where the dataset is published), when a class folder is empty, when sketch
  and photo folders disagree on the classes, and (through :func:`sbirlab.data.strokes.read_ndjson`)
  naming file and line of a malformed ``.ndjson`` record.

Pairing (fine-grained ground truth): a sketch ``n02691156_58-1.png`` belongs to photo
``n02691156_58.jpg``; both get ``Item.instance == "n02691156_58"`` (:func:`sketch_instance`). Photos
always carry their own stem as ``instance``; sketches of unpaired datasets (TU-Berlin, QuickDraw) get
``""``, which never equals a photo's instance.

QuickDraw ``.ndjson`` sketches (Google's simplified format): ``Item.path`` is the ``.ndjson`` file and
``Item.strokes`` the 1-based line number of the record; :func:`sbirlab.data.images.load_image`
rasterises it with :func:`sbirlab.data.strokes.rasterize_strokes`.

Datasets: Sketchy (Sangkloy et al., SIGGRAPH 2016) extended with the photos of Liu et al., "Deep
Sketch Hashing", CVPR 2017; TU-Berlin (Eitz et al., SIGGRAPH 2012) extended by Zhang et al. 2016;
QuickDraw Extended (Dey et al., "Doodle to Search", CVPR 2019).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

from .base import DatasetError, DatasetIndex, Item, class_key
from .strokes import read_ndjson

log = logging.getLogger(__name__)

#: Image file extensions, compared in lower case.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: The unaugmented sketch/photo folder of the Sketchy release.
SKETCHY_TX = "tx_000000000000"
#: Google names of QuickDraw categories that :func:`class_key` alone does not match to QuickDraw
#: Extended's class names (DECISION: Google's ``crocodile`` and ``The Eiffel Tower`` files feed the
#: ``crocodilian`` and ``eiffel tower`` classes). Keys: our class; values: other accepted names.
QUICKDRAW_ALIASES: dict[str, tuple[str, ...]] = {
    "crocodilian": ("crocodile",),
    "eiffel tower": ("The Eiffel Tower",),
}
# Prefixes of downloaded Google .ndjson file names, stripped before matching the class name.
_NDJSON_PREFIXES = ("full_simplified_", "full-simplified-", "simplified_")
_SKETCH_SUFFIX = re.compile(r"-\d+$")

SKETCHY_HELP = """\
Sketchy Extended: expected one of these layouts under the root
  (a) the SEM-PCYC download              (b) Sketch_LVM / ClipPrompt
      <root>/                                <root>/
        sketch/tx_000000000000/<class>/*.png    sketch/<class>/*.png
        EXTEND_image_sketchy/<class>/*.jpg      photo/<class>/*.jpg
  (125 classes, 75,471 sketches, 73,002 photos)
Sketches and the 12,500 Sketchy photos: https://sketchy.eye.gatech.edu/ (Sangkloy et al. 2016);
the 60,502 extra photos: Liu et al., "Deep Sketch Hashing", CVPR 2017 (EXTEND_image_sketchy)."""

SKETCHY_FG_HELP = """\
Sketchy FG (Sketchy basic photos with their paired sketches): expected one of
  (a) the Sketchy release                (b) flat
      <root>/                                <root>/
        photo/tx_000000000000/<class>/*.jpg     photo/<class>/*.jpg
        sketch/tx_000000000000/<class>/*.png    sketch/<class>/*.png
  (125 classes, 100 photos per class, sketch n02691156_58-1.png pairs with photo n02691156_58.jpg)
Published at https://sketchy.eye.gatech.edu/ (Sangkloy et al., SIGGRAPH 2016)."""

TUBERLIN_HELP = """\
TU-Berlin Extended: expected
      <root>/                                or  <root>/
        sketches/<class>/*.png                     sketch/<class>/*.png
        images/<class>/*.JPEG|jpg|png              photo/<class>/*
  (250 classes, 20,000 sketches, 204,489 photos; class folders spelled as in the split files,
   spaces and hyphens included, e.g. 'alarm clock', 'wrist-watch')
Sketches: https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/ (Eitz et al. 2012);
photos: the extension of Zhang et al., "SketchNet", CVPR 2016 (as used by Liu et al., CVPR 2017)."""

QUICKDRAW_HELP = """\
QuickDraw Extended: expected photos plus sketches as images or as strokes
      <root>/
        sketch/<class>/*.png          sketches as images (Doodle2Search), or
        ndjson/<class>.ndjson         Google's simplified strokes, one file per class
        images/<class>/*.jpg          photos (Doodle2Search; 'photo/' also accepted)
  (110 classes, ~330k sketches, ~204k photos)
Strokes: https://quickdraw.withgoogle.com/data ; QuickDraw Extended (sketches + photos):
Dey et al., "Doodle to Search", CVPR 2019, https://sounakdey.github.io/doodle2search.github.io/"""

FOLDERS_HELP = """\
expected a sketch/photo tree
      <root>/
        photo/<class>/<id>.png
        sketch/<class>/<id>-<k>.png   (pairs with photo <id>; or any name when unpaired)"""


# ----------------------------------------------------------------------------------------------- files

def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def is_image_file(name: str) -> bool:
    """Whether ``name`` has an image extension (case-insensitive) and is not hidden."""
    return not _hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def sketch_instance(stem: str) -> str:
    """The photo id a Sketchy-style sketch belongs to: ``n02691156_58-1`` -> ``n02691156_58``."""
    return _SKETCH_SUFFIX.sub("", stem)


def _subdirs(folder: Path) -> list[tuple[str, Path]]:
    with os.scandir(folder) as it:
        out = [(e.name, Path(e.path)) for e in it if not _hidden(e.name) and e.is_dir()]
    return sorted(out)


def _images(folder: Path) -> tuple[list[Path], int]:
    """Sorted image files of ``folder`` and the number of other (ignored) non-hidden files."""
    files, other = [], 0
    with os.scandir(folder) as it:
        for e in it:
            if _hidden(e.name) or not e.is_file():
                continue
            if is_image_file(e.name):
                files.append(e.name)
            else:
                other += 1
    return [folder / f for f in sorted(files)], other


def _entries(root: Path, limit: int = 12) -> str:
    try:
        names = sorted(n for n in os.listdir(root) if not _hidden(n))
    except OSError:
        return "(unreadable)"
    if not names:
        return "(empty)"
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")


# ------------------------------------------------------------------------------------ class names

class _ClassNames:
    """Maps folder (or file) names to labels spelled as in the dataset's class list."""

    def __init__(self, reference: Iterable[str] | None = None,
                 aliases: dict[str, Iterable[str]] | None = None):
        self.reference = set(reference or ())
        self.keys: dict[str, str] = {class_key(c): c for c in self.reference}
        for cls, others in (aliases or {}).items():
            for o in others:
                self.keys.setdefault(class_key(o), cls)

    def label(self, folder_name: str) -> str:
        if folder_name in self.reference:
            return folder_name
        return self.keys.get(class_key(folder_name), folder_name)

    def wanted(self, classes: Iterable[str] | None, labels: Iterable[str], where: Path) -> set[str] | None:
        """Labels selected by a user's ``classes`` list (any spelling); errors name unknown ones."""
        if classes is None:
            return None
        if isinstance(classes, str):
            classes = [classes]
        have = {class_key(lab): lab for lab in labels}
        out, missing = set(), []
        for c in classes:
            lab = c if c in labels else have.get(class_key(self.label(c)))
            if lab is None:
                missing.append(c)
            else:
                out.add(lab)
        if missing:
            raise DatasetError(f"class(es) {missing[:10]} not found in {where} "
                               f"({len(have)} class folders there)")
        return out


def _map_class_dirs(folder: Path, names: _ClassNames) -> tuple[dict[str, Path], dict[str, str]]:
    """``{label: class folder}`` of ``folder``'s subfolders, plus ``{folder name: label}`` renames."""
    out: dict[str, Path] = {}
    renamed: dict[str, str] = {}
    for name, path in _subdirs(folder):
        label = names.label(name)
        if label in out:
            raise DatasetError(f"folders {out[label]} and {path} both hold class {label!r} "
                               f"(names differ only in case, spaces, underscores or hyphens); keep one")
        out[label] = path
        if label != name:
            renamed[name] = label
    return out, renamed


def _check_same_classes(sk: dict, ph: dict, sketch_dir: Path, photo_dir: Path) -> None:
    only_sk, only_ph = sorted(set(sk) - set(ph)), sorted(set(ph) - set(sk))
    if only_sk or only_ph:
        parts = []
        if only_sk:
            parts.append(f"{len(only_sk)} class(es) have sketches in {sketch_dir} but no photo folder "
                         f"in {photo_dir}: {only_sk[:10]}")
        if only_ph:
            parts.append(f"{len(only_ph)} class(es) have photos in {photo_dir} but no sketches in "
                         f"{sketch_dir}: {only_ph[:10]}")
        raise DatasetError("; ".join(parts) + ". Complete the download, or pass classes=[...] to "
                           "load a subset.")


def _read_images(class_dirs: dict[str, Path], labels: list[str], modality: str,
                 paired: bool) -> tuple[list[Item], int]:
    items, ignored = [], 0
    for label in labels:
        folder = class_dirs[label]
        files, other = _images(folder)
        ignored += other
        if not files:
            raise DatasetError(f"empty class folder {folder}: no image files "
                               f"({' '.join(IMAGE_EXTENSIONS)}, any case) in it")
        for f in files:
            stem = f.stem
            if modality == "photo":
                inst = stem
            else:
                inst = sketch_instance(stem) if paired else ""
            items.append(Item(str(f), label, modality, inst))
    return items, ignored


def _missing_root(root: Path, what: str, help_text: str) -> DatasetError:
    return DatasetError(f"{what} not found: {root} does not exist.\n{help_text}\n"
                        f"Pass root=... or set SBIRLAB_DATA (see sbirlab.data.registry).")


def _no_layout(root: Path, what: str, help_text: str, detail: str = "") -> DatasetError:
    return DatasetError(f"{what}: no known layout at {root} (it holds: {_entries(root)})."
                        f"{' ' + detail if detail else ''}\n{help_text}")


def _find_layout(root, detect, subdirs: tuple[str, ...], what: str, help_text: str):
    """Run ``detect`` on ``root``, then on ``root/<sub>``; return ``(result, root used)``."""
    root = Path(root).expanduser()
    if not root.exists():
        raise _missing_root(root, what, help_text)
    if not root.is_dir():
        raise DatasetError(f"{what}: {root} is not a directory.\n{help_text}")
    root = root.resolve()
    found = detect(root)
    if found is None:
        for sub in subdirs:
            if (root / sub).is_dir():
                found = detect(root / sub)
                if found is not None:
                    root = root / sub
                    break
    if found is None:
        raise _no_layout(root, what, help_text)
    return found, root


def _build_index(name: str, root: Path, layout: str, sketch_dir: Path, photo_dir: Path, *,
                 reference=None, aliases=None, classes=None, paired: bool,
                 sketch_source: str = "images", ndjson_kw: dict | None = None,
                 help_text: str = "", source: str = "") -> DatasetIndex:
    """List ``sketch_dir/<class>/`` (or ``sketch_dir/<class>.ndjson``) and ``photo_dir/<class>/``."""
    names = _ClassNames(reference, aliases)
    ph_dirs, renamed = _map_class_dirs(photo_dir, names)
    if sketch_source == "ndjson":
        sk_dirs, ren2 = _map_ndjson_files(sketch_dir, names)
    else:
        sk_dirs, ren2 = _map_class_dirs(sketch_dir, names)
    renamed.update(ren2)
    wanted = names.wanted(classes, set(ph_dirs) | set(sk_dirs), root)
    if wanted is not None:
        sk_dirs = {k: v for k, v in sk_dirs.items() if k in wanted}
        ph_dirs = {k: v for k, v in ph_dirs.items() if k in wanted}
    _check_same_classes(sk_dirs, ph_dirs, sketch_dir, photo_dir)
    labels = sorted(ph_dirs)
    if not labels:
        raise DatasetError(f"{name}: no class folders in {photo_dir} and {sketch_dir}.\n{help_text}")
    photos, ign_ph = _read_images(ph_dirs, labels, "photo", paired)
    if sketch_source == "ndjson":
        sketches, ign_sk = _read_ndjson_sketches(sk_dirs, labels, paired, **(ndjson_kw or {})), 0
    else:
        sketches, ign_sk = _read_images(sk_dirs, labels, "sketch", paired)
    meta = {"layout": layout, "sketch_dir": str(sketch_dir), "photo_dir": str(photo_dir),
            "sketch_source": sketch_source, "paired": paired, "ignored_files": ign_ph + ign_sk,
            "renamed_classes": renamed}
    if source:
        meta["source"] = source
    if renamed:
        log.info("%s: folder names respelled as in the class list: %s", name, renamed)
    return DatasetIndex(name=name, root=str(root), classes=labels, sketches=sketches, photos=photos,
                        meta=meta)


# ---------------------------------------------------------------------------------------- ndjson

def _map_ndjson_files(folder: Path, names: _ClassNames) -> tuple[dict[str, Path], dict[str, str]]:
    out: dict[str, Path] = {}
    renamed: dict[str, str] = {}
    with os.scandir(folder) as it:
        files = sorted(e.name for e in it if not _hidden(e.name) and e.name.lower().endswith(".ndjson"))
    for fname in files:
        stem = fname[: -len(".ndjson")]
        for p in _NDJSON_PREFIXES:
            if stem.startswith(p):
                stem = stem[len(p):]
                break
        label = names.label(stem)
        if label in out:
            raise DatasetError(f"files {out[label]} and {folder / fname} both hold class {label!r}; keep one")
        out[label] = folder / fname
        if label != stem:
            renamed[fname] = label
    return out, renamed


def _read_ndjson_sketches(files: dict[str, Path], labels: list[str], paired: bool, *,
                          max_per_class: int | None = None, recognized_only: bool = False) -> list[Item]:
    items = []
    for label in labels:
        path = files[label]
        n_kept = 0
        records = read_ndjson(path)
        while max_per_class is None or n_kept < max_per_class:
            try:
                line, rec = next(records)
            except StopIteration:
                break
            except ValueError as e:  # read_ndjson names the file and the line
                msg = str(e) if str(path) in str(e) else f"{path}: not a UTF-8 .ndjson file ({e})"
                raise DatasetError(msg) from None
            if recognized_only and not rec.get("recognized", True):
                continue
            inst = ""
            if paired:
                if "instance" in rec:
                    inst = str(rec["instance"])
                elif isinstance(rec.get("key_id"), str) and _SKETCH_SUFFIX.search(rec["key_id"]):
                    inst = sketch_instance(rec["key_id"])
            items.append(Item(str(path), label, "sketch", inst, strokes=line))
            n_kept += 1
        records.close()
        if n_kept == 0:
            raise DatasetError(f"stroke file {path} holds no drawings"
                               f"{' marked recognized' if recognized_only else ''} for class {label!r}")
    return items


# ---------------------------------------------------------------------------------------- loaders

def _reference(dataset: str) -> list[str]:
    from .splits import all_classes

    try:
        return all_classes(dataset)
    except DatasetError as e:  # split files unavailable: fall back to folder names as they are
        log.warning("no class list for %s (%s); using folder names as class names", dataset, e)
        return []


def load_sketchy(root, *, layout: str = "auto", classes=None) -> DatasetIndex:
    """Sketchy Extended (125 classes; 75,471 sketches, 73,002 photos) in either common layout.

    Args:
        root: the dataset folder (or the folder holding ``Sketchy/``).
        layout: ``"sempcyc"`` (``sketch/tx_000000000000/`` + ``EXTEND_image_sketchy/``), ``"flat"``
            (``{sketch,photo}/<class>/``) or ``"auto"`` (the first that exists, in this order).
        classes: load only these classes (any spelling; default all).
    """
    def detect(r: Path):
        sempcyc = (r / "sketch" / SKETCHY_TX, r / "EXTEND_image_sketchy")
        flat = (r / "sketch", r / "photo")
        if layout in ("auto", "sempcyc") and sempcyc[0].is_dir() and sempcyc[1].is_dir():
            return ("sempcyc",) + sempcyc
        if layout in ("auto", "flat") and flat[0].is_dir() and flat[1].is_dir() \
                and not (flat[0] / SKETCHY_TX).is_dir():
            return ("flat",) + flat
        return None

    _check_layout(layout, ("auto", "sempcyc", "flat"))
    try:
        (lay, sk, ph), root = _find_layout(root, detect, ("Sketchy", "sketchy"), "Sketchy Extended",
                                           SKETCHY_HELP)
    except DatasetError as e:
        r = Path(root).expanduser()
        for base in (r, r / "Sketchy", r / "sketchy"):
            if (base / "sketch" / SKETCHY_TX).is_dir() and not (base / "EXTEND_image_sketchy").is_dir():
                raise DatasetError(
                    f"Sketchy Extended: {base} has sketch/{SKETCHY_TX}/ but not the extended photos "
                    f"EXTEND_image_sketchy/ (found: {_entries(base)}). Add them for Sketchy Extended, "
                    f"or use load_dataset('sketchy_fg') for the 12,500 Sketchy photos.\n{SKETCHY_HELP}"
                ) from None
        raise e
    return _build_index("sketchy", root, lay, sk, ph, reference=_reference("sketchy"), classes=classes,
                        paired=True, help_text=SKETCHY_HELP, source="https://sketchy.eye.gatech.edu/")


def load_sketchy_fg(root, *, layout: str = "auto", classes=None, paired_only: bool = True) -> DatasetIndex:
    """Sketchy FG: the Sketchy basic photos (100 per class) and their paired sketches.

    Args:
        root: the dataset folder (or the folder holding ``Sketchy/``).
        layout: ``"sketchy"`` (``{photo,sketch}/tx_000000000000/<class>/``, the Sketchy release),
            ``"flat"`` (``{photo,sketch}/<class>/``) or ``"auto"``.
        classes: load only these classes.
        paired_only: drop photos without a sketch and sketches without their photo (counts in
            ``meta["dropped_unpaired"]``), so a flat tree holding the extended photos still gives
            the FG dataset.
    """
    def detect(r: Path):
        tx = (r / "sketch" / SKETCHY_TX, r / "photo" / SKETCHY_TX)
        flat = (r / "sketch", r / "photo")
        if layout in ("auto", "sketchy") and tx[0].is_dir() and tx[1].is_dir():
            return ("sketchy",) + tx
        if layout in ("auto", "flat") and flat[0].is_dir() and flat[1].is_dir() \
                and not (flat[0] / SKETCHY_TX).is_dir() and not (flat[1] / SKETCHY_TX).is_dir():
            return ("flat",) + flat
        return None

    _check_layout(layout, ("auto", "sketchy", "flat"))
    (lay, sk, ph), root = _find_layout(root, detect, ("Sketchy", "sketchy"), "Sketchy FG", SKETCHY_FG_HELP)
    index = _build_index("sketchy_fg", root, lay, sk, ph, reference=_reference("sketchy_fg"),
                         classes=classes, paired=True, help_text=SKETCHY_FG_HELP,
                         source="https://sketchy.eye.gatech.edu/")
    if paired_only:
        photo_ids = {(p.label, p.instance) for p in index.photos}
        sketch_ids = {(s.label, s.instance) for s in index.sketches}
        photos = [p for p in index.photos if (p.label, p.instance) in sketch_ids]
        sketches = [s for s in index.sketches if (s.label, s.instance) in photo_ids]
        index.meta["dropped_unpaired"] = {"photos": len(index.photos) - len(photos),
                                          "sketches": len(index.sketches) - len(sketches)}
        index.photos, index.sketches = photos, sketches
        empty = sorted(set(index.classes) - {p.label for p in photos})
        if empty:
            raise DatasetError(f"Sketchy FG at {root}: no sketch-photo pairs in class(es) {empty[:10]} "
                               f"(sketch <id>-<k>.png pairs with photo <id>.jpg)")
    return index


def load_tuberlin(root, *, classes=None) -> DatasetIndex:
    """TU-Berlin Extended (250 classes; 20,000 sketches, 204,489 photos).

    Layouts: ``{sketches,images}/<class>/`` (SEM-PCYC) or ``{sketch,photo}/<class>/``. Class folders
    may contain spaces and hyphens (``alarm clock``, ``wrist-watch``) exactly as the split files.
    Sketches are unpaired (``instance == ""``).
    """
    def detect(r: Path):
        for lay, s, p in (("sketches/images", "sketches", "images"), ("sketch/photo", "sketch", "photo")):
            if (r / s).is_dir() and (r / p).is_dir():
                return lay, r / s, r / p
        return None

    (lay, sk, ph), root = _find_layout(root, detect, ("TU-Berlin", "TUBerlin", "tuberlin", "TU_Berlin"),
                                       "TU-Berlin Extended", TUBERLIN_HELP)
    return _build_index("tuberlin", root, lay, sk, ph, reference=_reference("tuberlin"), classes=classes,
                        paired=False, help_text=TUBERLIN_HELP,
                        source="https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/")


def load_quickdraw(root, *, sketch_source: str = "auto", classes=None, max_per_class: int | None = None,
                   recognized_only: bool = False, aliases: dict | None = None) -> DatasetIndex:
    """QuickDraw Extended (110 classes): photos plus sketches as images or as ``.ndjson`` strokes.

    Args:
        root: the dataset folder (or the folder holding ``QuickDraw/``).
        sketch_source: ``"images"`` (``sketch/<class>/*.png``), ``"ndjson"``
            (``ndjson/<class>.ndjson``, Google's simplified format; a ``full_simplified_`` file-name
            prefix is ignored) or ``"auto"`` (images if ``sketch/`` exists, else ndjson).
        classes: load only these classes.
        max_per_class: keep the first n drawings of each ``.ndjson`` file (Google's files hold
            100k+ drawings per class; QuickDraw Extended has ~3k).
        recognized_only: keep only drawings with ``"recognized": true`` (ndjson).
        aliases: extra ``{class: (other names,)}`` for matching file names; added to
            :data:`QUICKDRAW_ALIASES`.

    Photos come from ``images/`` (Doodle2Search) or ``photo/``. Class names are matched with
    :func:`~sbirlab.data.base.class_key`: Doodle2Search's ``palm_tree`` and Google's ``palm tree``
    both give the label ``palm tree`` of ``quickdraw_ext_all110.txt``.
    """
    _check_layout(sketch_source, ("auto", "images", "ndjson"), what="sketch_source")

    def detect(r: Path):
        ph = next((r / p for p in ("images", "photo") if (r / p).is_dir()), None)
        if ph is None:
            return None
        if sketch_source in ("auto", "images") and (r / "sketch").is_dir():
            return "images", r / "sketch", ph
        if sketch_source in ("auto", "ndjson") and (r / "ndjson").is_dir():
            return "ndjson", r / "ndjson", ph
        return None

    (src, sk, ph), root = _find_layout(root, detect, ("QuickDraw", "quickdraw", "QuickDraw_Extended"),
                                       "QuickDraw Extended", QUICKDRAW_HELP)
    al = dict(QUICKDRAW_ALIASES)
    for k, v in (aliases or {}).items():
        al[k] = tuple(al.get(k, ())) + ((v,) if isinstance(v, str) else tuple(v))
    return _build_index("quickdraw", root, f"{sk.name}+{ph.name}", sk, ph, reference=_reference("quickdraw"),
                        aliases=al, classes=classes, paired=False, sketch_source=src,
                        ndjson_kw={"max_per_class": max_per_class, "recognized_only": recognized_only},
                        help_text=QUICKDRAW_HELP, source="https://quickdraw.withgoogle.com/data")


def load_folders(root, *, name: str = "folders", paired: bool = True, sketch_source: str = "images",
                 classes=None, reference=None, max_per_class: int | None = None) -> DatasetIndex:
    """Any ``<root>/{sketch,photo}/<class>/`` tree (the synthetic world's layout, or your own data).

    Args:
        root: the tree.
        name: the dataset name recorded in the index.
        paired: sketches ``<id>-<k>.*`` belong to photo ``<id>.*`` (sets ``Item.instance``).
        sketch_source: ``"images"`` (``sketch/<class>/``) or ``"ndjson"`` (``strokes/<class>.ndjson``
            or ``ndjson/<class>.ndjson``; a record's ``instance`` field, else a ``key_id`` of the
            form ``<id>-<k>``, gives the pairing).
        classes: load only these classes.
        reference: the class names as the split files spell them (folder names are matched to them).
        max_per_class: for ``.ndjson`` sketches, keep the first n records per class.
    """
    _check_layout(sketch_source, ("images", "ndjson"), what="sketch_source")

    def detect(r: Path):
        if not (r / "photo").is_dir():
            return None
        if sketch_source == "images":
            return ("sketch/photo", r / "sketch", r / "photo") if (r / "sketch").is_dir() else None
        d = next((r / s for s in ("strokes", "ndjson") if (r / s).is_dir()), None)
        return (f"{d.name}/photo", d, r / "photo") if d is not None else None

    (lay, sk, ph), root = _find_layout(root, detect, (), name, FOLDERS_HELP)
    return _build_index(name, root, lay, sk, ph, reference=reference, classes=classes, paired=paired,
                        sketch_source=sketch_source, ndjson_kw={"max_per_class": max_per_class},
                        help_text=FOLDERS_HELP)


def load_synthetic(root=None, *, classes=None, **ensure_kw) -> DatasetIndex:
    """The offline synthetic world: ``sbirlab.data.synthetic.ensure_dataset(root)``, read as folders.

    ``root`` is either a generated world (a folder with ``world.json``) or the cache folder that
    ``ensure_dataset`` keeps worlds in. ``ensure_dataset`` builds the tree if needed and returns its path (``photo/<class>/<id>.png``,
    ``sketch/<class>/<id>-<k>.png``, ``strokes/<class>.ndjson``, ``splits/``); sketches pair with
    photos by file name.
    """
    import importlib

    synthetic = importlib.import_module("sbirlab.data.synthetic")  # lazy: builds data on demand
    if root is not None and (Path(root) / "world.json").exists():
        path = Path(root)  # a generated world itself (what `sbirlab data generate` prints)
    else:  # the cache folder holding world-* trees
        path = Path(synthetic.ensure_dataset(root=root, **ensure_kw))
    index = load_folders(path, name="synthetic", paired=True, classes=classes)
    if (path / "strokes").is_dir():
        index.meta["strokes_dir"] = str(path / "strokes")
    return index


def _check_layout(value: str, allowed: tuple[str, ...], what: str = "layout") -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {allowed}")
