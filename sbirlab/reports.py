"""The main job: execute every notebook with papermill into ``reports/`` and collect their numbers.

``sbirlab report [--preset default|ci|cpu|paper] [--only 01,03] [--dataset ...] [--backbone ...]`` runs
``notebooks/NN_*.ipynb`` in order, each in a fresh kernel, with parameters ``PRESET``, ``OUT_DIR`` (and
``DATASET`` / ``BACKBONE`` when given). Each notebook's last cell records its key numbers to
``OUT_DIR/<notebook>.json``; this module gathers them into ``reports/results.json``, exports every
executed notebook to HTML and writes ``reports/index.html``. When a notebook fails, the run stops with
a message naming the notebook and the failing cell, and what finished is still written.

The terminal gets one line per notebook (``[ 3/13] 03_clip_baselines ........ ok  41.2 s``); everything
else the run produces outside the notebooks (papermill / nbclient / nbconvert / jupyter log records,
Python warnings, the kernels' own stdout and stderr) goes to ``OUT_DIR/report.log``. What a cell prints,
stderr included, stays in the executed notebook as usual.
"""
from __future__ import annotations

import contextlib
import html
import io
import json
import logging
import os
import re
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_write_json, atomic_write_text, versions
from .tables import DISPLAY_NAMES, SETTINGS

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

#: the metrics of the results table, by setting (docs/methods.md §1.1)
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "zs": ("mAP@all", "mAP@200", "P@100", "P@200"),
    "gzs": ("mAP@all", "mAP@200", "P@100", "P@200"),
    "fg": ("Acc@1", "Acc@5", "Acc@10"),
}
#: what every number of the report names besides its value
PROVENANCE: tuple[str, ...] = ("dataset", "split", "backbone", "preset", "seed", "metric_convention")
#: the seed papers' published numbers (docs/methods.md §3.5, §4.6, §5.8, §6.6), by (method, setting): (source, {metric: value}).
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
    #: the first line of the failing cell's source (empty when it did not fail in a cell)
    cell: str = ""


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


def _first_line(source) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    return line if len(line) <= 100 else line[:97] + "..."


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _kernel_manager_writing_to(sink):
    """An ``AsyncKernelManager`` whose kernel process writes its own stdout / stderr (start-up warnings,
    C-level prints) to the file ``sink`` instead of the terminal. What cells print is captured by the
    kernel into the notebook as usual."""
    from jupyter_client import AsyncKernelManager

    class _KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw.setdefault("stdout", sink)
            kw.setdefault("stderr", sink)
            return await super().start_kernel(**kw)

    return _KernelManager


def run_notebook(path: Path, out_dir: Path, params: dict, kernel: str = "python3", progress: bool = False,
                 kernel_output=None) -> NotebookResult:
    """Execute one notebook with papermill into ``out_dir``; never raises (the result says what failed).

    ``kernel_output``: an open file that receives the kernel process's own stdout / stderr (default: inherited).
    """
    import papermill as pm

    out_nb = out_dir / path.name
    t0 = time.time()
    err, cell = "", ""
    extra = {"kernel_manager_class": _kernel_manager_writing_to(kernel_output)} if kernel_output is not None else {}
    try:
        pm.execute_notebook(str(path), str(out_nb), parameters=params, kernel_name=kernel, cwd=str(path.parent),
                            progress_bar=progress, log_output=False, **extra)
        ok = True
    except Exception as e:  # papermill's PapermillExecutionError carries the cell
        ok, err, cell = False, _failing_cell(e), _first_line(getattr(e, "source", ""))
        tb = getattr(e, "traceback", None)
        log.error("%s failed: %s\n%s", path.name, err,
                  _ANSI.sub("", "\n".join(tb)) if tb else "".join(traceback.format_exception(e)))
    rec = out_dir / f"{path.stem}.json"
    numbers = json.loads(rec.read_text()) if rec.exists() else {}
    return NotebookResult(path.stem, round(time.time() - t0, 1), ok, str(out_nb), numbers, err, cell)


