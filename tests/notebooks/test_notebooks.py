"""Execute every numbered notebook with papermill in the ``ci`` preset and check the numbers it records.

How a notebook plugs in (nothing to register; ``notebooks/[0-9]*.ipynb`` are found automatically):

- its ``parameters`` cell declares at least ``PRESET`` and ``OUT_DIR`` (see ``notebooks/_template.ipynb``);
  the harness runs it with ``PRESET="ci"`` and ``OUT_DIR=<a tmp folder>``, kernel ``python3``, with the
  notebooks folder as working directory;
- its last cell writes ``<OUT_DIR>/<notebook stem>.json``; the harness asserts the file exists and
  holds ``"preset": "ci"``;
- optionally, add a function to :data:`CHECKS` (key: the notebook stem) that asserts on the recorded
  numbers (sanity bounds in the ci preset, not the paper's results).

Data for the kernels: ``SBIRLAB_DATA`` points at **one tmp folder per test session**, so the ci-preset
synthetic world (70 classes x 4 photos x 3 sketches, about two seconds to generate on an idle core) is
generated once by the first notebook that needs it and shared by the rest, and a run never reads or
writes the repository's ``data/synthetic`` cache (nor a real dataset configured on the machine).
Checkpoints (``data/checkpoints``) and split files (``data/splits``) are not affected by
``SBIRLAB_DATA``. ``HF_HUB_OFFLINE=1`` keeps kernels off the network.

The structure test (no papermill needed) checks every committed notebook, the template included:
outputs cleared, exactly one ``parameters`` cell holding plain scalars and strings, balanced solution
markers, and the template's order (title first, the JSON record last).
"""
from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
NB_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9]*.ipynb"))
ALL_NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 900


# ------------------------------------------------------------------------------- per-notebook checks

def _check_01(r: dict) -> None:
    assert r["dataset"] == "synthetic" and r["n_classes"] >= 60 and r["n_groups"] == 7 and r["n_drawers"] == 8
    sc = r["split_classes"]
    assert sc["seen"] + sc["unseen"] == r["n_classes"] == r["totals"]["classes"]
    assert sc["unseen"] == round(0.2 * r["n_classes"]) and 2 <= sc["val"] < sc["seen"]
    per_class = 4  # photos per class in the ci preset
    assert r["totals"]["photos"] == r["n_classes"] * per_class
    assert r["totals"]["sketches"] == r["totals"]["photos"] * r["sketches_per_photo"]
    assert r["test_gallery"] == sc["unseen"] * per_class
    assert r["test_queries"] == r["test_gallery"] * r["sketches_per_photo"]
    assert r["gzs_seen_sketches"] == round(0.2 * r["test_queries"])
    assert r["gzs_seen_photos"] == round(0.2 * r["test_gallery"])
    assert r["fg_pairs"] == r["test_queries"]  # every unseen sketch has its photo
    assert 0 <= r["stroke_png_diff"] < 8  # an .ndjson record re-rasterised equals its PNG within rounding
    assert r["least_ink_drawer"] in {"careful", "quick", "shaky", "bold", "minimal", "detailed", "loose", "child"}
    assert r["real_dataset"] is None


def _check_11(r: dict) -> None:
    assert r["n_gallery"] == 4 * r["n_classes"] and r["n_classes"] >= 10  # unseen classes, ci: 4 photos each
    assert r["cache_hit_second_load"] is True
    assert r["pixel_diff_pad_vs_renderer"] == 0  # the pad draws exactly as the dataset's renderer
    assert 0 <= r["mean_diff_recording_vs_png"] < 8  # integer-coordinate recordings: rounding only
    assert r["widget_shown"] == r["k"] == 8 and r["n_replay"] == 8 and r["n_queries"] >= r["n_replay"]
    assert len(r["median_photo_rank"]) == len(r["median_class_rank"]) == len(r["fractions"]) == 10
    assert all(1 <= x <= r["n_gallery"] for x in r["median_photo_rank"])
    assert all(1 <= x <= r["n_classes"] for x in r["median_class_rank"])
    assert all(0 <= x <= 1 for x in r["photo_rank_1"] + r["class_top1"])
    assert 0 <= r["sketches_reaching_photo_rank_1"] <= r["n_replay"]


