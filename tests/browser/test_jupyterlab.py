"""The quickstart notebook in JupyterLab, in a real headless Chromium.

What a new user sees: JupyterLab on loopback, ``notebooks/quickstart.ipynb`` opened in the
browser, every cell run. The test asserts that the live panel renders, moves through the
running state and reaches its finished state with counts that match the job, and saves
screenshots (mid-job and final) to ``tests/browser/artifacts/`` (``BATCHFRAME_ARTIFACTS``
overrides). A second test presses the panel's Cancel button in the browser and checks that
every unanswered row ends with an error that says it was cancelled.

Needs the ``browser`` extra (jupyterlab, playwright) and a system Chromium (Debian's
``chromium`` package; ``BATCHFRAME_CHROMIUM`` points elsewhere). Playwright drives that
browser through ``executable_path``: no browser download. ``.ci/run`` installs all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = Path(os.environ.get("BATCHFRAME_ARTIFACTS") or Path(__file__).parent / "artifacts")


def _chromium() -> str | None:
    explicit = os.environ.get("BATCHFRAME_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _missing(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where .ci/run installed everything."""
    if os.environ.get("BATCHFRAME_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BATCHFRAME_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


CHROMIUM = _chromium()
if CHROMIUM is None:
    _missing(
        "no system Chromium: install Debian's chromium and chromium-driver packages "
        "(apt-get install -y chromium chromium-driver; .ci/run does) or set BATCHFRAME_CHROMIUM"
    )
_EXTRA = "the browser extra is not installed: pip install -e '.[dev,browser]' (.ci/run does)"
try:
    import jupyterlab  # noqa: F401
    from playwright import sync_api
except ImportError:
    _missing(_EXTRA)

# Chromium as root in a container, on a machine whose network is closed: no sandbox, no GPU,
# and none of the background connections it would otherwise keep retrying.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]
PANEL = ".batchframe-panel"


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


CANCEL_SETUP = """
import os, tempfile
import pandas as pd
import batchframe
from batchframe.emulator import Emulator

emulator = Emulator(processing_seconds=40).start()  # slow: the job is cancelled long before
client = emulator.openai_client()
os.environ["BATCHFRAME_HOME"] = tempfile.mkdtemp()
os.environ["BATCHFRAME_POLL_INTERVAL"] = "0.3"
df = pd.DataFrame({"text": [f"item number {i}" for i in range(25)]})
"""
CANCEL_SUBMIT = """
job = df.llm.batch("Describe {text}", model="gpt-4o-mini", output="d", max_tokens=20,
                   client=client, wait=False)
"""
CANCEL_CHECK = """
out = job.result(timeout=60)
errors = out["d_error"].dropna()
print("COUNTS", len(out), int(out["d"].notna().sum()), len(errors),
      int(errors.str.contains("cancelled").sum()), job.status().state,
      emulator.stats()["cancels"])
"""


def _write_cancel_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c.strip()) for c in (CANCEL_SETUP, CANCEL_SUBMIT)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(nb, path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kernel_env(home: Path) -> dict[str, str]:
    """The environment JupyterLab (and so the kernel) starts with: a new user's, no API key."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BATCHFRAME_", "OPENAI_", "ANTHROPIC_", "JUPYTER", "PYTEST_"))
    }
    env["HOME"] = str(home)
    env["JUPYTER_CONFIG_DIR"] = str(home / "jupyter-config")
    env["JUPYTER_DATA_DIR"] = str(home / "jupyter-data")
    env["JUPYTER_RUNTIME_DIR"] = str(home / "jupyter-runtime")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "lab-settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "lab-workspaces")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOKS / "quickstart.ipynb", root / "quickstart.ipynb")
    _write_cancel_notebook(root / "cancel.ipynb")
    home = base / "home"
    (home / "jupyter-config" / "labconfig").mkdir(parents=True)
    # No "get notified about Jupyter news?" toast over the notebook.
    (home / "jupyter-config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    # Render every cell (no virtual scrolling), so a panel scrolled out of view still updates
    # its DOM and can be found; and keep the notebook where the test scrolls it.
    settings = home / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none", "scrollPastEnd": False})
    )
    port = _free_port()
    token = os.urandom(16).hex()
    log = base / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--ServerApp.terminals_enabled=False",
        "--ServerApp.allow_root=True",  # CI containers run as root
        "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=_kernel_env(home), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield Lab(url=url, token=token, root=root, log=log)
    finally:
        proc.send_signal(signal.SIGINT)  # a clean shutdown stops the kernels too
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"))
        context.close()


# --- helpers ------------------------------------------------------------------------------

_KERNEL_IDLE = """
() => {
  const app = window.jupyterapp;
  const widget = app && app.shell.currentWidget;
  const ctx = widget && widget.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!(kernel && ctx.isReady && kernel.connectionStatus === 'connected'
            && kernel.status === 'idle');
}
"""

_RUN_STATE = """
() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const cells = nb.widgets.filter(c => c.model.type === 'code');
  return {
    total: cells.length,
    done: cells.filter(c => c.model.executionCount !== null
                          && c.model.executionCount !== undefined).length,
    errors: cells.filter(c => {
      const outs = c.model.outputs;
      for (let i = 0; i < outs.length; i++) {
        if (outs.get(i).type === 'error') return true;
      }
      return false;
    }).length,
    busy: window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status,
  };
}
"""


def _open_notebook(page: Any, lab: Lab, name: str) -> None:
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(_KERNEL_IDLE, timeout=60_000)


def _run_all(page: Any) -> None:
    # Not awaited: the command's promise settles only when the last cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def _wait_all_executed(page: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate(_RUN_STATE)
        if state["errors"]:
            pytest.fail(f"a cell raised: {state}")
        if state["done"] == state["total"] and state["busy"] == "idle":
            return state
        time.sleep(0.5)
    pytest.fail(f"the notebook did not finish in {timeout} s: {state}")


_EXECUTE = """
async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code});
  let text = '';
  future.onIOPub = (msg) => {
    const type = msg.header.msg_type;
    if (type === 'stream') text += msg.content.text;
    if (type === 'error') text += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  return text;
}
"""


def _execute(page: Any, code: str) -> str:
    """Run code in the notebook's kernel (as a cell would) and return what it printed."""
    return str(page.evaluate(_EXECUTE, code))


