"""The sketch-and-retrieve widget without a kernel or a browser: strokes, galleries, cache, engine, view.

The view is driven as the browser drives it: ipycanvas's ``_handle_frontend_event`` with ``mouse_down`` /
``mouse_move`` / ``mouse_up`` / ``client_ready`` messages (docs/methods.md §8.4.3). The model is sbirlab's random
``sbirlab-nano`` CLIP wrapped in CLIP-AT, so nothing is downloaded and everything runs in seconds.
"""
from __future__ import annotations

import os

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from sbirlab.data.strokes import rasterize_strokes
from sbirlab.data.synthetic import CANVAS, make_instance, render_sketch, sketch_strokes
from sbirlab.models.registry import build_method
from sbirlab.widgets import Gallery, GalleryCache, GalleryError, RetrievalEngine, StrokeModel, stroke_by_stroke
from sbirlab.widgets.engine import method_fingerprint, torch_threads
from sbirlab.widgets.raster import EMPTY, MIN_STEP, ONLY_DOTS
from tests.fixtures import write_image, write_text_as_jpg, write_truncated_png, write_zero_byte

CLASSES = ["apple", "boat", "cup"]
K = 4
COLORS = {"apple": (220, 30, 30), "boat": (30, 30, 220), "cup": (30, 200, 30)}


# ------------------------------------------------------------------------------------------- builders
@pytest.fixture(scope="module")
def method():
    torch.manual_seed(0)
    clip = open_clip.create_model("sbirlab-nano", pretrained=None)
    torch.manual_seed(1)
    return build_method("clip-at", clip, "zs", classnames=CLASSES,
                        tokenizer=open_clip.get_tokenizer("sbirlab-nano")).eval()


def image_size(method) -> int:
    s = method.clip.visual.image_size
    return int(s[0] if isinstance(s, (tuple, list)) else s)


def make_engine(method, cache_dir=None) -> RetrievalEngine:
    return RetrievalEngine(method, image_size(method), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "cpu", cache_dir, "nano")


def photo_folder(root, per_class: int = 3):
    """``root/<class>/<k>.png``: distinct colours per class and per photo."""
    for ci, c in enumerate(CLASSES):
        for k in range(per_class):
            r, g, b = COLORS[c]
            write_image(root / c / f"{k}.png", size=24, color=(r, (g + 20 * k) % 256, b))
    return root


def line(x0, y0, x1, y1, n=20):
    return np.stack([np.linspace(x0, x1, n), np.linspace(y0, y1, n)], 1)


# ----------------------------------------------------------------------------------------- strokes
def test_mouse_points_are_stored_in_the_dataset_frame():
    m = StrokeModel(view_size=512)  # a pad twice the 256 frame: coordinates halve
    m.begin(100, 200)
    assert m.extend(300, 200)
    assert not m.extend(300 + MIN_STEP, 200)  # < MIN_STEP canvas units: not stored
    assert m.end(400, 100) is None
    np.testing.assert_allclose(m.strokes[0], [[50, 100], [150, 100], [200, 50]])
    assert m.widths == [m.width] and not m.drawing


def test_pen_width_is_clamped_and_ignores_garbage():
    m = StrokeModel()
    assert m.set_width(100) == 16.0 and m.set_width(0) == 1.0
    assert m.set_width("thick") == 1.0 and m.set_width(float("nan")) == 1.0
    assert m.set_width(4.5) == 4.5


def test_rasterised_like_a_dataset_sketch():
    """A recorded synthetic sketch loaded into the pad rasterises to exactly the dataset's image."""
    inst = make_instance("cup", 3)
    strokes, widths = sketch_strokes(inst, 2, seed=1)
    m = StrokeModel()
    assert m.load(strokes, widths) == []  # recordings are not clipped to the frame
    a = np.asarray(m.rasterize(64))
    b = np.asarray(render_sketch(inst, 2, seed=1, size=64))
    assert a.shape == (64, 64, 3) and (a < 128).any()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.asarray(rasterize_strokes(strokes, size=64, widths=widths, canvas=CANVAS)))