def export_html(nb_path: Path) -> Path | None:
    """Executed notebook -> HTML next to it (None if nbconvert fails)."""
    try:
        import nbformat
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(nb_path), as_version=4))
        return atomic_write_text(nb_path.with_suffix(".html"), body)
    except Exception as e:  # pragma: no cover - cosmetic
        log.warning("could not export %s to HTML: %s", nb_path, e)
        return None


#: loggers of the notebook machinery; besides the root logger, their terminal handlers are set aside too
MACHINERY_LOGGERS: tuple[str, ...] = ("papermill", "nbclient", "nbconvert", "traitlets", "jupyter_client",
                                      "asyncio", "py.warnings")


def _prints_to_terminal(h: logging.Handler) -> bool:
    return (isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and getattr(h, "stream", None) in {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__})


@contextlib.contextmanager
def report_log(path: Path):
    """While a report runs, everything but its progress lines goes to ``path`` (truncated first).

    Log records of every logger (the root logger's and the notebook machinery's terminal handlers are set
    aside and restored afterwards; the root level is INFO meanwhile), Python warnings (``warnings.showwarning``)
    and anything written to ``sys.stderr`` land in the file; yields the open file, for the kernels' own
    output (:func:`run_notebook`'s ``kernel_output``). The file is a log streamed while the run goes, so it
    is written directly, not atomically: after a crash it shows how far the run got.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w", encoding="utf-8", buffering=1)
    handler = logging.StreamHandler(f)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    saved_level = root.level
    set_aside = [(lg, h) for lg in (root, *map(logging.getLogger, MACHINERY_LOGGERS)) for h in list(lg.handlers)
                 if _prints_to_terminal(h)]

    def showwarning(message, category, filename, lineno, file=None, line=None):
        logging.getLogger("py.warnings").warning(
            "%s", warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    try:
        for lg, h in set_aside:
            lg.removeHandler(h)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        with warnings.catch_warnings(), contextlib.redirect_stderr(f):
            warnings.showwarning = showwarning
            yield f
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for lg, h in set_aside:
            lg.addHandler(h)
        handler.close()
        f.close()


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
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in cols})
    return atomic_write_text(path, buf.getvalue())


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


def _setting_title(setting: str) -> str:
    return setting.upper()


def _metric_title(metric: str) -> str:
    return f"{PART_TITLES.get(metric, metric)}{' (%)' if metric.startswith('Acc@') else ''}"


def _breakable(title: str) -> str:
    """A column title, escaped, that may wrap after ``/`` and ``@`` when the table is short of room
    (``unseen/mAP@all`` -> ``unseen/ mAP@ all``): narrow windows get tall headers, not a sideways scroll."""
    return re.sub(r"([/@])", r"\1<wbr>", html.escape(title))


def _conventions(measured: list[dict]) -> list[str]:
    """The metric conventions of our runs, each clause once (ZS and GZS runs share the mAP@200 clause)."""
    return list(dict.fromkeys(c.strip() for r in measured for c in str(r.get("metric_convention") or "").split(";")
                              if c.strip() and r.get("metric_convention")))


def html_results_table(rows: list[dict]) -> str:
    """Methods x (setting, metric), ours and, in separate columns, the published numbers; then the
    ablation variants in a table of their own (a variant never replaces its method's main row).

    Columns are grouped by (setting, ours / published) under a two-row header; in every column of ours
    the best value among our methods is bold with class ``best`` (ties all marked; not when a column has a
    single value). The table sits in a ``.table-wrap`` that scrolls horizontally only if it must.
    """
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

    best: dict[tuple, set] = {}  # our column -> the methods holding its best (displayed) value
    for c in cols:
        if c[2] != "ours":
            continue
        shown = {m: float(_fmt(c[1], ours[(m, c[0], c[1])]["value"], True)) for m in methods if (m, c[0], c[1]) in ours}
        if len(shown) >= 2:
            top = max(shown.values())
            best[c] = {m for m, v in shown.items() if v == top}
    starts = {i for i, c in enumerate(cols) if i == 0 or (cols[i - 1][0], cols[i - 1][2]) != (c[0], c[2])}

    def classes(i, c, *more):
        cl = [*(["g"] if i in starts else []), *(["pub"] if c[2] == "published" else []), *more]
        return f' class="{" ".join(cl)}"' if cl else ""

    def cell(m, i, c):
        d = (ours if c[2] == "ours" else pub).get((m, c[0], c[1]))
        if d is None:
            return f"<td{classes(i, c)}></td>"
        title = html.escape(", ".join(f"{p}={d.get(p)}" for p in (*PROVENANCE, "notebook") if p != "metric_convention")
                            if c[2] == "ours" else d["source"])
        value = _fmt(c[1], d["value"], c[2] == "ours")
        if m in best.get(c, ()):
            return f'<td{classes(i, c, "best")} title="{title} (best of ours)"><strong>{value}</strong></td>'
        return f'<td{classes(i, c)} title="{title}">{value}</td>'

    groups = []  # (setting, kind, n columns)
    for i, c in enumerate(cols):
        if i in starts:
            groups.append([c[0], c[2], 0])
        groups[-1][2] += 1
    head1 = "".join(f'<th colspan="{n}" class="g{" pub" if kind == "published" else ""}">{_setting_title(s_)}'
                    f'{" · published" if kind == "published" else ""}</th>' for s_, kind, n in groups)
    head2 = "".join(f'<th{classes(i, c)} title="{html.escape(_setting_title(c[0]) + " " + _metric_title(c[1]))}'
                    f'{" (published)" if c[2] == "published" else ""}">{_breakable(_metric_title(c[1]))}</th>'
                    for i, c in enumerate(cols))
    body = "".join(f'<tr><th scope="row">{html.escape(_display(m))}</th>{"".join(cell(m, i, c) for i, c in enumerate(cols))}</tr>'
                   for m in methods)
    convs = _conventions(measured)
    srcs = sorted({r["source"].removeprefix("published: ") for r in pub.values()})
    has = {c[1] for c in cols if c[2] == "ours"}
    notes = ["<b>Bold</b>: the best of our methods in that column. Hover a cell for its run's provenance."
             + (" FG Acc@k in percent." if any(c[1].startswith("Acc@") for c in cols) else "")]
    if convs:
        notes.append(f"<b>Metrics</b>: {html.escape('; '.join(convs))}.")
    if srcs:
        notes.append(f"<b>Published</b> columns ({html.escape('; '.join(srcs))}) come from other datasets and a far "
                     f"larger CLIP: they show the shape to expect, not targets.")
    if any(c[0] == "gzs" for c in cols):
        notes.append("GZS per-part metrics other than mAP@all are in results.csv.")
    if has & set(HTML_DOODLE_PARTS):
        notes.append("<b>Real doodles</b>: held-out Quick, Draw! doodles (Google, CC BY 4.0; never trained on) as "
                     "queries of the run's unseen test gallery, and their zero-shot class accuracy over all classes "
                     "(<code>sbirlab eval --run RUN --doodles DIR</code>).")
    out = (f'<div class="table-wrap"><table class="res"><thead><tr><th rowspan="2" class="method">method</th>{head1}</tr>'
           f"<tr>{head2}</tr></thead><tbody>{body}</tbody></table></div>"
           f'<ul class="notes">{"".join(f"<li>{n}</li>" for n in notes)}</ul>')
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
                lines.append(f"<tr><th>{html.escape(_display(m))}</th><td class='txt'>{setting.upper()}</td>"
                             f"<td class='txt'>{html.escape(v or 'full')}</td><td class='txt small'>{html.escape(names)}</td>"
                             f"{cells}</tr>")
    return ("<h3>Ablations</h3><p class='note'>Each variant retrains the method with one ingredient off "
            "(the run-name suffix); same world, budget and seed as the full model.</p>"
            f"<div class='table-wrap'><table class='res abl'><thead><tr><th>method</th><th>setting</th><th>variant</th>"
            f"<th>metrics</th><th colspan='2'>values</th></tr></thead><tbody>{''.join(lines)}</tbody></table></div>")


#: the columns of the 3-seed table: (label, run suffix, metric, percent)
SEED_COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    ("ZS mAP@all", "zs", "mAP@all", False), ("ZS mAP@200", "zs", "mAP@200", False),
    ("ZS P@100", "zs", "P@100", False), ("ZS P@200", "zs", "P@200", False),
    ("GZS mAP@all", "gzs", "mAP@all", False), ("FG Acc@1 (%)", "fg", "Acc@1", True),
    ("FG Acc@5 (%)", "fg", "Acc@5", True), ("real doodles mAP@all", "zs", "doodles/mAP@all", False),
    ("real doodles class acc. (%)", "zs", "doodles/class_accuracy", True),
)


def html_seed_table(summary: dict, source: str = "data/runs/table_seeds.json") -> str:
    """The shipped runs over several seeds: mean ± std per method and metric (``sbirlab table --seeds``).

    Args:
        summary: the content of ``table_seeds.json``: ``{"preset", "seeds", "runs": {"<method>-<setting>":
            {metric: {"mean", "std", "n"}}}}``.
        source: where it was read, named in the caption.

    Returns:
        a section (heading, table in a ``.table-wrap``, note); the best mean of each column is bold.
        Empty when ``summary`` holds no main-table run.
    """
    runs = summary.get("runs", {})
    methods = _order([k.rsplit("-", 1)[0] for k in runs if k.endswith("-zs") and "=" not in k])
    if not methods:
        return ""

    def entry(m, setting, metric):
        e = runs.get(f"{m}-{setting}", {}).get(metric)
        return e if isinstance(e, dict) and "mean" in e else None

    best = {}
    for col in SEED_COLUMNS:
        means = {m: entry(m, *col[1:3])["mean"] for m in methods if entry(m, *col[1:3])}
        if len(means) >= 2:
            best[col] = max(means.values())
    rows = []
    for m in methods:
        cells = []
        for col in SEED_COLUMNS:
            e = entry(m, *col[1:3])
            if e is None:
                cells.append("<td></td>")
                continue
            k, digits = (100.0, 1) if col[3] else (1.0, 3)
            text = f"{k * e['mean']:.{digits}f} ± {k * e['std']:.{digits}f}"
            top = best.get(col) is not None and e["mean"] == best[col]
            cells.append(f'<td{" class=best" if top else ""} title="n={e.get("n")}">'
                         f'{"<strong>" + text + "</strong>" if top else text}</td>')
        rows.append(f'<tr><th scope="row">{html.escape(_display(m))}</th>{"".join(cells)}</tr>')
    head = "".join(f"<th>{_breakable(c[0])}</th>" for c in SEED_COLUMNS)
    seeds = ", ".join(str(x) for x in summary.get("seeds", []))
    return (f'<h3 id="seeds">Shipped runs over seeds {html.escape(seeds)} (mean ± std)</h3>'
            f'<p class="note">The runs of <code>data/runs</code> ({html.escape(str(summary.get("preset")))} preset), '
            f'each trained with every seed (<code>{html.escape(source)}</code>, written by <code>sbirlab table '
            f'--seeds</code>). <b>Bold</b>: the best mean; a gap within 2 std is a tie (data/runs/README.md).</p>'
            f'<div class="table-wrap"><table class="res"><thead><tr><th class="method">method</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def shipped_seed_table(preset: str) -> str:
    """:func:`html_seed_table` of ``data/runs/table_seeds.json`` for the presets whose notebooks use the shipped
    runs (``default``, ``cpu``); empty otherwise or when the file is absent."""
    if preset not in ("default", "cpu"):
        return ""
    from .experiment import shipped_runs_dir

    path = shipped_runs_dir() / "table_seeds.json"
    if not path.is_file():
        return ""
    return html_seed_table(json.loads(path.read_text()))


def provenance_line(meta: dict, rows: list[dict]) -> str:
    """Versions and provenance of the report in one line of HTML: ``sbirlab 0.1.0 · torch 2.14.1 · open_clip
    3.3.0 · Python 3.11.7 · preset default · dataset synthetic · ... · generated <date> in 41 s``.

    Versions are the report's (``meta["versions"]``), followed by ``(runs: ...)`` where our runs were
    trained under another one; dataset / split / backbone / seed list what our runs used (the split only
    when there is one: ZS, GZS and FG runs each have their own, shown in the table's hover text)."""
    measured = [r for r in rows if str(r.get("source", "")).startswith("sbirlab")]

    def distinct(key):
        return list(dict.fromkeys(str(r[key]) for r in measured if r.get(key) is not None))

    v = meta.get("versions") or {}
    parts = []
    for key, label in (("sbirlab", "sbirlab"), ("torch", "torch"), ("open_clip", "open_clip"), ("python", "Python")):
        if v.get(key) is None:
            continue
        other = [x for x in (distinct(key) if key != "python" else []) if x != str(v[key])]
        parts.append((label, str(v[key]) + (f" (runs: {', '.join(other)})" if other else "")))
    if meta.get("preset") is not None:
        parts.append(("preset", str(meta["preset"])))
    for key in ("dataset", "split", "backbone", "seed"):
        vals = distinct(key)
        if vals and not (key == "split" and len(vals) > 1):  # one split per setting: in each cell's hover text
            parts.append((key, " / ".join(vals)))
    gen = re.sub(r"^(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d$", r"\1", str(meta.get("generated") or ""))
    if gen:
        secs = meta.get("seconds")
        took = "" if not isinstance(secs, (int, float)) else (
            f" in {secs:.0f} s" if secs < 120 else f" in {secs / 60:.0f} min")
        parts.append(("generated", gen + took))
    return " · ".join(f'<span class="k">{html.escape(k)}</span> {html.escape(val)}' for k, val in parts)


PAGE_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:#1f2328;background:#fff;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",
  "Liberation Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:1.75rem;margin:0 0 4px}
h2{font-size:1.3rem;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid #d8dee4}
h3{font-size:1.1rem;margin:24px 0 6px}
a{color:#0b5cad}
code{font-size:.9em;background:#f3f4f6;padding:0 3px;border-radius:3px}
.prov{margin:0 0 6px;color:#444c56;font-size:.8125rem}
.prov .k{color:#6e7781}
nav.toc{font-size:.9rem;margin:0 0 8px}
nav.toc a{margin-right:14px}
.table-wrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.875rem;font-variant-numeric:tabular-nums}
th,td{padding:4px 6px;border-bottom:1px solid #e4e7eb;vertical-align:top}
thead th{background:#f6f8fa;font-weight:600;vertical-align:bottom}
table.res td{text-align:right;white-space:nowrap}
table.res td.txt{text-align:left}
table.res tbody th{text-align:left;font-weight:600;min-width:9.5em}
table.res thead th{text-align:center}
table.res thead th.method{text-align:left;vertical-align:bottom}
table.res .g{border-left:2px solid #d0d7de}
table.res .pub{color:#57606a;background:#fafbfc}
table.res thead th.pub{background:#eef1f4;font-weight:500;font-style:italic}
table.res td.best{background:#dcf5e3;color:#0f5323}
table.res tbody tr:hover td,table.res tbody tr:hover th{background-color:#f1f5fb}
.note,ul.notes{font-size:.875rem;color:#444c56;max-width:110ch}
ul.notes{margin:8px 0 0;padding-left:20px}
ul.notes li{margin:2px 0}
.small{font-size:.8rem}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
figure{margin:0;padding:8px;border:1px solid #d8dee4;border-radius:6px;background:#fff;min-width:0}
figure img{display:block;width:100%;height:auto}
figcaption{margin-top:6px;font-size:.85rem;color:#444c56}
figcaption .nb{font-weight:600;color:#1f2328}
figcaption .file{color:#6e7781}
table.nbs{width:100%}
table.nbs td.nums{font-size:.8rem;color:#57606a;overflow-wrap:anywhere}
table.nbs td.t{white-space:nowrap;text-align:right}
.ok{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
"""


def write_index(results: list[NotebookResult], out_dir: Path, meta: dict) -> Path:
    """``results.json`` / ``results.csv`` + ``index.html`` (the results table, key figures, notebooks).

    The page fits a 1280 px wide window (a max-width column; only the results table may scroll sideways,
    inside its own box); versions and provenance are one line under the title."""
    runs = collect_runs(results)
    rows = table_rows(runs)
    data = {"meta": meta, "table": rows, "notebooks": [r.__dict__ for r in results]}
    atomic_write_json(data, out_dir / "results.json", indent=1)
    write_csv(rows, out_dir / "results.csv")
    figs = _figures_html(results, out_dir)
    nb_rows = []
    for r in results:
        link = f'<a href="{html.escape(Path(r.output).with_suffix(".html").name)}">{html.escape(r.name)}</a>'
        status = ('<span class="ok">ok</span>' if r.ok else
                  f'<span class="failed">failed</span>: {html.escape(r.error)}'
                  + (f"<br><code>{html.escape(r.cell)}</code>" if r.cell else ""))
        nums = ", ".join(f"{html.escape(str(k))}={v:.4g}" if isinstance(v, float) else f"{html.escape(str(k))}={html.escape(str(v))}"
                         for k, v in r.numbers.items() if isinstance(v, (int, float, str)) and len(str(v)) < 60)
        nb_rows.append(f'<tr><td>{link}</td><td class="t">{r.seconds:.0f} s</td><td>{status}</td>'
                       f'<td class="nums">{nums}</td></tr>')
    log_link = ' · <a href="report.log">report.log</a>' if (out_dir / "report.log").exists() else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sbirlab report</title><style>{PAGE_CSS}</style></head>
<body><main>
<h1>sbirlab report</h1>
<p class="prov">{provenance_line(meta, rows)}</p>
<nav class="toc"><a href="#results">Results</a>{'<a href="#figures">Key figures</a>' if figs else ''}<a href="#notebooks">Notebooks</a>
<a href="results.csv">results.csv</a><a href="results.json">results.json</a>{log_link.replace(' · ', '')}</nav>
<h2 id="results">Results</h2>
{html_results_table(rows)}
{shipped_seed_table(str(meta.get("preset", "")))}
{figs}
<h2 id="notebooks">Notebooks</h2>
<div class="table-wrap"><table class="nbs"><thead><tr><th>notebook</th><th>time</th><th>status</th><th>recorded numbers</th></tr></thead>
<tbody>{''.join(nb_rows)}</tbody></table></div>
<p class="note"><a href="results.csv">results.csv</a> · <a href="results.json">results.json</a>{log_link}</p>
</main></body></html>
"""
    return atomic_write_text(out_dir / "index.html", page)


def _plain(markdown: str) -> str:
    """A markdown heading as plain text: links -> their text, no emphasis / code marks."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[*`]+", "", text).strip()


def figure_captions(nb_path: Path) -> tuple[str, list[tuple[str, str]]]:
    """``(title, [(png name part, section heading), ...])`` of a notebook: its first heading, and for every
    ``..._<part>.png`` a code cell names, the last markdown heading above that cell."""
    try:
        nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", []
    title, heading, found = "", "", []
    for c in nb.get("cells", []):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if c.get("cell_type") == "markdown":
            for line in src.splitlines():
                m = re.match(r"#{1,6}\s+(.+)", line.strip())
                if m:
                    heading = _plain(m.group(1))
                    title = title or heading
        elif c.get("cell_type") == "code":
            found += [(part, heading) for part in re.findall(r"_([A-Za-z0-9_\-]+)\.png", src)]
    return title, found


def _figures_html(results: list[NotebookResult], out_dir: Path, per_notebook: int = 2) -> str:
    """The key figures: the first PNGs each notebook saved into the report folder (``<stem>_*.png``), each a
    ``<figure>`` whose ``<figcaption>`` names the notebook and the section that drew it (from the executed
    notebook; its title, or the file name, when the section is unknown)."""
    items = []
    for r in results:
        pngs = sorted(out_dir.glob(f"{r.name}*.png"))[:per_notebook]
        if not pngs:
            continue
        title, found = figure_captions(Path(r.output))
        for png in pngs:
            part = png.stem[len(r.name):].lstrip("_-") or png.stem
            what = next((h for p, h in found if h and (p == part or p.endswith("_" + part))), "") or title
            label = part.replace("_", " ")
            desc = f"{what} ({label})" if what else label
            items.append(f'<figure><a href="{html.escape(png.name)}"><img src="{html.escape(png.name)}" loading="lazy" '
                         f'alt="{html.escape(r.name + ": " + desc)}"></a><figcaption><span class="nb">{html.escape(r.name)}'
                         f'</span> · {html.escape(what or label)}'
                         f'{f" <span class=file>({html.escape(label)})</span>" if what else ""}</figcaption></figure>')
    return ('<h2 id="figures">Key figures</h2><div class="figs">' + "".join(items) + "</div>") if items else ""


def progress_line(i: int, n: int, name: str, width: int) -> str:
    """The start of a notebook's progress line: ``[ 3/13] 03_clip_baselines ........ `` (``width``: name + dots)."""
    dots = "." * max(3, width - len(name) - 1)
    return f"[{i:>{len(str(n))}}/{n}] {name} {dots} "


def run_report(preset: str = "default", out_dir: str | Path = "reports", only: str | None = None,
               dataset: str | None = None, backbone: str | None = None, kernel: str = "python3",
               root: Path | None = None) -> list[NotebookResult]:
    """Execute the notebooks and write the report. Raises :class:`NotebookFailed` after writing what finished.

    Prints one line per notebook to stdout; everything else goes to ``<out_dir>/report.log``
    (:func:`report_log`). A failing notebook's line is followed by its cell and the log's path.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nbs = notebooks(root, only)
    params = {"PRESET": preset, "OUT_DIR": str(out)}
    if dataset:
        params["DATASET"] = dataset
    if backbone:
        params["BACKBONE"] = backbone
    log_path = out / "report.log"
    width = max(30, *(len(nb.stem) + 4 for nb in nbs))
    t0 = time.time()
    results: list[NotebookResult] = []
    failed = None
    print(f"sbirlab report: {len(nbs)} notebook(s), preset {preset} -> {out}  (details: {log_path})", flush=True)
    with report_log(log_path) as sink:
        log.info("sbirlab report, preset %s, %d notebook(s), params %s", preset, len(nbs), params)
        for i, nb in enumerate(nbs, 1):
            print(progress_line(i, len(nbs), nb.stem, width), end="", flush=True)
            sink.write(f"\n===== [{i}/{len(nbs)}] {nb.name} =====\n")
            r = run_notebook(nb, out, params, kernel, kernel_output=sink)
            results.append(r)
            export_html(Path(r.output)) if Path(r.output).exists() else None
            log.info("%s: %s in %.1f s", nb.name, "ok" if r.ok else "FAILED", r.seconds)
            print(f"{'ok' if r.ok else 'FAILED'}  {r.seconds:.1f} s", flush=True)
            if not r.ok:
                pad = " " * (len(str(len(nbs))) * 2 + 4)
                print(f"{pad}{r.error}" + (f"\n{pad}> {r.cell}" if r.cell else ""), flush=True)
                print(f"{pad}traceback and kernel output: {log_path}", flush=True)
                failed = r
                break
        meta = {"preset": preset, "params": params, "versions": versions(), "seconds": round(time.time() - t0, 1),
                "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "machine_cpus": os.cpu_count()}
        write_index(results, out, meta)
    if failed:
        raise NotebookFailed(f"notebook {failed.name}.ipynb failed: {failed.error} "
                             f"(executed copy: {failed.output}; log: {log_path}; finished notebooks are in {out})")
    return results
