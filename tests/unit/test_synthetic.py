"""The synthetic world: categories, determinism, shared instances, strokes, the dataset on disk, splits, cache.

Every test uses small worlds (8 classes, 4 photos per class, 2 sketches per photo) written to tmp folders.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sbirlab.data import synthetic
from sbirlab.data.categories import CATEGORIES, GROUPS, all_categories
from sbirlab.data.registry import data_summary, get_split, load_dataset
from sbirlab.data.strokes import quickdraw_to_strokes, rasterize_strokes, read_ndjson
from sbirlab.data.synthetic import (CANVAS, DRAWERS, Instance, WorldConfig, caption, ensure_dataset,
                                    make_instance, render_drawing, render_photo, render_sketch, sketch_strokes,
                                    zero_shot_split)

SMALL_CLASSES = ("apple", "car", "cup", "giraffe", "grapes", "house", "scissors", "tree")
SMALL = WorldConfig(classes=SMALL_CLASSES, photos_per_class=4, sketches_per_photo=2)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("SBIRLAB_DATA", raising=False)
    monkeypatch.delenv("SBIRLAB_SPLITS_DIR", raising=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The small world, generated once for this module: ``(cache root, dataset folder)``."""
    root = tmp_path_factory.mktemp("synthetic")
    return root, ensure_dataset(root=root, cfg=SMALL, workers=1)


def _px(img) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# ---------------------------------------------------------------------------------------- categories

def test_categories_are_many_real_words_in_seven_groups():
    names = all_categories()
    assert len(names) >= 60 and names == sorted(CATEGORIES)
    assert len(GROUPS) == 7 and len(set(GROUPS)) == 7
    for n in names:  # lower-case English words joined by underscores: "hot_air_balloon"
        assert re.fullmatch(r"[a-z]{3,}(_[a-z]{2,})*", n), n
        assert CATEGORIES[n].name == n and CATEGORIES[n].group in GROUPS
    per_group = {g: sum(c.group == g for c in CATEGORIES.values()) for g in GROUPS}
    assert all(k >= 5 for k in per_group.values()), per_group
    assert {"apple", "giraffe", "car", "house", "tree", "scissors", "cup"} <= set(names)


@pytest.mark.parametrize("label", all_categories())
def test_every_program_draws_parts_and_attributes(label):
    inst = make_instance(label, 7)
    assert inst.label == label and inst.parts and inst.attrs
    assert {"pose_scale", "pose_rot", "pose_mirror"} <= set(inst.attrs)
    pts = np.concatenate([p.points for p in inst.parts])
    assert pts.shape[1] == 2 and np.isfinite(pts).all()
    assert pts.min() > -0.1 and pts.max() < 1.1  # inside the frame (with margin)


def test_unknown_class_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown synthetic class 'unicorn'.*apple"):
        make_instance("unicorn", 0)


# --------------------------------------------------------------------------------------- determinism

def test_same_seed_same_bytes_different_seed_different():
    a, b = make_instance("giraffe", 3), make_instance("giraffe", 3)
    assert a.attrs == b.attrs
    assert render_photo(a).tobytes() == render_photo(b).tobytes()
    assert render_sketch(a, "quick", seed=1).tobytes() == render_sketch(b, "quick", seed=1).tobytes()
    assert render_drawing(a).tobytes() == render_drawing(b).tobytes()
    sa, wa = sketch_strokes(a, 2, seed=1)
    sb, wb = sketch_strokes(b, 2, seed=1)
    assert wa == wb and len(sa) == len(sb) and all(np.array_equal(x, y) for x, y in zip(sa, sb))

    c = make_instance("giraffe", 4)  # another instance
    assert c.attrs != a.attrs
    assert render_photo(c).tobytes() != render_photo(a).tobytes()
    assert render_sketch(c, "quick", seed=1).tobytes() != render_sketch(a, "quick", seed=1).tobytes()
    # same instance, another photo / sketch seed: another picture of the same object
    assert render_photo(a, seed=1).tobytes() != render_photo(a).tobytes()
    assert render_sketch(a, "quick", seed=2).tobytes() != render_sketch(a, "quick", seed=1).tobytes()


