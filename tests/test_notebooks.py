"""The notebooks in notebooks/, executed top to bottom in a real kernel, and the kernel story.

Each notebook runs with nbclient in an IPython kernel started from this interpreter (so it
sees this checkout of batchframe), with no API key: its first cell starts the bundled
emulator. A check cell appended in memory reports the objects the notebook built (the
joined frame, the Categorical, the typed columns), and the saved widget state shows that the
live panel reached its finished state with the job's real counts.

The last tests restart and interrupt kernels: a job survives its kernel (re-running the
cell or ``batchframe.attach`` re-attaches, nothing is submitted twice), and an interrupted
blocking wait leaves the job running in the background, where the panel's Cancel button
cancels it and every unanswered row says it was cancelled.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from batchframe.emulator import Emulator  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "batchframe-tests"
FACTS = "BATCHFRAME-FACTS "


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec for this interpreter, found before any user-level 'python3' spec."""
    root = tmp_path_factory.mktemp("jupyter-path")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "batchframe tests",
                "language": "python",
            }
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        yield KERNEL


def kernel_env(**extra: str) -> dict[str, str]:
    """A new user's environment: no keys, no batchframe settings, widgets on (progress auto)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BATCHFRAME_", "OPENAI_", "ANTHROPIC_", "PYTEST_"))
    }
    env.update(extra)
    return env


def execute(nb: Any, kernel_name: str, cwd: Path, env: dict[str, str]) -> Any:
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=120,
        resources={"metadata": {"path": str(cwd)}},
        store_widget_state=True,
    )
    client.execute(env=env)
    return nb


def facts_cell(expression: str) -> Any:
    return nbformat.v4.new_code_cell(
        f"import json as _json\nprint({FACTS!r} + _json.dumps({expression}, default=str))"
    )


def facts(nb: Any) -> dict[str, Any]:
    for cell in reversed(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and FACTS in output.get("text", ""):
                line = next(x for x in output["text"].splitlines() if x.startswith(FACTS))
                return dict(json.loads(line[len(FACTS) :]))
    raise AssertionError("the check cell printed nothing")


def cell_errors(nb: Any) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def panels(nb: Any) -> list[dict[str, str]]:
    """Every batchframe panel in the saved widget state: its state class and body HTML.

    In the order the cells display them (the widget-view outputs), so index 0 is the first
    panel a reader sees.
    """
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models: dict[str, Any] = saved.get("state", {})
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if not view:
                continue
            box = models.get(view["model_id"], {}).get("state", {})
            classes = box.get("_dom_classes", [])
            if "batchframe-panel" not in classes:
                continue
            state = next(c for c in classes if c.startswith("batchframe-state-"))
            html = ""
            for child in box.get("children", []):
                model = models[child.removeprefix("IPY_MODEL_")]
                for grandchild in model["state"].get("children", []):
                    leaf = models[grandchild.removeprefix("IPY_MODEL_")]["state"]
                    if leaf.get("_model_name") == "HTMLModel":
                        html += leaf.get("value", "")
            found.append({"state": state.removeprefix("batchframe-state-"), "html": html})
    return found


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ").split())


def load(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


# --- the notebooks as committed -------------------------------------------------------------


@pytest.mark.parametrize("name", ["quickstart.ipynb", "labelling.ipynb", "enrichment.ipynb"])
def test_notebooks_are_committed_clean(name: str) -> None:
    nb = load(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    source = "\n".join(c.source for c in nb.cells)
    assert "Emulator(" in source and 'os.environ.get("OPENAI_API_KEY")' in source
    assert "sk-" not in source  # no key ever lands in a notebook


# --- the notebooks, executed ----------------------------------------------------------------


def test_quickstart_runs_top_to_bottom(kernel_name: str, tmp_path: Path) -> None:
    nb = load("quickstart.ipynb")
    nb.cells.append(
        facts_cell(
            """{
            "rows": len(out),
            "same_index": list(out.index) == list(reviews.index),
            "columns": list(out.columns),
            "one_of_two": bool((out["summary"].notna() ^ out["summary_error"].notna()).all()),
            "errors": out["summary_error"].dropna().to_dict(),
            "first_errors": errors["summary_error"].to_dict(),
            "state": job.status().state,
            "retries": job.status().retries_scheduled,
            "jobs": batchframe.jobs()["state"].tolist(),
            "jobs_html": batchframe.jobs()._repr_html_(),
            "estimate_html": estimate._repr_html_(),
            "job_text": repr(job),
        }"""
        )
    )
    started = time.monotonic()
    execute(nb, kernel_name, tmp_path, kernel_env())
    assert cell_errors(nb) == []
    got = facts(nb)
    assert got["rows"] == 12 and got["same_index"]
    assert got["columns"][:2] == ["product", "review"]
    assert {"summary", "summary_error"} <= set(got["columns"])
    assert got["one_of_two"]
    # Before the retry: the row without text and the cut-off long review.
    first = got["first_errors"]
    assert set(first) == {"R-003", "R-004"}
    assert first["R-003"].startswith("missing value in column 'review'")
    assert first["R-004"].startswith("truncated")
    # After the retry with more room only the row that was never sent is left.
    assert set(got["errors"]) == {"R-003"}
    assert got["state"] == "finished"
    assert got["retries"] > 0  # the emulator's injected server errors were resubmitted
    assert got["jobs"] == ["finished", "finished"]
    assert "batchframe jobs (2, newest first)" in got["jobs_html"]
    assert "Estimate for gpt-4o-mini" in got["estimate_html"]
    assert "state: finished" in got["job_text"] and "10 / 10 done" in got["job_text"]

    shown = panels(nb)
    assert len(shown) == 3  # the batch, the retry, the re-attached job
    assert [p["state"] for p in shown] == ["finished"] * 3
    main = text_of(shown[0]["html"])
    assert "10 / 10 done · 100%" in main
    assert "10 succeeded" in main and "0 failed" in main and "0 pending" in main
    assert "from 12 rows" in main
    assert f"retries: {got['retries']}" in main
    assert "Done in" in main and "saved $" in main
    assert shown[2]["html"] == shown[0]["html"] or "10 / 10 done" in text_of(shown[2]["html"])
    assert time.monotonic() - started < 120


def test_labelling_gives_a_categorical_over_the_label_set(kernel_name: str, tmp_path: Path) -> None:
    nb = load("labelling.ipynb")
    nb.cells.append(
        facts_cell(
            """{
            "rows": len(labelled),
            "same_index": list(labelled.index) == list(tickets.index),
            "dtype": str(labelled["label"].dtype),
            "categories": list(labelled["label"].cat.categories),
            "labels": sorted(set(labelled["label"].dropna())),
            "errors": int(labelled["label_error"].notna().sum()),
            "answered": int(labelled["label"].notna().sum()),
            "queue": len(review_queue),
            "others": int((labelled["label"] == "other").sum()),
        }"""
        )
    )
    execute(nb, kernel_name, tmp_path, kernel_env())
    assert cell_errors(nb) == []
    got = facts(nb)
    labels = ["billing", "technical", "account", "shipping", "feedback", "other"]
    assert got["rows"] == 40 and got["same_index"]
    assert got["dtype"] == "category"
    assert got["categories"] == labels
    assert set(got["labels"]) <= set(labels)
    assert got["errors"] == 0 and got["answered"] == 40
    assert got["queue"] == got["others"]
    shown = panels(nb)
    assert [p["state"] for p in shown] == ["finished"]
    text = text_of(shown[0]["html"])
    assert "39 / 39 done" in text and "from 40 rows" in text  # one ticket is a duplicate


def test_enrichment_gives_typed_columns(kernel_name: str, tmp_path: Path) -> None:
    nb = load("enrichment.ipynb")
    nb.cells.append(
        facts_cell(
            """{
            "rows": len(enriched),
            "same_job": same_job.id == job_id,
            "dtypes": {c: str(t) for c, t in enriched.dtypes.items()},
            "categories": list(enriched["copy.category"].cat.categories),
            "tags_are_lists": all(isinstance(v, list) for v in enriched["copy.tags"]),
            "errors": int(enriched["copy_error"].notna().sum()),
        }"""
        )
    )
    execute(nb, kernel_name, tmp_path, kernel_env())
    assert cell_errors(nb) == []
    got = facts(nb)
    assert got["rows"] == 15 and got["same_job"] and got["errors"] == 0
    dtypes = got["dtypes"]
    assert dtypes["copy.description"] == "string"
    assert dtypes["copy.category"] == "category"
    assert dtypes["copy.gift_friendly"] == "boolean"
    assert got["categories"] == ["kitchen", "office", "audio", "outdoor", "stationery"]
    assert got["tags_are_lists"]
    shown = panels(nb)
    assert [p["state"] for p in shown] == ["finished", "finished"]  # the job, then attach()
    for panel in shown:
        assert "15 / 15 done" in text_of(panel["html"])


# --- kernels die, cells get interrupted -----------------------------------------------------

SUBMIT = """
import batchframe
import pandas as pd

