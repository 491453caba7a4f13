"""The main job: execute every notebook with papermill into ``reports/`` and collect their numbers.

``sbirlab report [--preset default|ci|cpu|paper] [--only 01,03] [--dataset ...] [--backbone ...]`` runs
``notebooks/NN_*.ipynb`` in order, each in a fresh kernel, with parameters ``PRESET``, ``OUT_DIR`` (and
``DATASET`` / ``BACKBONE`` when given). Each notebook's last cell records its key numbers to
``OUT_DIR/<notebook>.json``; this module gathers them into ``reports/results.json``, exports every
executed notebook to HTML and writes ``reports/index.html``. When a notebook fails, the run stops with
a message naming the notebook and the failing cell, and what finished is still written.
"""
from __future__ import annotations

import html
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .tables import DISPLAY_NAMES, SETTINGS

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

#: the metrics of the results table, by setting (METHODS.md section 1)
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "zs": ("mAP@all", "mAP@200", "P@100", "P@200"),
    "gzs": ("mAP@all", "mAP@200", "P@100", "P@200"),
    "fg": ("Acc@1", "Acc@5", "Acc@10"),
}
#: what every number of the report names besides its value
PROVENANCE: tuple[str, ...] = ("dataset", "split", "backbone", "preset", "seed", "metric_convention")
#: the seed papers' published numbers (METHODS.md sections 3-6), by (method, setting): (source, {metric: value}).
#: Fractions for mAP / P, percent for Acc@k, as the papers print them. Another dataset and backbone than
#: the synthetic world's: the shape to expect, never a target.
PUBLISHED_NUMBERS: dict[tuple[str, str], tuple[str, dict[str, float]]] = {
    **{(m, "zs"): ("CLIP-AT Table 1 (Sketchy, ViT-B/32)", {"mAP@200": v}) for m, v in
       {"b-ft": 0.102, "b-lin": 0.422, "b-cond": 0.618, "b-ip": 0.691, "b-mm": 0.685, "b-deep": 0.702,
        "clip-at": 0.723}.items()},
    **{(m, "fg"): ("CLIP-AT Table 1 (Sketchy, ViT-B/32)", {"Acc@1": v}) for m, v in
       {"b-ft": 1.23, "b-lin": 15.75, "b-cond": 25.98, "b-ip": 26.69, "b-mm": 27.16, "b-deep": 27.62}.items()},
    ("clip-at", "fg"): ("CLIP-AT Table 1 (Sketchy, ViT-B/32)", {"Acc@1": 28.68, "Acc@5": 62.34}),
    ("dp-clip", "fg"): ("DP-CLIP supplement, rank 16 (Sketchy FG, ViT-B/32)", {"Acc@1": 34.03, "Acc@5": 62.34,
                                                                               "Acc@10": 74.50}),
    ("splip", "zs"): ("SpLIP (Sketchy-2, ViT-B/32)", {"mAP@200": 0.764, "P@200": 0.773}),
}
#: row order of the table (methods not listed follow in the order met)
METHOD_ORDER: tuple[str, ...] = ("frozen", "b-ft", "b-lin", "b-cond", "b-ip", "b-mm", "b-deep", "clip-at",
                                 "dp-clip", "splip")


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook and the failing cell."""


@dataclass
class NotebookResult:
    name: str
    seconds: float
    ok: bool
    output: str
    numbers: dict
    error: str = ""


def notebooks(root: Path | None = None, only: str | None = None) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``), optionally filtered by ``only`` ("01,03" or name parts)."""
    nbdir = (root or REPO) / "notebooks"
    found = sorted(p for p in nbdir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        keys = [k.strip() for k in only.split(",") if k.strip()]
        found = [p for p in found if any(p.name.startswith(k) or k in p.stem for k in keys)]
        if not found:
            raise ValueError(f"--only {only!r} matches no notebook in {nbdir}")
    return found


def _failing_cell(exc) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return f"cell [{cell}] raised {ename}: {evalue}"


def run_notebook(path: Path, out_dir: Path, params: dict, kernel: str = "python3", progress: bool = False) -> NotebookResult:
    """Execute one notebook with papermill into ``out_dir``; never raises (the result says what failed)."""
    import papermill as pm

    out_nb = out_dir / path.name
    t0 = time.time()
    err = ""
    try:
        pm.execute_notebook(str(path), str(out_nb), parameters=params, kernel_name=kernel, cwd=str(path.parent),
                            progress_bar=progress, log_output=False)
        ok = True
    except Exception as e:  # papermill's PapermillExecutionError carries the cell
        ok, err = False, _failing_cell(e)
    rec = out_dir / f"{path.stem}.json"
    numbers = json.loads(rec.read_text()) if rec.exists() else {}
    return NotebookResult(path.stem, round(time.time() - t0, 1), ok, str(out_nb), numbers, err)


def export_html(nb_path: Path) -> Path | None:
    """Executed notebook -> HTML next to it (None if nbconvert fails)."""
    try:
        import nbformat
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(nb_path), as_version=4))
        out = nb_path.with_suffix(".html")
        out.write_text(body, encoding="utf-8")
        return out
    except Exception as e:  # pragma: no cover - cosmetic
        log.warning("could not export %s to HTML: %s", nb_path, e)
        return None


