"""Results tables (sbirlab.tables) and the notebook training-curve helpers (sbirlab.viz.training)."""
from __future__ import annotations

import json
import math

import pytest

pd = pytest.importorskip("pandas")

from sbirlab.models.registry import TABLE1  # noqa: E402
from sbirlab.tables import (  # noqa: E402
    PUBLISHED, PUBLISHED_SOURCE, ablation_table, collect_results, paper_ordering_checks, table1, to_markdown,
)

PUB_ZS = {m: {"method": m, "setting": "zs", "mAP@all": v["mAP@200"] + 0.01, "mAP@200": v["mAP@200"],
              "P@100": 0.5, "P@200": 0.4} for m, v in PUBLISHED.items()}
PUB_FG = {m: {"method": m, "setting": "fg", "Acc@1": v["Acc@1"] / 100, "Acc@5": 0.6, "Acc@10": 0.8}
          for m, v in PUBLISHED.items()}


def _runs():
    return [*PUB_ZS.values(), *PUB_FG.values()]


# -- collect_results ------------------------------------------------------------------------------
def test_collect_results_accepts_three_forms():
    flat = collect_results(_runs())
    assert set(flat) == set(PUBLISHED) and flat["b-ip"]["zs"]["mAP@200"] == 0.691
    keyed = collect_results({(m["method"], m["setting"]): m for m in _runs()})
    nested = collect_results({m: {"zs": PUB_ZS[m], "fg": PUB_FG[m]} for m in PUBLISHED})
    assert flat == keyed == nested


def test_collect_results_reads_loaded_runs_and_rejects_bad_entries():
    class Run:  # a LoadedRun stand-in
        metrics = PUB_ZS["clip-at"]

    assert collect_results([Run()])["clip-at"]["zs"]["mAP@200"] == 0.723
    with pytest.raises(ValueError, match="method"):
        collect_results([{"mAP@200": 0.1}])
    with pytest.raises(ValueError, match="setting"):
        collect_results({("b-ft", "gfs"): {}})
    gzs = collect_results({("splip", "gzs"): {"mAP@all": 0.5}, ("splip", "zs"): {"mAP@all": 0.6}})
    assert gzs["splip"] == {"gzs": {"mAP@all": 0.5}, "zs": {"mAP@all": 0.6}}


# -- table1 ---------------------------------------------------------------------------------------
def test_table1_layout_follows_clip_at_table1():
    df = table1(_runs())
    assert list(df.index) == ["B-FT", "B-Lin", "B-Cond", "B-IP", "B-MM", "B-Deep", "CLIP-AT"]
    assert len(df) == len(TABLE1)
    ours = ["ZS mAP@all", "ZS mAP@200", "ZS P@100", "ZS P@200", "FG Acc@1 (%)", "FG Acc@5 (%)"]
    assert list(df.columns[:6]) == ours
    pub = [c for c in df.columns if PUBLISHED_SOURCE in c]
    assert len(pub) == 2 and all(c not in ours for c in pub)
    # ours: FG fractions shown in percent; published: as printed in the paper
    assert df.loc["CLIP-AT", "FG Acc@1 (%)"] == pytest.approx(28.68)
    assert df.loc["CLIP-AT", f"mAP@200 — {PUBLISHED_SOURCE}"] == 0.723
    assert df.loc["B-FT", f"Acc@1 (%) — {PUBLISHED_SOURCE}"] == 1.23


def test_table1_missing_methods_are_nan_and_reference_row_first():
    runs = [PUB_ZS["clip-at"], {"method": "frozen", "setting": "zs", "mAP@all": 0.3, "mAP@200": 0.31,
                                 "P@100": 0.2, "P@200": 0.1}]
    df = table1(runs)
    assert df.index[0] == "Zero-shot CLIP (frozen)"
    assert math.isnan(df.loc["B-FT", "ZS mAP@200"]) and math.isnan(df.loc["CLIP-AT", "FG Acc@1 (%)"])
    assert math.isnan(df.loc["Zero-shot CLIP (frozen)", f"mAP@200 — {PUBLISHED_SOURCE}"])
    assert "Zero-shot CLIP (frozen)" not in table1(runs, reference=False).index
    assert not any(PUBLISHED_SOURCE in c for c in table1(runs, published=False).columns)


