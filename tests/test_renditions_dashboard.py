"""Renditions on the throughput page, in snapshots and on /metrics, from a real run."""

from __future__ import annotations

from pathlib import Path

from conftest import save_image
from dashboard_helpers import http_get, wait_until
from distributed import Client, LocalCluster

import pipeline
from pipeline import dashboard
from pipeline.dashboard import page, view


def test_outputs_by_format_and_size_are_shown_and_served(tmp_path: Path) -> None:
    for i in range(3):
        save_image(tmp_path / "in" / f"p{i}.png", (400, 300), seed=i)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        url = dashboard.register(client)
        report = pipeline.run(
            tmp_path / "in", tmp_path / "out", client=client, sizes=[300, 100],
            formats="jpeg,webp",
        )  # fmt: skip
        assert report.counts["ok"] == 3

        def written() -> dict[str, dict[str, int]]:
            run = dashboard.snapshot(client)["runs"].get(report.run_id, {})
            outputs: dict[str, dict[str, int]] = run.get("outputs", {})
            return outputs if sum(v["files"] for v in outputs.values()) == 12 else {}

        outputs = wait_until(written, 20, "the outputs of the run never reached the page")
        assert sorted(outputs) == ["jpeg 100", "jpeg 300", "webp 100", "webp 300"]
        on_disk = {p.name: p.stat().st_size for p in (tmp_path / "out").iterdir()}
        assert outputs["webp 100"]["bytes"] == sum(
            size for name, size in on_disk.items() if name.endswith("-100.webp")
        )
        run = dashboard.snapshot(client)["runs"][report.run_id]
        rows = view.outputs(run)
        assert list(zip(rows["format"], rows["size"], rows["files"], strict=True)) == [
            ("jpeg", 300, 3), ("jpeg", 100, 3), ("webp", 300, 3), ("webp", 100, 3),
        ]  # fmt: skip
        assert "12 files in 4 renditions" in view.progress(run)
        _, text = http_get(url.replace("/throughput", "/metrics"))
        lines = [line for line in text.splitlines() if "pipeline_outputs_written_total{" in line]
        assert len(lines) == 4
        assert any('format="webp"' in line and 'size="100"' in line for line in lines)
        html = tmp_path / "throughput.html"
        page.save_throughput_report(dashboard.snapshot(client), html, run=report.run_id)
        assert "tp-outputs" in html.read_text()