def test_world_files_are_reproducible(tmp_path, world):
    _, first = world
    cfg = WorldConfig(classes=("apple", "car"), photos_per_class=2, sketches_per_photo=2)
    again = ensure_dataset(root=tmp_path, cfg=cfg, workers=1)
    # instance seeds depend on (world seed, class, index) only: a smaller world is a prefix of a bigger one
    for rel in ("photo/apple/apple_0001.png", "sketch/car/car_0000-2.png"):
        assert (again / rel).read_bytes() == (first / rel).read_bytes(), rel
    lines = (again / "strokes/car.ndjson").read_text().splitlines()
    assert len(lines) == 4 and lines == (first / "strokes/car.ndjson").read_text().splitlines()[:4]
    other = ensure_dataset(root=tmp_path, cfg=WorldConfig(seed=1, classes=("apple", "car"), photos_per_class=2,
                                                          sketches_per_photo=2), workers=1)
    assert other != again
    assert (other / "photo/apple/apple_0001.png").read_bytes() != (again / "photo/apple/apple_0001.png").read_bytes()


# ------------------------------------------------------------------------- one instance, many renderers

def test_photo_and_sketches_share_the_instance_geometry():
    inst = make_instance("house", 11)
    assert isinstance(inst, Instance)
    centre = np.concatenate([p.points for p in inst.parts]).mean(0) * CANVAS
    extent = np.ptp(np.concatenate([p.points for p in inst.parts]) * CANVAS, axis=0)
    for d in DRAWERS:
        strokes, widths = sketch_strokes(inst, d)
        pts = np.concatenate(strokes)
        assert len(widths) == len(strokes)
        assert np.abs(pts.mean(0) - centre).max() < 0.25 * CANVAS, d.name  # drawn where the object is
        assert (np.ptp(pts, axis=0) > 0.4 * extent).all(), d.name  # and about its size
    # the photo shows the same object: render it with and without its parts (same background and noise)
    photo = _px(render_photo(inst, 64, occlusion_p=0.0))
    empty = _px(render_photo(Instance(inst.label, inst.seed, [], inst.attrs), 64, occlusion_p=0.0))
    ys, xs = np.nonzero(np.abs(photo - empty).max(-1) > 12)
    box = (xs.min() - 4, ys.min() - 4, xs.max() + 4, ys.max() + 4)  # the object in the photo
    for d in ("careful", "quick", "child"):
        iy, ix = np.nonzero(_px(render_sketch(inst, d))[..., 0] < 128)
        inside = (ix >= box[0]) & (ix <= box[2]) & (iy >= box[1]) & (iy <= box[3])
        assert inside.mean() > 0.85, (d, inside.mean())


def test_world_json_records_the_attributes_of_each_photo(world):
    _, ds = world
    info = json.loads((ds / "world.json").read_text())
    assert info["key"] == SMALL.key() and info["classes"] == sorted(SMALL_CLASSES)
    assert set(info["groups"].values()) <= set(GROUPS)
    metas = info["instances"]["giraffe"]
    assert [m["id"] for m in metas] == [f"giraffe_{i:04d}" for i in range(4)]
    for m in metas:  # the recorded attributes are those of the instance every file was drawn from
        inst = make_instance("giraffe", m["seed"], SMALL.pose_range)
        assert m["attrs"] == {k: round(v, 4) for k, v in inst.attrs.items()}
    assert len({json.dumps(m["attrs"], sort_keys=True) for m in metas}) == 4  # fine-grained: all differ


def test_several_sketches_per_photo_by_distinct_drawers(world):
    _, ds = world
    names = {d.name for d in DRAWERS}
    assert len(DRAWERS) == 8 and len(names) == 8
    for label in SMALL_CLASSES:
        by_photo: dict[str, list[str]] = {}
        for _, rec in read_ndjson(ds / "strokes" / f"{label}.ndjson"):
            pid = rec["key_id"].rsplit("-", 1)[0]
            by_photo.setdefault(pid, []).append(rec["drawer"])
            assert rec["word"] == synthetic.class_text(label) and rec["drawer"] in names
        assert len(by_photo) == 4
        for drawers in by_photo.values():
            assert len(drawers) == 2 and len(set(drawers)) == 2


# ------------------------------------------------------------------------------------------ strokes

