"""Safe image loading: RGB decoding, stroke rasterisation, bad files skipped with one counted warning."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sbirlab.data.base import DatasetError, Item
from sbirlab.data.images import (ImageDataset, check_item, load_image, load_strokes, read_stroke_record,
                                 scan_items)
from sbirlab.data.registry import load_dataset
from sbirlab.data.strokes import quickdraw_to_strokes, rasterize_strokes
from tests.fixtures import (drawing_for, make_quickdraw_tree, make_sketchy_tree, write_image,
                            write_text_as_jpg, write_truncated_png, write_zero_byte)


def _runtime_warnings(rec):
    return [w for w in rec if issubclass(w.category, RuntimeWarning)]


@pytest.fixture
def good_items(tmp_path):
    items = []
    for k, label in enumerate(["bat", "cow", "bat", "cow", "bat"]):
        p = write_image(tmp_path / "ok" / f"{k}.png", color=(10 * k, 100, 200))
        items.append(Item(str(p), label, "photo", p.stem))
    return items


@pytest.fixture
def bad_files(tmp_path):
    """The three kinds of bad input: zero-byte, truncated PNG, text named .jpg."""
    return {"zero": write_zero_byte(tmp_path / "bad" / "zero.png"),
            "truncated": write_truncated_png(tmp_path / "bad" / "truncated.png"),
            "text": write_text_as_jpg(tmp_path / "bad" / "page.jpg")}


def test_load_image_modes_to_rgb_and_size(tmp_path):
    rgba = write_image(tmp_path / "rgba.png", mode="RGBA", sketch=True)   # transparent background
    grey = write_image(tmp_path / "grey.png", mode="L", sketch=True)
    jpeg = write_image(tmp_path / "p.JPEG", color=(200, 10, 10))
    for p in (rgba, grey, jpeg):
        img = load_image(Item(str(p), "x", "sketch"))
        assert img.mode == "RGB" and img.size == (16, 16)
    a = np.asarray(load_image(Item(str(rgba), "x", "sketch")))
    assert (a[0, -1] == 255).all()          # transparent -> white, not black
    assert a.min() == 0                     # the ink survives
    assert load_image(Item(str(jpeg), "x", "photo"), size=24).size == (24, 24)
    assert load_image(Item("p.JPEG", "x", "photo"), root=tmp_path).size == (16, 16)  # relative path


def test_ndjson_item_is_rasterised_by_the_one_rasteriser(tmp_path):
    root = make_quickdraw_tree(tmp_path, sketch_source="ndjson", classes=["airplane", "bat"], n_sketches=3)
    ix = load_dataset("quickdraw", root)
    item = [s for s in ix.sketches if s.label == "bat"][2]
    assert item.strokes == 3
    expected = rasterize_strokes(quickdraw_to_strokes(drawing_for(1, 2)), size=32, width=3.0, canvas=256)
    got = load_image(item, size=32)
    assert got.mode == "RGB" and got.size == (32, 32)
    assert np.array_equal(np.asarray(got), np.asarray(expected))
    assert load_image(item).size == (256, 256)  # native canvas
    assert len(load_strokes(item)) == 3


def test_read_stroke_record_errors_name_file_and_line(tmp_path):
    f = tmp_path / "x.ndjson"
    f.write_text('{"drawing": [[[1, 2], [3, 4]]]}\n{broken\n')
    assert read_stroke_record(f, 1)["drawing"] == [[[1, 2], [3, 4]]]
    with pytest.raises(ValueError, match=rf"{f}: line 2"):
        read_stroke_record(f, 2)
    with pytest.raises(ValueError, match=rf"{f}: line 7: no such line"):
        read_stroke_record(f, 7)


def test_check_item_reasons(bad_files, good_items):
    assert check_item(good_items[0]) is None and check_item(good_items[0], verify=True) is None
    assert check_item(Item(str(bad_files["zero"]), "x", "photo")) == "zero-byte file"
    assert check_item(Item(str(bad_files["zero"]) + ".gone", "x", "photo")).startswith("cannot stat")
    # truncated and text files pass the cheap stat check, fail the decode
    for k in ("truncated", "text"):
        it = Item(str(bad_files[k]), "x", "photo")
        assert check_item(it) is None and check_item(it, verify=True) is not None


def test_scan_items_one_warning_counting_all(bad_files, good_items):
    bad = [Item(str(p), "bat", "photo") for p in bad_files.values()]
    items = good_items[:2] + bad + good_items[2:]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        kept = scan_items(items)                     # stat only: drops the zero-byte file
    w = _runtime_warnings(rec)
    assert len(w) == 1 and "skipped 1 of 8" in str(w[0].message) and "zero.png" in str(w[0].message)
    assert len(kept) == 7
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        kept = scan_items(items, verify=True)        # decode: drops all three
    w = _runtime_warnings(rec)
    assert len(w) == 1 and "skipped 3 of 8" in str(w[0].message)
    assert kept == good_items
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scan_items(good_items) == good_items  # nothing bad: no warning


def test_dataset_returns_tensor_label_index(good_items):
    ds = ImageDataset(good_items, class_to_idx={"bat": 0, "cow": 1})
    x, y, i = ds[1]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert (y, i) == (1, 1)
    assert ds[-1][2] == 4
    ds2 = ImageDataset(good_items, transform=lambda im: torch.tensor(im.size), size=8)
    assert ds2[0][0].tolist() == [8, 8] and ds2.class_to_idx == {"bat": 0, "cow": 1}
    with pytest.raises(DatasetError, match="class_to_idx"):
        ImageDataset(good_items, class_to_idx={"bat": 0})
    with pytest.raises(IndexError):
        ds[5]


def test_dataset_skips_bad_files_mid_epoch_with_one_warning(bad_files, good_items):
    bad = [Item(str(p), "cow", "photo") for p in bad_files.values()]
    items = [good_items[0]] + bad + good_items[1:]         # bad at positions 1, 2, 3
    ds = ImageDataset(items, scan=False)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = [ds[k] for k in range(len(ds))]              # never raises
        loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)
        batches = list(loader)
    w = _runtime_warnings(rec)
    assert len(w) == 1 and "zero.png" in str(w[0].message)  # the first bad file, warned once
    assert sorted(ds.skipped) == [1, 2, 3]
    assert [o[2] for o in out] == [0, 4, 4, 4, 4, 5, 6, 7]  # replaced by the next readable item
    for x, y, i in out:                                   # label follows the item returned
        assert y == ds.class_to_idx[ds.items[i].label]
    assert sum(len(b[0]) for b in batches) == len(ds)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert ds.report_skipped() == 3
    w = _runtime_warnings(rec)
    assert len(w) == 1 and "3 of 8" in str(w[0].message)


def test_dataset_scan_drops_zero_byte_up_front(bad_files, good_items):
    items = good_items + [Item(str(bad_files["zero"]), "bat", "photo")]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = ImageDataset(items)
    assert len(_runtime_warnings(rec)) == 1
    assert len(ds) == 5 and ds.n_dropped == 1
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = ImageDataset(items + [Item(str(bad_files["text"]), "bat", "photo")], verify=True)
    assert len(ds) == 5 and ds.n_dropped == 2


def test_dataset_all_unreadable_raises(bad_files):
    ds = ImageDataset([Item(str(p), "x", "photo") for p in bad_files.values()], scan=False)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with pytest.raises(DatasetError, match="no readable image"):
            ds[0]


def test_dataset_over_a_loaded_index(tmp_path):
    root = make_sketchy_tree(tmp_path, layout="flat", classes=["bat", "cow"], n_photos=2, n_sketches=1)
    ix = load_dataset("sketchy", root)
    write_truncated_png(Path(ix.sketches[0].path))         # corrupt one real sketch in place
    ds = ImageDataset(ix.sketches, class_to_idx=ix.class_to_idx(), size=20)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        xs = [ds[k] for k in range(len(ds))]
    assert len(_runtime_warnings(rec)) == 1 and list(ds.skipped) == [0]
    assert all(x.shape == (3, 20, 20) for x, _, _ in xs)
    assert Image.open(ix.photos[0].path).format == "JPEG"