df = pd.DataFrame({"text": [f"item number {i}" for i in range(30)]})
job = df.llm.batch("Describe {text}", model="gpt-4o-mini", output="d", max_tokens=20, wait=False)
print("JOB", job.id)
"""


def _run_cells(
    kernel_name: str, cwd: Path, env: dict[str, str], sources: list[str], *, kill: bool
) -> Any:
    """Run cells in a fresh kernel; with ``kill`` the kernel is killed right after, mid-job."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel_name, timeout=60, resources={"metadata": {"path": str(cwd)}}
    )
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        client.set_widgets_metadata()
        if kill:  # SIGKILL: no cleanup, like a crash or a laptop's battery running out
            assert client.km is not None and client.km.provisioner is not None
            process = client.km.provisioner.process  # type: ignore[attr-defined]
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
    return nb


def _printed(nb: Any, prefix: str) -> str:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
    raise AssertionError(f"nothing printed {prefix!r}: {nb.cells}")


# Wait (inside the kernel, so the widget messages are recorded) until the panel shows the
# re-attached job running.
PANEL_RUNNING = """
import time
deadline = time.monotonic() + 30
while "batchframe-state-running" not in job._observer.widget._dom_classes:
    assert time.monotonic() < deadline, job._observer.widget._dom_classes
    time.sleep(0.1)
time.sleep(0.5)
"""