def test_strokes_are_point_arrays_rasterised_by_the_one_rasteriser():
    inst = make_instance("car", 5)
    strokes, widths = sketch_strokes(inst, "careful", seed=1)
    assert isinstance(strokes, list) and strokes
    assert all(isinstance(s, np.ndarray) and s.ndim == 2 and s.shape[1] == 2 for s in strokes)
    img = rasterize_strokes(strokes, size=64, widths=widths, canvas=CANVAS)
    assert img.tobytes() == render_sketch(inst, "careful", seed=1, size=64).tobytes()
    a = _px(img)
    assert a.shape == (64, 64, 3) and a.min() < 60 and np.median(a) == 255  # black ink on white


def test_sketch_png_equals_its_ndjson_record_rasterised(world):
    _, ds = world
    for label in ("apple", "scissors"):
        for line, rec in read_ndjson(ds / "strokes" / f"{label}.ndjson"):
            png = _px(Image.open(ds / "sketch" / label / f"{rec['key_id']}.png").convert("RGB"))
            again = _px(rasterize_strokes(quickdraw_to_strokes(rec["drawing"]), size=SMALL.size,
                                          widths=rec["width"], canvas=CANVAS))
            # QuickDraw stores integer coordinates clipped to 0-255: equal within rounding
            assert np.abs(png - again).mean() < 8.0, (label, line)  # of 255
            # thin drawers' lines are sub-pixel (light grey) at 64 px: compare ink darkness, not a threshold
            r = np.corrcoef(255 - png[..., 0].ravel(), 255 - again[..., 0].ravel())[0, 1]
            assert r > 0.7, (label, line, r)


@pytest.mark.parametrize("size", [64, 224])
def test_image_size(size):
    inst = make_instance("tree", 2)
    assert render_photo(inst, size).size == (size, size)
    assert render_sketch(inst, 0, size=size).size == (size, size)
    assert render_drawing(inst, size).size == (size, size)
    assert render_photo(inst, size).mode == render_sketch(inst, 0, size=size).mode == "RGB"


def test_224px_world_on_disk(tmp_path):
    cfg = WorldConfig(size=224, classes=("cup", "key"), photos_per_class=1, sketches_per_photo=1)
    ds = ensure_dataset(root=tmp_path, cfg=cfg, workers=1)
    assert ds.name.startswith("world-224px-s0-")
    assert Image.open(ds / "photo/cup/cup_0000.png").size == (224, 224)
    assert Image.open(ds / "sketch/key/key_0000-1.png").size == (224, 224)


def test_pretraining_drawings_differ_from_sketches():
    inst = make_instance("cup", 1)
    drawing, sketch = _px(render_drawing(inst, style="outline")), _px(render_sketch(inst, 0))
    assert drawing.shape == sketch.shape and np.abs(drawing - sketch).mean() > 1.0
    cartoon = _px(render_drawing(inst, style="cartoon"))
    assert ((cartoon > 20) & (cartoon < 235)).mean() > ((drawing > 20) & (drawing < 235)).mean()  # grey fills


def test_captions_use_the_right_article():
    rng = np.random.default_rng(0)
    for label, bad in (("apple", " a apple"), ("ice_cream", " a ice cream"), ("grapes", " a grapes"),
                       ("scissors", " a scissors"), ("umbrella", " a umbrella")):
        inst = make_instance(label, 0)
        caps = {caption(inst, k, rng) for k in ("photo", "drawing") for _ in range(60)}
        assert all(bad not in " " + c for c in caps), [c for c in caps if bad in " " + c]
        assert all(" an " + synthetic.class_text(label) not in c for c in caps if label in ("grapes", "scissors"))
    car = make_instance("car", 0)
    caps = {caption(car, "photo", rng) for _ in range(60)}
    assert "a photo of a car." in caps and not any(" an car" in c for c in caps)
    assert synthetic._article("orange cup") == "an" and synthetic._article("red apple") == "a"
    assert synthetic._article("green grapes") == ""


# ------------------------------------------------------------------------------------ dataset on disk