def test_table1_fractions_option_and_markdown():
    df = table1(_runs(), fg_percent=False)
    assert df.loc["CLIP-AT", "FG Acc@1"] == pytest.approx(0.2868)
    assert df.loc["CLIP-AT", f"Acc@1 — {PUBLISHED_SOURCE}"] == pytest.approx(0.2868)
    md = table1(_runs(), markdown=True, digits=2)
    lines = md.splitlines()
    assert lines[0].startswith("| method | ZS mAP@all")
    assert len(lines) == 2 + len(TABLE1)
    assert "| CLIP-AT | 0.73 | 0.72 |" in md
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_to_markdown_nan_and_pipes():
    df = pd.DataFrame({"a|b": [1.23456, float("nan")], "c": ["x|y", "z"]}, index=pd.Index(["r1", "r2"], name="n"))
    md = to_markdown(df, digits=1)
    assert "| n | a\\|b | c |" in md and "| r1 | 1.2 | x\\|y |" in md and "| r2 | – | z |" in md


# -- ablation_table -------------------------------------------------------------------------------
def test_ablation_table_zs_and_fg():
    zs = ablation_table({"full": PUB_ZS["clip-at"], "tune_ln=False": {"mAP@200": 0.5}}, "zs")
    assert list(zs.index) == ["full", "tune_ln=False"]
    assert zs.loc["tune_ln=False", f"mAP@200 — {PUBLISHED_SOURCE}"] == 0.698
    assert math.isnan(zs.loc["tune_ln=False", "mAP@all"])
    fg = ablation_table({"full": PUB_FG["clip-at"], "lambda_ps=0": {"Acc@1": 0.1, "Acc@5": 0.2, "Acc@10": 0.3}}, "fg")
    assert fg.loc["lambda_ps=0", "Acc@1 (%)"] == pytest.approx(10.0)
    assert fg.loc["lambda_ps=0", f"Acc@1 (%) — {PUBLISHED_SOURCE}"] == 25.18
    assert math.isnan(fg.loc["lambda_ps=0", f"Acc@5 (%) — {PUBLISHED_SOURCE}"])
    with pytest.raises(ValueError):
        ablation_table({}, "gzs")


# -- ordering -------------------------------------------------------------------------------------
def test_published_numbers_follow_the_papers_ordering():
    for setting, metric in (("zs", "mAP@200"), ("fg", "Acc@1")):
        checks = paper_ordering_checks(_runs(), metric, setting)
        assert len(checks) == 5
        assert all(c["holds"] is True for c in checks), checks


def test_ordering_detects_violations_and_missing():
    runs = [dict(m) for m in PUB_ZS.values()]
    for m in runs:
        if m["method"] == "b-ft":
            m["mAP@200"] = 0.9  # full fine-tuning does not collapse
    checks = {c["claim"]: c["holds"] for c in paper_ordering_checks(runs)}
    assert checks["B-Lin > B-FT"] is False
    assert checks["CLIP-AT > B-Deep / B-IP / B-MM"] is True
    partial = paper_ordering_checks([PUB_ZS["clip-at"]])
    assert all(c["holds"] is None for c in partial)
    tight = paper_ordering_checks(_runs(), tolerance=0.001)
    assert [c["holds"] for c in tight][-1] is False  # 0.017 spread is not "about equal" at 0.001


