"""The throughput view: a run's snapshot turned into the page's lines, bars, table and progress."""

from __future__ import annotations

import pytest
from dashboard_helpers import batch

from pipeline.dashboard import state as tp_state
from pipeline.dashboard import view as tp_view


def test_view_rates_per_core_table_and_progress():
    state = tp_state.ThroughputState()
    state.add_run_event({"run": "r", "state": "discovered", "total": 100, "t": 100.0})
    for i in range(10):
        state.add_batch(batch(t=101.0 + i, busy=1.0, ok=4, nthreads=2))
    run = state.snapshot()["runs"]["r"]
    lines = tp_view.series(run)
    assert lines["workers"]["ys"][0][-1] == pytest.approx(4.0)
    assert lines["workers"]["ys_core"][0][-1] == pytest.approx(2.0)
    assert lines["cluster"]["y_core"][-1] == pytest.approx(2.0)
    row = {k: v[0] for k, v in tp_view.table(run).items()}
    assert row["rate"] == pytest.approx(4.0)
    assert row["ms_per_image"] == pytest.approx(250.0)
    assert tp_view.bars(run)["rate_per_core"] == [pytest.approx(2.0)]
    text = tp_view.progress(run, now=110.0)
    assert "40 / 100 images (40.0%)" in text
    assert "ETA 0:15" in text


def test_bars_average_only_the_bins_there_are():
    state = tp_state.ThroughputState()
    state.add_run_event({"run": "r", "state": "started", "t": 100.0})
    for i in range(3):
        state.add_batch(batch(t=101.0 + i, busy=1.0, ok=6, nthreads=3))
    state.add_run_event({"run": "r", "state": "finished", "t": 103.0})
    assert tp_view.bars(state.snapshot()["runs"]["r"])["rate_per_core"] == [2.0]