def _check_08(r: dict) -> None:
    assert r["layers"] >= 1 and r["heads"] >= 1 and r["n_prompts"] == 3 and r["grid"] == [8, 8]  # CLIP-AT, tiny CLIP
    assert r["row_sum_max_err"] < 1e-4 and r["hooked_embedding_diff"] == 0 and r["parity_return_attn"] < 1e-5
    assert all(0 < e < math.log(1 + 64 + 3) for e in r["cls_entropy"])
    roll = r["rollout_sources"]
    assert abs(roll["patches"] + roll["cls"] + roll["prompts"] - 1) < 1e-4 and 0 < roll["prompts"] < 0.5
    for name, m in r["mass_on_object"].items():  # the pretrained CLIP's CLS reads from the object, not uniformly
        assert m["CLS last layer"] > m["chance"] + 0.2, name
    assert r["deep_replaced"] == [True] * r["layers"] and r["mixed_batch_diff"] < 1e-5


def _check_09(r: dict) -> None:
    assert r["n_points"] > 300 and r["n_unseen_points"] > 0 and r["cache_identical"] is True
    assert r["projector_fits"] == 1 and r["xy_finite"] is True  # one reducer for before and after
    for k, v in r["stats"].items():  # precisions in [0, 1], gaps in [0, 2], margins in [-2, 2]
        assert all(-2 <= x <= 2 for x in v.values()) and ("margin" in k or min(v.values()) >= 0), k
    assert r["stats"]["unseen/sketch_to_photo_P@1"]["before"] > 1 / 14 + 0.1  # well above chance (14 classes)
    assert r["widget_neighbours"] == 5 and len(r["most_mixed_after"]) == 3


def _check_10(r: dict) -> None:
    assert r["n_queries"] > 0 and r["n_classes"] >= 10
    assert all(abs(x - 1) < 1e-9 for x in r["confusion_row_sums"]) and 0 < r["confusion_diag_mean"] <= 1
    c = r["comparison"]
    assert c["better"] + c["worse"] + c["same"] == c["queries"] == r["n_queries"] and 0 <= c["sign_test_p"] <= 1
    assert len(r["worst"]) == len({w["class"] for w in r["worst"]}) > 0
    assert all(w["first_true_rank"] >= 1 for w in r["worst"]) and set(r["per_class_ap"]) and 0 <= r["top10_share_of_gain"] <= 1


def _check_12(r: dict) -> None:
    assert r["methods"] == ["clip-at", "b-deep", "b-lin"] and len(r["points"]) == 3 * 3
    assert all(p["train_steps"] == 2 and 0 < p["mAP@all"] <= 1 for p in r["points"])
    d = r["design"]
    assert d["fraction 0.1"]["photos"] < d["fraction 1"]["photos"] and d["5 classes"]["classes"] == 5
    assert len({v["test queries"] for v in d.values()}) == 1  # the test set never changes
    assert 0 < r["frozen_mAP@all"] <= 1 and set(r["class_slopes"]) == set(r["methods"])


def _table_checks(r: dict) -> None:
    """The complete table of notebooks 06 / 07: every ci row in the three settings, GZS derived from ZS."""
    assert r["table_methods"] == ["frozen", "clip-at", "dp-clip", "splip"]  # the ci subset
    for m in r["table_methods"]:
        zs, gzs, fg = r["table"][f"{m}-zs"], r["table"][f"{m}-gzs"], r["table"][f"{m}-fg"]
        assert 0 < zs["mAP@all"] <= 1 and 0 <= fg["Acc@1"] <= fg["Acc@5"] <= 1
        assert 0 <= gzs["seen/mAP@all"] <= 1 and 0 < gzs["unseen/mAP@all"] <= 1
        assert gzs.get("derived_from") == f"{m}-zs" and gzs["train_steps"] == zs["train_steps"]
        assert zs["train_steps"] == (0 if m == "frozen" else 3)
    assert set(r["claims"]) >= {"DP-CLIP > CLIP-AT in FG (Acc@1)", "SpLIP > CLIP-AT in ZS (mAP@all)"}