def test_layout_on_disk(world):
    root, ds = world
    assert ds.parent == root and ds.name == f"world-64px-s0-{SMALL.key()}"
    assert sorted(p.name for p in ds.iterdir()) == ["photo", "sketch", "splits", "strokes", "world.json"]
    for label in SMALL_CLASSES:
        photos = sorted(p.name for p in (ds / "photo" / label).iterdir())
        assert photos == [f"{label}_{i:04d}.png" for i in range(4)]
        sketches = sorted(p.name for p in (ds / "sketch" / label).iterdir())
        assert sketches == [f"{label}_{i:04d}-{k}.png" for i in range(4) for k in (1, 2)]
        assert sum(1 for _ in read_ndjson(ds / "strokes" / f"{label}.ndjson")) == 8
    assert sorted(p.name for p in (ds / "splits").iterdir()) == [
        "synthetic_seen.txt", "synthetic_unseen.txt", "synthetic_val.txt"]
    assert not list(root.glob("*.tmp*"))  # written to a temporary folder, renamed when done


def test_load_dataset_reads_the_world_through_the_folder_loader(world):
    root, ds = world
    ix = load_dataset("synthetic", root=root, cfg=SMALL)
    assert ix.name == "synthetic" and Path(ix.root) == ds.resolve()
    assert ix.classes == sorted(SMALL_CLASSES) and ix.meta["layout"] == "sketch/photo"
    assert len(ix.photos) == 8 * 4 and len(ix.sketches) == 8 * 4 * 2
    assert ix.meta["strokes_dir"] == str(ds / "strokes")
    photo_ids = {(p.label, p.instance) for p in ix.photos}
    assert all(p.instance == Path(p.path).stem for p in ix.photos)
    # fine-grained pairing: every sketch names its photo through Item.instance
    assert all((s.instance and (s.label, s.instance) in photo_ids) for s in ix.sketches)
    assert all(Path(s.path).stem.startswith(s.instance + "-") for s in ix.sketches)


def test_split_files_and_partitions(world):
    root, ds = world
    split = zero_shot_split(SMALL.class_list(), SMALL.unseen_fraction, SMALL.val_fraction, SMALL.seed)
    for name in ("seen", "unseen", "val"):
        assert (ds / "splits" / f"synthetic_{name}.txt").read_text().split() == split[name]
    ix = load_dataset("synthetic", root=root, cfg=SMALL)
    zs = get_split("synthetic", index=ix)
    assert zs.name == "synthetic_zs" and list(zs.unseen) == split["unseen"] and list(zs.val) == split["val"]
    s = data_summary(ix)
    assert s["split_classes"] == {"seen": 6, "unseen": 2, "val": 2}
    assert s["totals"] == {"classes": 8, "sketches": 64, "photos": 32}
    assert s["test_queries"] == {"classes": 2, "items": 16} and s["test_gallery"] == {"classes": 2, "items": 8}
    assert s["train"]["photos"] == {"classes": 4, "items": 16} and s["val"]["sketches"]["items"] == 16
    assert data_summary("synthetic", root=root, cfg=SMALL) == s


def test_zero_shot_split_of_the_whole_world():
    classes = all_categories()
    sp = zero_shot_split(classes)
    seen, unseen, val = set(sp["seen"]), set(sp["unseen"]), set(sp["val"])
    assert len(unseen) == round(0.2 * len(classes))  # ~20% of the classes are unseen
    assert not seen & unseen and seen | unseen == set(classes)
    assert val <= seen and not val & unseen and len(val) == round(0.1 * len(seen))
    sketchy21 = [c for c in synthetic._SKETCHY21_UNSEEN if c in classes]
    assert set(sketchy21) <= unseen  # Sketchy-Ext's unseen classes first, where the world has them
    assert zero_shot_split(classes) == sp and zero_shot_split(classes, seed=1) != sp
    assert sp["seen"] == sorted(sp["seen"]) and sp["unseen"] == sorted(sp["unseen"])


# -------------------------------------------------------------------------------------------- cache

def test_second_call_reuses_the_cache(world, monkeypatch):
    root, ds = world
    stamp = (ds / "world.json").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("regenerated a cached world")

    monkeypatch.setattr(synthetic, "generate_dataset", boom)
    assert ensure_dataset(root=root, cfg=SMALL) == ds
    assert ensure_dataset(root=root, cfg=WorldConfig(classes=tuple(reversed(SMALL_CLASSES)), photos_per_class=4,
                                                     sketches_per_photo=2)) == ds  # class order is irrelevant
    assert (ds / "world.json").stat().st_mtime_ns == stamp


