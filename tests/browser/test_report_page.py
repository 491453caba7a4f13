"""``reports/index.html`` in a real browser: readable at 1280 px, best values marked, figures captioned.

A synthetic results set (every method in ZS with the real-doodle columns, GZS with its per-part columns and
FG, the published columns, ablation variants, thirteen notebooks, figures with the executed notebooks'
section headings) goes through :func:`sbirlab.reports.write_index`; headless Chromium (the system's
``/usr/bin/chromium`` through Playwright, never a Playwright download) opens the page as a ``file://`` URL
in a 1280 x 900 window and the test checks that

* the page has no horizontal overflow (``document.documentElement.scrollWidth <= 1280``), and neither has
  the results table's scroll box: the table fits;
* text is at least 12 px; every column of ours marks its best value (``td.best strong``), published
  columns never;
* every figure is a ``<figure>`` with a non-empty ``<figcaption>`` and a loaded image;
* the versions / provenance are one line (it does not wrap at 1280 px) and the mAP@200 convention
  appears once.

A full-page screenshot goes to the test's tmp folder (``index_1280.png``) and, when ``SBIRLAB_SCREENSHOT_DIR``
is set, is copied there. Skipped (with the reason) only when ``/usr/bin/chromium`` or ``playwright`` is missing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sbirlab.reports import METHOD_ORDER, NotebookResult, write_index

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"  # as in test_widget_browser.py
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH, HEIGHT = 1280, 900
ZS_CONV = "mAP@200 = AP over the top 200 normalised by relevant items in the top 200 (docs/methods.md §1.3)"
GZS_CONV = ZS_CONV + "; GZS: unseen test set + 20% seen-class sketches / photos, seen/ and unseen/ = per-part means"
FG_CONV = "Acc@k within the query's category (docs/methods.md §1.5)"
VERSIONS = {"sbirlab": "0.1.0", "torch": "2.14.1+cu130", "open_clip": "3.3.0", "python": "3.11.7"}
NOTEBOOKS = ("00_quickstart", "01_data_and_protocols", "02_clip_as_foundation_model", "03_clip_baselines",
             "04_train_prompted_clip", "05_fine_grained", "06_dual_modal_prompting", "07_multimodal_prompt_sharing",
             "08_attention_maps", "09_embedding_space", "10_error_analysis", "11_sketch_and_retrieve",
             "12_generalisation")


def _requirements() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright, in the dev extras)"
    return None


def _run(method: str, setting: str, k: int, **metrics) -> dict:
    split = {"zs": "synthetic_zs", "gzs": "synthetic_gzs", "fg": "synthetic_fg"}[setting]
    return {"method": method, "setting": setting, "dataset": "synthetic", "split": split,
            "backbone": "tiny-synthetic", "preset": "default", "seed": 0,
            "metric_convention": {"zs": ZS_CONV, "gzs": GZS_CONV, "fg": FG_CONV}[setting],
            "versions": VERSIONS, "n_queries": 112, "wall_time_s": 30.0 + k, **metrics}


def _runs() -> list[dict]:
    """Every method in the three settings; each column has one best, held by different methods."""
    def v(k: int, j: int, base: float, step: float = 0.013) -> float:
        return round(base + step * (0.3 * k + (7 * k + 3 * j) % 10), 4)  # never a tie: 7 k mod 10 is distinct

    runs = []
    for k, m in enumerate(METHOD_ORDER):
        runs.append(_run(m, "zs", k, **{"mAP@all": v(k, 0, 0.30), "mAP@200": v(k, 1, 0.32), "P@100": v(k, 2, 0.25),
                                        "P@200": v(k, 3, 0.22), "doodles/mAP@all": v(k, 4, 0.12),
                                        "doodles/class_accuracy": v(k, 5, 0.05, 0.004)}))
        runs.append(_run(m, "gzs", k, **{"mAP@all": v(k, 6, 0.20), "seen/mAP@all": v(k, 7, 0.30),
                                         "unseen/mAP@all": v(k, 8, 0.10), "seen/P@100": 0.3, "unseen/P@100": 0.1}))
        runs.append(_run(m, "fg", k, **{"Acc@1": v(k, 9, 0.02, 0.004), "Acc@5": v(k, 10, 0.10, 0.01),
                                        "Acc@10": v(k, 11, 0.2, 0.01)}))
    runs.append(_run("dp-clip", "zs", 0, variant="patch_matching=False", **{"mAP@all": 0.51, "mAP@200": 0.52}))
    runs.append(_run("dp-clip", "fg", 0, variant="text_scaling=none", **{"Acc@1": 0.061, "Acc@5": 0.2}))
    return runs


def _png(path: Path, k: int, w: int = 880, h: int = 440) -> None:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    for i in range(8):
        top = h - 40 - int((h - 80) * ((i * 7 + k * 3) % 10 + 1) / 11)
        d.rectangle([40 + i * (w - 80) // 8, top, 40 + (i + 1) * (w - 80) // 8 - 12, h - 40],
                    fill=(40 + 25 * i, 90 + 10 * k % 120, 180))
    d.line([30, h - 40, w - 30, h - 40], fill="black", width=2)
    im.save(path)


def _executed_notebook(path: Path, title: str, sections: dict[str, str]) -> None:
    """A stand-in for an executed notebook: a title, and per figure a heading then the cell saving it."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nWhat this notebook does.")]
    for part, heading in sections.items():
        nb.cells += [nbformat.v4.new_markdown_cell(f"## {heading}"),
                     nbformat.v4.new_code_cell(f'fig.savefig(OUT / f"{{NOTEBOOK}}_{part}.png", dpi=110)')]
    nbformat.write(nb, str(path))