def test_undo_and_clear():
    m = StrokeModel()
    m.add_stroke(line(10, 10, 100, 100))
    m.add_stroke(line(10, 100, 100, 10), width=6)
    assert len(m) == 2 and m.widths[1] == 6
    assert m.undo() is None and len(m) == 1
    m.begin(5, 5)
    assert m.undo() is None and not m.drawing and len(m) == 1  # undo drops the stroke in progress first
    m.clear()
    assert len(m) == 0 and m.undo().code == "nothing-to-undo"


def test_bad_strokes_give_notices_not_errors():
    m = StrokeModel()
    assert m.problem() is EMPTY
    m.begin(40, 40)
    assert m.end() is None  # a click: a dot is stored ...
    assert len(m) == 1 and m.problem() is ONLY_DOTS  # ... but cannot be searched with
    n = m.add_stroke(line(-80, -80, -10, -40))
    assert n.code == "outside" and len(m) == 1
    n = m.add_stroke([[10, 10], [50, 50], [400, 50], [500, 60], [60, 60], [70, 90]])
    assert n.code == "clipped" and "2 point(s)" in n.message
    assert [len(s) for s in m.strokes[1:]] == [2, 2]  # the two inside runs, as separate strokes
    assert m.problem() is None
    assert m.add_stroke([[np.nan, 1.0]]).code == "outside"
    assert m.add_stroke("not points").code == "bad-stroke"
    assert m.add_stroke([]).code == "bad-stroke"
    assert len(m) == 3


