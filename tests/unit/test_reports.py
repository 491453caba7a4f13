"""The report: the results table (ours + published, with provenance), CSV / JSON / HTML, failures named;
one progress line per notebook on the terminal, everything else in report.log."""
from __future__ import annotations

import base64
import csv
import json
import logging
import re
import sys
import warnings
from pathlib import Path

import nbformat
import pytest

import sbirlab.reports as reports
from sbirlab.reports import (NotebookFailed, NotebookResult, collect_runs, html_results_table, provenance_line,
                             run_report, table_rows, write_index)
from tests.fixtures import image_bytes

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
def test_a_failing_notebook_is_named_with_its_cell_and_what_finished_is_kept(tmp_path, capsys):
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
    assert "report.log" in msg
    data = json.loads((out / "results.json").read_text())
    assert [(n["name"], n["ok"]) for n in data["notebooks"]] == [("01_ok", True), ("02_bad", False)]
    assert (out / "index.html").exists() and (out / "01_ok.html").exists()
    assert data["meta"]["preset"] == "ci" and "torch" in data["meta"]["versions"]
    # the terminal: the failing notebook's line, its cell, where to read more; the traceback is in the log
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[2/3\] 02_bad \.{3,} FAILED  \d+\.\d s", lines[2]), lines
    assert re.fullmatch(r" +cell \[4\] raised ValueError: bad gallery folder", lines[3]), lines  # 4: papermill injects one
    assert lines[4].strip() == "> raise ValueError('bad gallery folder')"
    assert str(out / "report.log") in lines[5] and len(lines) == 6, lines
    logged = (out / "report.log").read_text()
    assert "Traceback" in logged and "bad gallery folder" in logged and "03_never" not in logged
    assert "bad gallery folder" in (out / "index.html").read_text()


PNG = base64.b64encode(image_bytes(".png")).decode()


@pytest.mark.slow
def test_the_terminal_gets_one_line_per_notebook_and_the_log_gets_the_warnings(tmp_path, capfd, monkeypatch):
    """Papermill's log records, nbconvert's warnings, Python warnings and the kernel's own stderr all
    land in report.log; stdout / stderr (at the file-descriptor level: the kernel is a child process)
    show the header and one line per notebook, even with a terminal log handler like the CLI's."""
    nbdir = tmp_path / "repo" / "notebooks"
    nbdir.mkdir(parents=True)
    record = ("import json, pathlib\n"
              "pathlib.Path(OUT_DIR, '{}.json').write_text(json.dumps({{'preset': PRESET, 'runs': []}}))")
    _nb(nbdir / "01_first.ipynb", ["import sys\nprint('cell stderr stays in the notebook', file=sys.stderr)",
                                   record.format("01_first")])
    nb = nbformat.v4.new_notebook()  # no parameters cell (papermill warns), an image without alt text (nbconvert warns)
    nb.cells = [nbformat.v4.new_code_cell(f"import base64\nfrom IPython.display import Image, display\n"
                                          f"display(Image(data=base64.b64decode('{PNG}')))"),
                nbformat.v4.new_code_cell(record.format("02_second_with_a_long_name"))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(nbdir / "02_second_with_a_long_name.ipynb"))
    export = reports.export_html

    def export_and_warn(path):
        warnings.warn("a python warning during the report", UserWarning)
        return export(path)
    monkeypatch.setattr(reports, "export_html", export_and_warn)
    terminal = logging.StreamHandler(sys.stderr)  # what `sbirlab`'s logging.basicConfig installs
    root = logging.getLogger()
    root.addHandler(terminal)
    showwarning = warnings.showwarning
    out = tmp_path / "reports"
    try:
        results = run_report("ci", out, root=tmp_path / "repo")
    finally:
        root.removeHandler(terminal)
    got = capfd.readouterr()
    assert [r.ok for r in results] == [True, True]
    lines = got.out.splitlines()
    assert len(lines) == 3, got.out
    assert lines[0].startswith("sbirlab report: 2 notebook(s), preset ci") and str(out / "report.log") in lines[0]
    assert re.fullmatch(r"\[1/2\] 01_first \.{3,} ok  \d+\.\d s", lines[1]), lines
    assert re.fullmatch(r"\[2/2\] 02_second_with_a_long_name \.{3,} ok  \d+\.\d s", lines[2]), lines
    assert lines[1].index(" ok ") == lines[2].index(" ok "), "the status column is aligned"
    assert got.err == "", got.err
    logged = (out / "report.log").read_text()
    for text in ("===== [1/2] 01_first.ipynb", "INFO papermill: Executing notebook with kernel",
                 "Input notebook does not contain a cell with tag 'parameters'",  # papermill's logger
                 "Alternative text is missing",  # nbconvert, through traitlets' logger
                 "UserWarning: a python warning during the report",  # warnings.warn in this process
                 "[IPKernelApp]"):  # the kernel process's own stderr (its start-up warning)
        assert text in logged, f"{text!r} not in report.log:\n{logged}"
    executed = nbformat.read(str(out / "01_first.ipynb"), as_version=4)
    assert "cell stderr stays in the notebook" in json.dumps(executed.cells[-2].outputs)
    # everything is put back: the terminal handler, the root level, warnings.showwarning
    assert warnings.showwarning is showwarning and terminal not in root.handlers


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