def _report(out: Path) -> Path:
    figures = {"03_clip_baselines": {"table1_bars": "3. The table, laid out like CLIP-AT's Table 1"},
               "04_train_prompted_clip": {"retrievals": "6. Evaluation on the unseen classes",
                                          "training_curves": "5. Training, with live curves"},
               "08_attention_maps": {"cls_layers_heads": "2. The CLS token, layer by layer and head by head",
                                     "rollout": "4. Attention rollout"},
               "10_error_analysis": {"per_class_ap": "2. AP per class"}}
    runs, results = _runs(), []
    for i, name in enumerate(NOTEBOOKS):
        nb = out / f"{name}.ipynb"
        _executed_notebook(nb, f"{name[:2]} · {name[3:].replace('_', ' ').capitalize()}", figures.get(name, {}))
        for j, part in enumerate(figures.get(name, {})):
            _png(out / f"{name}_{part}.png", i + j)
        numbers = {"notebook": name, "preset": "default", "dataset": "synthetic", "seed": 0, "k": 8,
                   "n_queries": 112, "mAP@all": 0.4 + 0.01 * i, "query_class": "hot-air_balloon",
                   "checkpoint": f"/work/main/runs/{name}/a_rather_long_folder_name_without_spaces/best.pt",
                   "runs": runs[3 * i: 3 * i + 3] if i < 9 else runs[27:] if i == 9 else []}
        results.append(NotebookResult(name, 20.0 + 7 * i, True, str(nb), numbers))
    meta = {"preset": "default", "versions": VERSIONS, "seconds": 1234.5, "generated": "2026-12-04 06:38:16"}
    return write_index(results, out, meta)


def test_the_report_page_reads_well_at_1280_px(tmp_path):
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    out = tmp_path / "reports"
    out.mkdir()
    index = _report(out)
    shot = tmp_path / "index_1280.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            page.evaluate("() => Promise.all([...document.images].map(im => { im.loading = 'eager';"
                          " return im.complete ? 0 : new Promise(r => { im.onload = im.onerror = r; }); }))")
            try:
                geo = page.evaluate("""() => {
                    const wrap = document.querySelector('.table-wrap');
                    const px = el => parseFloat(getComputedStyle(el).fontSize);
                    return {doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,
                            wrap: wrap.scrollWidth, wrapClient: wrap.clientWidth,
                            minFont: Math.min(...[...document.querySelectorAll('td, th, p, li, figcaption')].map(px)),
                            bodyFont: px(document.body)}; }""")
                assert geo["doc"] <= WIDTH and geo["body"] <= WIDTH, f"horizontal overflow at {WIDTH} px: {geo}"
                assert geo["wrap"] <= geo["wrapClient"], f"the results table does not fit at {WIDTH} px: {geo}"
                assert geo["minFont"] >= 12 and geo["bodyFont"] >= 15, geo

                res = page.locator("table.res").first
                n_ours = res.locator("thead tr").nth(1).locator("th:not(.pub)").count()
                best = res.locator("td.best")
                assert n_ours == 12 and best.count() == n_ours, (n_ours, best.count())  # one best per column here
                assert res.locator("td.best strong").count() == n_ours
                assert len({best.nth(i).evaluate("e => e.parentElement.rowIndex") for i in range(n_ours)}) > 3
                assert res.locator("td.pub.best").count() == 0
                assert best.first.evaluate("e => parseInt(getComputedStyle(e.querySelector('strong')).fontWeight)") >= 600
                assert res.locator("td.pub").count() > 0 and "published" in res.locator("thead").inner_text()

                figs = page.locator("figure")
                assert figs.count() == 6
                for i in range(figs.count()):
                    cap = figs.nth(i).locator("figcaption").inner_text().strip()
                    assert cap.split(" · ")[0] in NOTEBOOKS and len(cap) > 20, cap
                    assert figs.nth(i).locator("img").evaluate("im => im.naturalWidth") > 0
                caps = page.locator("figcaption").all_inner_texts()
                assert any("Attention rollout" in c for c in caps) and any("AP per class" in c for c in caps)

                text = page.locator("body").inner_text()
                assert text.count("mAP@200 = AP") == 1
                prov = page.locator("p.prov")
                assert prov.count() == 1 and "{" not in prov.inner_text()
                assert prov.inner_text().startswith("sbirlab 0.1.0 · torch 2.14.1+cu130 · open_clip 3.3.0 · Python 3.11.7")
                lines = prov.evaluate("e => e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)")
                assert lines < 1.5, f"the provenance line wraps ({lines:.1f} lines): {prov.inner_text()!r}"
            finally:
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("SBIRLAB_SCREENSHOT_DIR"):
                    dst = Path(os.environ["SBIRLAB_SCREENSHOT_DIR"])
                    dst.mkdir(parents=True, exist_ok=True)
                    shutil.copy(shot, dst / shot.name)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
