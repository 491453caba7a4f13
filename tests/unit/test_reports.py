"""The report: the results table (ours + published, with provenance), CSV / JSON / HTML, failures named."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest

from sbirlab.reports import (NotebookFailed, NotebookResult, collect_runs, html_results_table, run_report,
                             table_rows, write_index)

VERSIONS = {"sbirlab": "0.1.0", "torch": "2.x", "open_clip": "3.3.0"}


def run(method, setting, **m):
    base = {"method": method, "setting": setting, "dataset": "synthetic", "split": "synthetic_zs",
            "backbone": "tiny-synthetic", "preset": "cpu", "seed": 0, "metric_convention": "conv",
            "versions": VERSIONS, "n_queries": 10, "wall_time_s": 3.0}
    return {**base, **m}


def nb_result(name, runs):
    return NotebookResult(name, 1.0, True, f"/x/{name}.ipynb", {"preset": "cpu", "runs": runs})


def test_rows_carry_value_provenance_versions_and_published_numbers():
    results = [nb_result("03_a", [run("clip-at", "zs", **{"mAP@all": 0.6, "mAP@200": 0.61, "P@100": 0.4,
                                                         "P@200": 0.2}),
                                  run("clip-at", "fg", **{"Acc@1": 0.05, "Acc@5": 0.2, "Acc@10": 0.3})]),
               nb_result("07_b", [run("clip-at", "zs", **{"mAP@all": 0.9}),  # duplicate: first wins
                                  run("splip", "gzs", **{"mAP@all": 0.5, "seen/mAP@all": 0.7, "unseen/mAP@all": 0.4,
                                                         "n_queries": 5})])]
    runs = collect_runs(results)
    assert [(r["method"], r["setting"], r["notebook"]) for r in runs] == [
        ("clip-at", "zs", "03_a"), ("clip-at", "fg", "03_a"), ("splip", "gzs", "07_b")]
    rows = table_rows(runs)
    ours = [r for r in rows if r["source"] == "sbirlab (measured)"]
    assert {r["metric"] for r in ours if r["setting"] == "zs"} == {"mAP@all", "mAP@200", "P@100", "P@200"}
    assert {r["metric"] for r in ours if r["setting"] == "gzs"} == {"mAP@all", "seen/mAP@all", "unseen/mAP@all"}
    assert not any(r["metric"] in ("n_queries", "wall_time_s", "seed") for r in ours)
    for r in ours:
        assert r["dataset"] == "synthetic" and r["split"] == "synthetic_zs" and r["seed"] == 0
        assert r["preset"] == "cpu" and r["metric_convention"] == "conv" and r["torch"] == "2.x"
    zs = next(r for r in ours if r["setting"] == "zs" and r["metric"] == "mAP@all")
    assert zs["value"] == 0.6
    pub = [r for r in rows if r["source"].startswith("published")]
    assert {(r["method"], r["setting"], r["metric"], r["value"]) for r in pub} >= {
        ("clip-at", "zs", "mAP@200", 0.723), ("clip-at", "fg", "Acc@1", 28.68)}
    assert not any(r["method"] == "splip" for r in pub)  # SpLIP's published numbers are ZS, we ran GZS only
    page = html_results_table(rows)
    assert "published" in page and "60.00" not in page and "5.00" in page  # FG shown in percent
    assert "0.600" in page and "UNSEEN/MAPALL" not in page


def test_write_index_writes_json_csv_and_html(tmp_path):
    results = [nb_result("03_a", [run("b-lin", "zs", **{"mAP@all": 0.61, "P@100": 0.39})])]
    (tmp_path / "03_a_bars.png").write_bytes(b"\x89PNG fake")
    write_index(results, tmp_path, {"preset": "cpu", "versions": VERSIONS, "seconds": 1.0, "generated": "now"})
    data = json.loads((tmp_path / "results.json").read_text())
    assert {r["metric"] for r in data["table"] if r["source"].startswith("sbirlab")} == {"mAP@all", "P@100"}
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert {"method", "setting", "metric", "value", "source", "dataset", "split", "preset", "seed",
            "metric_convention", "sbirlab", "torch", "open_clip"} <= set(rows[0])
    assert any(r["method"] == "b-lin" and r["metric"] == "mAP@200" and r["value"] == "0.422" for r in rows)
    page = (tmp_path / "index.html").read_text()
    assert "03_a_bars.png" in page and "results.csv" in page and "B-Lin" in page


def test_an_ablation_variant_never_replaces_the_main_row():
    results = [nb_result("06_a", [run("dp-clip", "zs", **{"mAP@all": 0.766, "mAP@200": 0.774}),
                                  run("dp-clip", "zs", variant="patch_matching=False", **{"mAP@all": 0.771}),
                                  run("dp-clip", "fg", variant="text_scaling=none", **{"Acc@1": 0.0623})])]
    page = html_results_table(table_rows(collect_runs(results)))
    main, _, abl = page.partition("<h3>Ablations</h3>")
    assert "0.766" in main and "0.771" not in main and "6.23" not in main
    assert "DP-CLIP" in main and "<th>dp-clip</th>" not in main
    assert "patch_matching=False" in abl and "0.771" in abl and "6.23" in abl and "full" in abl
    assert "0.766" in abl  # the full model heads its ablation rows


def _nb(path: Path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("PRESET = 'x'\nOUT_DIR = ''", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_a_failing_notebook_is_named_with_its_cell_and_what_finished_is_kept(tmp_path):
    nbdir = tmp_path / "repo" / "notebooks"
    nbdir.mkdir(parents=True)
    record = ("import json, pathlib\n"
              "pathlib.Path(OUT_DIR, '{}.json').write_text(json.dumps({{'preset': PRESET, 'runs': []}}))")
    _nb(nbdir / "01_ok.ipynb", ["x = 1", record.format("01_ok")])
    _nb(nbdir / "02_bad.ipynb", ["y = 2", "raise ValueError('bad gallery folder')", record.format("02_bad")])
    _nb(nbdir / "03_never.ipynb", [record.format("03_never")])
    out = tmp_path / "reports"
    with pytest.raises(NotebookFailed) as e:
        run_report("ci", out, root=tmp_path / "repo")
    msg = str(e.value)
    assert "02_bad.ipynb" in msg and "ValueError" in msg and "bad gallery folder" in msg and "cell" in msg
    data = json.loads((out / "results.json").read_text())
    assert [(n["name"], n["ok"]) for n in data["notebooks"]] == [("01_ok", True), ("02_bad", False)]
    assert (out / "index.html").exists() and (out / "01_ok.html").exists()
    assert data["meta"]["preset"] == "ci" and "torch" in data["meta"]["versions"]


def test_zs_runs_with_real_doodle_metrics_get_a_real_doodles_column():
    runs = collect_runs([nb_result("03_a", [
        run("clip-at", "zs", **{"mAP@all": 0.6, "doodles/mAP@all": 0.31, "doodles/class_accuracy": 0.108,
                                "doodles/n": 491}),
        run("frozen", "zs", **{"mAP@all": 0.5})])])
    rows = table_rows(runs)
    got = {r["metric"]: r["value"] for r in rows if r["method"] == "clip-at" and r["source"].startswith("sbirlab")}
    assert got == {"mAP@all": 0.6, "doodles/mAP@all": 0.31, "doodles/class_accuracy": 0.108}
    page = html_results_table(rows)
    assert "ZS real doodles mAP@all" in page and "ZS real doodles class acc." in page
    assert "0.310" in page and "0.108" in page and "Quick, Draw!" in page