# ------------------------------------------------------------------------------------------ gallery
def test_folder_gallery_labels_and_bad_folders(tmp_path):
    with pytest.raises(GalleryError, match="does not exist"):
        Gallery.from_folder(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(GalleryError, match="not a folder"):
        Gallery.from_folder(tmp_path / "f.txt")
    with pytest.raises(GalleryError, match=r"no image file in .*1 file\(s\) looked at"):
        Gallery.from_folder(tmp_path)
    with pytest.raises(GalleryError, match="no gallery folder given"):
        Gallery.from_folder("  ")
    root = photo_folder(tmp_path / "photos")
    write_image(root / "loose.PNG", size=24)
    write_image(root / ".hidden" / "x.png", size=24)
    g = Gallery.from_folder(root)
    assert len(g) == 3 * 3 + 1 and g.classes == CLASSES and "" in g.labels
    assert g.name == f"folder: {root}"


def test_fingerprint_follows_content(tmp_path):
    root = photo_folder(tmp_path / "p")
    a = Gallery.from_folder(root).fingerprint()
    assert Gallery.from_folder(root).fingerprint() == a
    os.utime(root / "cup" / "0.png", (1, 1))  # touching a file changes nothing
    assert Gallery.from_folder(root).fingerprint() == a
    write_image(root / "cup" / "0.png", size=24, color=(1, 2, 3))
    assert Gallery.from_folder(root).fingerprint() != a


# ------------------------------------------------------------------------------------------ cache
def test_cache_is_atomic_and_keyed(tmp_path):
    c = GalleryCache(tmp_path / "cache")
    f = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    p = c.save("run" * 10, "gal" * 10, f, np.arange(5))
    assert p.is_file() and [q.name for q in p.parent.iterdir()] == [p.name]  # no tmp file left
    feats, kept = c.load("run" * 10, "gal" * 10)
    np.testing.assert_array_equal(feats, f)
    np.testing.assert_array_equal(kept, np.arange(5))
    assert c.load("run" * 10, "other" * 5) is None
    p.write_bytes(b"garbage")
    assert c.load("run" * 10, "gal" * 10) is None  # a corrupt cache is recomputed, not fatal


def test_method_fingerprint_follows_weights(method):
    a = method_fingerprint(method)
    assert method_fingerprint(method) == a
    saved = method.sketch_prompts.detach().clone()
    with torch.no_grad():
        method.sketch_prompts.add_(1.0)
    try:
        assert method_fingerprint(method) != a
    finally:
        with torch.no_grad():
            method.sketch_prompts.copy_(saved)
    assert method_fingerprint(method) == a


# ------------------------------------------------------------------------------------------ engine
def test_gallery_embeddings_computed_once_then_cached(method, tmp_path):
    g = Gallery.from_folder(photo_folder(tmp_path / "p"))
    e = make_engine(method, tmp_path / "cache")
    first = e.set_gallery(g)
    assert not first.from_cache and first.n_photos == 9 and os.path.isfile(first.cache_file)
    f1 = e.feats.clone()
    # the cached embeddings are the method's photo embeddings of the gallery images
    x = torch.stack([torch.from_numpy(np.array(Image.open(it.path).convert("RGB").resize(
        (e.image_size, e.image_size), Image.BICUBIC))).permute(2, 0, 1) for it in g.items])
    with torch.no_grad():
        ref = method.encode_photo(e._normalize(x))
    torch.testing.assert_close(f1, ref, atol=1e-5, rtol=1e-5)
    e2 = make_engine(method, tmp_path / "cache")
    second = e2.set_gallery(Gallery.from_folder(tmp_path / "p"))
    assert second.from_cache and second.cache_file == first.cache_file
    torch.testing.assert_close(e2.feats, f1)
    assert e2.classes == CLASSES and e2.class_text.shape[0] == 3


def test_unreadable_photos_are_skipped_and_counted(method, tmp_path):
    root = photo_folder(tmp_path / "p", per_class=1)
    write_truncated_png(root / "cup" / "bad.png")
    write_zero_byte(root / "boat" / "empty.png")
    e = make_engine(method)
    info = e.set_gallery(Gallery.from_folder(root))
    assert info.n_photos == 3 and info.n_skipped == 2 and info.skipped_example


def test_folder_without_a_readable_image(method, tmp_path):
    write_text_as_jpg(tmp_path / "bad" / "a.jpg")
    write_zero_byte(tmp_path / "bad" / "b.png")
    with pytest.raises(GalleryError, match=r"no readable image in .*bad: all 2 image file\(s\) failed"):
        make_engine(method).set_gallery(Gallery.from_folder(tmp_path / "bad"))


def test_query_ranks_by_cosine_and_guesses_a_class(method, tmp_path):
    e = make_engine(method, tmp_path / "cache")
    e.set_gallery(Gallery.from_folder(photo_folder(tmp_path / "p")))
    m = StrokeModel()
    m.add_stroke(line(30, 30, 200, 220))
    r = e.query(m, k=K)
    assert len(r.indices) == K and list(r.scores) == sorted(r.scores, reverse=True)
    with torch.no_grad():
        x = torch.from_numpy(np.array(m.rasterize(e.image_size))).permute(2, 0, 1)[None]  # [1, 3, H, W]
        q = method.encode_sketch(e._normalize(x))[0]
    np.testing.assert_allclose(r.sims, (e.feats @ q).numpy(), atol=1e-5)
    np.testing.assert_allclose(r.scores, np.sort(r.sims)[::-1][:K], atol=1e-6)
    assert sorted(c for c, _ in r.guess) == CLASSES and abs(sum(p for _, p in r.guess) - 1) < 1e-5
    # a list of strokes gives the same answer as the model holding them
    r2 = e.query([line(30, 30, 200, 220)], [m.width], k=K)
    np.testing.assert_array_equal(r2.indices, r.indices)
    # ranks: the best photo's class is at rank 1; an absent class has no rank
    assert r.rank_of(r.labels[0]) == 1 and r.rank_of("zebra") is None
    assert r.class_rank(r.guess[0][0]) == 1 and r.class_rank("zebra") is None
    assert 0 < r.precision(r.labels[0]) <= 1
    rec = stroke_by_stroke(e, [line(30, 30, 200, 220), line(30, 200, 200, 30)], None, "cup", k=K)
    assert [x["n_strokes"] for x in rec] == [1, 2] and all(1 <= x["photo_rank"] <= 9 for x in rec)
    with pytest.raises(RuntimeError, match="set_gallery"):
        make_engine(method).query(m)


def test_rank_of_breaks_ties_by_gallery_index():
    from sbirlab.widgets.engine import Result

    sims = np.array([0.5, 0.9, 0.9, 0.1], np.float32)
    r = Result(np.array([1]), sims[[1]], ["b"], ["x"], [], sims, None, 1, 0.0, ["a", "b", "c", "a"])
    assert r.rank_of("b") == 1 and r.rank_of("c") == 2 and r.rank_of("a") == 3


def test_torch_threads_is_restored():
    n = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


# ------------------------------------------------------------------------------------------- widget
@pytest.fixture
def widget(method, tmp_path):
    pytest.importorskip("ipycanvas")
    from sbirlab.widgets import SketchRetrievalWidget

    e = make_engine(method, tmp_path / "cache")
    g = Gallery.from_folder(photo_folder(tmp_path / "p"))
    rec = {"cup-1": ([line(20, 20, 200, 20), line(200, 20, 200, 200)], [3.0, 3.0], "cup")}
    return SketchRetrievalWidget({"nano clip-at": e}, {"three colours": g}, k=K, pad_size=256, recorded=rec)


def send(w, event, x=None, y=None):
    content = {"event": event}
    if x is not None:
        content.update(x=x, y=y)
    w.canvas._handle_frontend_event(w.canvas, content, [])


def draw(w, pts):
    send(w, "mouse_down", *pts[0])
    for p in pts[1:]:
        send(w, "mouse_move", *p)
    send(w, "mouse_up", *pts[-1])


def test_widget_starts_empty_with_a_prompt(widget):
    assert widget.shown == 0 and widget.result is None
    assert "9 photos" in widget.message and "Draw on the pad" in widget.message


def test_widget_on_an_engine_already_set_up_prompts_too(method, tmp_path):
    from sbirlab.widgets import SketchRetrievalWidget

    e = make_engine(method, tmp_path / "cache")
    g = Gallery.from_folder(photo_folder(tmp_path / "p"))
    e.set_gallery(g)  # as the notebook does before building the widget
    w = SketchRetrievalWidget({"nano": e}, {"g": g}, k=K)
    assert "Draw on the pad" in w.message and w.shown == 0
    draw(w, [(30, 40), (200, 210)])
    assert w.shown == K


def test_mouse_stroke_refreshes_the_results(widget):
    draw(widget, [(30, 40), (80, 90), (140, 120), (200, 210)])
    assert len(widget.model) == 1 and widget.shown == K
    assert widget.message.startswith(f"top-{K} of 9 photos after 1 stroke") and widget.level == "info"
    assert all(t.value[:4] == b"\x89PNG" for t in widget.thumbs)
    assert "Zero-shot class guess" in widget.guess_html.value
    first = list(widget.result.indices)
    assert widget.sketch_view.value[:4] == b"\x89PNG"
    draw(widget, [(20, 220), (230, 30)])
    assert len(widget.model) == 2 and widget.shown == K and "after 2 stroke" in widget.message
    assert len(widget.refreshes) == 2 and first is not None
    send(widget, "mouse_move", 100, 100)  # a move without the button held draws nothing
    assert len(widget.model) == 2


def test_leaving_the_pad_ends_the_stroke(widget):
    send(widget, "mouse_down", 30, 30)
    send(widget, "mouse_move", 120, 130)
    send(widget, "mouse_out", 260, 130)  # the pointer left: no mouse_up will come
    assert not widget.model.drawing and len(widget.model) == 1 and widget.shown == K
    assert widget.model.strokes[0].max() <= 256


def test_single_dot_is_a_message(widget):
    send(widget, "mouse_down", 100, 100)
    send(widget, "mouse_up", 100, 100)
    assert widget.shown == 0 and widget.message == ONLY_DOTS.message and widget.level == "warn"


def test_empty_pad_is_a_message(widget):
    draw(widget, [(30, 40), (200, 210)])
    assert widget.shown == K
    widget.undo()
    assert widget.shown == 0 and widget.message == EMPTY.message
    widget.undo()
    assert "Nothing to undo" in widget.message
    draw(widget, [(30, 40), (200, 210)])
    widget.clear()
    assert widget.shown == 0 and widget.message == EMPTY.message and len(widget.model) == 0


def test_stroke_outside_the_pad_is_a_message(widget):
    draw(widget, [(-50, -40), (-90, -10), (-20, -70)])
    assert len(widget.model) == 0 and widget.shown == 0
    assert "outside the drawing area" in widget.message and widget.level == "warn"
    draw(widget, [(30, 40), (120, 130)])
    draw(widget, [(300, 300), (400, 350)])  # outside again: the previous results stay
    assert len(widget.model) == 1 and widget.shown == K and "outside" in widget.message
    draw(widget, [(100, 100), (200, 200), (300, 300), (400, 400)])  # half outside: clipped, searched
    assert len(widget.model) == 2 and widget.shown == K
    assert "left out" in widget.message and "top-" in widget.message


def test_gallery_folder_errors_are_messages(widget, tmp_path):
    draw(widget, [(30, 40), (200, 210)])
    before = widget.engine.gallery
    widget.load_folder(str(tmp_path / "missing"))
    assert "does not exist" in widget.message and widget.level == "error"
    write_text_as_jpg(tmp_path / "junk" / "a.jpg")
    write_truncated_png(tmp_path / "junk" / "b.png", keep=0.1)
    widget.load_folder(str(tmp_path / "junk"))
    assert "no readable image" in widget.message and widget.level == "error"
    assert widget.engine.gallery is before and widget.engine.feats is not None  # the old gallery still works
    draw(widget, [(20, 220), (230, 30)])
    assert widget.shown == K


def test_loading_a_folder_adds_a_gallery_choice(widget, tmp_path):
    root = tmp_path / "more"
    for k in range(2):
        write_image(root / "kettle" / f"{k}.png", size=24, color=(10 * k, 90, 90))
        write_image(root / "lamp" / f"{k}.png", size=24, color=(90, 10 * k, 90))
    draw(widget, [(30, 40), (200, 210)])
    widget.load_folder(str(root))
    assert widget.gallery_select.value == f"folder: {root}" and len(widget.engine.feats) == 4
    assert widget.shown == K and set(widget.result.labels) <= {"kettle", "lamp"}
    widget.gallery_select.value = "three colours"  # back to the first gallery (cached embeddings)
    assert len(widget.engine.feats) == 9


def test_client_ready_repaints_every_stroke(widget, monkeypatch):
    from ipycanvas import canvas as ic

    draw(widget, [(30, 40), (200, 210)])
    draw(widget, [(20, 220), (230, 30)])
    sent = []
    monkeypatch.setattr(ic._CANVAS_MANAGER, "_send_custom", lambda command, buffers=[]: sent.append(command))
    send(widget, "client_ready")  # the page (re)connected: it must get the whole drawing again
    flat = [c for batch in sent for c in (batch if isinstance(batch[0], list) else [batch])]
    names = {v: k for k, v in ic.COMMANDS.items()}
    ops = [names[c[0]] for c in flat]
    assert ops[0] == "switchCanvas"  # re-sent: the page may have missed it
    assert ops.count("strokeLines") == 2 and "clear" in ops


def test_handler_errors_become_messages(widget, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(widget.engine, "query", boom)
    draw(widget, [(30, 40), (200, 210)])  # no exception escapes
    assert "encoder exploded" in widget.message and widget.level == "error"


def test_replay_is_headless_and_stroke_by_stroke(widget):
    out = widget.replay_recorded("cup-1")
    assert len(out) == 2 and all(r is not None and len(r.indices) == K for r in out)
    assert len(widget.model) == 2 and widget.shown == K
    assert widget.message.startswith("Replayed cup-1 (cup, 2 strokes)")
    widget.replay_recorded("nope")
    assert "No recorded sketch" in widget.message


def test_on_the_fly_metrics_are_bhunias_areas_under_the_percentile_and_reciprocal_rank_curves():
    from sbirlab.widgets import on_the_fly_metrics

    # gallery of 11: ranks 11, 6, 1 -> percentiles 0, 0.5, 1 (mean 0.5); 1/r: 1/11, 1/6, 1 (mean 0.4192)
    a = [{"photo_rank": 11}, {"photo_rank": 6}, {"photo_rank": 1}]
    b = [{"photo_rank": 1}, {"photo_rank": 1}]  # first from the first stroke on: 1, 1
    out = on_the_fly_metrics([a, b], n_gallery=11)
    assert out["n"] == 2
    assert out["m@A"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["m@B"] == pytest.approx(((1 / 11 + 1 / 6 + 1) / 3 + 1.0) / 2)
    # an absent target counts as the last rank; empty trajectories are skipped
    assert on_the_fly_metrics([[{"photo_rank": None}], []], 11) == {"m@A": 0.0, "m@B": pytest.approx(1 / 11), "n": 1}
    assert on_the_fly_metrics([], 11)["n"] == 0
    with pytest.raises(ValueError, match="n_gallery"):
        on_the_fly_metrics([a], 1)