# -- viz.training ---------------------------------------------------------------------------------
def test_live_curves_quiet_records_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    from sbirlab.viz.training import LiveCurves, plot_history, plot_method_bars, plot_rank_histogram

    cb = LiveCurves(every=2, mode="quiet", smooth=0.5)
    assert not cb.live
    for s in range(1, 6):
        logs = {"loss": 1.0 / s, "triplet": 0.5 / s, "epoch": 0}
        if s > 2:
            logs["cls"] = 0.1
        cb(s, logs)
    cb.on_epoch(1, {"epoch": 1, "step": 5, "val/mAP@all": 0.4})
    h = cb.history()
    assert h["step"] == [1, 2, 3, 4, 5] and "epoch" not in h
    assert math.isnan(h["cls"][0]) and h["cls"][-1] == 0.1 and len(h["cls"]) == 5
    fig = cb.plot()
    assert fig.axes[0].get_xlabel() == "step" and len(fig.axes) == 2  # twin axis for the val metric
    json.dumps(h)
    with pytest.raises(ValueError):
        LiveCurves(mode="loud")

    (tmp_path / "history.json").write_text(json.dumps([{"epoch": 1, "train/loss": 1.0, "val/Acc@1": 0.2},
                                                       {"epoch": 2, "train/loss": 0.5, "val/Acc@1": 0.3}]))
    assert len(plot_history(tmp_path).axes) == 2
    assert plot_history(tmp_path / "missing").axes[0].texts  # "no history recorded"
    df = table1(_runs())
    fig = plot_method_bars(df, ["ZS mAP@all", "ZS mAP@200"], published=f"mAP@200 — {PUBLISHED_SOURCE}")
    assert len(fig.axes[0].patches) == 2 * len(df)
    fig = plot_rank_histogram({"within": [1, 1, 2], "pooled": [1, 3, 9]}, max_rank=5)
    assert fig.axes[0].get_xlabel().startswith("rank")


def test_live_curves_auto_is_quiet_outside_a_kernel(monkeypatch):
    from sbirlab.viz.training import LiveCurves, in_notebook

    assert in_notebook() is False
    assert LiveCurves().live is False
    monkeypatch.setenv("SBIRLAB_QUIET_PLOTS", "1")
    assert in_notebook() is False


def test_run_dir_for_matches_load_or_train(tmp_path):
    from sbirlab.experiment import RunConfig, run_name
    from sbirlab.viz.training import run_dir_for

    cfg = RunConfig(method="clip-at", setting="zs", method_cfg={"tune_ln": False})
    assert run_dir_for(cfg, "ci", tmp_path) == tmp_path / "ci" / run_name(cfg)
    assert run_dir_for(cfg, "ci", tmp_path).name == "clip-at-zs_tune_ln=False"
    d = run_dir_for(cfg, "default", tmp_path)  # shipped run if present, else trained in cpu
    assert d.name == "clip-at-zs_tune_ln=False" and d.parent.name in ("runs", "cpu")


def test_seed_summary_gives_mean_and_sample_std_and_separated_marks_ties():
    from sbirlab.tables import seed_summary, separated

    seeds = [{"clip-at-zs": {"mAP@all": 0.50, "seed": 0, "method": "clip-at"}, "b-ft-zs": {"mAP@all": 0.30}},
             {"clip-at-zs": {"mAP@all": 0.52, "seed": 1}, "b-ft-zs": {"mAP@all": 0.31}},
             {"clip-at-zs": {"mAP@all": 0.54, "seed": 2}}]  # b-ft missing from seed 2
    s = seed_summary(seeds)
    a = s["clip-at-zs"]["mAP@all"]
    assert a["n"] == 3 and a["mean"] == pytest.approx(0.52) and a["std"] == pytest.approx(0.02)
    assert a["values"] == [0.50, 0.52, 0.54] and "seed" not in s["clip-at-zs"] and "method" not in s["clip-at-zs"]
    b = s["b-ft-zs"]["mAP@all"]
    assert b["n"] == 2 and b["mean"] == pytest.approx(0.305)
    assert separated(a, b) == ">" and separated(b, a) == "<"
    close = {"mean": 0.51, "std": 0.01, "n": 3}
    assert separated(a, close) == "tie"  # 0.01 apart, 2 std = 0.04
    assert seed_summary([{"x": {"m": 1.0}}])["x"]["m"]["std"] == 0.0
