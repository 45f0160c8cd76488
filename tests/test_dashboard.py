"""The /throughput page, its counters and report, with real clusters and real processes."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time

import cloudpickle
import dashboard_helpers as sim
import dask
import pytest
from bokeh.models import ColumnDataSource, LayoutDOM
from dask_procs import dask_cluster_procs
from distributed import Client, LocalCluster

from pipeline import dashboard
from pipeline.dashboard import state as tp_state
from pipeline.dashboard import view as tp_view
from pipeline.events import RUN_TOPIC, THROUGHPUT_TOPIC

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def local_client(**config):
    with (
        dask.config.set(config),
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client


def batch(worker="tcp://w:1", t=100.0, busy=1.0, run="r", nthreads=2, **counts):
    return {
        "run": run,
        "worker": worker,
        "nthreads": nthreads,
        "t": t,
        "busy": busy,
        **dict.fromkeys(sim.COUNT_KEYS, 0),
        **counts,
    }


def metrics_by_status(metrics, workers):
    totals = dict.fromkeys(sim.COUNT_KEYS, 0.0)
    for (name, worker, status), value in metrics.items():
        assert worker in workers, f"{worker} is not a worker of this cluster"
        key = status or name.removeprefix("pipeline_").removesuffix("_total")
        totals[key] += value
    return totals


def assert_run_matches(snap, run, expected, workers):
    data = snap["runs"][run]
    assert {k: data[k] for k in ("ok", "failed", "skipped")} == {
        k: expected[k] for k in ("ok", "failed", "skipped")
    }
    assert data["done"] == data["total"] == sum(expected[k] for k in ("ok", "failed", "skipped"))
    assert set(data["workers"]) == set(workers), "per-worker rows must be the real workers"
    for key in sim.COUNT_KEYS:
        assert sum(w[key] for w in data["workers"].values()) == expected[key], key
    assert all(w["nthreads"] == workers[a]["nthreads"] for a, w in data["workers"].items())


# --- pure state, no cluster ------------------------------------------------------------------


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