def test_best_values_are_marked_among_our_rows_per_setting_and_column():
    runs = collect_runs([nb_result("03_a", [
        run("frozen", "zs", **{"mAP@all": 0.40, "mAP@200": 0.45}),
        run("b-lin", "zs", **{"mAP@all": 0.61, "mAP@200": 0.44}),
        run("clip-at", "zs", **{"mAP@all": 0.61, "mAP@200": 0.50}),  # ties on mAP@all with B-Lin: both marked
        run("clip-at", "gzs", **{"mAP@all": 0.30}),  # a column with one value: nothing to compare
        run("b-lin", "fg", **{"Acc@1": 0.05}), run("clip-at", "fg", **{"Acc@1": 0.07})])])
    page = html_results_table(table_rows(runs))
    main = page.partition("<h3>Ablations</h3>")[0]
    best = re.findall(r'<td class="([^"]*\bbest\b[^"]*)"[^>]*><strong>([^<]+)</strong></td>', main)
    assert sorted(v for _, v in best) == ["0.500", "0.610", "0.610", "7.00"], best
    assert not any("pub" in c for c, _ in best)  # published numbers (0.723, 28.68, ...) are never marked
    assert "0.723" in main and "28.68" in main and "0.300" in main
    assert main.count("<strong>") == 4 and "best of our methods" in main
    assert '<div class="table-wrap">' in main and "<thead>" in main


def test_the_convention_is_stated_once_and_provenance_is_one_line():
    zs_conv = "mAP@200 = AP over the top 200 normalised by relevant items in the top 200 (docs/methods.md §1.3)"
    gzs_conv = zs_conv + "; GZS: unseen test set + 20% seen-class sketches / photos"
    runs = collect_runs([nb_result("03_a", [
        run("clip-at", "zs", metric_convention=zs_conv, **{"mAP@all": 0.6, "mAP@200": 0.61}),
        run("clip-at", "gzs", metric_convention=gzs_conv, split="synthetic_gzs", **{"mAP@all": 0.5}),
        run("clip-at", "fg", metric_convention="Acc@k within the query's category (docs/methods.md §1.5)",
            **{"Acc@1": 0.05})])])
    rows = table_rows(runs)
    page = html_results_table(rows)
    assert page.count("mAP@200 = AP") == 1 and "GZS: unseen test set" in page and "Acc@k within" in page
    meta = {"preset": "cpu", "seconds": 12.3, "generated": "2026-01-02 03:04:05",
            "versions": {"sbirlab": "0.1.0", "torch": "2.14.1", "open_clip": "3.3.0", "python": "3.11.7"}}
    line = re.sub(r"<[^>]+>", "", provenance_line(meta, rows))
    assert line == ("sbirlab 0.1.0 · torch 2.14.1 (runs: 2.x) · open_clip 3.3.0 · Python 3.11.7 · preset cpu · "
                    "dataset synthetic · backbone tiny-synthetic · seed 0 · generated 2026-01-02 03:04 in 12 s")
    one_split = re.sub(r"<[^>]+>", "", provenance_line({**meta, "seconds": 1234.5}, [r for r in rows if r["setting"] == "zs"]))
    assert "· split synthetic_zs ·" in one_split and one_split.endswith("generated 2026-01-02 03:04 in 21 min")


