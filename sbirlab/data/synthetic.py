"""The offline world: procedurally drawn photos and hand-drawn-looking sketches of the same instances.

Every class is a parametric drawing program (:mod:`sbirlab.data.categories`). An *instance* is one
run of that program with its own seed: its fine-grained attributes (proportions, part counts, pose,
part positions, small rotations) are drawn once and shared by everything rendered from it. Three
renderers read the same geometry:

* :func:`render_photo`: filled, coloured, shaded parts on a cluttered background, random lighting,
  sensor noise and occasional occlusion;
* :func:`sketch_strokes` + :func:`~sbirlab.data.strokes.rasterize_strokes`: black strokes on white
  traced by one of several *drawers* (hand wobble, over- and undershoot, broken strokes, missing
  details, stroke width, abstraction); each photo gets sketches by distinct drawers, as Sketchy has
  about five per photo;
* :func:`render_drawing`: clean outline / clip-art drawings in a **different** style from the SBIR
  sketches. Only the CLIP pretraining corpus uses them (real CLIP saw drawings on the web, never the
  benchmark's sketches); see :mod:`sbirlab.pretrain`.

Everything is deterministic from a seed. :func:`ensure_dataset` writes the default dataset once under
``data/synthetic/`` in a Sketchy-like layout (``photo/<class>/<id>.png``,
``sketch/<class>/<id>-<k>.png``, ``strokes/<class>.ndjson``, ``splits/*.txt``) so the generic folder
loader reads it exactly as it reads the real datasets.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .categories import CATEGORIES, all_categories
from .geometry import Builder, Part, transform_parts
from .strokes import rasterize_strokes, strokes_to_quickdraw, write_ndjson

log = logging.getLogger(__name__)

CANVAS = 256.0  # stroke coordinate frame, as QuickDraw's simplified drawings
WORLD_VERSION = 1  # bump when rendering changes, so cached datasets are regenerated

#: Sketchy-Ext's 21 unseen classes (Yelamarthi et al. 2018): those the world has are unseen by default.
_SKETCHY21_UNSEEN = ("bat", "cabin", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "pear",
                     "raccoon", "rhinoceros", "saw", "scissors", "seagull", "skyscraper", "songbird",
                     "sword", "tree", "wheelchair", "windmill", "window")


def _seed(*keys) -> int:
    """A stable 64-bit seed from any keys (independent of PYTHONHASHSEED)."""
    h = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


# ---------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------
@dataclass
class Instance:
    """One object instance: its class, seed, posed parts and fine-grained attributes."""

    label: str
    seed: int
    parts: list[Part]
    attrs: dict[str, float]
    words: list[str] = field(default_factory=list)


def make_instance(label: str, seed: int, pose_range: float = 1.0) -> Instance:
    """Run the drawing program of ``label`` with ``seed`` and apply the instance pose.

    The pose (scale, shift, small rotation, mirror) is part of the fine-grained attributes.
    ``pose_range`` widens (> 1) or narrows the pose distribution: scale in ``[1 - 0.22 r, 1]``, shift
    up to ``0.07 r`` / ``0.06 r`` of the side, rotation up to ``0.18 r`` rad. Wider poses make the
    instances of a class differ more (harder category-level retrieval, more to tell instances apart by).
    """
    try:
        cat = CATEGORIES[label]
    except KeyError:
        raise KeyError(f"unknown synthetic class {label!r}; known: {', '.join(all_categories())}") from None
    rng = np.random.default_rng(_seed("instance", label, seed))
    b = Builder(rng)
    cat.program(b)
    r = float(pose_range)
    if not 0 <= r <= 3:
        raise ValueError(f"pose_range must be in [0, 3], got {pose_range!r}")
    scale = b.uniform("pose_scale", 1.0 - 0.22 * r, 1.0)
    shift = (b.uniform("pose_dx", -0.07 * r, 0.07 * r), b.uniform("pose_dy", -0.06 * r, 0.06 * r))
    angle = b.uniform("pose_rot", -0.18 * r, 0.18 * r)
    mirror = bool(b.integer("pose_mirror", 0, 1))
    parts = transform_parts(b.parts, scale, shift, angle, mirror)
    return Instance(label, seed, parts, dict(b.attrs), list(b.words))


# ---------------------------------------------------------------------------------------------
# Photos
# ---------------------------------------------------------------------------------------------
_BG_COLORS = np.array([
    [135, 180, 220], [200, 220, 235], [110, 140, 90], [150, 170, 110], [190, 175, 150], [160, 150, 140],
    [220, 210, 190], [90, 100, 120], [170, 190, 200], [120, 110, 100], [200, 195, 205], [140, 160, 170],
], dtype=float)


def _shade(c, f):
    return tuple(int(min(255, max(0, v * f))) for v in c)


def _mix(c, d, t):
    return tuple(int(a * (1 - t) + b * t) for a, b in zip(c, d))


def render_photo(inst: Instance, size: int = 64, seed: int | None = None, occlusion_p: float = 0.15,
                 supersample: int = 2) -> Image.Image:
    """Render ``inst`` as a photo: cluttered background, shaded filled parts, lighting, noise."""
    rng = np.random.default_rng(_seed("photo", inst.label, inst.seed, seed))
    s = size * supersample
    # background: two tones (ground/sky or wall/floor) + clutter
    top = _BG_COLORS[rng.integers(len(_BG_COLORS))] + rng.normal(0, 12, 3)
    bot = _BG_COLORS[rng.integers(len(_BG_COLORS))] + rng.normal(0, 12, 3)
    horizon = rng.uniform(0.45, 0.85)
    img = Image.new("RGB", (s, s), tuple(int(v) for v in np.clip(top, 0, 255)))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, horizon * s, s, s], fill=tuple(int(v) for v in np.clip(bot, 0, 255)))
    for _ in range(rng.integers(2, 7)):
        c = tuple(int(v) for v in np.clip(_BG_COLORS[rng.integers(len(_BG_COLORS))] + rng.normal(0, 20, 3), 0, 255))
        x, y = rng.uniform(-0.1, 1.0, 2) * s
        w, h = rng.uniform(0.08, 0.35, 2) * s
        kind = rng.integers(3)
        if kind == 0:
            draw.rectangle([x, y, x + w, y + h], fill=c)
        elif kind == 1:
            draw.ellipse([x, y, x + w, y + h], fill=c)
        else:
            draw.line([(x, y), (x + w, y + rng.uniform(-1, 1) * h)], fill=c, width=int(rng.integers(1, 4) * supersample))
    # the object: light from a random direction
    light = rng.normal(0, 1, 2)
    light = light / (np.linalg.norm(light) + 1e-8)
    for p in inst.parts:
        xy = p.points * s
        pts = [tuple(v) for v in xy]
        if p.closed:
            if len(pts) < 3:
                continue
            draw.polygon(pts, fill=_shade(p.color, 0.82))
            if p.detail <= 1 and len(pts) >= 4:  # highlight: a shrunken copy shifted toward the light
                c = xy.mean(0)
                ext = np.ptp(xy, axis=0).max()
                hl = (xy - c) * 0.62 + c - light * ext * 0.12
                draw.polygon([tuple(v) for v in hl], fill=_mix(p.color, (255, 255, 255), 0.18))
            draw.line(pts + [pts[0]], fill=_shade(p.color, 0.55), width=max(1, supersample // 2))
        else:
            draw.line(pts, fill=_shade(p.color, 0.9), width=max(1, int(round(p.width * s))), joint="curve")
    # occasional occlusion by a foreground thing
    if rng.random() < occlusion_p:
        allpts = np.concatenate([p.points for p in inst.parts]) * s
        lo, hi = allpts.min(0), allpts.max(0)
        cx = rng.uniform(lo[0], hi[0])
        cy = rng.uniform(lo[1], hi[1])
        r = rng.uniform(0.1, 0.2) * s
        c = tuple(int(v) for v in np.clip(_BG_COLORS[rng.integers(len(_BG_COLORS))] * 0.8, 0, 255))
        if rng.random() < 0.5:
            draw.rectangle([cx - r, cy - r * 0.6, cx + r, cy + r * 0.6], fill=c)
        else:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=c)
    if supersample > 1:
        img = img.reduce(supersample)
    # lighting: global brightness/contrast, a directional gradient, sensor noise
    a = np.asarray(img, dtype=np.float32)
    g = np.linspace(-1, 1, size, dtype=np.float32)
    grad = 1 + rng.uniform(0, 0.25) * (light[0] * g[None, :] + light[1] * g[:, None])
    bright, contrast = rng.uniform(0.7, 1.2), rng.uniform(0.75, 1.15)
    a = ((a - 128) * contrast + 128) * bright * grad[..., None]
    a += rng.normal(0, rng.uniform(1, 7), a.shape).astype(np.float32)
    tint = rng.normal(1, 0.04, 3).astype(np.float32)
    return Image.fromarray(np.clip(a * tint, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Sketches
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drawer:
    """A sketching style. Units are canvas pixels (256 canvas) unless said otherwise.

    Attributes:
        wobble: amplitude of the slow hand wobble along the stroke.
        tremor: amplitude of the fast jitter.
        jitter: per-stroke misplacement (std).
        overshoot: typical fraction of a closed outline drawn past its start (negative: undershoot).
        omit1 / omit2: probability of leaving out a secondary part / a fine detail.
        spacing: distance between sampled points (larger = more abstract, straighter segments).
        width: stroke width.
        split: probability of drawing an outline as two strokes.
        distort: std of the whole-sketch affine distortion.
    """

    name: str
    wobble: float
    tremor: float
    jitter: float
    overshoot: float
    omit1: float
    omit2: float
    spacing: float
    width: float
    split: float
    distort: float


DRAWERS: tuple[Drawer, ...] = (
    Drawer("careful", 1.5, 0.4, 1.5, 0.04, 0.05, 0.25, 6, 2.5, 0.15, 0.03),
    Drawer("quick", 3.0, 0.8, 3.5, 0.12, 0.35, 0.75, 12, 3.0, 0.35, 0.06),
    Drawer("shaky", 2.5, 1.6, 2.5, 0.08, 0.2, 0.5, 5, 2.0, 0.3, 0.05),
    Drawer("bold", 2.0, 0.5, 3.0, 0.10, 0.3, 0.7, 10, 5.0, 0.2, 0.05),
    Drawer("minimal", 2.0, 0.5, 3.0, -0.08, 0.6, 0.95, 16, 3.5, 0.1, 0.07),
    Drawer("detailed", 1.8, 0.6, 2.0, 0.06, 0.0, 0.1, 7, 2.0, 0.25, 0.04),
    Drawer("loose", 4.0, 0.9, 4.5, 0.15, 0.25, 0.6, 9, 3.0, 0.5, 0.08),
    Drawer("child", 5.0, 1.2, 5.0, 0.2, 0.4, 0.8, 11, 4.0, 0.4, 0.11),
)


def _resample(pts: np.ndarray, spacing: float, min_n: int = 3, max_n: int = 80) -> np.ndarray:
    d = pts[1:] - pts[:-1]
    seg = np.sqrt((d * d).sum(1))  # = np.linalg.norm(..., axis=1), without its overhead
    t = np.concatenate([[0.0], np.cumsum(seg)])
    total = t[-1]
    if total < 1e-6:
        return pts[:1].copy()
    n = int(np.clip(total / spacing, min_n, max_n))
    u = np.linspace(0, total, n)
    return np.stack([np.interp(u, t, pts[:, 0]), np.interp(u, t, pts[:, 1])], axis=1)


def _normals(pts: np.ndarray) -> np.ndarray:
    d = np.empty_like(pts)  # = np.gradient(pts, axis=0) (central differences), without its overhead
    d[1:-1] = (pts[2:] - pts[:-2]) / 2.0
    d[0] = pts[1] - pts[0]
    d[-1] = pts[-1] - pts[-2]
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    return n / (np.sqrt((n * n).sum(1, keepdims=True)) + 1e-8)


def harder(drawer: Drawer, difficulty: float) -> Drawer:
    """``drawer`` scaled by ``difficulty`` (1 = as defined): more wobble, misplacement, distortion,
    omissions and abstraction above 1, tidier below."""
    d = float(difficulty)
    if d == 1.0:
        return drawer
    keep = lambda p: 1 - (1 - p) ** d if d >= 1 else p * d  # noqa: E731
    return Drawer(drawer.name, drawer.wobble * d, drawer.tremor * d, drawer.jitter * d, drawer.overshoot * d,
                  keep(drawer.omit1), keep(drawer.omit2), drawer.spacing * d ** 0.5, drawer.width,
                  min(0.9, drawer.split * d), drawer.distort * d)


def sketch_strokes(inst: Instance, drawer: Drawer | int | str, seed: int = 0,
                   difficulty: float = 1.0) -> tuple[list[np.ndarray], list[float]]:
    """Trace ``inst`` as a drawer would: strokes (``[n, 2]`` arrays on the 256 canvas) and widths.

    ``difficulty`` scales the drawer's sloppiness (see :func:`harder`).
    """
    if isinstance(drawer, int):
        drawer = DRAWERS[drawer % len(DRAWERS)]
    elif isinstance(drawer, str):
        drawer = next(d for d in DRAWERS if d.name == drawer)
    drawer = harder(drawer, difficulty)
    rng = np.random.default_rng(_seed("sketch", inst.label, inst.seed, drawer.name, seed))
    # whole-sketch distortion: the drawer's proportions are never exact
    A = np.eye(2) + rng.normal(0, drawer.distort, (2, 2))
    off = rng.normal(0, drawer.jitter * 1.5, 2)
    strokes, widths = [], []
    for p in inst.parts:
        if p.detail == 1 and rng.random() < drawer.omit1:
            continue
        if p.detail >= 2 and rng.random() < drawer.omit2:
            continue
        pts = p.points.astype(np.float64) * CANVAS
        if p.closed:
            frac = drawer.overshoot + rng.normal(0, 0.06)
            n0 = len(pts)
            if frac > 0:  # continue past the start
                k = max(1, int(round(frac * n0)))
                pts = np.concatenate([pts, pts[: k + 1]])
            else:  # stop short of closing
                k = int(round(-frac * n0))
                pts = np.concatenate([pts, pts[:1]])[: max(2, n0 + 1 - k)]
        pts = _resample(pts, drawer.spacing * rng.uniform(0.8, 1.25))
        if len(pts) >= 3:
            u = np.linspace(0, 1, len(pts))
            amp = drawer.wobble * rng.uniform(0.5, 1.5)
            f1, f2 = rng.uniform(0.5, 2.0), rng.uniform(2.0, 5.0)
            wob = amp * (np.sin(2 * np.pi * (f1 * u + rng.random())) + 0.5 * np.sin(2 * np.pi * (f2 * u + rng.random())))
            pts = pts + _normals(pts) * wob[:, None]
            pts = pts + rng.normal(0, drawer.tremor, pts.shape)
        c = pts.mean(0)
        pts = (pts - c) * rng.normal(1, 0.04) + c + rng.normal(0, drawer.jitter, 2)
        pts = (pts - CANVAS / 2) @ A.T + CANVAS / 2 + off
        w = drawer.width * rng.uniform(0.8, 1.25)
        if len(pts) >= 6 and rng.random() < drawer.split:
            cut = int(rng.integers(2, len(pts) - 2))
            gap = int(rng.integers(-1, 2))
            strokes += [pts[: cut + 1], pts[max(0, cut + gap):]]
            widths += [w, w]
        else:
            strokes.append(pts)
            widths.append(w)
    if not strokes:  # a drawer never hands in an empty page: keep the essential silhouette
        strokes = [_resample(inst.parts[0].points.astype(np.float64) * CANVAS, drawer.spacing)]
        widths = [drawer.width]
    return [s.astype(np.float32) for s in strokes], widths


def render_sketch(inst: Instance, drawer: Drawer | int | str, seed: int = 0, size: int = 64,
                  difficulty: float = 1.0) -> Image.Image:
    """Rasterise :func:`sketch_strokes` with the one shared rasteriser."""
    strokes, widths = sketch_strokes(inst, drawer, seed, difficulty)
    return rasterize_strokes(strokes, size=size, widths=widths, canvas=CANVAS)


# ---------------------------------------------------------------------------------------------
# Clean drawings (pretraining only)
# ---------------------------------------------------------------------------------------------
def render_drawing(inst: Instance, size: int = 64, style: str = "mixed", seed: int | None = None,
                   supersample: int = 2) -> Image.Image:
    """A clean drawing of ``inst``: exact outlines of every part, uniform line width.

    ``style``: ``"outline"`` (black outlines on white), ``"cartoon"`` (grey-level fills by the
    part's luminance plus outlines: clip art), ``"mixed"`` (either at random). Never used for the
    SBIR sketches: this is the web-drawing style CLIP pretraining sees.
    """
    rng = np.random.default_rng(_seed("drawing", inst.label, inst.seed, seed))
    if style == "mixed":
        style = "outline" if rng.random() < 0.5 else "cartoon"
    s = size * supersample
    img = Image.new("L", (s, s), 255)
    draw = ImageDraw.Draw(img)
    lw = max(1, int(round(rng.uniform(0.8, 1.6) * supersample * size / 64)))
    for p in inst.parts:
        pts = [tuple(v) for v in p.points * s]
        if p.closed and len(pts) >= 3:
            fill = None
            if style == "cartoon":
                lum = 0.299 * p.color[0] + 0.587 * p.color[1] + 0.114 * p.color[2]
                fill = int(120 + lum * 0.5)
            draw.polygon(pts, fill=fill if fill is not None else 255 if p.detail == 0 else None)
            draw.line(pts + [pts[0]], fill=0, width=lw, joint="curve")
        elif len(pts) >= 2:
            draw.line(pts, fill=0, width=lw, joint="curve")
    if supersample > 1:
        img = img.reduce(supersample)
    return img.convert("RGB")


# ---------------------------------------------------------------------------------------------
# Captions (pretraining)
# ---------------------------------------------------------------------------------------------
_PHOTO_TEMPLATES = ("a photo of a {c}.", "a photo of the {c}.", "a {a} {c}.", "a photo of a {a} {c}.",
                    "a {c}.", "a picture of a {c}.", "a close photo of a {c}.", "a {c} in a cluttered scene.",
                    "a bright photo of a {c}.", "a dark photo of a {c}.", "an image of a {a} {c}.")
_DRAWING_TEMPLATES = ("a drawing of a {c}.", "a line drawing of a {c}.", "a clip art of a {c}.",
                      "an outline drawing of the {c}.", "a black and white drawing of a {c}.",
                      "a simple drawing of a {c}.", "a cartoon of a {c}.")


def class_text(label: str) -> str:
    """The class name as words (``hot_air_balloon`` -> ``hot air balloon``)."""
    return label.replace("_", " ")


#: Class names that take no indefinite article ("a photo of grapes").
_PLURAL_CLASSES = frozenset({"grapes", "scissors"})
_INDEFINITE = re.compile(r"\ban? (?=\{a\} \{c\}|\{c\})")


def _article(phrase: str) -> str:
    """The indefinite article of a noun phrase: ``"an"`` before a vowel, ``""`` for plural classes."""
    words = phrase.split()
    if not words or words[-1] in _PLURAL_CLASSES:
        return ""
    return "an" if words[0][0].lower() in "aeiou" else "a"


def _with_article(template: str, c: str, a: str = "") -> str:
    """Fill ``template``, replacing its ``a``/``an`` before ``{c}`` or ``{a} {c}`` by :func:`_article`."""
    def fix(m):
        art = _article(f"{a} {c}" if m.string.startswith("{a}", m.end()) else c)
        return f"{art} " if art else ""

    return _INDEFINITE.sub(fix, template).format(c=c, a=a)


def caption(inst: Instance, kind: str, rng: np.random.Generator) -> str:
    """A templated caption naming the class and, for photos, some attribute words (its colour)."""
    c = class_text(inst.label)
    if kind == "drawing":
        return _with_article(_DRAWING_TEMPLATES[rng.integers(len(_DRAWING_TEMPLATES))], c)
    t = _PHOTO_TEMPLATES[rng.integers(len(_PHOTO_TEMPLATES))]
    if "{a}" in t:
        if not inst.words:
            t = "a photo of a {c}."
        return _with_article(t, c, inst.words[int(rng.integers(len(inst.words)))] if inst.words else "")
    return _with_article(t, c)


# ---------------------------------------------------------------------------------------------
# The dataset on disk
# ---------------------------------------------------------------------------------------------
@dataclass
class WorldConfig:
    """Parameters of a synthetic SBIR dataset. The same config always gives the same files."""

    seed: int = 0
    size: int = 64
    # the embedded default (issue 12): 200 photos per class (so P@200 and mAP@200 mean something on the
    # unseen classes), 2 sketches each, instance poses 1.3x wider than world v1's (frozen tiny CLIP ZS
    # mAP@all ~0.36 instead of 0.59: room for prompt learning to show)
    photos_per_class: int = 200
    sketches_per_photo: int = 2
    unseen_fraction: float = 0.2
    val_fraction: float = 0.1
    classes: tuple[str, ...] | None = None  # None = every registered class
    sketch_difficulty: float = 1.0          # scales every drawer's sloppiness (see harder())
    pose_range: float = 1.3                 # widens the instance pose distribution (see make_instance())

    def class_list(self) -> list[str]:
        return sorted(self.classes) if self.classes else all_categories()

    def key(self) -> str:
        d = asdict(self)
        d["version"] = WORLD_VERSION
        d["classes"] = self.class_list()
        for knob in ("sketch_difficulty", "pose_range"):  # keeps the keys of worlds made before the knobs
            if d[knob] == 1.0:
                del d[knob]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def zero_shot_split(classes: list[str], unseen_fraction: float = 0.2, val_fraction: float = 0.1,
                    seed: int = 0) -> dict[str, list[str]]:
    """The world's zero-shot split: about ``unseen_fraction`` unseen classes (Sketchy-21 names first),
    and ``val_fraction`` of the seen classes held out for validation (model selection)."""
    rng = np.random.default_rng(_seed("split", seed))
    n_unseen = max(1, int(round(unseen_fraction * len(classes))))
    preferred = [c for c in _SKETCHY21_UNSEEN if c in classes]
    rest = [c for c in classes if c not in preferred]
    rng.shuffle(preferred)
    rng.shuffle(rest)
    unseen = sorted((preferred + rest)[:n_unseen])
    seen = sorted(c for c in classes if c not in unseen)
    n_val = max(2, int(round(val_fraction * len(seen)))) if len(seen) > 4 else 0
    val = sorted(rng.choice(seen, n_val, replace=False).tolist()) if n_val else []
    return {"seen": seen, "unseen": unseen, "val": val}


def default_root() -> Path:
    """Where datasets are cached: ``$SBIRLAB_DATA/synthetic`` or the repository's ``data/synthetic``."""
    base = os.environ.get("SBIRLAB_DATA")
    if base:
        return Path(base) / "synthetic"
    return Path(__file__).resolve().parents[2] / "data" / "synthetic"


def _render_class(args) -> tuple[str, list[dict]]:
    """Render every photo and sketch of one class into ``out`` (a worker task)."""
    out, label, cfg_d = args
    cfg = WorldConfig(**cfg_d)
    out = Path(out)
    (out / "photo" / label).mkdir(parents=True, exist_ok=True)
    (out / "sketch" / label).mkdir(parents=True, exist_ok=True)
    records, meta = [], []
    for i in range(cfg.photos_per_class):
        seed = _seed("world", cfg.seed, label, i) % (2 ** 31)
        inst = make_instance(label, seed, cfg.pose_range)
        pid = f"{label}_{i:04d}"
        render_photo(inst, cfg.size).save(out / "photo" / label / f"{pid}.png", compress_level=1)
        drawers = np.random.default_rng(seed).permutation(len(DRAWERS))[: cfg.sketches_per_photo]
        for k, d in enumerate(drawers, start=1):
            strokes, widths = sketch_strokes(inst, int(d), seed=k, difficulty=cfg.sketch_difficulty)
            rasterize_strokes(strokes, size=cfg.size, widths=widths, canvas=CANVAS).save(
                out / "sketch" / label / f"{pid}-{k}.png", compress_level=1)
            records.append({"word": class_text(label), "key_id": f"{pid}-{k}", "recognized": True,
                            "countrycode": "XX", "drawer": DRAWERS[int(d)].name,
                            "width": [round(w, 2) for w in widths], "drawing": strokes_to_quickdraw(strokes)})
        meta.append({"id": pid, "seed": seed, "attrs": {k: round(v, 4) for k, v in inst.attrs.items()}})
    (out / "strokes").mkdir(exist_ok=True)
    write_ndjson(out / "strokes" / f"{label}.ndjson", records)
    return label, meta


def generate_dataset(out: str | Path, cfg: WorldConfig | None = None, workers: int = 1,
                     progress: bool = True) -> Path:
    """Write a synthetic SBIR dataset to ``out`` (a temporary folder renamed into place when done)."""
    cfg = cfg or WorldConfig()
    out = Path(out)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")  # per process: concurrent generators never collide
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    classes = cfg.class_list()
    t0 = time.time()
    tasks = [(str(tmp), c, asdict(cfg)) for c in classes]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as ex:
            results = list(ex.map(_render_class, tasks))
    else:
        from tqdm.auto import tqdm
        results = [_render_class(t) for t in tqdm(tasks, desc="synthetic world", disable=not progress)]
    split = zero_shot_split(classes, cfg.unseen_fraction, cfg.val_fraction, cfg.seed)
    (tmp / "splits").mkdir()
    for name, cl in split.items():
        (tmp / "splits" / f"synthetic_{name}.txt").write_text("\n".join(cl) + "\n")
    info = {"config": asdict(cfg), "key": cfg.key(), "world_version": WORLD_VERSION,
            "classes": classes, "groups": {c: CATEGORIES[c].group for c in classes},
            "split": split, "instances": dict(results), "seconds": round(time.time() - t0, 1)}
    (tmp / "world.json").write_text(json.dumps(info, indent=1))
    if (out / "world.json").exists():  # another process finished the same world first: keep theirs
        shutil.rmtree(tmp)
        return out
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.info("synthetic world: %d classes written to %s in %.1f s", len(classes), out, info["seconds"])
    return out


def ensure_dataset(root: str | Path | None = None, cfg: WorldConfig | None = None, workers: int | None = None) -> Path:
    """Return the folder of the synthetic dataset ``cfg``, generating it on first use.

    The cache is keyed by the config (and the world version), so changing a parameter never
    reads stale files. ``root`` defaults to :func:`default_root`.
    """
    cfg = cfg or WorldConfig()
    root = Path(root) if root else default_root()
    out = root / f"world-{cfg.size}px-s{cfg.seed}-{cfg.key()}"
    if (out / "world.json").exists():
        return out
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    log.warning("generating the synthetic world in %s (first use; cached afterwards)", out)
    return generate_dataset(out, cfg, workers=workers)


def stable_hash01(text: str) -> float:
    """A value in [0, 1) from ``text``, stable across runs and machines (for held-out item draws)."""
    return (zlib.crc32(text.encode()) & 0xFFFFFFFF) / 2 ** 32
