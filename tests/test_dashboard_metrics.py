"""The pipeline counters on the scheduler's /metrics, with real clusters in one process."""

from __future__ import annotations

import dashboard_helpers as sim
import pytest
from dashboard_helpers import local_client, metrics_by_status

from pipeline import dashboard

pytestmark = pytest.mark.timeout(120)


def _served_metric_names():
    from prometheus_client import REGISTRY

    return {family.name for family in REGISTRY.collect()}


def test_two_schedulers_in_one_process_keep_their_own_counts(caplog):
    """/metrics is one registry per process: the first plugin's counters are served there, the
    second says why its are not, and both pages and snapshots keep their own counts."""
    with local_client() as (_, a):
        url_a = dashboard.register(a)
        sim.run_simulation(a, 40, "a", npartitions=2)
        workers_a = a.scheduler_info(n_workers=-1)["workers"]
        with local_client() as (_, b):
            assert dashboard.register(b).endswith("/throughput")
            sim.run_simulation(b, 60, "b", npartitions=2)
            assert dashboard.snapshot(b)["runs"]["b"]["done"] == 60
            assert "already on this process's /metrics" in caplog.text
            served = sim.pipeline_metrics(url_a.replace("/throughput", "/metrics"))
            assert {w for _, w, _ in served} == set(workers_a)
        assert metrics_by_status(served, workers_a)["ok"] == 32
        assert "pipeline_images" in _served_metric_names()
    assert "pipeline_images" not in _served_metric_names(), "the collector must leave with them"
