"""sbirlab.metrics against sklearn (no ties), a brute-force reference (ties) and hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from sbirlab import _ranks_numba
from sbirlab.metrics import fg_accuracy, gzs_metrics, relevant_ranks, retrieval_metrics


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def backend(request, monkeypatch):
    """Every test runs on both ranking cores: the compiled counting kernel and the numpy radix path."""
    if request.param == "numba" and not _ranks_numba.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setenv("SBIRLAB_METRICS_BACKEND", request.param)
    return request.param


def brute_force(sim, qlab, glab, ks=(100, 200), map_k=(200,), convention="rk"):
    """Per-query metrics from the definitions, in plain Python (ties: lower gallery index first)."""
    sim = np.asarray(sim, dtype=np.float64)
    out = {"AP@all": [], **{f"AP@{k}": [] for k in map_k}, **{f"P@{k}": [] for k in ks}}
    for i in range(sim.shape[0]):
        order = sorted(range(sim.shape[1]), key=lambda g: (-sim[i, g], g))
        rel = [glab[g] == qlab[i] for g in order]
        R = sum(rel)
        hits, terms = 0, []
        for r, is_rel in enumerate(rel, start=1):
            if is_rel:
                hits += 1
                terms.append((r, hits / r))
        out["AP@all"].append(sum(t for _, t in terms) / R if R else 0.0)
        for k in map_k:
            top = [t for r, t in terms if r <= k]
            den = len(top) if convention == "rk" else min(k, R)
            out[f"AP@{k}"].append(sum(top) / den if den else 0.0)
        for k in ks:
            out[f"P@{k}"].append(sum(rel[:k]) / k)
    return {name: np.array(v) for name, v in out.items()}


def assert_matches_brute(sim, qlab, glab, ks, map_k, convention="rk", **kw):
    res = retrieval_metrics(sim, qlab, glab, ks=ks, map_k=map_k, map_convention=convention, per_query=True, **kw)
    ref = brute_force(sim, qlab, glab, ks, map_k, convention)
    for name, v in ref.items():
        np.testing.assert_allclose(res["per_query"][name], v, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(res["m" + name if name.startswith("AP") else name], v.mean(), atol=1e-12)
    return res


# ------------------------------------------------------------------------------ against sklearn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_map_all_equals_sklearn_without_ties(dtype):
    rng = np.random.default_rng(0)
    Q, G = 60, 700
    glab = rng.integers(0, 7, G)
    qlab = rng.integers(0, 7, Q)
    sim = (rng.standard_normal((Q, G)) + 1.0 * (qlab[:, None] == glab[None, :])).astype(dtype)
    assert all(len(np.unique(row)) == G for row in sim)  # no ties: sklearn's tie handling is moot
    res = retrieval_metrics(sim, qlab, glab, per_query=True)
    ref = np.array([average_precision_score(glab == qlab[i], sim[i]) for i in range(Q)])
    np.testing.assert_allclose(res["per_query"]["AP@all"], ref, rtol=0, atol=1e-6)
    assert res["mAP@all"] == pytest.approx(ref.mean(), abs=1e-6)
    assert 0.25 < res["mAP@all"] < 0.95  # a real signal (chance is ~1/7), not a degenerate case


def test_sklearn_groups_ties_we_break_them_by_index():
    # one relevant item tied with one irrelevant item
    sim = np.array([[1.0, 1.0, 0.0]])
    glab = np.array([1, 0, 0])  # the relevant item has the lower index: it ranks first
    assert retrieval_metrics(sim, [1], glab)["mAP@all"] == 1.0
    assert average_precision_score(glab == 1, sim[0]) == pytest.approx(0.5)  # the tied group's precision
    glab_swapped = np.array([0, 1, 0])  # relevant has the higher index: rank 2
    assert retrieval_metrics(sim, [1], glab_swapped)["mAP@all"] == 0.5


# ------------------------------------------------------------------------------ hand-made numbers


def test_hand_made_case_all_four_metrics():
    # query 0 (class 0): ranking g3, g0(rel), g4, g1(rel), g2 ; R = 2
    # query 1 (class 1): ranking g2(rel), g3, g1, g0, g4       ; R = 1
    sim = np.array([[0.8, 0.5, 0.1, 0.9, 0.6], [0.2, 0.3, 0.9, 0.5, 0.1]])
    glab = np.array([0, 0, 1, 2, 2])
    res = retrieval_metrics(sim, [0, 1], glab, ks=(1, 3), map_k=(3,), per_query=True)
    ap0 = (1 / 2 + 2 / 4) / 2
    np.testing.assert_allclose(res["per_query"]["AP@all"], [ap0, 1.0])
    np.testing.assert_allclose(res["per_query"]["AP@3"], [0.5, 1.0])  # top 3 of query 0: one hit at rank 2
    np.testing.assert_allclose(res["per_query"]["P@1"], [0.0, 1.0])
    np.testing.assert_allclose(res["per_query"]["P@3"], [1 / 3, 1 / 3])
    assert res["mAP@all"] == pytest.approx((ap0 + 1) / 2)
    assert res["mAP@3"] == pytest.approx(0.75)
    assert res["P@1"] == pytest.approx(0.5)
    assert list(res)[:4] == ["mAP@all", "mAP@3", "P@1", "P@3"]
    # the VOC-style denominator min(k, R) = 2 for query 0
    res2 = retrieval_metrics(sim, [0, 1], glab, ks=(1,), map_k=(3,), map_convention="min_k_r")
    assert res2["mAP@3"] == pytest.approx((0.5 / 2 + 1.0) / 2)


def test_default_keys_and_types():
    rng = np.random.default_rng(1)
    sim = rng.random((5, 300))
    res = retrieval_metrics(sim, rng.integers(0, 3, 5), rng.integers(0, 3, 300))
    assert list(res) == ["mAP@all", "mAP@200", "P@100", "P@200"]
    assert all(type(v) is float for v in res.values())


def test_fewer_relevant_than_k():
    # 3 relevant items, found at ranks 1, 3, 6; k = 10 > R
    sim = -np.arange(12, dtype=float)[None, :]  # ranking = gallery order
    glab = np.zeros(12, int)
    glab[[0, 2, 5]] = 1
    res = retrieval_metrics(sim, [1], glab, ks=(10,), map_k=(10, 4), per_query=True)
    s = 1 / 1 + 2 / 3 + 3 / 6
    assert res["P@10"] == pytest.approx(3 / 10)
    assert res["mAP@all"] == pytest.approx(s / 3)
    assert res["mAP@10"] == pytest.approx(s / 3)  # R_k = 3
    assert res["mAP@4"] == pytest.approx((1 + 2 / 3) / 2)  # R_k = 2
    voc = retrieval_metrics(sim, [1], glab, ks=(10,), map_k=(10, 4), map_convention="min_k_r")
    assert voc["mAP@10"] == pytest.approx(s / 3)  # min(10, 3) = 3
    assert voc["mAP@4"] == pytest.approx((1 + 2 / 3) / 3)  # min(4, 3) = 3


def test_query_without_relevant_item():
    sim = np.array([[0.9, 0.1, 0.5], [0.3, 0.2, 0.1]])
    qlab = np.array([0, 7])  # class 7 is not in the gallery
    glab = np.array([0, 1, 1])
    res = retrieval_metrics(sim, qlab, glab, ks=(1,), map_k=(2,), per_query=True)
    assert res["mAP@all"] == pytest.approx(0.5)  # (1 + 0) / 2: counted as 0
    assert res["P@1"] == pytest.approx(0.5)
    np.testing.assert_array_equal(res["per_query"]["R"], [1, 0])
    skip = retrieval_metrics(sim, qlab, glab, ks=(1,), map_k=(2,), skip_no_relevant=True, per_query=True)
    assert skip["mAP@all"] == 1.0 and skip["mAP@2"] == 1.0 and skip["P@1"] == 1.0
    assert np.isnan(skip["per_query"]["AP@all"][1])
    none = retrieval_metrics(sim[1:], qlab[1:], glab, skip_no_relevant=True)
    assert np.isnan(none["mAP@all"])


def test_string_labels():
    sim = np.array([[0.9, 0.1, 0.5]])
    res = retrieval_metrics(sim, ["cat"], ["cat", "dog", "cat"], ks=(2,), map_k=(2,))
    assert res["mAP@all"] == 1.0 and res["P@2"] == 1.0


# ------------------------------------------------------------------------------ ties and the fast path


@pytest.mark.parametrize("convention", ["rk", "min_k_r"])
def test_integer_scores_with_ties_against_brute_force(convention):
    rng = np.random.default_rng(2)
    Q, G = 25, 400
    glab = rng.integers(0, 5, G)
    qlab = rng.integers(0, 6, Q)  # class 5 has no gallery item
    sim = rng.integers(0, 6, (Q, G)) + 2 * (qlab[:, None] == glab[None, :])  # heavy ties
    assert_matches_brute(sim, qlab, glab, ks=(10, 50), map_k=(10, 50), convention=convention)


@pytest.mark.parametrize("seed", [3, 4])
def test_near_ties_and_quantisation_collisions_against_brute_force(seed):
    # values on a fine grid: many exact ties and many distinct values sharing a 16-bit key
    rng = np.random.default_rng(seed)
    Q, G = 20, 1500
    glab = rng.integers(0, 4, G)
    qlab = rng.integers(0, 4, Q)
    sim = np.round(rng.standard_normal((Q, G)) * 0.1 + 0.1 * (qlab[:, None] == glab[None, :]), 5)
    sim = sim.astype(np.float32)
    sim[0, ::50] = sim[0, 1]  # a long run of equal scores (exact per-row fallback)
    sim[1, 10] = sim[1, 11] + np.float32(1e-7)  # distinct but within one key
    sim[2, :] = 0.5  # a constant row
    for convention in ("rk", "min_k_r"):
        assert_matches_brute(sim, qlab, glab, ks=(5, 100), map_k=(100,), convention=convention, chunk_size=7)


def test_infinite_scores_and_nan():
    rng = np.random.default_rng(5)
    sim = rng.standard_normal((6, 50))
    sim[0, [3, 7]] = np.inf
    sim[1, :] = -np.inf
    sim[2, 5] = -np.inf
    glab = rng.integers(0, 3, 50)
    qlab = rng.integers(0, 3, 6)
    assert_matches_brute(sim, qlab, glab, ks=(5,), map_k=(10,))
    sim[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(sim, qlab, glab)


def test_relevant_ranks():
    sim = np.array([[0.8, 0.5, 0.1, 0.9, 0.6], [0.2, 0.3, 0.9, 0.5, 0.1]])
    q, rank, j = relevant_ranks(sim, [0, 2], [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(q, [0, 0, 1, 1])
    np.testing.assert_array_equal(rank, [2, 4, 2, 5])
    np.testing.assert_array_equal(j, [1, 2, 1, 2])


# ------------------------------------------------------------------------------ inputs and chunking


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(6)
    Q, G = 30, 500
    glab = rng.integers(0, 5, G)
    qlab = rng.integers(0, 5, Q)
    sim = rng.standard_normal((Q, G)).astype(np.float32)
    ref = retrieval_metrics(sim, qlab, glab)
    for s in (torch.from_numpy(sim), torch.from_numpy(sim).double(), torch.from_numpy(sim).requires_grad_()):
        got = retrieval_metrics(s, torch.from_numpy(qlab), torch.from_numpy(glab))
        assert got == pytest.approx(ref, abs=1e-12)
    half = torch.from_numpy(sim).half()  # converted exactly to float32 chunk by chunk
    assert retrieval_metrics(half, qlab, glab) == pytest.approx(retrieval_metrics(half.float().numpy(), qlab, glab))


def test_chunking_and_threads_invariance():
    rng = np.random.default_rng(7)
    Q, G = 41, 900
    glab = rng.integers(0, 6, G)
    qlab = rng.integers(0, 6, Q)
    sim = np.round(rng.standard_normal((Q, G)), 3).astype(np.float32)
    ref = retrieval_metrics(sim, qlab, glab, chunk_size=10_000, per_query=True)
    for kw in ({"chunk_size": 1}, {"chunk_size": 8}, {}, {"chunk_size": 5, "num_threads": 2}):
        got = retrieval_metrics(sim, qlab, glab, per_query=True, **kw)
        for name, v in ref["per_query"].items():
            np.testing.assert_array_equal(got["per_query"][name], v, err_msg=f"{name} {kw}")
    # non-contiguous input
    got = retrieval_metrics(np.asfortranarray(sim), qlab, glab, chunk_size=3)
    assert got == pytest.approx({k: v for k, v in ref.items() if k != "per_query"}, abs=1e-12)


def test_input_validation():
    sim = np.zeros((2, 3))
    with pytest.raises(ValueError, match="query_labels"):
        retrieval_metrics(sim, [0], [0, 1, 2])
    with pytest.raises(ValueError, match="gallery_labels"):
        retrieval_metrics(sim, [0, 1], [0, 1])
    with pytest.raises(ValueError, match="map_convention"):
        retrieval_metrics(sim, [0, 1], [0, 1, 2], map_convention="voc")
    with pytest.raises(ValueError, match="positive"):
        retrieval_metrics(sim, [0, 1], [0, 1, 2], ks=(0,))
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(3), [0], [0, 1, 2])


# ------------------------------------------------------------------------------ GZS


def test_gzs_metrics_hand_made():
    # gallery: g0, g1 unseen class 0; g2 seen class 5
    sim = np.array(
        [
            [0.9, 0.1, 0.5],  # unseen query, class 0: ranks 1 and 3 -> AP (1 + 2/3) / 2
            [0.2, 0.8, 0.1],  # unseen query, class 0: ranks 2 and 1 -> AP 1
            [0.9, 0.1, 0.5],  # seen query, class 5: rank 2 -> AP 1/2
        ]
    )
    qlab = [0, 0, 5]
    glab = [0, 0, 5]
    seen = [False, False, True]
    res = gzs_metrics(sim, qlab, glab, seen, ks=(1,), map_k=(2,))
    ap_unseen = [(1 + 2 / 3) / 2, 1.0]
    assert res["unseen/mAP@all"] == pytest.approx(np.mean(ap_unseen))
    assert res["seen/mAP@all"] == pytest.approx(0.5)
    assert res["mAP@all"] == pytest.approx((sum(ap_unseen) + 0.5) / 3)
    assert res["unseen/P@1"] == 1.0 and res["seen/P@1"] == 0.0
    assert res["seen/mAP@2"] == pytest.approx(0.5)  # rk: one hit at rank 2, R_k = 1
    assert res["seen/num_queries"] == 1 and res["unseen/num_queries"] == 2
    overall = retrieval_metrics(sim, qlab, glab, ks=(1,), map_k=(2,))
    assert {k: res[k] for k in overall} == overall
    empty = gzs_metrics(sim, qlab, glab, [False] * 3, ks=(1,), map_k=(2,))
    assert np.isnan(empty["seen/mAP@all"]) and empty["seen/num_queries"] == 0


# ------------------------------------------------------------------------------ fine-grained


def test_fg_accuracy_hand_made():
    # gallery: photos 10, 11 (class 0), 20, 21 (class 1)
    g_inst = np.array([10, 11, 20, 21])
    g_cat = np.array([0, 0, 1, 1])
    sim = np.array(
        [
            [0.9, 0.5, 0.1, 0.2],  # sketch of 10: rank 1 (both ways)
            [0.9, 0.5, 0.7, 0.1],  # sketch of 11: rank 2 within class 0, rank 3 pooled
            [0.1, 0.2, 0.3, 0.3],  # sketch of 21: tie with 20 (lower index first): rank 2 / 2
            [0.9, 0.8, 0.7, 0.1],  # sketch of 21: rank 2 within class 1, rank 4 pooled
        ]
    )
    q_inst = [10, 11, 21, 21]
    q_cat = [0, 0, 1, 1]
    res = fg_accuracy(sim, q_inst, g_inst, q_cat, g_cat, ks=(1, 2, 3), return_ranks=True)
    np.testing.assert_array_equal(res["ranks"], [1, 2, 2, 2])
    assert res["Acc@1"] == 0.25 and res["Acc@2"] == 1.0 and res["Acc@3"] == 1.0
    pooled = fg_accuracy(sim, q_inst, g_inst, ks=(1, 2, 3), within_category=False, return_ranks=True)
    np.testing.assert_array_equal(pooled["ranks"], [1, 3, 2, 4])
    assert pooled["Acc@1"] == 0.25 and pooled["Acc@2"] == 0.5 and pooled["Acc@3"] == 0.75
    assert list(fg_accuracy(sim, q_inst, g_inst, q_cat, g_cat)) == ["Acc@1", "Acc@5", "Acc@10"]
    small_chunks = fg_accuracy(torch.from_numpy(sim), q_inst, g_inst, q_cat, g_cat, ks=(1, 2), chunk_size=1)
    assert small_chunks == {"Acc@1": 0.25, "Acc@2": 1.0}


def test_fg_accuracy_errors():
    sim = np.zeros((1, 2))
    with pytest.raises(ValueError, match="paired photo"):
        fg_accuracy(sim, [5], [1, 2], within_category=False)
    with pytest.raises(ValueError, match="paired photo"):  # the pair exists but in another category
        fg_accuracy(sim, [1], [1, 2], [0], [1, 0])
    with pytest.raises(ValueError, match="query_labels"):
        fg_accuracy(sim, [1], [1, 2])


def test_extreme_ranges_take_the_exact_path():
    big = np.float32(3e38)
    sim = np.array([[big, -big, 0.0, 1.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    assert_matches_brute(sim, [0, 1], [1, 0, 0, 1], ks=(2,), map_k=(2,))


# ------------------------------------------------------------------------------ the two ranking cores


@pytest.mark.parametrize("case", ["gauss32", "int_ties", "rounded64", "const_and_inf", "tiny_range", "dup_rows"])
def test_numba_and_numpy_cores_give_identical_ranks(case, monkeypatch, backend):
    if backend == "numpy" or not _ranks_numba.AVAILABLE:
        pytest.skip("compared once, from the numba run")
    rng = np.random.default_rng(7)
    Q, G = 40, 300
    q, g = rng.integers(0, 5, Q), rng.integers(0, 4, G)  # class 4: queries without relevant items
    sim = {"gauss32": lambda: rng.standard_normal((Q, G)).astype(np.float32),
           "int_ties": lambda: rng.integers(0, 3, (Q, G)).astype(np.float32),
           "rounded64": lambda: np.round(rng.standard_normal((Q, G)), 1),
           "const_and_inf": lambda: np.vstack([np.ones((1, G)), np.where(rng.random((Q - 1, G)) < 0.05, np.inf,
                                                                         rng.standard_normal((Q - 1, G)))]),
           "tiny_range": lambda: (1 + 1e-6 * rng.standard_normal((Q, G))).astype(np.float32),
           "dup_rows": lambda: np.repeat(rng.standard_normal((1, G)), Q, axis=0)}[case]()
    got = {}
    for be in ("numba", "numpy"):
        monkeypatch.setenv("SBIRLAB_METRICS_BACKEND", be)
        got[be] = (relevant_ranks(sim, q, g), retrieval_metrics(sim, q, g, ks=(1, 10, 100), per_query=True))
    for a, b in zip(got["numba"][0], got["numpy"][0]):
        np.testing.assert_array_equal(a, b)
    for k, v in got["numpy"][1]["per_query"].items():
        np.testing.assert_array_equal(got["numba"][1]["per_query"][k], v, err_msg=k)


def test_the_kernel_declines_heavily_tied_rows_and_the_exact_path_takes_them(backend):
    if backend == "numpy" or not _ranks_numba.AVAILABLE:
        pytest.skip("kernel only")
    G = _ranks_numba.CAP + 200
    x = np.zeros((3, G), np.float32)
    x[0, :5] = 1.0                      # one bin with > CAP members around relevant items: declined
    x[1] = np.arange(G, dtype=np.float32)  # ordinary row
    x[2] = 7.0                          # constant row: declined
    g_codes = (np.arange(G) % 2).astype(np.int16)
    q_codes = np.array([0, 1, 0], np.int16)
    nrel = np.array([(g_codes == c).sum() for c in q_codes])
    _, _, _, status = _ranks_numba.ranks_block(x, g_codes, q_codes, nrel)
    assert status.tolist() == [1, 0, 1]
    res = retrieval_metrics(x, [0, 1, 0], np.arange(G) % 2, per_query=True)
    ref = brute_force(x, [0, 1, 0], np.arange(G) % 2)
    np.testing.assert_allclose(res["per_query"]["AP@all"], ref["AP@all"], atol=1e-12)


def test_an_unknown_backend_is_an_error(monkeypatch):
    monkeypatch.setenv("SBIRLAB_METRICS_BACKEND", "gpu")
    with pytest.raises(ValueError, match="SBIRLAB_METRICS_BACKEND"):
        retrieval_metrics(np.eye(3), [0, 1, 2], [0, 1, 2])