def collect_runs(results: list[NotebookResult]) -> list[dict]:
    """Every run a notebook recorded under ``"runs"`` (its ``metrics.json``), first seen wins per
    (method, setting, variant); each gets ``"notebook"`` (who recorded it)."""
    seen, runs = set(), []
    for r in results:
        for run in r.numbers.get("runs", []) or []:
            if not isinstance(run, dict) or "method" not in run or "setting" not in run:
                continue
            key = (run["method"], run["setting"], run.get("variant", ""))
            if key in seen:
                continue
            seen.add(key)
            runs.append({**run, "notebook": r.name})
    return runs


def table_rows(runs: list[dict]) -> list[dict]:
    """The long results table: one row per (method, setting, metric), ours then the published numbers.

    Our rows carry value, the run's provenance (:data:`PROVENANCE`) and the versions of sbirlab, torch
    and open_clip; GZS runs add their per-part metrics (keys such as ``seen/mAP@all``). Published rows
    say where the number comes from in ``source``.
    """
    rows = []
    for run in runs:
        setting = run["setting"]
        wanted = TABLE_METRICS.get(setting, ())
        keys = [k for k in run if isinstance(run[k], (int, float)) and not isinstance(run[k], bool)
                and (k in wanted or any(k.endswith("/" + w) for w in wanted)
                     or k in EXTRA_METRICS.get(setting, ()))]
        v = run.get("versions", {}) or {}
        for k in keys:
            rows.append({"method": run["method"], "setting": setting, "variant": run.get("variant", ""),
                         "metric": k, "value": float(run[k]), "source": "sbirlab (measured)",
                         **{p: run.get(p) for p in PROVENANCE},
                         "sbirlab": v.get("sbirlab"), "torch": v.get("torch"), "open_clip": v.get("open_clip"),
                         "notebook": run.get("notebook")})
    present = {(r["method"], r["setting"]) for r in rows}
    for (m, setting), (src, vals) in PUBLISHED_NUMBERS.items():
        if (m, setting) not in present:
            continue
        for k, val in vals.items():
            rows.append({"method": m, "setting": setting, "variant": "", "metric": k, "value": val,
                         "source": f"published: {src}", **{p: None for p in PROVENANCE},
                         "sbirlab": None, "torch": None, "open_clip": None, "notebook": None})
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    import csv

    cols = ["method", "setting", "variant", "metric", "value", "source", *PROVENANCE, "sbirlab", "torch",
            "open_clip", "notebook"]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in cols})
    os.replace(tmp, path)
    return path


def _order(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in methods]
    return known + [m for m in methods if m not in known]


#: the per-part GZS metrics shown in the HTML table (every other one is in results.csv / .json)
HTML_GZS_PARTS: tuple[str, ...] = ("seen/mAP@all", "unseen/mAP@all")
#: the "real doodles" columns of ZS runs: held-out Quick, Draw! doodles as queries of the run's unseen test
#: gallery (:func:`sbirlab.experiment.evaluate_doodles`) and their zero-shot class accuracy (all classes)
HTML_DOODLE_PARTS: tuple[str, ...] = ("doodles/mAP@all", "doodles/class_accuracy")
#: extra per-part metrics a setting's rows keep besides those ending in one of its TABLE_METRICS
EXTRA_METRICS: dict[str, tuple[str, ...]] = {"zs": ("doodles/class_accuracy",)}
#: column titles of per-part metrics
PART_TITLES: dict[str, str] = {"doodles/mAP@all": "real doodles mAP@all",
                               "doodles/class_accuracy": "real doodles class acc."}
#: metrics of the ablation table, by setting
ABLATION_METRICS: dict[str, tuple[str, ...]] = {"zs": ("mAP@all", "mAP@200"), "gzs": ("mAP@all",),
                                                "fg": ("Acc@1", "Acc@5")}


def _fmt(metric: str, value: float, ours: bool) -> str:
    acc = metric.startswith("Acc@")
    return f"{value * 100 if (acc and ours) else value:.{2 if acc else 3}f}"


