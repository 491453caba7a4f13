"""Embedding spaces (sbirlab.viz.embeddings) and the on-disk embedding cache (sbirlab.analysis.embed_cached)."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import open_clip
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab import analysis as AN
from sbirlab.data.base import Item, Partitions, ZSSplit
from sbirlab.models.registry import build_method
from sbirlab.train import loop
from sbirlab.train.data import ImageLoader
from sbirlab.viz import embeddings as E


def clustered_table(name="t", n_per=12, classes=("a", "b", "c", "d"), dim=16, seed=0, spread=0.05):
    """Well-separated class clusters; per class half sketches half photos; the last class unseen."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(classes)] * 3
    feats, its, mod, seen = [], [], [], []
    for k, c in enumerate(classes):
        for i in range(n_per):
            m = "sketch" if i % 2 == 0 else "photo"
            feats.append(centres[k] + spread * rng.normal(size=dim) + (0.3 if m == "sketch" else 0.0))
            its.append(Item(f"{m}/{c}/{i}.png", c, m))
            mod.append(m)
            seen.append(k < len(classes) - 1)
    f = np.asarray(feats, np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return E.EmbeddingTable(name, f, its, mod, seen)


# ------------------------------------------------------------------------------------------- table

def test_table_validates_its_columns():
    t = clustered_table()
    assert len(t) == 48 and t.labels[0] == "a" and t.seen.sum() == 36
    with pytest.raises(ValueError, match="feats"):
        E.EmbeddingTable("x", t.feats[:3], t.items, t.modality, t.seen)
    with pytest.raises(ValueError, match="unknown modalities"):
        E.EmbeddingTable("x", t.feats, t.items, ["drawing"] * len(t), t.seen)
    assert t.same_points(clustered_table(seed=1)) and not t.same_points(clustered_table(n_per=4))


def _parts():
    def mk(labels, mod, n):
        return [Item(f"{mod}/{c}/{i}.png", c, mod, f"{c}{i}") for c in labels for i in range(n)]
    split = ZSSplit("toy", seen=("a", "b", "c"), unseen=("u", "v"))
    return Partitions(mk("abc", "sketch", 6), mk("abc", "photo", 4), [], [], mk("uv", "sketch", 9),
                      mk("uv", "photo", 9), split)


def test_sample_items_draws_per_class_and_flags_seen():
    its, mod, seen = E.sample_items(_parts(), n_sketches=2, n_photos=1, seed=0, unseen_factor=2)
    from collections import Counter

    cnt = Counter((i.label, m, s) for i, m, s in zip(its, mod, seen))
    for c in "abc":
        assert cnt[(c, "sketch", True)] == 2 and cnt[(c, "photo", True)] == 1
    for c in "uv":
        assert cnt[(c, "sketch", False)] == 4 and cnt[(c, "photo", False)] == 2
    again = E.sample_items(_parts(), n_sketches=2, n_photos=1, seed=0)
    assert [i.path for i in again[0]] == [i.path for i in its]  # reproducible
    few = E.sample_items(_parts(), n_sketches=2, n_photos=1, seen_classes=2, seed=0)
    assert len({i.label for i, s in zip(few[0], few[2]) if s}) == 2


# ------------------------------------------------------------------------------------------ projection

def test_knn_graph_is_exact_and_lists_each_point_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    idx, dist = E.knn_graph(x, 6, chunk=64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, 2)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :6]
    assert (idx[:, 0] == np.arange(300)).all() and (idx == ref).all()
    assert (dist[:, 0] == 0).all() and (np.diff(dist, axis=1) >= -1e-6).all()


