"""Dataset loaders, split files and the registry, on tiny fixture trees of every real layout."""
from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pytest

from sbirlab.data.base import (DatasetError, DatasetIndex, UnknownNameError, ZSSplit, class_key,
                               draw_val_classes, make_partitions)
from sbirlab.data.folders import load_folders, sketch_instance
from sbirlab.data.registry import data_summary, default_root, get_split, load_dataset
from sbirlab.data.splits import (DEFAULT_SPLITS, SPLITS, all_classes, available_splits, load_split,
                                 read_class_list, splits_dir)
from tests.fixtures import (QUICKDRAW_CLASSES, SKETCHY_CLASSES, TUBERLIN_CLASSES, make_quickdraw_tree,
                            make_sketchy_fg_tree, make_sketchy_tree, make_synthetic_tree, make_tuberlin_tree,
                            quickdraw_record, drawing_for, write_class_list, write_image, write_ndjson_file)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("SBIRLAB_DATA", raising=False)
    monkeypatch.delenv("SBIRLAB_SPLITS_DIR", raising=False)


def _check_index(ix: DatasetIndex, classes, n_sketches, n_photos):
    assert ix.classes == sorted(classes)
    assert len(ix.sketches) == n_sketches and len(ix.photos) == n_photos
    assert {i.modality for i in ix.sketches} == {"sketch"} and {i.modality for i in ix.photos} == {"photo"}
    assert all(Path(i.path).is_absolute() and Path(i.path).is_file() for i in ix.sketches + ix.photos)
    assert {i.label for i in ix.photos} == set(ix.classes)


# ------------------------------------------------------------------------------------------- Sketchy

@pytest.mark.parametrize("layout", ["sempcyc", "flat"])
def test_sketchy_layouts_counts_and_pairing(tmp_path, layout):
    root = make_sketchy_tree(tmp_path, layout=layout, n_photos=2, n_sketches=3, n_extra_photos=1)
    ix = load_dataset("sketchy", root)  # auto-detected
    C = len(SKETCHY_CLASSES)
    _check_index(ix, SKETCHY_CLASSES, C * 2 * 3, C * 3)
    assert ix.name == "sketchy" and ix.meta["layout"] == layout and ix.root == str(root.resolve())
    photo_ids = {(p.label, p.instance) for p in ix.photos}
    for s in ix.sketches:  # every sketch pairs with a photo of its class: n00000001_1-2.png -> n00000001_1
        assert s.instance == Path(s.path).stem.rsplit("-", 1)[0]
        assert (s.label, s.instance) in photo_ids
    assert all(p.instance == Path(p.path).stem for p in ix.photos)
    assert load_dataset("sketchy", root, layout=layout).meta["layout"] == layout


def test_sketch_instance_rule():
    assert sketch_instance("n02691156_58-1") == "n02691156_58"
    assert sketch_instance("n02691156_58-12") == "n02691156_58"
    assert sketch_instance("n02691156_58") == "n02691156_58"
    assert sketch_instance("hot-air") == "hot-air"  # only a numeric suffix is stripped


