"""The sketch widget in a real browser: JupyterLab + headless Chromium (Playwright), a stroke drawn with the mouse.

What happens (docs/methods.md §8.4, ipycanvas, JupyterLab and a real browser):

1. JupyterLab starts on ``127.0.0.1`` at a free port with a random token, ``--no-browser``, in its own
   temporary root / config / data / runtime / settings / workspace folders, with ``HF_HUB_OFFLINE=1`` and
   no network calls (news, update checks and the extension manager are off). The notebook
   ``notebooks/11_sketch_and_retrieve.ipynb`` is copied into the root with ``PRESET="ci"`` and ``OUT_DIR``
   set in its parameters cell (``SBIRLAB_DATA`` points at a temporary folder, as in the notebook tests).
2. Chromium (the system's ``/usr/bin/chromium``, never a Playwright download) opens the notebook and runs
   every cell (``notebook:run-all-cells`` through ``window.jupyterapp``); the test waits until the last cell
   has written its JSON record.
3. The pad is scrolled into view, the test checks that the point under the mouse is the canvas, and draws
   one stroke with ``page.mouse``. It asserts that the result panel changed: before, no photo and the
   "draw" prompt; after, exactly ``K`` photos visible and a "top-K" status line.
4. Screenshots of the widget and of the page are written to the test's tmp folder and copied to
   ``reports/browser/`` (``widget_browser.png``, ``page_browser.png``), also when the test fails.
5. Teardown shuts the kernels down through the REST API, then stops the server and every process it
   started (kernels included) **by PID**, and checks that none is left.

Skipped (with the reason) only when ``/usr/bin/chromium`` or the ``playwright`` package is missing;
``.ci/run`` installs both.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "11_sketch_and_retrieve.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "reports" / "browser"
K = 8
NOTEBOOK_TIMEOUT_S = float(os.environ.get("SBIRLAB_BROWSER_TIMEOUT", "600"))  # generous: CI machines can be busy


def _requirements() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright, in the dev extras)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_notebook(dst: Path, out_dir: Path) -> None:
    """Copy the notebook with ``PRESET="ci"`` and ``OUT_DIR`` appended to its parameters cell."""
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += f'\n# set by the browser test\nPRESET = "ci"\nOUT_DIR = {str(out_dir)!r}\nN_REPLAY = 4\n'
    nbformat.write(nb, str(dst))


def _write_settings(settings: Path) -> None:
    """Lab settings: render every cell (no windowing, so the pad is in the DOM) and no news / update checks."""
    s = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
         "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"checkForUpdates": False,
                                                                             "fetchNews": "false"}}
    for rel, value in s.items():
        p = settings / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(value))


def _api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def _stop_all(proc: subprocess.Popen, base: str, token: str, log) -> list[int]:
    """Shut kernels down, stop the server and all its descendants by PID; returns the PIDs still alive."""
    import psutil

    try:  # polite first: the server shuts its kernels down
        for k in _api(base, token, "/api/kernels"):
            _api(base, token, f"/api/kernels/{k['id']}", "DELETE", timeout=10)
    except Exception as e:  # noqa: BLE001 - the server may already be gone
        log.write(f"\n[test] kernel shutdown through the API failed: {e}\n")
    try:
        pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        pids = []
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        for p in alive:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        if alive:
            psutil.wait_procs([psutil.Process(p) for p in alive if psutil.pid_exists(p)], timeout=5)
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def lab(tmp_path):
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    root, out = tmp_path / "root", tmp_path / "out"
    dirs = {n: tmp_path / n for n in ("config", "data", "runtime", "settings", "workspaces", "sbirlab_data")}
    for d in (root, out, *dirs.values()):
        d.mkdir(parents=True, exist_ok=True)
    _prepare_notebook(root / NOTEBOOK.name, out)
    _write_settings(dirs["settings"])
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "HF_HUB_OFFLINE": "1",
           "SBIRLAB_DATA": str(dirs["sbirlab_data"]), "JUPYTER_PLATFORM_DIRS": "1", "MPLBACKEND": "Agg"}
    env.pop("SBIRLAB_SPLITS_DIR", None)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}"]
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                tail = (tmp_path / "jupyter.log").read_text()[-2000:]
                pytest.fail(f"jupyter lab exited with {proc.returncode}: {tail}")
            try:
                _api(base, token, "/api/status", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("jupyter lab did not answer within 120 s")
                time.sleep(0.5)
        yield {"base": base, "token": token, "out": out, "tmp": tmp_path, "pid": proc.pid}
    finally:
        left = _stop_all(proc, base, token, log)
        log.close()
        assert not left, f"processes started by the test still alive: {left}"


def _save(page, tmp: Path, name: str, locator=None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        (locator or page).screenshot(path=str(tmp / name))
        shutil.copy(tmp / name, ARTIFACTS / name)
    except Exception as e:  # noqa: BLE001 - a failed screenshot must not hide the real failure
        print(f"screenshot {name} failed: {e}")


VISIBLE_RESULTS = """() => [...document.querySelectorAll('.sbirlab-results .sbirlab-result img')]
    .filter(im => im.offsetParent !== null && im.naturalWidth > 0).length"""


def test_draw_a_stroke_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    t0 = time.time()
    record = lab["out"] / "11_sketch_and_retrieve.json"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}")
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", timeout=120_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            deadline = time.time() + NOTEBOOK_TIMEOUT_S
            while not record.exists():
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                                      ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
                tb = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
                assert not tb, f"a notebook cell failed in the browser:\n{tb[0][-3000:]}"
                assert time.time() < deadline, f"the notebook did not finish within {NOTEBOOK_TIMEOUT_S:.0f} s"
                time.sleep(1.0)
            assert json.loads(record.read_text())["preset"] == "ci"
            t_run = time.time() - t0

            canvas = page.locator(".sbirlab-pad canvas").first
            canvas.wait_for(state="visible", timeout=60_000)
            status = page.locator(".sbirlab-status").first
            deadline = time.time() + 60
            while "Draw on the pad" not in status.text_content():
                assert time.time() < deadline, f"no 'Draw on the pad' prompt; status: {status.text_content()!r}, " \
                    f"widget: {page.locator('.sbirlab-sketch-widget').first.inner_text()[:1500]!r}"
                time.sleep(0.5)
            before_status = status.text_content()
            before_html = page.locator(".sbirlab-results").first.inner_html()
            assert page.evaluate(VISIBLE_RESULTS) == 0, "photos shown before anything was drawn"

            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert box and box["width"] > 100, f"the pad is not laid out: {box}"
            x0, y0 = box["x"] + 0.2 * box["width"], box["y"] + 0.25 * box["height"]
            x1, y1 = box["x"] + 0.8 * box["width"], box["y"] + 0.75 * box["height"]
            hit = page.evaluate(f"() => document.elementFromPoint({x0}, {y0}).tagName")
            assert hit == "CANVAS", f"the mouse would land on a {hit}, not on the pad"
            page.mouse.move(x0, y0)
            page.mouse.down()
            for i in range(1, 21):  # a slightly curved stroke, point by point
                t = i / 20
                page.mouse.move(x0 + t * (x1 - x0), y0 + t * (y1 - y0) - 30 * t * (1 - t))
                page.wait_for_timeout(15)
            page.mouse.up()

            page.wait_for_function(f"() => ({VISIBLE_RESULTS})() === {K}", timeout=60_000)
            after_status = status.text_content()
            after_html = page.locator(".sbirlab-results").first.inner_html()
            assert after_status != before_status and after_status.startswith(f"top-{K} of"), after_status
            assert "after 1 stroke" in after_status, after_status
            assert after_html != before_html
            guess = page.locator(".sbirlab-guess").first.inner_text()
            assert "class guess" in guess, guess
            # the pad shows ink where the stroke went (the browser's canvas, read in the page only)
            ink = page.evaluate("""() => { const c = document.querySelector('.sbirlab-pad canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128 && d[i + 3] > 0) n++; return n; }""")
            assert ink > 50, f"no stroke visible on the pad ({ink} dark pixels)"
            _save(page, lab["tmp"], "widget_browser.png", page.locator(".sbirlab-sketch-widget").first)
            print(f"notebook ran in {t_run:.0f} s; whole test {time.time() - t0:.0f} s; status: {after_status}")
        finally:
            _save(page, lab["tmp"], "page_browser.png")
            browser.close()
