"""``sbirlab data summary`` / ``sbirlab data generate`` on small synthetic worlds and fixture trees of every layout.

The CLI generates the synthetic world with the default :class:`WorldConfig` (70 classes x 50 photos x 5
sketches), too big for a unit test, and ``data summary`` has no option to ask for a smaller one. The CLI
tests therefore swap the module's ``WorldConfig`` for one with small defaults, so the real code path
(``main`` -> ``data_summary`` -> ``load_dataset`` -> ``ensure_dataset`` -> generation + keyed cache) runs
end to end on a small world.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sbirlab.cli import main
from sbirlab.data import synthetic
from sbirlab.data.registry import data_summary
from tests.fixtures import (make_quickdraw_tree, make_sketchy_fg_tree, make_sketchy_tree, make_synthetic_tree,
                            make_tuberlin_tree)

SMALL_CLASSES = ("apple", "car", "cup", "giraffe", "house", "tree")


@dataclass
class _SmallWorld(synthetic.WorldConfig):
    """The default world, shrunk: 6 classes, 2 photos per class, 2 sketches per photo."""

    photos_per_class: int = 2
    sketches_per_photo: int = 2
    classes: tuple[str, ...] | None = SMALL_CLASSES


@pytest.fixture
def small_default_world(monkeypatch, tmp_path):
    """``SBIRLAB_DATA`` -> tmp, and a small default synthetic world."""
    monkeypatch.setenv("SBIRLAB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("SBIRLAB_SPLITS_DIR", raising=False)
    monkeypatch.setattr(synthetic, "WorldConfig", _SmallWorld)
    return tmp_path / "data"


def _summary(capsys, argv) -> dict:
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _check_counts(s: dict, classes: int, sketches: int, photos: int) -> None:
    assert s["totals"] == {"classes": classes, "sketches": sketches, "photos": photos}
    sc = s["split_classes"]
    assert sc["seen"] + sc["unseen"] == classes and sc["val"] < sc["seen"]
    for part in ("train", "val"):
        assert set(s[part]) == {"sketches", "photos"}
    assert (s["train"]["sketches"]["items"] + s["val"]["sketches"]["items"] + s["test_queries"]["items"]
            == sketches)
    assert s["train"]["photos"]["items"] + s["val"]["photos"]["items"] + s["test_gallery"]["items"] == photos
    assert s["test_queries"]["classes"] == s["test_gallery"]["classes"] == sc["unseen"]
    assert s["train"]["photos"]["classes"] == sc["seen"] - sc["val"]
    assert s["val"]["photos"]["classes"] == sc["val"]


# ------------------------------------------------------------------------------------------ synthetic

def test_summary_synthetic_json_default_root(small_default_world, capsys):
    s = _summary(capsys, ["data", "summary", "--dataset", "synthetic", "--json"])
    assert s["dataset"] == "synthetic" and s["split"] == "synthetic_zs" and s["layout"] == "sketch/photo"
    _check_counts(s, 6, 6 * 2 * 2, 6 * 2)
    assert Path(s["root"]).parent == small_default_world / "synthetic"  # $SBIRLAB_DATA/synthetic/world-*
    assert s["split_classes"] == {"seen": 5, "unseen": 1, "val": 2}
    assert s["test_queries"] == {"classes": 1, "items": 4} and s["test_gallery"] == {"classes": 1, "items": 2}


def test_summary_synthetic_root_is_the_cache_folder(small_default_world, tmp_path, capsys):
    root = tmp_path / "elsewhere"
    s = _summary(capsys, ["data", "summary", "--dataset", "synthetic", "--root", str(root), "--json"])
    assert Path(s["root"]).parent == root.resolve() and Path(s["root"]).name.startswith("world-64px-s0-")
    _check_counts(s, 6, 24, 12)
    assert not (small_default_world / "synthetic").exists()  # --root wins over $SBIRLAB_DATA


def test_generate_then_summary_reads_the_cache(small_default_world, capsys, monkeypatch):
    assert main(["data", "generate", "--photos-per-class", "2", "--workers", "1"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert (path / "world.json").is_file() and path.parent == small_default_world / "synthetic"

    def boom(*a, **k):
        raise AssertionError("regenerated a cached world")

    monkeypatch.setattr(synthetic, "generate_dataset", boom)
    s = _summary(capsys, ["data", "summary", "--json"])  # synthetic is the default dataset
    assert Path(s["root"]) == path.resolve()


def test_summary_text_output(small_default_world, capsys):
    assert main(["data", "summary", "--dataset", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "dataset: synthetic" in out and "test_queries:" in out and "totals:" in out


def test_data_summary_of_a_small_generated_world(tmp_path, monkeypatch):
    """Without the CLI: ``data_summary`` passes ``cfg`` through to ``ensure_dataset``."""
    monkeypatch.delenv("SBIRLAB_DATA", raising=False)
    cfg = synthetic.WorldConfig(classes=SMALL_CLASSES + ("pear", "saw", "key", "bus"), photos_per_class=3,
                                sketches_per_photo=2)
    s = data_summary("synthetic", root=tmp_path, cfg=cfg)
    _check_counts(s, 10, 10 * 3 * 2, 10 * 3)
    assert s["split_classes"]["unseen"] == 2  # 20% of 10


# --------------------------------------------------------------------------------- real-layout trees

TREES = [
    ("sketchy", lambda t: make_sketchy_tree(t, layout="sempcyc", classes="all", n_photos=1, n_sketches=2),
     125, 250, 250, "sketchy_yelamarthi21", 21),
    ("sketchy", lambda t: make_sketchy_tree(t, layout="flat", classes="all", n_photos=1, n_sketches=1,
                                            n_extra_photos=0), 125, 125, 125, "sketchy_yelamarthi21", 21),
    ("sketchy_fg", lambda t: make_sketchy_fg_tree(t, layout="sketchy", classes="all", n_photos=1, n_sketches=2),
     125, 250, 125, "sketchy_fg21", 21),
    ("tuberlin", lambda t: make_tuberlin_tree(t, layout="sketches/images", classes="all", n_sketches=1,
                                              n_photos=1), 250, 250, 250, "tuberlin_30", 30),
    ("tuberlin", lambda t: make_tuberlin_tree(t, layout="sketch/photo", classes="all", n_sketches=1, n_photos=1),
     250, 250, 250, "tuberlin_30", 30),
    ("quickdraw", lambda t: make_quickdraw_tree(t, sketch_source="images", classes="all", n_sketches=1,
                                                n_photos=1), 110, 110, 110, "quickdraw_30", 30),
    ("quickdraw", lambda t: make_quickdraw_tree(t, sketch_source="ndjson", classes="all", n_sketches=2,
                                                n_photos=1), 110, 220, 110, "quickdraw_30", 30),
]


@pytest.mark.parametrize("name, build, classes, sketches, photos, split, unseen", TREES,
                         ids=["sketchy-sempcyc", "sketchy-flat", "sketchy_fg", "tuberlin-sketches_images",
                              "tuberlin-sketch_photo", "quickdraw-images", "quickdraw-ndjson"])
def test_summary_on_real_layouts(tmp_path, capsys, monkeypatch, name, build, classes, sketches, photos, split,
                                 unseen):
    monkeypatch.delenv("SBIRLAB_DATA", raising=False)
    monkeypatch.delenv("SBIRLAB_SPLITS_DIR", raising=False)
    root = build(tmp_path)
    s = _summary(capsys, ["data", "summary", "--dataset", name, "--root", str(root), "--json"])
    assert s["dataset"] == name and s["split"] == split and Path(s["root"]) == root.resolve()
    _check_counts(s, classes, sketches, photos)
    assert s["split_classes"]["unseen"] == unseen


def test_summary_other_split(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SBIRLAB_SPLITS_DIR", raising=False)
    root = make_sketchy_tree(tmp_path, layout="flat", classes="all", n_photos=1, n_sketches=1, n_extra_photos=0)
    s = _summary(capsys, ["data", "summary", "--dataset", "sketchy", "--root", str(root), "--split",
                          "sketchy_shen25", "--json"])
    assert s["split"] == "sketchy_shen25" and s["split_classes"]["unseen"] == 25


# ------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("name", ["sketchy", "sketchy_fg", "tuberlin", "quickdraw"])
def test_missing_root_exit_code_2_names_the_path(tmp_path, capsys, name):
    missing = tmp_path / "no" / "such" / "folder"
    assert main(["data", "summary", "--dataset", name, "--root", str(missing), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and str(missing) in captured.err


def test_split_that_does_not_fit_exit_code_2(tmp_path, capsys):
    root = make_synthetic_tree(tmp_path)  # 6 classes: the Sketchy split names 125
    assert main(["data", "summary", "--dataset", "sketchy", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(root) in err


def test_unknown_dataset_and_split(tmp_path, capsys):
    assert main(["data", "summary", "--dataset", "imagenet", "--root", str(tmp_path)]) == 2
    assert "available datasets" in capsys.readouterr().err
    root = make_sketchy_tree(tmp_path, layout="flat", classes="all", n_photos=1, n_sketches=1, n_extra_photos=0)
    assert main(["data", "summary", "--dataset", "sketchy", "--root", str(root), "--split", "nope"]) == 2
    assert "available splits" in capsys.readouterr().err


def test_no_parsing_at_import_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["data", "summary", "--no-such-flag"])
