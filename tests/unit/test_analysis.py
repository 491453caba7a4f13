"""Error analysis (sbirlab.analysis) on hand-made retrievals whose answers are known."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from sbirlab import analysis as AN
from sbirlab.data.base import Item
from sbirlab.metrics import fg_accuracy, retrieval_metrics


def items(labels, modality, prefix="", instances=None):
    inst = instances or [""] * len(labels)
    return [Item(f"{prefix}{modality}/{lab}/{i}.png", lab, modality, inst[i]) for i, lab in enumerate(labels)]


def hand_retrieval(sim, q_labels, g_labels, name="run", q_inst=None, g_inst=None):
    """A Retrieval from a given similarity matrix (features are placeholders of the right length)."""
    sim = np.asarray(sim, dtype=np.float32)
    Q, G = sim.shape
    return AN.Retrieval(name, items(q_labels, "sketch", instances=q_inst), items(g_labels, "photo", instances=g_inst),
                        np.zeros((Q, 1), np.float32), np.zeros((G, 1), np.float32), sim=sim)


@pytest.fixture
def r():
    # 4 queries (2 cats, 2 dogs) x 5 photos (cat, cat, dog, dog, fox)
    sim = [[0.9, 0.8, 0.1, 0.2, 0.0],   # cat: perfect
           [0.1, 0.2, 0.9, 0.8, 0.7],   # cat: both cats last -> pulled by dogs and the fox
           [0.3, 0.1, 0.9, 0.8, 0.2],   # dog: perfect
           [0.9, 0.1, 0.5, 0.5, 0.8]]   # dog: a cat and the fox first
    return hand_retrieval(sim, ["cat", "cat", "dog", "dog"], ["cat", "cat", "dog", "dog", "fox"])


def test_retrieval_per_query_ap_comes_from_the_metrics_module(r):
    ref = retrieval_metrics(r.sim, r.query_labels, r.gallery_labels, per_query=True)
    np.testing.assert_allclose(r.ap, ref["per_query"]["AP@all"])
    assert r.metrics["mAP@all"] == pytest.approx(ref["mAP@all"])
    # by hand: query 1 has its cats at ranks 4 and 5: AP = (1/4 + 2/5) / 2
    assert r.ap[1] == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert r.ap[0] == r.ap[2] == 1.0
    with pytest.raises(ValueError, match="embeddings for"):
        AN.Retrieval("bad", r.queries, r.gallery, np.zeros((3, 1)), np.zeros((5, 1)))


def test_per_class_ap_is_the_mean_of_its_queries_worst_first(r):
    t = AN.per_class_ap(r)
    assert list(t["class"]) == ["cat", "dog"] or list(t["class"]) == ["dog", "cat"]
    d = t.set_index("class")
    assert d.loc["cat", "AP"] == pytest.approx((r.ap[0] + r.ap[1]) / 2)
    assert d.loc["dog", "AP"] == pytest.approx((r.ap[2] + r.ap[3]) / 2)
    assert list(d["queries"]) == [2, 2]
    assert t["AP"].is_monotonic_increasing


def test_topk_indices_break_ties_by_gallery_index_like_the_metrics():
    sim = np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0, 1.0]])
    top = AN.topk_indices(sim, 3)
    assert top.tolist() == [[1, 0, 2], [0, 1, 2]]
    ref = np.argsort(-sim, axis=1, kind="stable")[:, :3]
    assert (top == ref).all()
    rng = np.random.default_rng(0)
    big = rng.integers(0, 5, size=(50, 40)).astype(np.float32)  # heavy ties
    assert (AN.topk_indices(big, 7, chunk=8) == np.argsort(-big, axis=1, kind="stable")[:, :7]).all()
    with pytest.raises(ValueError, match="k must be in"):
        AN.topk_indices(sim, 6)
    with pytest.raises(ValueError, match="NaN"):
        AN.topk_indices(np.array([[np.nan, 1.0]]), 1)


def test_topk_confusion_counts_rows_and_diagonal(r):
    k = 2
    cm, classes = AN.topk_confusion(r, k=k, normalize=False)
    assert classes == ["cat", "dog", "fox"]
    assert cm.sum() == len(r.queries) * k
    np.testing.assert_array_equal(cm.sum(1), [2 * k, 2 * k, 0])  # per query class: queries x k
    # cat queries: q0 -> cat, cat; q1 -> dog, dog. dog queries: q2 -> dog, dog; q3 -> cat, fox
    np.testing.assert_array_equal(cm, [[2, 2, 0], [1, 2, 1], [0, 0, 0]])
    norm, _ = AN.topk_confusion(r, k=k)
    np.testing.assert_allclose(norm.sum(1), [1, 1, 0])
    # the diagonal of the normalised matrix is each class's mean P@k
    pk = retrieval_metrics(r.sim, r.query_labels, r.gallery_labels, ks=(k,), per_query=True)["per_query"][f"P@{k}"]
    assert norm[0, 0] == pytest.approx(pk[:2].mean()) and norm[1, 1] == pytest.approx(pk[2:].mean())
    top = AN.top_confusions(norm, classes, n=3)
    assert tuple(top.iloc[0][["query class", "pulled class"]]) == ("cat", "dog")
    assert top.iloc[0]["share of top-k"] == pytest.approx(0.5)
    assert set(zip(top["query class"], top["pulled class"])) == {("cat", "dog"), ("dog", "cat"), ("dog", "fox")}
    with pytest.raises(ValueError, match="miss"):
        AN.topk_confusion(r, k=2, classes=["cat", "dog"])


def test_first_relevant_rank_and_worst_queries(r):
    np.testing.assert_array_equal(AN.first_relevant_rank(r), [1, 4, 1, 3])
    w = AN.worst_queries(r, n=2, k=3)
    assert list(w["query"]) == [1, 3]  # the two lowest APs, worst first
    assert w.iloc[0]["false_positives"] == [2, 3, 4] and w.iloc[0]["pulled_by"] == ["dog", "dog", "fox"]
    assert w.iloc[1]["false_positives"] == [0, 4, 1]  # dog query: cat 0.9, fox 0.8, cat 0.1
    assert w.iloc[0]["first_true_rank"] == 4
    one = AN.worst_queries(r, n=5, one_per_class=True)
    assert sorted(one["class"]) == ["cat", "dog"]


def test_fg_ranks_match_fg_accuracy():
    sim = np.array([[0.9, 0.8, 0.1], [0.9, 0.8, 0.1], [0.1, 0.2, 0.9]], np.float32)
    r = hand_retrieval(sim, ["cat", "cat", "dog"], ["cat", "cat", "dog"],
                       q_inst=["c1", "c2", "d1"], g_inst=["c1", "c2", "d1"])
    ranks = AN.fg_ranks(r)
    assert ranks.tolist() == [1, 2, 1]
    ref = fg_accuracy(sim, ["c1", "c2", "d1"], ["c1", "c2", "d1"], ["cat", "cat", "dog"], ["cat", "cat", "dog"],
                      return_ranks=True)["ranks"]
    assert (ranks == ref).all()
    no_pairs = hand_retrieval(sim, ["cat", "cat", "dog"], ["cat", "cat", "dog"])
    with pytest.raises(ValueError, match="paired photo"):
        AN.fg_ranks(no_pairs)


def test_compare_runs_query_by_query_on_a_hand_made_case():
    g = ["cat", "cat", "dog", "dog"]
    q = ["cat", "dog", "dog"]
    a = hand_retrieval([[0.9, 0.8, 0.1, 0.0],     # q0 perfect
                        [0.1, 0.2, 0.9, 0.8],     # q1 perfect
                        [0.9, 0.8, 0.1, 0.0]],    # q2 worst
                       q, g, name="a")
    b = hand_retrieval([[0.9, 0.8, 0.1, 0.0],     # q0 unchanged
                        [0.9, 0.8, 0.1, 0.2],     # q1 worse
                        [0.1, 0.2, 0.9, 0.8]],    # q2 better
                       q, g, name="b")
    c = AN.compare_runs(a, b)
    t = c.table.set_index("query")
    assert list(t["change"]) == ["same", "worse", "better"]
    np.testing.assert_allclose(t["delta"], b.ap - a.ap)
    assert c.summary["better"] == 1 and c.summary["worse"] == 1 and c.summary["same"] == 1
    assert c.summary["sign_test_p"] == pytest.approx(1.0)
    assert c.summary["mean_delta"] == pytest.approx(float(np.mean(b.ap - a.ap)))
    pc = c.per_class.set_index("class")
    assert pc.loc["dog", "better"] == 1 and pc.loc["dog", "worse"] == 1 and pc.loc["cat", "queries"] == 1
    assert c.most("better", 1)["query"].tolist() == [2] and c.most("worse", 1)["query"].tolist() == [1]
    # mismatched runs are refused with the position of the first difference
    other = hand_retrieval(a.sim, ["cat", "cat", "dog"], g)
    with pytest.raises(ValueError, match="queries differ at position 1"):
        AN.compare_runs(a, other)
    with pytest.raises(ValueError, match="metric"):
        AN.compare_runs(a, b, metric="P@1")


def test_compare_runs_on_fg_ranks_lower_is_better():
    g_inst, q_inst = ["c1", "c2", "d1"], ["c1", "c2", "d1"]
    lab = ["cat", "cat", "dog"]
    a = hand_retrieval([[0.1, 0.8, 0.1], [0.9, 0.8, 0.1], [0.1, 0.2, 0.9]], lab, lab, "a", q_inst, g_inst)
    b = hand_retrieval([[0.9, 0.8, 0.1], [0.9, 0.8, 0.1], [0.1, 0.2, 0.9]], lab, lab, "b", q_inst, g_inst)
    c = AN.compare_runs(a, b, metric="rank")
    assert list(c.table["change"]) == ["better", "same", "same"]
    assert c.summary["mean_a"] == pytest.approx(5 / 3) and c.summary["mean_b"] == pytest.approx(4 / 3)


def test_sign_test_exact_values():
    assert AN._sign_test(0, 0) == 1.0
    assert AN._sign_test(5, 0) == pytest.approx(2 / 32)
    assert AN._sign_test(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)


def test_plots_draw_what_they_are_given(r, tmp_path):
    import matplotlib.pyplot as plt

    b = hand_retrieval(np.random.default_rng(0).random(r.sim.shape), r.query_labels, r.gallery_labels, name="b")
    fig = AN.plot_per_class_ap([r, b])
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 2  # 2 classes x 2 runs
    assert [t.get_text() for t in ax.get_yticklabels()] == list(AN.per_class_ap(r)["class"])
    cm, classes = AN.topk_confusion(r, 2)
    fig = AN.plot_topk_confusion(cm, classes, 2)
    assert fig.axes[0].images[0].get_array().shape == (3, 3)
    c = AN.compare_runs(r, r)
    fig = AN.plot_comparison(c)
    assert sum(len(col.get_offsets()) for col in fig.axes[0].collections) == len(r.queries)
    plt.close("all")


class _Loader:
    """A stand-in ImageLoader: uint8 images whose grey level encodes the item's class."""

    def uint8(self, item):
        v = {"cat": 40, "dog": 120, "fox": 220}[item.label]
        return torch.full((3, 8, 8), v, dtype=torch.uint8)


