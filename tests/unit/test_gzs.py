"""Generalised ZS-SBIR end to end: the 20% test set, per-part metrics, runs, the table and the CLI.

On the ``ci`` synthetic world (generated once per session under a temporary ``SBIRLAB_DATA``) with
random-weight ``sbirlab-nano`` CLIPs; training runs are 3 steps.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import open_clip
import pytest
import torch

import sbirlab  # noqa: F401
from sbirlab import experiment
from sbirlab.experiment import (RunConfig, evaluate_run, evaluate_setting, evaluation_set, gzs_from_zs_run,
                                gzs_test_set, load_data, load_or_train, load_run, run_experiment, table_configs,
                                train_table)
from sbirlab.metrics import retrieval_metrics
from sbirlab.models.registry import METHODS, build_method
from sbirlab.train.data import ImageLoader
from sbirlab.train.loop import evaluate


@pytest.fixture(scope="module")
def world(tmp_path_factory):
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


def nano_backbone():
    from sbirlab.models.backbone import load_backbone
    torch.manual_seed(0)
    return load_backbone("sbirlab-nano")


# ---------------------------------------------------------------------------------------------
# the test set


def test_gzs_test_set_follows_the_20_percent_recipe(world):
    _, parts = world
    q, g, seen = gzs_test_set(parts)
    n_sk, n_ph = round(0.2 * len(parts.test_queries)), round(0.2 * len(parts.test_gallery))
    assert len(q) == n_sk + len(parts.test_queries) and len(g) == n_ph + len(parts.test_gallery)
    assert seen == [True] * n_sk + [False] * len(parts.test_queries)
    assert q[n_sk:] == list(parts.test_queries) and g[n_ph:] == list(parts.test_gallery)
    seen_classes = set(parts.split.seen)
    assert all(x.label in seen_classes for x in q[:n_sk] + g[:n_ph])
    assert len({x.path for x in q[:n_sk]}) == n_sk and len({x.path for x in g[:n_ph]}) == n_ph  # no replacement
    assert (q, g, seen) == gzs_test_set(parts)  # fixed draw
    q1, _, _ = gzs_test_set(parts, seed=1)
    assert q1[:n_sk] != q[:n_sk]
    assert evaluation_set(parts, "zs") == (list(parts.test_queries), list(parts.test_gallery), None)
    assert evaluation_set(parts, "gzs") == (q, g, seen)
    with pytest.raises(ValueError, match="seen classes hold"):
        gzs_test_set(parts, fraction=100.0)


def test_every_method_accepts_gzs_and_is_built_as_zs():
    clip = open_clip.create_model("sbirlab-nano", pretrained=None)
    tok = open_clip.get_tokenizer("sbirlab-nano")
    for name in METHODS:
        m = build_method(name, clip, "gzs", classnames=["cat", "dog"], tokenizer=tok)
        assert m.setting == "zs", name


# ---------------------------------------------------------------------------------------------
# metrics and runs


def test_evaluate_setting_gzs_reports_overall_seen_and_unseen(world):
    _, parts = world
    bb = nano_backbone()
    m = build_method("frozen", bb, "gzs", classnames=[])
    loader = ImageLoader(bb.image_size, bb.mean, bb.std)
    res, qf, gf = evaluate_setting(m, parts, "gzs", loader, return_features=True)
    q, g, seen = gzs_test_set(parts)
    overall = retrieval_metrics(qf @ gf.T, [x.label for x in q], [x.label for x in g])
    assert res["mAP@all"] == pytest.approx(overall["mAP@all"]) and res["P@100"] == pytest.approx(overall["P@100"])
    assert res["seen/num_queries"] == sum(seen) and res["unseen/num_queries"] == len(parts.test_queries)
    assert res["n_gallery_seen"] == len(g) - len(parts.test_gallery)
    # the overall mean is the query-weighted mean of the two parts
    n_s, n_u = res["seen/num_queries"], res["unseen/num_queries"]
    assert res["mAP@all"] == pytest.approx((n_s * res["seen/mAP@all"] + n_u * res["unseen/mAP@all"]) / (n_s + n_u))
    have = {x.label for x in g}
    assert res["seen/no_relevant"] == sum(1 for x, s in zip(q, seen) if s and x.label not in have)
    # zs / fg go through the loop's evaluate unchanged
    assert evaluate_setting(m, parts, "zs", loader) == evaluate(m, parts.test_queries, parts.test_gallery, "zs", loader)


def test_gzs_run_trains_as_zs_and_reports_per_part_metrics(world, tmp_path):
    _, parts = world
    cfg = RunConfig(method="b-ip", setting="gzs", preset="ci", backbone="sbirlab-nano")
    metrics = run_experiment(cfg, tmp_path / "gzs", progress=False, backbone=nano_backbone())
    for k in ("mAP@all", "mAP@200", "P@100", "P@200"):
        assert {k, f"seen/{k}", f"unseen/{k}"} <= set(metrics)
    assert "GZS" in metrics["metric_convention"] and metrics["setting"] == "gzs"
    assert json.loads((tmp_path / "gzs" / "config.json").read_text())["setting"] == "gzs"
    again = evaluate_run(tmp_path / "gzs")
    assert again["mAP@all"] == pytest.approx(metrics["mAP@all"], abs=1e-6)
    # the same config in zs trains the identical model; deriving GZS from it gives the same numbers
    zs = run_experiment(RunConfig(method="b-ip", setting="zs", preset="ci", backbone="sbirlab-nano"), tmp_path / "zs",
                        progress=False, backbone=nano_backbone())
    a = torch.load(tmp_path / "zs" / "best.pt", weights_only=False)["trainable"]
    b = torch.load(tmp_path / "gzs" / "best.pt", weights_only=False)["trainable"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    derived = gzs_from_zs_run(tmp_path / "zs", tmp_path / "derived", backbone=nano_backbone())
    assert derived["derived_from"] == "zs" and derived["train_steps"] == zs["train_steps"]
    for k in ("mAP@all", "seen/mAP@all", "unseen/P@100"):
        assert derived[k] == pytest.approx(metrics[k], abs=1e-6)
    assert load_run(tmp_path / "derived", backbone=nano_backbone()).cfg.setting == "gzs"
    with pytest.raises(ValueError, match="finished ZS run"):
        gzs_from_zs_run(tmp_path / "gzs", tmp_path / "x")


def test_load_or_train_derives_gzs_from_the_zs_twin(world, tmp_path, monkeypatch):
    cfg = RunConfig(method="b-ip", setting="zs", backbone="sbirlab-nano")
    zs = load_or_train(cfg, preset="ci", out_root=tmp_path, progress=False, backbone=nano_backbone())

    def no_training(*a, **k):
        raise AssertionError("a gzs run with a finished zs twin must not train")

    monkeypatch.setattr(experiment, "run_experiment", no_training)
    gzs = load_or_train(RunConfig(method="b-ip", setting="gzs", backbone="sbirlab-nano"), preset="ci",
                        out_root=tmp_path, progress=False, backbone=nano_backbone())
    assert gzs.metrics["derived_from"] == "b-ip-zs" and gzs.cfg.setting == "gzs"
    assert gzs.metrics["train_steps"] == zs.metrics["train_steps"] and "unseen/mAP@all" in gzs.metrics


# ---------------------------------------------------------------------------------------------
# table and CLI


def test_table_configs_accepts_gzs_and_the_new_methods():
    default = table_configs()
    assert len(default) == 8 * 2 + 5 and {c.setting for c in default} == {"zs", "fg"}  # unchanged default
    cfgs = table_configs(methods=["frozen", "dp-clip", "splip"], settings=("zs", "gzs", "fg"))
    main = [(c.method, c.setting) for c in cfgs if not c.method_cfg]
    assert main == [(m, s) for s in ("zs", "gzs", "fg") for m in ("frozen", "dp-clip", "splip")]
    abl = [(c.method, c.setting) for c in cfgs if c.method_cfg]
    assert ("dp-clip", "fg") in abl and ("splip", "zs") in abl and not [a for a in abl if a[1] == "gzs"]
    assert not [c for c in table_configs(methods=["frozen", "b-ip"]) if c.method_cfg]
    with pytest.raises(ValueError, match="unknown setting"):
        table_configs(settings=("zs", "gfs"))


def test_train_table_derives_gzs_from_the_zs_run(world, tmp_path):
    res = train_table(tmp_path, "ci", methods=["b-ip"], settings=("zs", "gzs"), ablations=False,
                      backbone="sbirlab-nano")
    assert set(res) == {"b-ip-zs", "b-ip-gzs"}
    assert res["b-ip-gzs"]["derived_from"] == "b-ip-zs" and "seen/mAP@all" in res["b-ip-gzs"]
    assert json.loads((tmp_path / "table.json").read_text())["runs"]["b-ip-gzs"]["setting"] == "gzs"


def test_cli_accepts_the_gzs_setting():
    from sbirlab.cli import _parser

    args = _parser().parse_args(["train", "--method", "splip", "--setting", "gzs", "--out", "x"])
    assert args.setting == "gzs"
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--setting", "gfs", "--out", "x"])