def test_sketchy_wrong_explicit_layout_and_archive_subfolder(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat")
    with pytest.raises(DatasetError, match="no known layout"):
        load_dataset("sketchy", root, layout="sempcyc")
    # the archive's own folder one level down is found
    parent = tmp_path / "data"
    parent.mkdir()
    shutil.move(str(root), str(parent / "Sketchy"))
    ix = load_dataset("sketchy", parent)
    assert ix.root.endswith("Sketchy") and len(ix.classes) == len(SKETCHY_CLASSES)


def test_sketchy_without_extended_photos_points_to_fg(tmp_path):
    root = make_sketchy_fg_tree(tmp_path, layout="sketchy")  # original release: photo/tx_..., no EXTEND
    with pytest.raises(DatasetError) as e:
        load_dataset("sketchy", root)
    msg = str(e.value)
    assert "EXTEND_image_sketchy" in msg and "sketchy_fg" in msg and str(root) in msg


@pytest.mark.parametrize("name, needles", [
    ("sketchy", ["https://sketchy.eye.gatech.edu/", "Deep Sketch Hashing", "EXTEND_image_sketchy",
                 "sketch/tx_000000000000/<class>/*.png", "photo/<class>/*.jpg"]),
    ("sketchy_fg", ["https://sketchy.eye.gatech.edu/", "photo/tx_000000000000/<class>/*.jpg"]),
    ("tuberlin", ["https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/", "Zhang",
                  "sketches/<class>/*.png", "images/<class>/"]),
    ("quickdraw", ["https://quickdraw.withgoogle.com/data",
                   "https://sounakdey.github.io/doodle2search.github.io/", "ndjson/<class>.ndjson"]),
])
def test_missing_root_names_path_layout_and_source(tmp_path, name, needles):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(DatasetError) as e:
        load_dataset(name, missing)
    msg = str(e.value)
    assert str(missing) in msg and "does not exist" in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_root_without_layout_lists_its_contents(tmp_path):
    (tmp_path / "random_stuff").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError) as e:
        load_dataset("tuberlin", tmp_path)
    assert "no known layout" in str(e.value) and "random_stuff" in str(e.value) and str(tmp_path) in str(e.value)