def _check_06(r: dict) -> None:
    assert r["grid"] == [8, 8] and r["windows"] == [[0, 0, 6, 6], [0, 2, 6, 6], [2, 0, 6, 6], [2, 2, 6, 6]]
    assert r["generator_identity_gap"] < 1e-6 and r["fused_distance_gap"] < 1e-4 and r["curriculum_matches_paper"]
    assert r["n_templates"] == 20 and all(v > 0 for v in r["budget"].values())
    assert 0 < r["prompt_specific_share"] < 1 and all(0 <= v <= 1 for v in r["routing_accuracy"].values())
    assert r["routing_accuracy"]["photos"] > 1 / 14 + 0.3  # the original CLIP routes photos far above chance
    assert {"routed (sbirlab)", "true category (paper)"} == set(r["fg_protocols"])
    assert r["fg_protocols"]["routed (sbirlab)"]["Acc@1"] == r["dp_clip"]["fg"]["Acc@1"]  # = the recorded run
    assert set(r["ablations"]) == {"fg/full", "fg/text_scaling=none", "fg/patch_matching=False"}
    assert r["dp_clip"]["fg"]["train_steps"] == 3 and len(r["router_control"]) == 4
    assert "DP-CLIP, no category prompts (trained)" in r["router_control"]  # the route-free variant
    _table_checks(r)


def _check_07(r: dict) -> None:
    assert r["n_visual_tokens"] == 6 and r["batch_independence_gap"] < 1e-5 and r["margin_gap"] < 1e-5
    assert r["jigsaw"]["permutations"] == 30 and r["jigsaw"]["min_hamming"] > r["jigsaw"]["random_min_hamming"]
    g = r["gzs_sizes"]
    assert g["seen_queries"] == round(0.2 * g["unseen_queries"]) and g["seen_gallery"] == round(0.2 * g["unseen_gallery"])
    assert 0 <= r["frozen_gzs"]["seen/mAP@all"] <= 1 and r["frozen_gzs"]["seen/no_relevant"] <= g["seen_queries"]
    assert set(r["splip"]) == {"zs", "gzs", "fg"} and set(r["ablations"]) == {"full", "vision_to_text=False", "lambda_cjs=0"}
    assert r["splip"]["gzs"]["train_steps"] == r["splip"]["zs"]["train_steps"] == 3
    _table_checks(r)


#: notebook stem -> check of its recorded JSON (notebooks without one only need to write the JSON).
CHECKS: dict[str, Callable[[dict], None]] = {
    "01_data_and_protocols": _check_01,
    "06_dual_modal_prompting": _check_06,
    "07_multimodal_prompt_sharing": _check_07,
    "08_attention_maps": _check_08,
    "09_embedding_space": _check_09,
    "10_error_analysis": _check_10,
    "11_sketch_and_retrieve": _check_11,
    "12_generalisation": _check_12,
}


# ------------------------------------------------------------------------------------------ helpers

