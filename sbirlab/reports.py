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

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


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


def write_index(results: list[NotebookResult], out_dir: Path, meta: dict) -> Path:
    """``results.json`` + ``index.html`` (links, run times, the recorded numbers)."""
    data = {"meta": meta, "notebooks": [r.__dict__ for r in results]}
    (out_dir / "results.json").write_text(json.dumps(data, indent=1, default=str))
    rows = []
    for r in results:
        link = f'<a href="{html.escape(Path(r.output).with_suffix(".html").name)}">{html.escape(r.name)}</a>'
        status = "ok" if r.ok else f"<b>failed</b>: {html.escape(r.error)}"
        nums = ", ".join(f"{html.escape(str(k))}={v:.4g}" if isinstance(v, float) else f"{html.escape(str(k))}={html.escape(str(v))}"
                         for k, v in r.numbers.items() if isinstance(v, (int, float, str)) and len(str(v)) < 60)
        rows.append(f"<tr><td>{link}</td><td>{r.seconds:.0f} s</td><td>{status}</td><td>{nums}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sbirlab report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top}}</style>
</head><body><h1>sbirlab report</h1>
<p>preset <code>{html.escape(str(meta.get('preset')))}</code>, versions {html.escape(json.dumps(meta.get('versions', {})))},
generated {html.escape(str(meta.get('generated')))} in {meta.get('seconds', 0):.0f} s.</p>
<table><tr><th>notebook</th><th>time</th><th>status</th><th>recorded numbers</th></tr>{''.join(rows)}</table>
</body></html>"""
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


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