def test_empty_class_folder_is_named(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat")
    empty = root / "sketch" / "zebra"
    empty.mkdir()
    (root / "photo" / "zebra").mkdir()
    write_image(root / "photo" / "zebra" / "z_1.jpg")
    (empty / ".DS_Store").write_bytes(b"x")   # hidden files and non-images do not count
    (empty / "readme.txt").write_text("x")
    with pytest.raises(DatasetError) as e:
        load_dataset("sketchy", root)
    assert f"empty class folder {empty}" in str(e.value)


def test_hidden_files_ignored_and_extensions_case_insensitive(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat", classes=["airplane", "bat"], n_photos=1, n_sketches=1,
                             n_extra_photos=0)
    d = root / "photo" / "airplane"
    write_image(d / "n00000001_2.JPEG")
    write_image(d / "n00000001_3.Png")
    write_image(d / "._n00000001_1.jpg")          # macOS resource fork
    (d / ".hidden.jpg").write_bytes(b"")
    (d / "Thumbs.db").write_bytes(b"x")
    (root / "photo" / ".cache").mkdir()            # hidden class folder
    (root / "sketch" / "__MACOSX").mkdir()
    ix = load_dataset("sketchy", root)
    assert ix.classes == ["airplane", "bat"]
    names = sorted(Path(p.path).name for p in ix.photos if p.label == "airplane")
    assert names == ["n00000001_1.jpg", "n00000001_2.JPEG", "n00000001_3.Png"]
    assert ix.meta["ignored_files"] == 1  # Thumbs.db


def test_sketch_and_photo_classes_must_agree(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat", classes=["airplane", "bat"])
    write_image(root / "photo" / "cow" / "n1_1.jpg")
    with pytest.raises(DatasetError) as e:
        load_dataset("sketchy", root)
    assert "'cow'" in str(e.value) and str(root / "sketch") in str(e.value)
    ix = load_dataset("sketchy", root, classes=["airplane", "bat"])  # a subset loads
    assert ix.classes == ["airplane", "bat"]


def test_classes_subset_any_spelling_and_unknown_class(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat")
    ix = load_dataset("sketchy", root, classes=["car (sedan)", "Hot Air Balloon"])
    assert ix.classes == ["car_(sedan)", "hot-air_balloon"]
    with pytest.raises(DatasetError) as e:
        load_dataset("sketchy", root, classes=["unicorn"])
    assert "unicorn" in str(e.value) and str(root) in str(e.value)


# ----------------------------------------------------------------------------------------- Sketchy FG

@pytest.mark.parametrize("layout", ["sketchy", "flat"])
def test_sketchy_fg_layouts_and_paired_only(tmp_path, layout):
    root = make_sketchy_fg_tree(tmp_path, layout=layout, n_photos=3, n_sketches=2, n_extra_photos=2)
    C = len(SKETCHY_CLASSES)
    ix = load_dataset("sketchy_fg", root)
    _check_index(ix, SKETCHY_CLASSES, C * 3 * 2, C * 3)  # the unpaired extension photos are dropped
    assert ix.meta["layout"] == layout and ix.meta["dropped_unpaired"] == {"photos": C * 2, "sketches": 0}
    by_inst = {}
    for s in ix.sketches:
        by_inst.setdefault((s.label, s.instance), []).append(s)
    assert sorted(by_inst) == sorted((p.label, p.instance) for p in ix.photos)
    assert all(len(v) == 2 for v in by_inst.values())
    assert len(load_dataset("sketchy_fg", root, paired_only=False).photos) == C * 5


# ------------------------------------------------------------------------------------------ TU-Berlin

@pytest.mark.parametrize("layout", ["sketches/images", "sketch/photo"])
def test_tuberlin_layouts_names_with_spaces(tmp_path, layout):
    root = make_tuberlin_tree(tmp_path, layout=layout, n_sketches=2, n_photos=3)
    ix = load_dataset("TU-Berlin", root)
    C = len(TUBERLIN_CLASSES)
    _check_index(ix, TUBERLIN_CLASSES, C * 2, C * 3)
    assert ix.meta["layout"] == layout and ix.meta["renamed_classes"] == {}
    assert "alarm clock" in ix.classes and "wrist-watch" in ix.classes
    assert all(s.instance == "" for s in ix.sketches)  # unpaired
    exts = {Path(p.path).suffix for p in ix.photos}
    assert exts == {".JPEG", ".jpg", ".png"}


def test_tuberlin_split_from_real_files_respelled_folders(tmp_path):
    # folders spelled with underscores still get the split files' labels
    root = make_tuberlin_tree(tmp_path, classes=["alarm clock", "banana", "bus", "hot air balloon"])
    (root / "sketches" / "alarm clock").rename(root / "sketches" / "alarm_clock")
    (root / "images" / "alarm clock").rename(root / "images" / "alarm_clock")
    ix = load_dataset("tuberlin", root)
    assert ix.classes == ["alarm clock", "banana", "bus", "hot air balloon"]
    assert ix.meta["renamed_classes"] == {"alarm_clock": "alarm clock"}


# ------------------------------------------------------------------------------------------ QuickDraw

def test_quickdraw_images_layout_palm_tree_caveat(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="images", folder_names={"palm tree": "palm_tree"},
                               n_sketches=3, n_photos=2)
    ix = load_dataset("quickdraw", root)
    C = len(QUICKDRAW_CLASSES)
    _check_index(ix, QUICKDRAW_CLASSES, C * 3, C * 2)
    assert "palm tree" in ix.classes and "palm_tree" not in ix.classes
    assert ix.meta["renamed_classes"] == {"palm_tree": "palm tree"}
    assert ix.meta["layout"] == "sketch+images" and ix.meta["sketch_source"] == "images"
    # a split spelled either way partitions it
    for spelling in ("palm tree", "palm_tree"):
        zs = get_split("quickdraw", ZSSplit("t", seen=("airplane", "bat"), unseen=(spelling,)), index=ix)
        p = make_partitions(ix, zs)
        assert len(p.test_queries) == 3 and {i.label for i in p.test_gallery} == {"palm tree"}


def test_quickdraw_ndjson_items_point_at_lines(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="ndjson", n_sketches=4, n_photos=1, photo_dir="photo")
    ix = load_dataset("quickdraw", root)
    assert ix.meta["sketch_source"] == "ndjson" and ix.meta["layout"] == "ndjson+photo"
    C = len(QUICKDRAW_CLASSES)
    _check_index(ix, QUICKDRAW_CLASSES, C * 4, C)
    palm = [s for s in ix.sketches if s.label == "palm tree"]
    assert [s.strokes for s in palm] == [1, 2, 3, 4]
    assert all(s.path == str((root / "ndjson" / "palm tree.ndjson").resolve()) for s in palm)
    assert len(load_dataset("quickdraw", root, max_per_class=2).sketches) == C * 2


def test_quickdraw_ndjson_google_names_blank_lines_recognized(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="ndjson", classes=["airplane", "crocodilian",
                                                                          "eiffel tower", "palm tree"],
                               n_sketches=1, n_photos=1)
    nd = root / "ndjson"
    # Google's file names: full_simplified_ prefix, 'The Eiffel Tower', 'crocodile'
    (nd / "eiffel tower.ndjson").rename(nd / "full_simplified_The Eiffel Tower.ndjson")
    (nd / "crocodilian.ndjson").rename(nd / "crocodile.ndjson")
    recs = [quickdraw_record("airplane", drawing_for(0, i), key_id=str(i), recognized=(i != 1)) for i in range(3)]
    write_ndjson_file(nd / "airplane.ndjson", recs, blank_lines_after=[0])
    ix = load_dataset("quickdraw", root)
    assert ix.classes == ["airplane", "crocodilian", "eiffel tower", "palm tree"]
    air = [s.strokes for s in ix.sketches if s.label == "airplane"]
    assert air == [1, 3, 4]  # line numbers count the blank line
    air = [s.strokes for s in load_dataset("quickdraw", root, recognized_only=True).sketches if s.label == "airplane"]
    assert air == [1, 4]


def test_quickdraw_malformed_ndjson_names_file_and_line(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="ndjson", classes=["airplane", "bat"], n_sketches=3)
    f = root / "ndjson" / "bat.ndjson"
    lines = f.read_text().splitlines()
    lines[1] = '{"word": "bat", "drawing": [[[1, 2], [3]]]}'  # x and y of unequal length
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("quickdraw", root)
    assert str(f) in str(e.value) and "line 2" in str(e.value)
    f.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_dataset("quickdraw", root)


def test_quickdraw_empty_ndjson_and_duplicate_spellings(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="ndjson", classes=["airplane", "palm tree"])
    (root / "ndjson" / "airplane.ndjson").write_text("\n")
    with pytest.raises(DatasetError, match="no drawings") as e:
        load_dataset("quickdraw", root)
    assert "airplane.ndjson" in str(e.value)
    root2 = make_quickdraw_tree(tmp_path, sketch_source="images", classes=["airplane", "palm tree"])
    shutil.copytree(root2 / "sketch" / "palm tree", root2 / "sketch" / "palm_tree")
    with pytest.raises(DatasetError) as e:
        load_dataset("quickdraw", root2)
    assert "palm_tree" in str(e.value) and "palm tree" in str(e.value)


def test_class_key_matches_the_known_caveats():
    assert class_key("palm_tree") == class_key("palm tree")
    assert class_key("hot-air_balloon") == class_key("hot air balloon")
    assert class_key("car_(sedan)") == class_key("car_sedan")
    assert class_key("teddy-bear") == class_key("teddy_bear")
    assert class_key("bat") != class_key("bath")


# ------------------------------------------------------------------------------------------ synthetic

@pytest.fixture
def fake_synthetic(tmp_path, monkeypatch):
    """A stand-in ``sbirlab.data.synthetic`` whose ensure_dataset returns a fixture tree."""
    tree = make_synthetic_tree(tmp_path, n_photos=2, n_sketches=3)
    calls = []

    def ensure_dataset(root=None):
        calls.append(root)
        return tree

    mod = types.ModuleType("sbirlab.data.synthetic")
    mod.ensure_dataset = ensure_dataset
    monkeypatch.setitem(sys.modules, "sbirlab.data.synthetic", mod)
    return tree, calls


def test_synthetic_through_ensure_dataset(fake_synthetic):
    tree, calls = fake_synthetic
    ix = load_dataset("synthetic")
    assert calls == [None] and ix.name == "synthetic" and ix.root == str(tree.resolve())
    assert len(ix.classes) == 6 and len(ix.photos) == 12 and len(ix.sketches) == 36
    assert ix.meta["strokes_dir"].endswith("strokes")
    assert all(s.instance == Path(s.path).stem.rsplit("-", 1)[0] for s in ix.sketches)
    zs = get_split("synthetic", index=ix)
    assert zs.name == "synthetic_zs" and zs.unseen == ("house", "tree") and zs.val == ("apple",)
    assert zs.train == ("boat", "cup", "fish")
    assert load_split("synthetic_zs") == zs  # default tree through ensure_dataset
    s = data_summary(ix)
    assert s["split"] == "synthetic_zs" and s["test_queries"] == {"classes": 2, "items": 12}
    assert s["train"]["photos"] == {"classes": 3, "items": 6}


def test_generic_reader_on_synthetic_shape(tmp_path):
    tree = make_synthetic_tree(tmp_path)
    ix = load_folders(tree, name="mine")
    assert ix.meta["layout"] == "sketch/photo" and len(ix.sketches) == 6 * 2 * 2
    ixs = load_folders(tree, name="mine", sketch_source="ndjson")
    assert ixs.meta["layout"] == "strokes/photo" and len(ixs.sketches) == 6 * 2 * 2
    # ndjson records with key_id '<id>-<k>' pair with their photo
    assert {(s.label, s.instance) for s in ixs.sketches} == {(p.label, p.instance) for p in ixs.photos}
    with pytest.raises(UnknownNameError, match="no default split"):
        data_summary(ix)


# --------------------------------------------------------------------------------------------- splits

@pytest.mark.parametrize("name, dataset, n_seen, n_unseen", [
    ("sketchy_yelamarthi21", "sketchy", 104, 21), ("sketchy_shen25", "sketchy", 100, 25),
    ("tuberlin_30", "tuberlin", 220, 30), ("quickdraw_30", "quickdraw", 80, 30),
    ("sketchy_fg21", "sketchy_fg", 104, 21), ("sketchy_fg25", "sketchy_fg", 100, 25),
])
def test_named_splits(name, dataset, n_seen, n_unseen):
    zs = load_split(name)
    assert zs.name == name and len(zs.seen) == n_seen and len(zs.unseen) == n_unseen
    assert not set(zs.seen) & set(zs.unseen)
    assert set(zs.seen) | set(zs.unseen) == set(all_classes(dataset))
    assert zs.val == draw_val_classes(zs.seen, seed=0) and set(zs.val) <= set(zs.seen)
    assert len(zs.train) == n_seen - len(zs.val)
    assert name in available_splits(dataset)
    assert get_split(dataset, name) == zs


def test_split_order_is_the_label_order_of_the_files():
    zs = load_split("sketchy_yelamarthi21")
    assert zs.unseen[:3] == ("bat", "cabin", "cow")
    assert "palm tree" in load_split("quickdraw_30").unseen  # not Doodle2Search's 'palm_tree'


def test_default_splits():
    assert {d: get_split(d).name for d in ("sketchy", "tuberlin", "quickdraw", "sketchy_fg")} == {
        k: v for k, v in DEFAULT_SPLITS.items() if k != "synthetic"}
    assert DEFAULT_SPLITS["synthetic"] == "synthetic_zs"


def test_wrong_split_names(tmp_path):
    with pytest.raises(UnknownNameError) as e:
        load_split("sketchy_21")
    for n in SPLITS:
        assert n in str(e.value)
    with pytest.raises(UnknownNameError, match="tuberlin_30"):  # a split of another dataset
        get_split("sketchy", "tuberlin_30")
    assert get_split("sketchy_fg", "sketchy_yelamarthi21").unseen == load_split("sketchy_fg21").unseen


def test_splits_dir_env_override_and_bad_files(tmp_path, monkeypatch):
    assert (splits_dir() / "sketchy_all125.txt").is_file()
    d = tmp_path / "splits"
    write_class_list(d / "sketchy_ext_seen_yelamarthi104.txt", ["airplane", "bat", "cow", "car_(sedan)"])
    write_class_list(d / "sketchy_ext_unseen_yelamarthi21.txt", ["hot-air_balloon", "wading_bird"])
    monkeypatch.setenv("SBIRLAB_SPLITS_DIR", str(d))
    zs = load_split("sketchy_yelamarthi21")
    assert zs.unseen == ("hot-air_balloon", "wading_bird") and len(zs.val) == 2
    write_class_list(d / "sketchy_ext_unseen_yelamarthi21.txt", ["hot-air_balloon", "", "hot-air_balloon"])
    with pytest.raises(DatasetError) as e:
        load_split("sketchy_yelamarthi21")
    assert "sketchy_ext_unseen_yelamarthi21.txt: line 3" in str(e.value)
    with pytest.raises(DatasetError, match="split file not found"):
        load_split("tuberlin_30")
    assert read_class_list(d / "sketchy_ext_seen_yelamarthi104.txt")[-1] == "car_(sedan)"


def test_split_naming_a_missing_class_names_class_and_root(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat")  # 6 classes: the 21-class split does not fit
    with pytest.raises(DatasetError) as e:
        data_summary("sketchy", root)
    msg = str(e.value)
    assert "sketchy_yelamarthi21" in msg and str(root.resolve()) in msg and "'cabin'" in msg
    ix = load_dataset("sketchy", root)
    with pytest.raises(DatasetError) as e:  # a near miss gets a hint
        make_partitions(ix, ZSSplit("mine", seen=("airplane",), unseen=("wading_birds",)))
    assert "'wading_birds'" in str(e.value) and "did you mean 'wading_bird'" in str(e.value)


# ------------------------------------------------------------------------------------------- registry

def test_data_summary_on_full_sketchy_tree(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="sempcyc", classes="all", n_photos=1, n_sketches=2,
                             n_extra_photos=1)
    s = data_summary("sketchy", root)
    json.dumps(s)  # serialisable
    assert s["dataset"] == "sketchy" and s["root"] == str(root.resolve()) and s["layout"] == "sempcyc"
    assert s["split"] == "sketchy_yelamarthi21"
    assert s["split_classes"] == {"seen": 104, "unseen": 21, "val": 10}
    assert s["totals"] == {"classes": 125, "sketches": 250, "photos": 250}
    assert s["train"] == {"sketches": {"classes": 94, "items": 188}, "photos": {"classes": 94, "items": 188}}
    assert s["val"] == {"sketches": {"classes": 10, "items": 20}, "photos": {"classes": 10, "items": 20}}
    assert s["test_queries"] == {"classes": 21, "items": 42}
    assert s["test_gallery"] == {"classes": 21, "items": 42}
    s25 = data_summary(load_dataset("sketchy", root), split="sketchy_shen25")
    assert s25["test_queries"] == {"classes": 25, "items": 50}


def test_data_summary_quickdraw_full_with_palm_tree_folder(tmp_path):
    root = make_quickdraw_tree(tmp_path, classes="all", n_sketches=1, n_photos=1,
                               folder_names={"palm tree": "palm_tree"})
    s = data_summary("quickdraw", root)
    assert s["split"] == "quickdraw_30" and s["test_queries"] == {"classes": 30, "items": 30}
    assert s["totals"]["classes"] == 110


def test_default_roots_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIRLAB_DATA", str(tmp_path))
    assert default_root("tuberlin") == tmp_path / "tuberlin"
    (tmp_path / "Sketchy").mkdir()
    assert default_root("sketchy_fg") == tmp_path / "Sketchy"  # falls back to the Sketchy folder
    assert default_root("synthetic") == tmp_path / "synthetic"
    root = make_tuberlin_tree(tmp_path)
    root.rename(tmp_path / "TU-Berlin")
    assert len(load_dataset("tuberlin").classes) == len(TUBERLIN_CLASSES)
    with pytest.raises(UnknownNameError) as e:
        load_dataset("imagenet")
    assert "sketchy" in str(e.value) and "quickdraw" in str(e.value)
    monkeypatch.delenv("SBIRLAB_DATA")
    assert default_root("synthetic") is None  # ensure_dataset's own default
    assert default_root("sketchy").name in ("sketchy", "Sketchy")


def test_quickdraw_binary_ndjson_names_file(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="ndjson", classes=["airplane", "bat"])
    f = root / "ndjson" / "bat.ndjson"
    f.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("quickdraw", root)
    assert str(f) in str(e.value)
    with pytest.raises(ValueError, match="sketch_source"):
        load_dataset("quickdraw", root, sketch_source="svg")