def test_job_survives_kernel_restarts(kernel_name: str, tmp_path: Path) -> None:
    with Emulator(processing_seconds=6, seed=3) as emu:
        env = kernel_env(
            OPENAI_API_KEY="emulator-key",
            OPENAI_BASE_URL=emu.openai_base_url,
            BATCHFRAME_HOME=str(tmp_path / "home"),
            BATCHFRAME_POLL_INTERVAL="0.3",
        )
        # Kernel 1 submits and dies mid-job.
        first = _run_cells(
            kernel_name,
            tmp_path,
            env,
            [SUBMIT, "import time; job.wait_submitted(30); time.sleep(0.5)"],
            kill=True,
        )
        job_id = _printed(first, "JOB")
        assert emu.stats()["batches_created"] == 1, first.cells

        # Kernel 2 re-runs the same cell: the same job, re-attached, nothing sent again.
        second = _run_cells(kernel_name, tmp_path, env, [SUBMIT, PANEL_RUNNING], kill=True)
        assert _printed(second, "JOB") == job_id
        assert cell_errors(second) == []
        assert emu.stats()["batches_created"] == 1
        [panel] = panels(second)
        assert panel["state"] == "running"
        assert job_id in panel["html"] and "batches: 1 in flight / 1 total" in text_of(
            panel["html"]
        )

        # Kernel 3 attaches by id and collects the results.
        third = _run_cells(
            kernel_name,
            tmp_path,
            env,
            [
                f"import batchframe\njob = batchframe.attach({job_id!r})",
                "out = job.result()\n"
                "print('ROWS', len(out), int(out['d'].notna().sum()), job.status().state)",
            ],
            kill=False,
        )
        assert cell_errors(third) == []
        assert _printed(third, "ROWS") == "30 30 finished"
        stats = emu.stats()
        assert stats["batches_created"] == 1 and stats["duplicate_submissions"] == 0
        [panel] = panels(third)
        assert panel["state"] == "finished"
        assert "30 / 30 done" in text_of(panel["html"])