def _load(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _parameter_cells(nb) -> list:
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def _plain_assignments(source: str) -> dict:
    """``{name: value}`` of a parameters cell; fails on anything but ``NAME = <scalar or string>``."""
    out = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"parameters cell: only NAME = value lines, got {ast.unparse(node)!r}"
        value = ast.literal_eval(node.value)
        assert value is None or isinstance(value, (bool, int, float, str)), \
            f"parameters cell: {node.targets[0].id} must be a plain scalar or string (papermill), got {value!r}"
        out[node.targets[0].id] = value
    return out


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """Environment of the papermill kernels (inherited from this process) for the whole session."""
    data = tmp_path_factory.mktemp("sbirlab_data")
    mp = pytest.MonkeyPatch()
    mp.setenv("SBIRLAB_DATA", str(data))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("SBIRLAB_SPLITS_DIR", raising=False)
    yield data
    mp.undo()


# ---------------------------------------------------------------------------------------------- tests

def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebooks/[0-9]*.ipynb in {NB_DIR}"
    assert (NB_DIR / "_template.ipynb").is_file()


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=[p.stem for p in ALL_NOTEBOOKS])
def test_committed_notebook_structure(path):
    nb = _load(path)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert c.get("outputs") == [] and c.get("execution_count") is None, \
                f"{path.name}: cell {i} has outputs; clear them (jupyter nbconvert --clear-output --inplace)"
    params = _parameter_cells(nb)
    assert len(params) == 1, f"{path.name}: {len(params)} cells tagged 'parameters'; exactly one expected"
    assert params[0].cell_type == "code"
    names = _plain_assignments(params[0].source)
    assert {"PRESET", "OUT_DIR"} <= set(names), f"{path.name}: the parameters cell must declare PRESET and OUT_DIR"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    head = nb.cells[0].source.lower()
    assert "learning objectives" in head and "prerequisites" in head and "runtime" in head
    assert nb.cells.index(params[0]) == 2 and nb.cells[1].cell_type == "code", \
        f"{path.name}: title, one setup cell, then the parameters cell"
    text = "\n".join(c.source for c in nb.cells)
    assert text.count("### BEGIN SOLUTION") == text.count("### END SOLUTION")
    assert nb.cells[-1].cell_type == "code" and "json" in nb.cells[-1].source, \
        f"{path.name}: the last cell records the key numbers to JSON"
    if path.stem[:1].isdigit():
        assert "### BEGIN SOLUTION" in text, f"{path.name}: at least one exercise with its solution"
        assert "## summary" in text.lower() and "references" in text.lower()


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_ci_preset(path, tmp_path, kernel_env):
    papermill = pytest.importorskip("papermill")
    out_nb = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out_nb), parameters={"PRESET": "ci", "OUT_DIR": str(tmp_path)},
                               kernel_name="python3", cwd=str(NB_DIR), progress_bar=False,
                               execution_timeout=CELL_TIMEOUT_S)
    record = tmp_path / f"{path.stem}.json"
    assert record.is_file(), f"{path.name} did not write {record.name} to OUT_DIR"
    r = json.loads(record.read_text())
    assert r.get("preset") == "ci"
    bad = [k for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)]
    assert not bad, f"non-finite numbers recorded: {bad}"
    CHECKS.get(path.stem, lambda r: None)(r)


@pytest.mark.notebook
def test_the_same_preset_twice_gives_the_same_report_table(tmp_path, kernel_env):
    """Reproducibility of ``sbirlab report``: notebook 03 retrains its runs in the ci preset each time
    (throwaway run folders); the two results tables must hold the same values with the same provenance."""
    pytest.importorskip("papermill")
    from sbirlab.reports import run_report

    tables = []
    for k in (1, 2):
        run_report("ci", tmp_path / f"report{k}", only="03")
        rows = json.loads((tmp_path / f"report{k}" / "results.json").read_text())["table"]
        tables.append(sorted((json.dumps({c: v for c, v in r.items() if c != "wall_time_s"}, sort_keys=True))
                             for r in rows))
    assert tables[0], "notebook 03 recorded no runs"
    ours = [json.loads(r) for r in tables[0] if not json.loads(r)["source"].startswith("published")]
    assert ours and all(r["preset"] == "ci" and r["seed"] is not None and r["torch"] for r in ours)
    assert tables[0] == tables[1]
