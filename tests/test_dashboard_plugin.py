"""The throughput plugin and page: registration, snapshots, the served page and its report,
with real clusters and real processes (the state, view and metrics modules have their own)."""

from __future__ import annotations

import importlib.util
import json
import time

import cloudpickle
import dashboard_helpers as sim
import pytest
from bokeh.models import ColumnDataSource, LayoutDOM
from dashboard_helpers import assert_run_matches, batch, local_client, metrics_by_status
from dask_procs import dask_cluster_procs
from distributed import Client, LocalCluster

from pipeline import dashboard
from pipeline.dashboard import state as tp_state
from pipeline.events import RUN_TOPIC, THROUGHPUT_TOPIC

pytestmark = pytest.mark.timeout(120)


# --- the page and its link, no cluster -------------------------------------------------------


def test_report_is_standalone_html(tmp_path):
    state = tp_state.ThroughputState()
    for i in range(5):
        state.add_batch(batch(worker="tcp://10.0.0.7:4001", t=101.0 + i, ok=10))
    path = tmp_path / "throughput.html"
    dashboard.save_throughput_report(json.loads(json.dumps(state.snapshot())), path)
    html = path.read_text()
    assert "tcp://10.0.0.7:4001" in html
    assert "Images/s per core" in html
    assert "cdn.bokeh.org" not in html, "bokeh JS must be inline"
    assert len(html) > 500_000, "bokeh JS must be inline"
    layout = dashboard.throughput_figure(state.snapshot())
    assert isinstance(layout, LayoutDOM)
    sources = {s.name: s for s in layout.select({"type": ColumnDataSource})}
    assert sources["tp-workers"].data["ys"][0], "the report's curves must have points"


def test_page_url_from_dashboard_link():
    class FakeClient:
        dashboard_link = "http://127.0.0.1:8787/status"

    assert dashboard.page_url(FakeClient()) == "http://127.0.0.1:8787/throughput"
    FakeClient.dashboard_link = None
    assert dashboard.page_url(FakeClient()) == ""


# --- a real LocalCluster -------------------------------------------------------------------


def test_local_cluster_page_totals_metrics_and_event_log_wrap(tmp_path):
    log_length = 40
    with local_client(**{"distributed.admin.low-level-log-length": log_length}) as (cluster, c):
        url = dashboard.register(c)
        assert url.endswith("/throughput")
        assert url == dashboard.register(c)
        n, every = 600, 2  # 300 events: far more than the scheduler keeps
        expected = sim.run_simulation(c, n, "run-1", npartitions=6, every=every)
        assert len(c.get_events(THROUGHPUT_TOPIC)) == log_length, "the event log must wrap"

        workers = c.scheduler_info(n_workers=-1)["workers"]
        snap = dashboard.snapshot(c)
        assert_run_matches(snap, "run-1", expected, workers)
        assert snap["runs"]["run-1"]["state"] == "finished"
        metrics = sim.pipeline_metrics(url.replace("/throughput", "/metrics"))
        assert metrics_by_status(metrics, workers) == expected

        status, html = sim.http_get(url)
        assert status == 200
        assert "Bokeh" in html
        assert "Dask" in html
        assert 'href="throughput"' in sim.http_get(url.replace("/throughput", "/status"))[1]
        apps = cluster.scheduler.http_application.applications
        assert sum("/throughput" in getattr(a, "app_paths", ()) for a in apps) == 1
        dashboard.save_throughput_report(snap, tmp_path / "report.html")
        assert "run-1" in (tmp_path / "report.html").read_text()


def test_events_logged_before_registration_are_counted_once():
    # The runner registers the plugin after the first images are sent: their events may be first.
    with local_client() as (_, c):
        expected = sim.run_simulation(c, 60, "early", npartitions=3)
        dashboard.register(c)
        more = sim.run_simulation(c, 20, "later", npartitions=1)
        workers = c.scheduler_info(n_workers=-1)["workers"]
        snap = dashboard.snapshot(c)
        assert_run_matches(snap, "early", expected, workers)
        assert snap["runs"]["later"]["done"] == sum(more[k] for k in ("ok", "failed", "skipped"))
        dashboard.register(c)  # already there: nothing is replayed twice
        assert_run_matches(dashboard.snapshot(c), "early", expected, workers)


def test_without_a_dashboard_the_plugin_still_counts():
    with (
        LocalCluster(
            processes=True, n_workers=1, threads_per_worker=1, dashboard_address=None
        ) as lc,
        Client(lc) as c,
    ):
        assert dashboard.register(c) == ""
        sim.run_simulation(c, 20, "quiet", npartitions=1)
        assert dashboard.snapshot(c)["runs"]["quiet"]["ok"] == 16


def test_registering_twice_keeps_one_plugin_and_its_counts():
    with local_client() as (cluster, c):
        dashboard.register(c)
        sim.run_simulation(c, 50, "a", npartitions=2)
        plugin = cluster.scheduler.plugins[dashboard.PLUGIN_NAME]
        dashboard.register(c)
        assert cluster.scheduler.plugins[dashboard.PLUGIN_NAME] is plugin
        assert dashboard.snapshot(c)["runs"]["a"]["done"] == 50


def test_client_run_events_without_batches_show_progress():
    with local_client() as (_, c):
        dashboard.register(c)
        c.log_event(RUN_TOPIC, {"run": "x", "state": "discovered", "total": 7, "t": time.time()})
        snap = sim.wait_until(lambda: dashboard.snapshot(c)["runs"], 10, "run event not seen")
        assert snap["x"]["total"] == 7
        assert snap["x"]["done"] == 0


# --- a real `dask scheduler` without this package -------------------------------------------


def test_remote_scheduler_without_the_package():
    with dask_cluster_procs(nworkers=2, hide=["pipeline"]) as procs, Client(procs.address) as c:
        assert c.run_on_scheduler(lambda: importlib.util.find_spec("pipeline") is None)
        assert all(c.run(lambda: importlib.util.find_spec("pipeline") is None).values())
        url = dashboard.register(c)
        assert url == f"{procs.dashboard_url}/throughput" == dashboard.register(c)
        cloudpickle.register_pickle_by_value(sim)  # the simulated task, for the workers
        try:
            expected = sim.run_simulation(c, 300, "remote", npartitions=6)
        finally:
            cloudpickle.unregister_pickle_by_value(sim)
        workers = c.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2
        assert_run_matches(dashboard.snapshot(c), "remote", expected, workers)
        assert (
            metrics_by_status(sim.pipeline_metrics(f"{procs.dashboard_url}/metrics"), workers)
            == expected
        )
        status, html = sim.http_get(url)
        assert status == 200, procs.log_text()
        assert "Bokeh" in html