def test_worst_query_gallery_shows_the_false_positives(r):
    import matplotlib.pyplot as plt

    fig = AN.plot_worst_queries(r, _Loader(), n=2, k=3)
    axes = np.array(fig.axes).reshape(2, 5)
    titles = [[ax.get_title() for ax in row] for row in axes]
    assert titles[0][0].startswith("cat") and "AP" in titles[0][0]
    assert titles[0][1:4] == ["#1 dog", "#2 dog", "#3 fox"]
    assert titles[0][4] == "first true: #4"
    assert axes[0, 1].images[0].get_array()[0, 0, 0] == 120  # a dog photo
    plt.close("all")


def test_query_pairs_gallery_shows_both_runs_top_k():
    import matplotlib.pyplot as plt

    g = ["cat", "cat", "dog", "dog"]
    q = ["cat", "dog"]
    a = hand_retrieval([[0.1, 0.2, 0.9, 0.8], [0.1, 0.2, 0.9, 0.8]], q, g, name="clip-at")
    b = hand_retrieval([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.8]], q, g, name="frozen")
    c = AN.compare_runs(a, b)
    fig = AN.plot_query_pairs(c, a, b, _Loader(), change="better", n=3, k=2)
    axes = np.array(fig.axes).reshape(1, 5)  # only query 0 changed
    assert axes[0, 0].get_title().startswith("cat") and "→ 1.00" in axes[0, 0].get_title()
    assert axes[0, 1].get_title() == "clip-at\ndog" and axes[0, 3].get_title() == "frozen\ncat"
    with pytest.raises(ValueError, match="no query got worse"):
        AN.plot_query_pairs(c, a, b, _Loader(), change="worse")
    plt.close("all")


def test_cache_dir_for_keeps_shipped_runs_clean(tmp_path):
    from sbirlab.experiment import shipped_runs_dir

    assert AN.cache_dir_for(tmp_path / "runs" / "clip-at-zs") == (tmp_path / "runs" / "clip-at-zs" / "analysis_cache").resolve()
    shipped = shipped_runs_dir().resolve()
    assert AN.cache_dir_for(shipped / "clip-at-zs") == shipped.parent / "cache" / "runs" / "clip-at-zs"