def test_figures_get_a_caption_naming_the_notebook_and_the_section(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · The CLIP baselines\n\nIntro."),
                nbformat.v4.new_markdown_cell("## 3. The table, laid out like **Table 1**"),
                nbformat.v4.new_code_cell('fig.savefig(OUT / f"{NOTEBOOK}_table1_bars.png")')]
    nbformat.write(nb, str(tmp_path / "03_a.ipynb"))
    for name in ("03_a_table1_bars.png", "03_a_other.png", "04_b_x.png"):
        (tmp_path / name).write_bytes(b"\x89PNG fake")
    results = [NotebookResult("03_a", 1.0, True, str(tmp_path / "03_a.ipynb"), {}),
               NotebookResult("04_b", 1.0, True, str(tmp_path / "04_b.ipynb"), {})]  # not executed: no notebook
    write_index(results, tmp_path, {"preset": "cpu", "versions": VERSIONS, "seconds": 1.0, "generated": "now"})
    page = (tmp_path / "index.html").read_text()
    figs = re.findall(r"<figure>.*?</figure>", page)
    assert len(figs) == 3 and all("<figcaption>" in f and 'alt="' in f for f in figs)
    caps = [re.sub(r"<[^>]+>", "", re.search(r"<figcaption>(.*?)</figcaption>", f).group(1)) for f in figs]
    assert caps == ["03_a · 03 · The CLIP baselines (other)",  # no section names it: the notebook's title
                    "03_a · 3. The table, laid out like Table 1 (table1 bars)", "04_b · x"]
    assert 'name="viewport"' in page and "max-width" in page and "{&quot;" not in page


def test_seed_table_shows_mean_and_std_and_marks_the_best_mean():
    from sbirlab.reports import html_seed_table

    def e(mean, std):
        return {"mean": mean, "std": std, "n": 3, "values": [mean] * 3}

    summary = {"preset": "cpu", "seeds": [0, 1, 2], "runs": {
        "frozen-zs": {"mAP@all": e(0.362, 0.0), "doodles/class_accuracy": e(0.432, 0.0)},
        "clip-at-zs": {"mAP@all": e(0.4544, 0.0026), "doodles/class_accuracy": e(0.249, 0.007)},
        "clip-at-zs_tune_ln=False": {"mAP@all": e(0.9, 0.0)},  # an ablation: not a row
        "clip-at-fg": {"Acc@1": e(0.0152, 0.0014)}}}
    out = html_seed_table(summary)
    assert "seeds 0, 1, 2" in out and "0.454 ± 0.003" in out and "1.5 ± 0.1" in out  # FG in percent
    assert "<strong>0.454 ± 0.003</strong>" in out and "<strong>43.2 ± 0.0</strong>" in out
    assert "0.900" not in out and out.count("<tr><th scope=\"row\">") == 2
    assert html_seed_table({"runs": {}}) == ""


def test_shipped_seed_table_only_for_the_presets_that_use_the_shipped_runs():
    from sbirlab.reports import shipped_seed_table

    assert shipped_seed_table("ci") == ""
    assert "mean ± std" in shipped_seed_table("default")  # data/runs/table_seeds.json is shipped
