"""sbirlab.notebook: what every notebook does first (setup) and last (record)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sbirlab import notebook as N


def test_setup_seeds_makes_the_output_folder_and_prints_what_it_did(tmp_path):
    out = tmp_path / "a" / "b"
    nb = N.setup("03_clip_baselines", preset="ci", out_dir=str(out), seed=7, device="cpu")
    assert out.is_dir() and nb.out == out and nb.device == torch.device("cpu") or str(nb.device) == "cpu"
    first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    N.setup("03_clip_baselines", preset="ci", out_dir=str(out), seed=7, device="cpu")
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == first
    text = str(nb)
    assert "03_clip_baselines" in text and "preset ci" in text and "seed 7" in text and str(out.resolve()) in text
    assert "backbone" not in text  # nothing loaded, none named: printing never loads a CLIP


def test_preset_implies_progress_data_world_and_run_folder(tmp_path, monkeypatch):
    ci = N.setup("x", preset="ci", out_dir=str(tmp_path))
    assert ci.progress is False and ci.data_preset == "ci"
    runs = ci.runs
    assert runs.is_dir() and "sbirlab-ci-runs-" in runs.name  # throwaway, never an earlier session's runs
    assert ci.runs == runs  # made once
    default = N.setup("x", preset="default", out_dir=str(tmp_path))
    assert default.progress is True and default.data_preset == "cpu"
    assert default.runs == N.REPO / "runs"
    given = N.setup("x", preset="ci", out_dir=str(tmp_path), runs_dir=str(tmp_path / "myruns"))
    assert given.runs == tmp_path / "myruns" and given.runs.is_dir()  # a RUNS_DIR parameter: made at setup


def test_config_carries_the_notebook_parameters(tmp_path):
    nb = N.setup("x", preset="ci", out_dir=str(tmp_path), seed=3, backbone="tiny-synthetic", dataset="synthetic")
    cfg = nb.config("clip-at", "fg", tune_ln=False)
    assert (cfg.method, cfg.setting, cfg.dataset, cfg.backbone, cfg.seed) == ("clip-at", "fg", "synthetic",
                                                                             "tiny-synthetic", 3)
    assert cfg.method_cfg == {"tune_ln": False}
    assert nb.run_dir(cfg).parent.parent == nb.runs or nb.runs in nb.run_dir(cfg).parents


def test_record_puts_identity_first_timings_last_and_writes_atomically(tmp_path):
    nb = N.setup("05_fine_grained", preset="ci", out_dir=str(tmp_path), seed=1, backbone="tiny-synthetic",
                 dataset="synthetic")
    r = nb.record({"metrics": {"Acc@1": 1.5}, "n_queries": 12})
    assert list(r)[:5] == ["notebook", "preset", "dataset", "backbone", "seed"]
    assert list(r)[-2:] == ["seconds", "cpu_seconds"] and r["seconds"] >= 0
    on_disk = json.loads(nb.record_path.read_text())
    assert on_disk == r and nb.record_path == tmp_path / "05_fine_grained.json"
    assert not [p for p in tmp_path.iterdir() if p.name != "05_fine_grained.json"]  # no temporary left behind
    plain = N.setup("y", preset="ci", out_dir=str(tmp_path))
    assert list(plain.record({"k": 1}, timings=()))[:3] == ["notebook", "preset", "seed"]  # no dataset/backbone given


def test_record_fails_whole_on_what_json_cannot_hold(tmp_path):
    nb = N.setup("z", preset="ci", out_dir=str(tmp_path))
    nb.record({"k": 1})
    before = nb.record_path.read_text()
    with pytest.raises(TypeError):
        nb.record({"k": np.float32(2.0)})
    assert nb.record_path.read_text() == before  # the earlier record survives a failed one
    assert nb.record({"k": np.float32(2.0)}, default=float)["k"] == 2.0
    with pytest.raises(ValueError, match="unknown timing"):
        nb.record({"k": 1}, timings=("secnds",))


def test_record_saves_figures_under_the_notebook_name(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    nb = N.setup("09_embedding_space", preset="ci", out_dir=str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    nb.record({"k": 1}, figures={"umap": fig})
    png = tmp_path / "09_embedding_space_umap.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_small_helpers():
    assert N.pick({"a": 1, "b": 2, "c": 3}, ["c", "a", "zz"]) == {"c": 3, "a": 1}
    assert N.parse_list(" 0.1, 0.3 ,,1", float) == [0.1, 0.3, 1.0]
    assert N.parse_list("") == []
    runs = {("frozen", "zs"): {"mAP@all": 0.3, "extra": 1}, ("frozen", "fg"): {"Acc@1": 2.0}}
    t = N.table_record(runs, ["frozen"], settings=("zs", "fg"), extra_runs=[{"variant": "v"}])
    assert t["table"] == {"frozen-zs": {"mAP@all": 0.3}, "frozen-fg": {"Acc@1": 2.0}}
    assert t["runs"] == [runs[("frozen", "zs")], runs[("frozen", "fg")], {"variant": "v"}]


def test_nothing_inside_the_package_imports_the_notebook_layer():
    root = Path(N.__file__).parent
    offenders = [p.relative_to(root) for p in root.rglob("*.py")
                 if p.name != "notebook.py" and ("from .notebook" in p.read_text() or "sbirlab.notebook" in
                                                 p.read_text().replace('"sbirlab.notebook"', ""))]
    assert not offenders
