"""The CLI's dashboard options: the link at start, HTML reports after, --keep-alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import PIPELINE_ENV, REPO, reap, run_cli


def test_link_at_start_and_html_reports_after(tree: Path, tmp_path: Path) -> None:
    throughput, performance = tmp_path / "throughput.html", tmp_path / "perf.html"
    result = run_cli("run", "--input", tree, "--output", tmp_path / "out", "--workers", "2",
                     "--throughput-report", throughput,
                     "--performance-report", performance)  # fmt: skip
    assert result.code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Dask dashboard: http://127.0.0.1:")
    assert "/throughput" in first
    page = throughput.read_text()
    assert "Images/s per core" in page
    assert "cdn.bokeh.org" not in page  # standalone: opens offline
    assert "Dask Performance Report" in performance.read_text()


def test_keep_alive_keeps_the_dashboard_until_interrupted(tree: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    argv = [sys.executable, "-m", "pipeline", "run", "--input", str(tree), "--output",
            str(tmp_path / "out"), "--workers", "1", "--keep-alive"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[1].startswith("done: 6 images"), lines
        assert lines[2].startswith("dashboard stays up at http://127.0.0.1:"), lines
        link = lines[0].split("(throughput: ")[1].rstrip(")\n")
        with urllib.request.urlopen(link, timeout=10) as response:
            assert response.status == 200
        # Dask's own pages (mounted by the first request to the dashboard)
        with urllib.request.urlopen(link.replace("/throughput", "/status"), timeout=10) as page:
            assert page.status == 200
            assert b"Dask" in page.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        reap(proc)
