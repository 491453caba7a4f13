"""benchmarks/bench_gpu.py (issue 13): the CPU smoke of the GPU check, its JSON and its argument errors."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def smoke(bench, tmp_path_factory):
    """CPU smoke of three representative methods: a prompt baseline with prompted class texts (b-mm),
    CLIP-AT (LayerNorms at their own rate) and DP-CLIP (routing, curriculum, in-batch negatives)."""
    out = tmp_path_factory.mktemp("bench_gpu") / "smoke.json"
    res = bench.main(["--device", "cpu", "--methods", "clip-at,b-mm,dp-clip", "--data", "world-small",
                      "--out", str(out)])
    return res, out


def test_cpu_smoke_json(smoke):
    res, out = smoke
    disk = json.loads(out.read_text())
    assert disk["rows"].keys() == res["rows"].keys() == {"clip-at", "b-mm", "dp-clip"}
    assert disk["failed"] == [] and disk["device"] == "cpu" and disk["preset"] == "paper"
    assert disk["steps"] == 2 and disk["warmup_steps"] == 1 and disk["batch_size"] == 8
    assert disk["backbone"] == "sbirlab-micro" and disk["random_weights"] is True
    for k in ("machine", "versions", "load_average_before", "table", "memory", "image_size"):
        assert k in disk
    for name, r in disk["rows"].items():
        assert "error" not in r, r
        assert math.isfinite(r["img_per_s"]) and r["img_per_s"] > 0
        assert r["s_per_step"] > 0 and r["images_per_step"] == 3 * r["batch_size"] == 24
        assert abs(r["img_per_s"] - 24 / r["s_per_step"]) / r["img_per_s"] < 0.01
        assert len(r["losses"]) == 3 and r["loss_finite"] and all(math.isfinite(v) for v in r["losses"])
        assert r["peak_mem_mb"] > 0 and "RSS" in r["mem_kind"]
        assert r["amp"] == "off" and r["grad_scaler"] is False  # amp "auto" is off on CPU
        assert r["trainable_parameters"] > 0


def test_paper_learning_rates(smoke):
    from sbirlab.experiment import PRESETS

    rows = smoke[0]["rows"]
    lrs = PRESETS["paper"]["method_by_name"]
    assert rows["clip-at"]["lr"] == {"prompts": lrs["clip-at"]["lr"], "layernorm": lrs["clip-at"]["lr_ln"]}
    assert rows["b-mm"]["lr"] == {"all": lrs["b-mm"]["lr"]}
    assert rows["dp-clip"]["method_options"] == lrs["dp-clip"]


def test_random_data(bench, tmp_path):
    res = bench.main(["--device", "cpu", "--methods", "splip", "--data", "random", "--steps", "1",
                      "--warmup-steps", "0", "--out", str(tmp_path / "r.json")])
    r = res["rows"]["splip"]
    assert res["failed"] == [] and r["img_per_s"] > 0 and r["loss_finite"] and len(r["losses"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["--methods", "clip-at,nope"], "unknown method(s) 'nope'"),
    (["--methods", "frozen"], "'frozen' has nothing to train"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--batch-size", "10"], "must be a multiple of --classes-per-batch 4"),
    (["--backbone", "ViT-B-32:openai"], "only random weights"),
    (["--backbone", "ViT-B-33"], "unknown open_clip architecture 'ViT-B-33'"),
])
def test_bad_arguments(bench, capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.main(["--device", "cpu", *argv, "--out", str(tmp_path / "x.json")])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
