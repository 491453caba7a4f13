"""Real QuickDraw doodles: reading, class mapping, the fixed pretrain/heldout split, framing, shipping."""
import json

import numpy as np
import pytest

from sbirlab.data import doodles as D
from sbirlab.data.categories import all_categories


def _write(folder, word, records):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{word}.ndjson", "w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def _rec(key, drawing=None):
    return {"word": "x", "key_id": str(key), "recognized": True, "countrycode": "DE",
            "drawing": drawing or [[[10, 200, 120], [20, 30, 220]], [[50, 60], [50, 90]]]}


def test_words_map_to_world_classes(tmp_path):
    _write(tmp_path, "coffee cup", [_rec(1), _rec(2)])
    _write(tmp_path, "cow", [_rec(3)])
    d = D.load_doodles(tmp_path)
    assert sorted({x.label for x in d}) == ["cow", "cup"]
    assert len(d) == 3 and all(len(s) >= 2 for x in d for s in x.strokes)


def test_unknown_word_and_missing_folder_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_doodles(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .ndjson"):
        D.load_doodles(tmp_path / "empty")
    _write(tmp_path / "bad", "spaceship", [_rec(1)])
    with pytest.raises(ValueError, match="spaceship"):
        D.load_doodles(tmp_path / "bad")
    with pytest.raises(ValueError, match="unknown doodle part"):
        D.load_doodles(tmp_path / "bad", part="test")


def test_malformed_line_names_file_and_line(tmp_path):
    _write(tmp_path, "cow", [_rec(1), "{not json"])
    with pytest.raises(ValueError, match=r"cow.ndjson: line 2"):
        D.load_doodles(tmp_path)


def test_dot_only_doodles_are_skipped(tmp_path):
    _write(tmp_path, "cow", [_rec(1), _rec(2, drawing=[[[5], [5]]])])
    assert [x.key_id for x in D.load_doodles(tmp_path)] == ["1"]


def test_split_is_fixed_disjoint_and_complete(tmp_path):
    _write(tmp_path, "cow", [_rec(k) for k in range(300)])
    a, p, h = (D.load_doodles(tmp_path, part) for part in ("all", "pretrain", "heldout"))
    keys = lambda xs: {x.key_id for x in xs}  # noqa: E731
    assert keys(p).isdisjoint(keys(h)) and keys(p) | keys(h) == keys(a)
    assert 0.2 < len(h) / len(a) < 0.4  # about HELDOUT_FRACTION
    assert keys(D.load_doodles(tmp_path, "heldout")) == keys(h)
    assert all(D.doodle_part(x.key_id) == "heldout" for x in h)


def test_frame_and_images(tmp_path):
    _write(tmp_path, "cow", [_rec(1)])
    d = D.load_doodles(tmp_path)
    framed = np.concatenate(D.frame_doodle(d[0].strokes))
    lo, hi = framed.min(0), framed.max(0)
    assert np.isclose((hi - lo).max(), D.DOODLE_EXTENT * 256, atol=1e-3)
    assert np.allclose((lo + hi) / 2, 128, atol=1e-3)
    x = D.doodle_images(d, 32)
    assert x.shape == (1, 3, 32, 32) and x.dtype.is_floating_point is False
    assert int(x.min()) < 200 and int(x.max()) == 255  # ink (anti-aliased at 32 px) on white
    assert D.doodle_images([], 32).shape == (0, 3, 32, 32)


def test_shipped_doodles_carry_attribution_and_map():
    folder = D.default_doodle_dir()
    text = (folder / "README.md").read_text()
    assert "CC BY 4.0" in text and "Google LLC" in text and "github.com/googlecreativelab/quickdraw-dataset" in text
    files = sorted(folder.glob("*.ndjson"))
    assert len(files) == 64
    assert {D.world_class(f.stem) for f in files} <= set(all_categories())
    counts = json.loads((folder / "_counts.json").read_text())
    assert sum(counts.values()) == 1692


def test_pose_range_widens_poses_and_keeps_old_worlds():
    from sbirlab.data.synthetic import WorldConfig, make_instance

    # the v1 default world (50 photos x 5 sketches, made before the knob) keeps its cache key
    assert WorldConfig(photos_per_class=50, sketches_per_photo=5, pose_range=1.0).key() == "ab73d0aa59"
    assert WorldConfig(pose_range=1.5).key() != WorldConfig(pose_range=1.0).key()
    a = [make_instance("cow", s).attrs["pose_rot"] for s in range(200)]
    b = [make_instance("cow", s, pose_range=1.5).attrs["pose_rot"] for s in range(200)]
    assert max(map(abs, a)) <= 0.18 < max(map(abs, b)) <= 0.27
    with pytest.raises(ValueError, match="pose_range"):
        make_instance("cow", 0, pose_range=-1)


def test_pretraining_corpus_takes_pretrain_doodles_only(tmp_path):
    import open_clip

    import sbirlab  # noqa: F401
    from sbirlab.pretrain import PretrainConfig, build_corpus, pretrain_doodles

    _write(tmp_path, "cow", [_rec(k) for k in range(40)])
    _write(tmp_path, "cup", [_rec(100 + k) for k in range(40)])
    cfg = PretrainConfig(photos_per_class=6, drawing_share=0.25, doodle_share=0.2, doodle_dir=str(tmp_path),
                         workers=1, size=32)
    used = pretrain_doodles(cfg, ["cow", "cup"])
    held = {x.key_id for x in D.load_doodles(tmp_path, "heldout")}
    assert used and len(used) == 80 - len(held)
    images, labels, tokens, is_drawing = build_corpus(cfg, ["cow", "cup"], open_clip.get_tokenizer("sbirlab-micro"))
    # 12 photos + 4 drawings = 16, doodles take 20 % of the whole: 4 renderings
    assert len(images) == 20 and int(is_drawing.sum()) == 8
    with pytest.raises(ValueError, match="doodle_share"):
        build_corpus(PretrainConfig(photos_per_class=2, drawing_share=0.5, doodle_share=0.6, doodle_dir=str(tmp_path)),
                     ["cow"], open_clip.get_tokenizer("sbirlab-micro"))