def _display(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def html_results_table(rows: list[dict]) -> str:
    """Methods x (setting, metric), ours and, in separate columns, the published numbers; then the
    ablation variants in a table of their own (a variant never replaces its method's main row)."""
    if not rows:
        return "<p>No notebook recorded trained runs.</p>"
    measured = [r for r in rows if r["source"].startswith("sbirlab")]
    ours = {(r["method"], r["setting"], r["metric"]): r for r in measured if not r.get("variant")}
    pub = {(r["method"], r["setting"], r["metric"]): r for r in rows if r["source"].startswith("published")}
    methods = _order(list(dict.fromkeys(k[0] for k in [*ours, *pub])))
    cols = []
    for setting in SETTINGS:
        ms = [m for m in TABLE_METRICS[setting] if any(k[1] == setting and k[2] == m for k in ours)]
        parts = [p for p in (*HTML_GZS_PARTS, *HTML_DOODLE_PARTS) if any(k[1] == setting and k[2] == p for k in ours)]
        cols += [(setting, m, "ours") for m in ms + parts]
    known = TABLE_METRICS
    pcols = sorted({(k[1], k[2]) for k in pub},
                   key=lambda c: (SETTINGS.index(c[0]),
                                  known[c[0]].index(c[1]) if c[1] in known[c[0]] else 99, c[1]))
    cols += [(s_, m, "published") for s_, m in pcols]

    def cell(m, c):
        d = (ours if c[2] == "ours" else pub).get((m, c[0], c[1]))
        if d is None:
            return "<td></td>"
        title = html.escape(", ".join(f"{p}={d.get(p)}" for p in PROVENANCE) if c[2] == "ours" else d["source"])
        return f'<td title="{title}">{_fmt(c[1], d["value"], c[2] == "ours")}</td>'

    head = "".join(f"<th>{html.escape(s_.upper())} {html.escape(PART_TITLES.get(m, m))}{' (%)' if m.startswith('Acc@') else ''}"
                   f"{'<br><i>published</i>' if kind == 'published' else ''}</th>" for s_, m, kind in cols)
    body = "".join(f"<tr><th>{html.escape(_display(m))}</th>{''.join(cell(m, c) for c in cols)}</tr>"
                   for m in methods)
    first = next(iter(ours.values()), next(iter(measured), {}))
    prov = ", ".join(f"{p} <code>{html.escape(str(first.get(p)))}</code>" for p in PROVENANCE if p != "metric_convention")
    convs = sorted({str(r.get("metric_convention")) for r in measured if r.get("metric_convention")})
    srcs = sorted({r["source"] for r in pub.values()})
    out = (f"<table class='res'><tr><th>method</th>{head}</tr>{body}</table>"
           f"<p class='small'>Ours: {prov}; versions sbirlab {html.escape(str(first.get('sbirlab')))}, torch "
           f"{html.escape(str(first.get('torch')))}, open_clip {html.escape(str(first.get('open_clip')))} "
           f"(hover a cell for its provenance). Metric conventions: {html.escape('; '.join(convs))}. "
           f"FG Acc@k in percent. Published columns ({html.escape('; '.join(srcs))}) come from other datasets "
           f"and a far larger CLIP: they show the shape to expect, not targets. GZS per-part metrics other "
           f"than mAP@all are in results.csv. Real doodles: held-out Quick, Draw! doodles (Google, CC BY 4.0; "
           f"never trained on) as queries of the run's unseen test gallery, and their zero-shot class "
           f"accuracy over all classes (<code>sbirlab eval --run RUN --doodles DIR</code>).</p>")
    return out + _html_ablations(measured)


def _html_ablations(measured: list[dict]) -> str:
    """One row per (method, setting, variant), the full model first: the ablations the notebooks ran."""
    by = {}
    for r in measured:
        by.setdefault((r["method"], r["setting"], r.get("variant") or ""), {})[r["metric"]] = r
    keys = [k for k in by if k[2]]
    if not keys:
        return ""
    groups = _order(list(dict.fromkeys(k[0] for k in keys)))
    lines = []
    for m in groups:
        for setting in SETTINGS:
            variants = [k[2] for k in keys if k[0] == m and k[1] == setting]
            if not variants:
                continue
            metrics = ABLATION_METRICS.get(setting, ())
            names = ", ".join(f"{k}{' (%)' if k.startswith('Acc@') else ''}" for k in metrics)
            for v in ["", *variants]:
                got = by.get((m, setting, v), {})
                cells = "".join(f"<td>{_fmt(k, got[k]['value'], True) if k in got else ''}</td>" for k in metrics)
                lines.append(f"<tr><th>{html.escape(_display(m))}</th><td>{setting.upper()}</td>"
                             f"<td>{html.escape(v or 'full')}</td><td class='small'>{html.escape(names)}</td>{cells}</tr>")
    return ("<h3>Ablations</h3><p class='small'>Each variant retrains the method with one ingredient off "
            "(the run-name suffix); same world, budget and seed as the full model.</p>"
            f"<table class='res'><tr><th>method</th><th>setting</th><th>variant</th><th>metrics</th>"
            f"<th colspan='2'>values</th></tr>{''.join(lines)}</table>")


def write_index(results: list[NotebookResult], out_dir: Path, meta: dict) -> Path:
    """``results.json`` / ``results.csv`` + ``index.html`` (the results table, key figures, notebooks)."""
    runs = collect_runs(results)
    rows = table_rows(runs)
    data = {"meta": meta, "table": rows, "notebooks": [r.__dict__ for r in results]}
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, out_dir / "results.json")
    write_csv(rows, out_dir / "results.csv")
    rows_table = rows
    figs = _figures_html(results, out_dir)
    rows = []
    for r in results:
        link = f'<a href="{html.escape(Path(r.output).with_suffix(".html").name)}">{html.escape(r.name)}</a>'
        status = "ok" if r.ok else f"<b>failed</b>: {html.escape(r.error)}"
        nums = ", ".join(f"{html.escape(str(k))}={v:.4g}" if isinstance(v, float) else f"{html.escape(str(k))}={html.escape(str(v))}"
                         for k, v in r.numbers.items() if isinstance(v, (int, float, str)) and len(str(v)) < 60)
        rows.append(f"<tr><td>{link}</td><td>{r.seconds:.0f} s</td><td>{status}</td><td>{nums}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sbirlab report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top}}
table.res td{{text-align:right}} .small{{font-size:85%;color:#444}} figure{{display:inline-block;margin:6px;max-width:560px}} figure img{{max-width:100%}}</style>
</head><body><h1>sbirlab report</h1>
<p>preset <code>{html.escape(str(meta.get('preset')))}</code>, versions {html.escape(json.dumps(meta.get('versions', {})))},
generated {html.escape(str(meta.get('generated')))} in {meta.get('seconds', 0):.0f} s.</p>
<h2>Results</h2>{html_results_table(rows_table)}
<p><a href="results.csv">results.csv</a> · <a href="results.json">results.json</a></p>
{figs}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>time</th><th>status</th><th>recorded numbers</th></tr>{''.join(rows)}</table>
</body></html>"""
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


def _figures_html(results: list[NotebookResult], out_dir: Path, per_notebook: int = 2) -> str:
    """The key figures: the first PNGs each notebook saved into the report folder (``<stem>_*.png``)."""
    items = []
    for r in results:
        for png in sorted(out_dir.glob(f"{r.name}*.png"))[:per_notebook]:
            items.append(f'<figure><img src="{html.escape(png.name)}" alt="{html.escape(png.stem)}">'
                         f'<figcaption>{html.escape(png.stem)}</figcaption></figure>')
    return ("<h2>Key figures</h2>" + "".join(items)) if items else ""


def run_report(preset: str = "default", out_dir: str | Path = "reports", only: str | None = None,
               dataset: str | None = None, backbone: str | None = None, kernel: str = "python3",
               root: Path | None = None) -> list[NotebookResult]:
    """Execute the notebooks and write the report. Raises :class:`NotebookFailed` after writing what finished."""
    from tqdm.auto import tqdm

    from .train.loop import versions

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nbs = notebooks(root, only)
    params = {"PRESET": preset, "OUT_DIR": str(out)}
    if dataset:
        params["DATASET"] = dataset
    if backbone:
        params["BACKBONE"] = backbone
    t0 = time.time()
    results: list[NotebookResult] = []
    failed = None
    bar = tqdm(nbs, desc="notebooks", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        r = run_notebook(nb, out, params, kernel)
        results.append(r)
        export_html(Path(r.output)) if Path(r.output).exists() else None
        log.info("%s: %s in %.0f s", nb.name, "ok" if r.ok else "FAILED", r.seconds)
        if not r.ok:
            failed = r
            break
    meta = {"preset": preset, "params": params, "versions": versions(), "seconds": round(time.time() - t0, 1),
            "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "machine_cpus": os.cpu_count()}
    write_index(results, out, meta)
    if failed:
        raise NotebookFailed(f"notebook {failed.name}.ipynb failed: {failed.error} "
                             f"(executed copy: {failed.output}; finished notebooks are in {out})")
    return results