def _shot(page: Any, locator: Any, name: str) -> Path:
    """A screenshot of the panel in context (the viewport around it), and of the panel alone."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    locator.screenshot(path=str(ARTIFACTS / f"{name}-panel.png"))
    return path


def _panel_text(locator: Any) -> str:
    return " ".join(str(locator.inner_text()).split())


# --- tests --------------------------------------------------------------------------------


def test_quickstart_panel_runs_to_finished_in_jupyterlab(lab: Lab, page: Any) -> None:
    started = time.monotonic()
    _open_notebook(page, lab, "quickstart.ipynb")
    _run_all(page)

    first = page.locator(PANEL).first
    first.wait_for(state="visible", timeout=90_000)
    # Mid-job: the remote batch is running and part of it is done.
    page.wait_for_function(
        """() => {
          const p = document.querySelector('.batchframe-panel');
          return p && p.classList.contains('batchframe-state-running')
                 && /remote: in_progress/.test(p.innerText)
                 && /[1-9][0-9]* succeeded/.test(p.innerText);
        }""",
        timeout=60_000,
        polling=100,
    )
    _shot(page, first, "quickstart-mid-job")
    mid_text = _panel_text(first)
    assert "batchframe job bf-" in mid_text
    assert "openai / gpt-4o-mini" in mid_text
    assert "Cancel" in mid_text

    page.locator(f"{PANEL}.batchframe-state-finished").first.wait_for(
        state="visible", timeout=90_000
    )
    state = _wait_all_executed(page, timeout=120)
    assert state["errors"] == 0

    first = page.locator(PANEL).first
    _shot(page, first, "quickstart-final")
    final_text = _panel_text(first)
    # The finished state and its numbers: 12 rows, 10 distinct requests (one row has no
    # text, two rows are the same review), every request answered.
    assert "finished" in final_text
    assert "10 / 10 done" in final_text
    assert "10 succeeded" in final_text
    assert "0 pending" in final_text
    assert "from 12 rows" in final_text
    assert "Cancel" not in final_text
    # Every panel in the notebook (the retry and the re-attach too) ends finished.
    panels = page.locator(PANEL)
    finished = page.locator(f"{PANEL}.batchframe-state-finished")
    assert panels.count() == finished.count() >= 3
    assert time.monotonic() - started < 150


def test_cancel_button_in_the_browser_cancels_the_remote_batch(lab: Lab, page: Any) -> None:
    _open_notebook(page, lab, "cancel.ipynb")
    _run_all(page)
    panel = page.locator(PANEL).first
    page.wait_for_function(
        """() => {
          const p = document.querySelector('.batchframe-panel');
          return p && p.classList.contains('batchframe-state-running')
                 && /remote: in_progress/.test(p.innerText);
        }""",
        timeout=60_000,
        polling=100,
    )
    _wait_all_executed(page, timeout=30)  # the cell is free: wait=False returned at once
    button = panel.locator(".batchframe-cancel")
    assert button.is_enabled()
    button.click()
    page.locator(f"{PANEL}.batchframe-state-cancelling").first.wait_for(
        state="visible", timeout=30_000
    )
    _shot(page, panel, "cancel-cancelling")
    page.locator(f"{PANEL}.batchframe-state-cancelled").first.wait_for(
        state="visible", timeout=60_000
    )
    _shot(page, panel, "cancel-final")
    text = _panel_text(panel)
    assert "cancelled" in text and "Cancelled:" in text
    assert "Cancel" not in text.replace("Cancelled", "").replace("cancelled", "")

    printed = _execute(page, CANCEL_CHECK)
    assert "ERROR" not in printed, printed
    line = next(x for x in printed.splitlines() if x.startswith("COUNTS"))
    rows, answered, errored, cancelled, state, cancels = line.split()[1:]
    assert state == "cancelled" and int(cancels) == 1  # the remote batch was cancelled
    assert int(rows) == 25 and int(answered) + int(errored) == 25
    assert int(cancelled) == int(errored) > 0  # every unanswered row says it was cancelled
