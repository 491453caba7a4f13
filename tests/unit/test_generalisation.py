"""Generalisation sweeps (sbirlab.generalisation): the training-data option, sweep points, resumable runs."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib

matplotlib.use("Agg")

import json
import math

import pytest
import torch

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab import experiment, generalisation as G
from sbirlab.data.base import Item, Partitions, ZSSplit
from sbirlab.experiment import RunConfig, load_data, run_name


def toy_parts(n_classes=5, n_photos=10, n_sketches=3, unpaired=False):
    train_ph, train_sk = [], []
    for c in range(n_classes):
        for i in range(n_photos):
            pid = f"c{c}_{i:02d}"
            train_ph.append(Item(f"photo/c{c}/{pid}.png", f"c{c}", "photo", pid))
            for k in range(n_sketches):
                train_sk.append(Item(f"sketch/c{c}/{pid}-{k}.png", f"c{c}", "sketch", "" if unpaired else pid))
    val = [Item("sketch/v/v-1.png", "v", "sketch", "v")], [Item("photo/v/v.png", "v", "photo", "v")]
    test = [Item("sketch/u/u-1.png", "u", "sketch", "u")], [Item("photo/u/u.png", "u", "photo", "u")]
    split = ZSSplit("toy", seen=tuple(f"c{c}" for c in range(n_classes)) + ("v",), unseen=("u",), val=("v",))
    return Partitions(train_sk, train_ph, *val, *test, split)


# ------------------------------------------------------------------------------- restrict_training

def test_fraction_keeps_photos_per_class_with_their_paired_sketches():
    parts = toy_parts()
    for f in (0.1, 0.25, 0.5, 1.0):
        r = G.restrict_training(parts, train_fraction=f, seed=0)
        for c in range(5):
            ph = [p for p in r.train_photos if p.label == f"c{c}"]
            assert len(ph) == max(1, math.ceil(f * 10))
            ids = {p.instance for p in ph}
            sk = [s for s in r.train_sketches if s.label == f"c{c}"]
            assert {s.instance for s in sk} == ids and len(sk) == 3 * len(ph)  # every sketch of a kept photo
        assert (r.val_sketches, r.val_photos, r.test_queries, r.test_gallery) == \
            (parts.val_sketches, parts.val_photos, parts.test_queries, parts.test_gallery)
    full = G.restrict_training(parts, 1.0)
    assert set(full.train_photos) == set(parts.train_photos) and set(full.train_sketches) == set(parts.train_sketches)


def test_subsets_are_nested_and_reproducible():
    parts = toy_parts(n_classes=8)
    small, mid = (set(G.restrict_training(parts, f, seed=3).train_photos) for f in (0.2, 0.6))
    assert small < mid
    assert set(G.restrict_training(parts, 0.2, seed=3).train_photos) == small
    assert set(G.restrict_training(parts, 0.2, seed=4).train_photos) != small  # another seed, another draw
    c2, c5 = ({p.label for p in G.restrict_training(parts, train_classes=n, seed=1).train_photos} for n in (2, 5))
    assert len(c2) == 2 and len(c5) == 5 and c2 < c5
    both = G.restrict_training(parts, train_fraction=0.5, train_classes=3, seed=1)
    assert {p.label for p in both.train_photos} <= c5 and len(both.train_photos) == 3 * 5


def test_unpaired_sketches_are_subsampled_by_the_same_fraction():
    parts = toy_parts(unpaired=True)
    r = G.restrict_training(parts, train_fraction=0.2)
    for c in range(5):
        assert len([s for s in r.train_sketches if s.label == f"c{c}"]) == math.ceil(0.2 * 30)


@pytest.mark.parametrize("kw,match", [({"train_fraction": 0}, "train_fraction"),
                                      ({"train_fraction": 1.5}, "train_fraction"),
                                      ({"train_classes": 1}, r"train_classes must be an integer in \[2, 5\]"),
                                      ({"train_classes": 6}, "train_classes"),
                                      ({"train_classes": 2.5}, "train_classes")])
def test_bad_options_name_what_is_wrong(kw, match):
    with pytest.raises(ValueError, match=match):
        G.restrict_training(toy_parts(), **kw)
    with pytest.raises(TypeError):
        G.restrict_training(toy_parts(), train_share=0.5)


# ------------------------------------------------------------------------------------ sweep points

def test_sweep_configs_share_the_full_point_and_set_the_data_option():
    pts = G.sweep_configs(("clip-at", "b-lin"), fractions=(0.1, 1.0), class_counts=(5, 50, None),
                          n_train_classes=50, preset="ci")
    names = [p.folder for p, _ in pts]
    assert names == ["clip-at/frac0.1_clsall", "clip-at/frac1_clsall", "clip-at/frac1_cls5",
                     "b-lin/frac0.1_clsall", "b-lin/frac1_clsall", "b-lin/frac1_cls5"]
    cfgs = {p.folder: c for p, c in pts}
    assert cfgs["clip-at/frac0.1_clsall"].data == {"train_fraction": 0.1}
    assert cfgs["clip-at/frac1_cls5"].data == {"train_classes": 5}
    assert cfgs["clip-at/frac1_clsall"].data == {} and cfgs["b-lin/frac1_cls5"].preset == "ci"
    # the data option is part of a run's name, so load_or_train never confuses a subset run with the full one
    assert run_name(cfgs["clip-at/frac0.1_clsall"]) == "clip-at-zs_train_fraction=0.1"
    assert run_name(cfgs["clip-at/frac1_clsall"]) == "clip-at-zs"
    with pytest.raises(ValueError, match="fractions"):
        G.sweep_configs(("b-lin",), fractions=(0.0,))


# --------------------------------------------------------------------------- through the experiment

@pytest.fixture(scope="module")
def ci_world(tmp_path_factory):
    """``SBIRLAB_DATA`` at the session's shared folder (the ci world is generated once, as in test_loop.py)."""
    root = os.environ.get("SBIRLAB_TEST_DATA") or str(tmp_path_factory.getbasetemp() / "sbirlab_data")
    old = os.environ.get("SBIRLAB_DATA")
    os.environ["SBIRLAB_DATA"] = root
    try:
        yield load_data(RunConfig(preset="ci", backbone="sbirlab-nano"))
    finally:
        if old is None:
            os.environ.pop("SBIRLAB_DATA", None)
        else:
            os.environ["SBIRLAB_DATA"] = old


