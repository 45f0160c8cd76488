"""The notebooks run top to bottom in a clean kernel of this venv; pipeline.notebook's helpers.

Each notebook is executed with nbclient in a temporary folder, on its own small generated
data; the executed copy is written there too (never back into notebooks/), so a failure can
be inspected. The kernel is a "python3" kernelspec made for sys.executable in a temporary
JUPYTER_PATH, so a user's or the system's "python3" kernel cannot stand in for this venv.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import pipeline
from pipeline import notebook
from pipeline.report import RunReport
from pipeline.samples import write_samples

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CELL_TIMEOUT = 120
WHICH_PYTHON = "import sys; print('kernel python:', sys.executable)"


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A "python3" kernelspec running this interpreter, found before any other; no user config."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (test)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


def execute(name: str, folder: Path) -> nbformat.NotebookNode:
    """Run notebooks/<name> in `folder` (its working directory); save the executed copy there."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(WHICH_PYTHON))
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, folder / name)
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def html_of(nb: nbformat.NotebookNode) -> str:
    return "\n".join(out.get("data", {}).get("text/html", "") for out in outputs(nb))


def text_of(nb: nbformat.NotebookNode) -> str:
    return "\n".join(out.get("text", "") for out in outputs(nb))


def mimes_of(nb: nbformat.NotebookNode) -> set[str]:
    return {mime for out in outputs(nb) for mime in out.get("data", {})}


def assert_common(nb: nbformat.NotebookNode) -> None:
    assert f"kernel python: {sys.executable}\n" in text_of(nb)
    html = html_of(nb)
    assert "<th>images_per_second</th>" in html  # the report's summary table
    assert "done: 12 images: 12 ok, 0 skipped, 0 failed" in html
    assert html.count('src="data:image/jpeg;base64,') >= 4  # show_pairs: inputs and outputs
    assert "application/vnd.jupyter.widget-view+json" in mimes_of(nb)  # the progress bar
    assert "Throughput page: http://127.0.0.1:" in text_of(nb)


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("python3_kernel")
def test_local_run_notebook(tmp_path: Path) -> None:
    nb = execute("01-local-run.ipynb", tmp_path)
    assert_common(nb)
    html = html_of(nb)
    assert html.count('src="data:image/jpeg;base64,') == 8
    assert "<table" in html
    assert "sideways-6.jpg" in html
    assert "application/vnd.bokehjs_exec.v0+json" in mimes_of(nb)  # the throughput plot
    assert "done: 12 images: 0 ok, 12 skipped, 0 failed" in text_of(nb)
    for rendition in (">avif</th>", ">webp</th>", ">1280</th>", ">320</th>"):
        assert rendition in html  # the outputs of the srcset run, by format and size


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("python3_kernel")
def test_existing_cluster_notebook(tmp_path: Path) -> None:
    nb = execute("02-existing-cluster.ipynb", tmp_path)
    assert_common(nb)
    assert "Client-" in html_of(nb)  # connected through the scheduler file


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("python3_kernel")
def test_existing_cluster_notebook_connects_to_dask_scheduler_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dask_procs import dask_cluster_procs
    from distributed import Client

    with dask_cluster_procs(nworkers=2) as procs:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", procs.address)
        nb = execute("02-existing-cluster.ipynb", tmp_path)
        assert_common(nb)
        assert f"Throughput page: {procs.dashboard_url}/throughput" in text_of(nb)
        with Client(procs.address) as client:  # it ran here, and left the cluster running
            assert len(client.scheduler_info()["workers"]) == 2
            assert sum(e["ok"] for _, e in client.get_events("pipeline-throughput")) == 12


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_committed_stripped(path: Path) -> None:
    """No outputs or counts in git, the "python3" kernel, a markdown cell before each code cell."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}
    previous = None
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None
            assert previous == "markdown", cell.source
            assert "from tests" not in cell.source
            assert "import tests" not in cell.source
        previous = cell.cell_type
    verify = [sys.executable, "-m", "nbstripout", "--verify", str(path)]
    assert subprocess.run(verify, capture_output=True).returncode == 0


# -- pipeline.notebook ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> RunReport:
    """A real run of 6 small samples on an in-process one-worker cluster."""
    from distributed import Client, LocalCluster

    root = tmp_path_factory.mktemp("nbhelpers")
    write_samples(root / "in", count=6, scale=0.05)
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        return pipeline.run(root / "in", root / "out", client=client)


@pytest.mark.parametrize("n", [1, 3])
def test_pairs_html_shows_n_pairs(finished: RunReport, n: int) -> None:
    html = notebook.pairs_html(finished, n=n, size=64)
    assert html.count("<figure") == 2 * n
    assert html.count('src="data:image/jpeg;base64,') == 2 * n
    assert notebook.show_pairs(finished, n=n, size=64).data == html


def test_pairs_html_marks_exif_orientation(finished: RunReport) -> None:
    html = notebook.pairs_html(finished, n=6)
    assert "EXIF orientation 6" in html  # sideways-6.jpg as stored


def test_pairs_html_needs_records(finished: RunReport) -> None:
    with pytest.raises(ValueError, match="records"):
        notebook.pairs_html(RunReport(run_id="x"))


def fake_report(done: int, discovered: int, failed: int = 0, run_id: str = "r1") -> RunReport:
    report = RunReport(run_id=run_id)
    report.discovered = discovered
    report.counts.update(ok=done - failed, failed=failed)
    report.seconds = 2.0
    return report


def test_progress_bar_text_fallback() -> None:
    out = io.StringIO()
    bar = notebook.ProgressBar(stream=out)  # pytest is no kernel: text
    assert not bar.use_widget
    bar(fake_report(3, 10))
    bar(fake_report(10, 10, failed=1))
    bar(fake_report(2, 2, run_id="r2"))
    assert out.getvalue() == (
        "\r3/10 images, 1.5 images/s"
        "\r10/10 images, 1 failed, 5.0 images/s\n"
        "\r2/2 images, 1.0 images/s\n"
    )
    assert bar.text == "2/2 images, 1.0 images/s"


def test_progress_bar_widget_outside_a_kernel() -> None:
    pytest.importorskip("ipywidgets")
    bar = notebook.ProgressBar(widget=True)
    bar(fake_report(4, 8))
    bar(fake_report(8, 8, failed=2))
    assert (bar._bar.value, bar._bar.max, bar._bar.bar_style) == (8, 8, "danger")
    assert bar._label.value == "8/8 images, 2 failed, 4.0 images/s"


def test_import_does_no_work() -> None:
    code = "import sys, pipeline.notebook; print({'IPython', 'ipywidgets'} & set(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"