def test_projector_fits_once_on_all_tables_and_caches(tmp_path):
    before, after = clustered_table("before", seed=0, spread=0.6), clustered_table("after", seed=1)
    p = E.Projector(method="pca", cache_dir=tmp_path)
    xy = p.fit([before, after])
    assert p.n_fits == 1 and set(xy) == {"before", "after"}
    assert xy["before"].shape == (48, 2) and xy["after"].shape == (48, 2)
    # one fit on the union: the same as projecting the stacked features at once
    allxy = p._fit(np.concatenate([before.feats, after.feats]))
    np.testing.assert_allclose(np.concatenate([xy["before"], xy["after"]]), allxy, atol=1e-5)
    files = list(tmp_path.glob("proj-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    q = E.Projector(method="pca", cache_dir=tmp_path)  # re-run: a cache hit, no fit
    xy2 = q.fit([before, after])
    assert q.n_fits == 0 and q.cache_hit
    np.testing.assert_array_equal(xy2["after"], xy["after"])
    changed = clustered_table("after", seed=2)  # other features: a miss
    r = E.Projector(method="pca", cache_dir=tmp_path)
    r.fit([before, changed])
    assert r.n_fits == 1 and not r.cache_hit and len(list(tmp_path.glob("proj-*.npz"))) == 2
    with pytest.raises(ValueError, match="distinct"):
        p.fit([before, before])
    with pytest.raises(ValueError, match="method"):
        E.Projector(method="tsne")


def test_umap_projection_keeps_the_clusters_apart(tmp_path):
    pytest.importorskip("umap")
    before = clustered_table("before", n_per=30, seed=0)
    after = clustered_table("after", n_per=30, seed=1)
    p = E.Projector(n_neighbors=8, n_epochs=60, cache_dir=tmp_path)
    calls = []
    real = p._fit
    p._fit = lambda X: calls.append(len(X)) or real(X)
    xy = p.fit({"before": before, "after": after})
    assert calls == [240] and p.n_fits == 1  # one reducer for both tables
    # in 2-D each point's nearest neighbour has its class (the clusters are far apart in 16-D)
    for name, t in (("before", before), ("after", after)):
        d = np.linalg.norm(xy[name][:, None] - xy[name][None], axis=-1)
        np.fill_diagonal(d, np.inf)
        assert (t.labels[d.argmin(1)] == t.labels).mean() > 0.95


def test_space_stats_on_known_geometry():
    t = clustered_table()
    s = E.space_stats(t, k=3)
    assert s["seen/sketch_to_photo_P@1"] == 1.0 and s["unseen/sketch_to_photo_P@1"] == 1.0
    assert s["seen/class_margin"] > 0.5
    f = t.feats
    un = ~t.seen
    gap = np.linalg.norm(f[un & (t.modality == "sketch")].mean(0) - f[un & (t.modality == "photo")].mean(0))
    assert s["unseen/modality_gap"] == pytest.approx(float(gap), rel=1e-5)
    mixed = clustered_table(spread=5.0)  # noise swamps the classes
    assert E.space_stats(mixed, k=3)["seen/class_margin"] < s["seen/class_margin"]


def test_static_plots(tmp_path):
    import matplotlib.pyplot as plt

    before, after = clustered_table("before"), clustered_table("after", seed=1)
    p = E.Projector(method="pca")
    p.fit([before, after])
    fig = E.plot_before_after(p)
    axes = fig.axes
    assert len(axes) == 2 * 3
    lims = {(tuple(np.round(ax.get_xlim(), 6)), tuple(np.round(ax.get_ylim(), 6))) for ax in axes}
    assert len(lims) == 1  # every panel in the same coordinates
    n_points = sum(len(c.get_offsets()) for c in axes[0].collections)
    assert n_points == len(before)
    for cb in ("class", "modality", "seen"):
        E.plot_projection(after, p.xy["after"], cb)
    with pytest.raises(ValueError, match="color_by"):
        E.plot_projection(after, p.xy["after"], "drawer")
    plt.close("all")


# ----------------------------------------------------------------------------------------- widget

class _Loader:
    def uint8(self, item):
        return torch.full((3, 8, 8), 100, dtype=torch.uint8)


def test_interactive_projection_hover_and_click_without_a_browser():
    pytest.importorskip("ipycanvas")
    t = clustered_table()
    xy = E.Projector(method="pca").fit([t])["t"]
    box = E.interactive_projection(t, xy, _Loader(), k_photos=3)
    px = box.points_px
    assert px.shape == (len(t), 2)
    W, H = box.canvas.width, box.canvas.height
    assert ((px[:, 0] > 0) & (px[:, 0] < W) & (px[:, 1] > 0) & (px[:, 1] < H)).all()
    i = 5
    box.on_move(float(px[i, 0]), float(px[i, 1]))
    assert box.pick.hovered == i
    box.on_move(-500.0, -500.0)  # far from every point: nothing changes
    assert box.pick.hovered == i
    # the frontend's event path (what a browser sends) reaches the same handler
    j = 0  # a sketch of class "a"
    box.canvas._canvases[-1]._handle_frontend_event(box.canvas, {"event": "mouse_down", "x": float(px[j, 0]),
                                                                 "y": float(px[j, 1])}, [])
    assert box.pick.clicked == j and len(box.pick.neighbours) == 3
    assert all(t.modality[n] == "photo" for n in box.pick.neighbours)
    sims = t.feats[box.pick.neighbours] @ t.feats[j]
    assert (np.diff(sims) <= 1e-6).all() and all(t.labels[n] == "a" for n in box.pick.neighbours)


# ----------------------------------------------------------------------------------- embedding cache

def _nano_method():
    torch.manual_seed(0)
    clip = open_clip.create_model("sbirlab-nano", pretrained=None).eval()
    return build_method("clip-at", clip, "zs", classnames=["a", "b"], tokenizer=open_clip.get_tokenizer("sbirlab-nano"))


@pytest.fixture
def image_items(tmp_path):
    from PIL import Image

    out = []
    for i in range(6):
        p = tmp_path / "imgs" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.new("RGB", (32, 32), (40 * i, 255 - 30 * i, 100)).save(p)
        out.append(Item(str(p), "a" if i < 3 else "b", "photo"))
    return out


def test_embedding_cache_hit_miss_and_stale_keys(tmp_path, image_items, monkeypatch):
    method = _nano_method()
    loader = ImageLoader(32, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    calls = []
    real = loop.encode_items
    monkeypatch.setattr(loop, "encode_items", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    cache = tmp_path / "cache"
    f1 = AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)
    assert calls == [6] and f1.shape == (6, method.visual.output_dim) and f1.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f1, axis=1), 1, atol=1e-5)
    assert len(list(cache.glob("emb-photo-*.npz"))) == 1 and not list(cache.glob(".*tmp"))
    f2 = AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)  # hit
    assert calls == [6]
    np.testing.assert_array_equal(f1, f2)
    AN.embed_cached(method, image_items, "sketch", loader, cache_dir=cache)  # other branch: miss
    AN.embed_cached(method, image_items[:4], "photo", loader, cache_dir=cache)  # other items: miss
    assert calls == [6, 6, 4]
    with torch.no_grad():
        method.photo_prompts.add_(0.5)  # the model changed: the old file must not be read
    f3 = AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)
    assert calls == [6, 6, 4, 6] and not np.allclose(f1, f3)
    assert len(list(cache.glob("emb-*.npz"))) == 4
    # a damaged cache file is recomputed, not trusted
    key_file = sorted(cache.glob("emb-photo-*.npz"), key=os.path.getmtime)[-1]
    key_file.write_bytes(b"not an npz")
    f4 = AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)
    assert calls[-1] == 6 and np.allclose(f3, f4, atol=1e-6)
    with pytest.raises(ValueError, match="modality"):
        AN.embed_cached(method, image_items, "drawing", loader)
    # state outside state_dict (DP-CLIP's evaluation categories) enters the key through a method hook
    n = len(calls)
    method.embedding_cache_key = lambda: "categories: cat, dog"
    AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)
    AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)
    method.embedding_cache_key = lambda: "categories: cat, fox"
    AN.embed_cached(method, image_items, "photo", loader, cache_dir=cache)
    assert len(calls) == n + 2


def test_embedding_table_encodes_each_modality_with_its_branch(tmp_path, image_items):
    method = _nano_method()
    loader = ImageLoader(32, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    mod = ["sketch", "photo"] * 3
    t = E.embedding_table(method, image_items, mod, [True] * 6, loader, cache_dir=tmp_path, name="after")
    x = loader.batch(image_items)
    with torch.no_grad():
        sk, ph = method.encode_sketch(x).numpy(), method.encode_photo(x).numpy()
    np.testing.assert_allclose(t.feats[0::2], sk[0::2], atol=1e-5)
    np.testing.assert_allclose(t.feats[1::2], ph[1::2], atol=1e-5)
    assert t.name == "after" and list(t.modality) == mod