def test_run_config_data_option_reaches_the_partitions(ci_world):
    _, full = ci_world
    _, part = load_data(RunConfig(preset="ci", data={"train_fraction": 0.5, "train_classes": 4}))
    assert len({p.label for p in part.train_photos}) == 4
    assert len(part.train_photos) == 4 * 2  # 4 photos per class in the ci world, half kept
    assert part.test_queries == full.test_queries and part.val_photos == full.val_photos
    with pytest.raises(TypeError):
        load_data(RunConfig(preset="ci", data={"fraction": 0.5}))


def nano_backbone():
    from sbirlab.models.backbone import load_backbone

    torch.manual_seed(0)
    return load_backbone("sbirlab-nano")


def test_run_sweep_trains_each_point_once_and_resumes(ci_world, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    seen_cfgs = []
    real = experiment.run_experiment

    def spy(cfg, out_dir, **kw):
        seen_cfgs.append((cfg.method, dict(cfg.data)))
        return real(cfg, out_dir, **kw)

    monkeypatch.setattr(experiment, "run_experiment", spy)
    res = G.run_sweep(tmp_path, methods=("b-lin",), fractions=(0.5, 1.0), class_counts=(2, None), preset="ci",
                      train={"max_steps": 2}, backbone_model=nano_backbone())
    assert seen_cfgs == [("b-lin", {"train_fraction": 0.5}), ("b-lin", {}), ("b-lin", {"train_classes": 2}),
                         ("frozen", {})]
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["points"] == json.loads(json.dumps(res["points"]))
    assert len(res["points"]) == 3 and res["reference"]["train_steps"] == 0
    for p in res["points"]:
        assert p["train_steps"] == 2 and 0 <= p["mAP@all"] <= 1
        assert (tmp_path / p["folder"] / "metrics.json").exists()
        cfg = json.loads((tmp_path / p["folder"] / "config.json").read_text())
        assert cfg["backbone"] == "sbirlab-nano" and cfg["preset"] == "ci" and cfg["train"]["max_steps"] == 2
        assert cfg["data"] == ({"train_fraction": 0.5} if p["train_fraction"] == 0.5 else
                               {"train_classes": 2} if p["train_classes"] == 2 else {})
    n_all = res["n_train_classes"]
    assert {(p["train_fraction"], p["train_classes"]) for p in res["points"]} == {(0.5, n_all), (1.0, n_all), (1.0, 2)}
    # a second call trains nothing: every point is read back
    seen_cfgs.clear()
    again = G.run_sweep(tmp_path, methods=("b-lin",), fractions=(0.5, 1.0), class_counts=(2, None), preset="ci",
                        train={"max_steps": 2}, backbone_model=nano_backbone())
    assert seen_cfgs == [] and [p["mAP@all"] for p in again["points"]] == [p["mAP@all"] for p in res["points"]]
    t = G.sweep_table(again)
    assert len(t) == 4  # the full point on both axes
    full = t[(t["axis"] == "fraction") & (t["value"] == 1.0)]["mAP@all"].item()
    assert full == t[(t["axis"] == "classes") & (t["value"] == n_all)]["mAP@all"].item()
    # finished runs named by run_name (as the shipped data/runs) are reused when their config matches exactly
    import shutil

    shelf = tmp_path / "shelf"
    shutil.copytree(tmp_path / "b-lin" / "frac1_clsall", shelf / "b-lin-zs")
    shutil.copytree(tmp_path / "frozen", shelf / "frozen-zs")
    seen_cfgs.clear()
    reused = G.run_sweep(tmp_path / "other", methods=("b-lin",), fractions=(0.5, 1.0), class_counts=(2, None),
                         preset="ci", train={"max_steps": 2}, backbone_model=nano_backbone(), reuse_from=shelf)
    assert seen_cfgs == [("b-lin", {"train_fraction": 0.5}), ("b-lin", {"train_classes": 2})]
    assert reused["reference"]["mAP@all"] == res["reference"]["mAP@all"]
    full_point = next(p for p in reused["points"] if p["all_classes"] and p["train_fraction"] == 1.0)
    assert full_point["folder"] == str(shelf / "b-lin-zs") and full_point["mAP@all"] == res["points"][1]["mAP@all"]
    seen_cfgs.clear()
    G.run_sweep(tmp_path / "third", methods=("b-lin",), fractions=(1.0,), class_counts=(None,), preset="ci",
                train={"max_steps": 1}, backbone_model=nano_backbone(), reuse_from=shelf, reference=False)
    assert seen_cfgs == [("b-lin", {})]  # another schedule: not reused
    # a finished sweep can be read without writing anything (a shipped, read-only folder)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    ro = G.run_sweep(tmp_path, methods=("b-lin",), fractions=(0.5, 1.0), class_counts=(2, None), preset="ci",
                     train={"max_steps": 2}, backbone_model=nano_backbone(), record=False)
    assert ro["points"] == again["points"] and before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="record=False"):
        G.run_sweep(tmp_path, methods=("b-lin",), fractions=(0.25,), class_counts=(), preset="ci",
                    train={"max_steps": 2}, backbone_model=nano_backbone(), record=False, reference=False)
    with pytest.raises(ValueError, match="another train"):  # a changed schedule never reads stale results
        G.run_sweep(tmp_path, methods=("b-lin",), fractions=(0.5, 1.0), class_counts=(2, None), preset="ci",
                    train={"max_steps": 3}, backbone_model=nano_backbone())
    with pytest.raises(ValueError, match="backbone_model"):
        G.run_sweep(tmp_path, methods=("b-lin",), preset="ci", backbone="tiny-synthetic", backbone_model=nano_backbone())
    fig = G.plot_generalisation(again)
    assert len(fig.axes) == 2 and all(len(ax.lines) == 2 for ax in fig.axes)  # b-lin + frozen reference
    plt.close("all")
