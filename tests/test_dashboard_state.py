"""The throughput state: exact per-worker totals and binned images/s, one event at a time."""

from __future__ import annotations

import pytest
from dashboard_helpers import batch

from pipeline.dashboard import state as tp_state


def test_state_spreads_images_over_busy_time_and_keeps_exact_totals():
    state = tp_state.ThroughputState()
    state.add_run_event({"run": "r", "state": "started", "t": 100.0})
    state.add_batch(batch(t=103.0, busy=2.0, ok=8, failed=2, skipped=5, bytes_read=7))
    state.add_batch({"worker": "tcp://w:1", "t": "not a time"})  # dropped, logged
    state.add_batch(batch(t=float("inf")))  # dropped: would loop forever coarsening
    run = state.snapshot()["runs"]["r"]
    assert (run["ok"], run["failed"], run["skipped"], run["done"]) == (8, 2, 5, 15)
    assert run["series"]["images"]["tcp://w:1"] == pytest.approx([0.0, 5.0, 5.0])
    assert state.snapshot()["totals"]["tcp://w:1"]["bytes_read"] == 7


def test_state_coarsens_bins_without_losing_images():
    state = tp_state.ThroughputState()
    for i in range(3 * tp_state.MAX_BINS):
        state.add_batch(batch(t=100.0 + i + 1, busy=1.0, ok=3))
    series = state.snapshot()["runs"]["r"]["series"]
    assert series["bin_s"] == 4.0
    assert len(series["images"]["tcp://w:1"]) <= tp_state.MAX_BINS
    assert sum(series["images"]["tcp://w:1"]) == pytest.approx(9 * tp_state.MAX_BINS)


def test_state_keeps_the_newest_runs_but_all_metrics():
    state = tp_state.ThroughputState()
    for i in range(tp_state.MAX_RUNS + 3):
        state.add_batch(batch(run=f"r{i}", t=100.0 + i, ok=1))
    snap = state.snapshot()
    assert len(snap["runs"]) == tp_state.MAX_RUNS
    assert snap["current"] == f"r{tp_state.MAX_RUNS + 2}"
    assert snap["totals"]["tcp://w:1"]["ok"] == tp_state.MAX_RUNS + 3