def test_cache_is_keyed_by_the_config(tmp_path, monkeypatch):
    base = WorldConfig(classes=("apple", "car"), photos_per_class=1, sketches_per_photo=1)
    keys = {base.key()}
    for change in ({"seed": 1}, {"size": 32}, {"photos_per_class": 2}, {"sketches_per_photo": 2},
                   {"unseen_fraction": 0.5}, {"val_fraction": 0.2}, {"classes": ("apple", "cup")},
                   {"sketch_difficulty": 1.5}):
        keys.add(WorldConfig(**{**base.__dict__, **change}).key())
    assert len(keys) == 9
    monkeypatch.setattr(synthetic, "WORLD_VERSION", synthetic.WORLD_VERSION + 1)
    assert base.key() not in keys  # a new renderer version never reads old files

    a = ensure_dataset(root=tmp_path, cfg=base, workers=1)
    b = ensure_dataset(root=tmp_path, cfg=WorldConfig(classes=("apple", "car"), photos_per_class=2,
                                                      sketches_per_photo=1), workers=1)
    assert a != b and len(list((a / "photo" / "car").iterdir())) == 1 and len(list((b / "photo" / "car").iterdir())) == 2


def test_default_root_follows_sbirlab_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIRLAB_DATA", str(tmp_path))
    assert synthetic.default_root() == tmp_path / "synthetic"
    monkeypatch.delenv("SBIRLAB_DATA")
    assert synthetic.default_root().parts[-2:] == ("data", "synthetic")


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch):
    cfg = WorldConfig(classes=("apple", "car"), photos_per_class=1, sketches_per_photo=1)
    real = synthetic._render_class

    def crash(args):
        raise RuntimeError("killed")

    monkeypatch.setattr(synthetic, "_render_class", crash)
    with pytest.raises(RuntimeError):
        ensure_dataset(root=tmp_path, cfg=cfg, workers=1)
    assert not any((p / "world.json").exists() for p in tmp_path.iterdir())
    monkeypatch.setattr(synthetic, "_render_class", real)
    ds = ensure_dataset(root=tmp_path, cfg=cfg, workers=1)  # a leftover .tmp folder is replaced
    assert (ds / "world.json").exists() and not list(tmp_path.glob("*.tmp*"))


# -------------------------------------------------------------------------------------- sample grids

def test_sample_grids_of_the_world(world):
    from sbirlab.viz.grids import DRAWING_TITLE, image_grid, index_rows, sample_grid, world_rows

    root, ds = world
    d = world_rows(["apple", "car"], n_sketches=2)
    assert d["col_titles"] == ["photo", "sketch 1", "sketch 2", DRAWING_TITLE]
    assert len(d["rows"]) == 2 and all(len(r) == 4 for r in d["rows"])
    # the grid shows the dataset's own files: the photo and sketch 1 of apple_0000
    assert _px(d["rows"][0][0]).tobytes() == _px(Image.open(ds / "photo/apple/apple_0000.png").convert("RGB")).tobytes()
    assert _px(d["rows"][0][1]).tobytes() == _px(Image.open(ds / "sketch/apple/apple_0000-1.png").convert("RGB")).tobytes()
    first = next(read_ndjson(ds / "strokes" / "apple.ndjson"))[1]
    assert d["cell_labels"][0][1] == first["drawer"]
    img = sample_grid(**d, as_image=True)
    assert img.mode == "RGB" and img.width > 4 * 64 and img.height > 2 * 64
    assert image_grid(d["rows"], pad=2).size == (4 * 64 + 5 * 2, 2 * 64 + 3 * 2)
    ix = load_dataset("synthetic", root=root, cfg=SMALL)
    g = index_rows(ix, classes=["giraffe", "tree"], n_sketches=2)
    assert g["row_titles"] == ["giraffe", "tree"] and g["col_titles"][1] == "its sketch 1"
    assert all(len(r) == 3 and r[0].size == (64, 64) for r in g["rows"])