INTERRUPTED_WAIT = """
import os, signal, threading, time

def interrupt_once_submitted():
    # The kernel's stop button sends SIGINT: send it ourselves once the batch is running.
    deadline = time.monotonic() + 60
    while emulator.stats()["batches_created"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_once_submitted, daemon=True).start()
try:
    df.llm.batch("Describe {text}", model="gpt-4o-mini", output="d", max_tokens=20, client=client)
except KeyboardInterrupt:
    print("INTERRUPTED")
"""

PRESS_CANCEL = """
import time
import ipywidgets

time.sleep(0.5)
job_id = batchframe.jobs()["job_id"].iloc[0]
registry = getattr(ipywidgets.widgets.widget, "_instances", None) or ipywidgets.Widget.widgets
[button] = [
    w for w in list(registry.values())
    if isinstance(w, ipywidgets.Button) and "batchframe-cancel" in w._dom_classes
]
print("STATE", batchframe.attach(job_id, progress=False, client=client).status(refresh=False).state)
button.click()  # what the frontend does when the Cancel button is pressed
"""

COLLECT = """
job = batchframe.attach(job_id, client=client)
out = job.result()
errors = out["d_error"].dropna()
print("COUNTS", len(out), int(out["d"].notna().sum()), len(errors),
      int(errors.str.contains("cancelled").sum()), job.status().state,
      emulator.stats()["cancels"])
"""


def test_interrupted_wait_keeps_the_job_and_cancel_reaches_every_row(
    kernel_name: str, tmp_path: Path
) -> None:
    setup = (
        "import os, tempfile\n"
        "import pandas as pd\n"
        "import batchframe\n"
        "from batchframe.emulator import Emulator\n"
        "emulator = Emulator(processing_seconds=60).start()\n"
        "client = emulator.openai_client()\n"
        "os.environ['BATCHFRAME_HOME'] = tempfile.mkdtemp()\n"
        "os.environ['BATCHFRAME_POLL_INTERVAL'] = '0.3'\n"
        'df = pd.DataFrame({"text": [f"item number {i}" for i in range(30)]})\n'
    )
    nb = _run_cells(
        kernel_name,
        tmp_path,
        kernel_env(),
        # The last cell gives the first panel's final update time to arrive.
        [setup, INTERRUPTED_WAIT, PRESS_CANCEL, COLLECT, "import time; time.sleep(1.0)"],
        kill=False,
    )
    assert cell_errors(nb) == []
    assert _printed(nb, "INTERRUPTED") == ""
    # After the interrupt the job was still running: the wait stopped, not the job.
    assert _printed(nb, "STATE") == "running"
    rows, answered, errored, cancelled, state, cancels = _printed(nb, "COUNTS").split()
    assert state == "cancelled" and int(cancels) >= 1
    assert int(rows) == 30 and int(answered) + int(errored) == 30
    assert int(cancelled) == int(errored) > 0  # every unanswered row says it was cancelled
    first = panels(nb)[0]
    assert first["state"] == "cancelled"
    assert "Cancelled:" in text_of(first["html"])
