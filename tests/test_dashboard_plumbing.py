"""The undocumented dashboard API the throughput page stands on: checked against the installed
distributed on a real scheduler. If an upgrade of distributed moves any of it, these fail and
name what moved, instead of the page going missing quietly."""

from __future__ import annotations

import contextlib
import logging
import urllib.error
from collections.abc import Iterator
from typing import Any

import dashboard_helpers as sim
import pytest
from distributed import Client, LocalCluster

from pipeline import dashboard
from pipeline.dashboard import plumbing

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def cluster(
    dashboard_address: str | None = "127.0.0.1:0", *, deferred: bool = False
) -> Iterator[tuple[Any, Client]]:
    """A cluster whose scheduler serves Dask's pages from the start, or (`deferred`) from the
    first request, as the pipeline's local cluster does."""
    with (
        LocalCluster(
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            n_workers=1,
            threads_per_worker=1,
            dashboard_address=dashboard_address,
            scheduler_kwargs={"dashboard": False} if deferred else None,
        ) as lc,
        Client(lc) as client,
    ):
        if deferred:
            client.run_on_scheduler(lambda dask_scheduler: plumbing.defer_pages(dask_scheduler))
        yield lc.scheduler, client


def test_every_piece_is_where_the_page_expects_it() -> None:
    with cluster() as (scheduler, _):
        assert plumbing.problems(scheduler) == []
        assert isinstance(plumbing.dask_pages(scheduler).prefix, str)


def test_page_is_served_with_a_navbar_tab_on_every_page() -> None:
    with cluster() as (scheduler, client):
        url = dashboard.register(client)
        assert url.endswith("/throughput")
        assert plumbing.serves(scheduler, dashboard.PAGE_PATH)
        status, html = sim.http_get(url)
        assert status == 200
        assert "Dask" in html, "the page must have Dask's template"
        assert 'href="throughput"' in sim.http_get(url.replace("/throughput", "/status"))[1]
        assert 'href="throughput"' in html


def test_the_task_stream_records_before_anyone_opens_status() -> None:
    """Dask installs its task-stream recorder when a page first needs it; the plugin installs it
    when it starts, so /status opened after a run still shows that run's tasks."""
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    with cluster() as (scheduler, client):
        dashboard.register(client)
        client.gather(client.map(lambda x: x + 1, range(20), pure=False))
        recorder = scheduler.plugins[TaskStreamPlugin.name]
        assert len(recorder.buffer) >= 20
        status, html = sim.http_get(client.dashboard_link)
        assert status == 200
        assert "Task Stream" in html


def test_a_broken_plumbing_is_an_error_not_a_missing_page(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with cluster() as (scheduler, client):
        monkeypatch.setattr(type(scheduler.http_application), "add_application", None)
        monkeypatch.delattr(type(scheduler.http_application), "add_application")
        with pytest.raises(plumbing.PlumbingError, match=r"http_application\.add_application"):
            plumbing.mount(scheduler, "/elsewhere", lambda *args: None)
        with caplog.at_level(logging.ERROR):
            assert dashboard.register(client) == ""
        assert "No /throughput page on distributed" in caplog.text


def test_no_dashboard_no_page_and_no_error(caplog: pytest.LogCaptureFixture) -> None:
    with cluster(dashboard_address=None) as (scheduler, client):
        assert plumbing.dask_pages(scheduler) is None
        assert plumbing.mount(scheduler, "/elsewhere", lambda *args: None) is None
        assert dashboard.register(client) == ""
        assert "ERROR" not in caplog.text


def test_deferred_pages_are_mounted_by_the_first_request() -> None:
    with cluster(deferred=True) as (scheduler, client):
        url = dashboard.register(client)
        assert url.endswith("/throughput")
        assert plumbing.serves(scheduler, dashboard.PAGE_PATH)
        assert plumbing.dask_pages(scheduler) is None  # nothing mounted yet
        status, html = sim.http_get(url)  # mounts everything, then is redirected to the page
        assert status == 200
        assert "Dask" in html
        assert 'href="throughput"' in html
        assert plumbing.dask_pages(scheduler) is not None
        client.gather(client.map(lambda x: x + 1, range(5), pure=False))
        status, html = sim.http_get(client.dashboard_link)
        assert status == 200
        assert "Task Stream" in html


def test_a_deferred_page_closed_before_any_request_is_gone() -> None:
    with cluster(deferred=True) as (scheduler, client):
        dashboard.register(client)
        pending = scheduler.plugins[dashboard.PLUGIN_NAME].app
        plumbing.unmount(scheduler, pending, dashboard.PAGE_PATH)
        assert not plumbing.serves(scheduler, dashboard.PAGE_PATH)
        assert sim.http_get(client.dashboard_link)[0] == 200  # Dask's pages still come


def test_deferred_pages_that_cannot_be_mounted_are_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import distributed.dashboard.scheduler

    with cluster(deferred=True) as (_, client):
        monkeypatch.delattr(distributed.dashboard.scheduler, "connect")
        with caplog.at_level(logging.ERROR), pytest.raises(urllib.error.HTTPError) as refused:
            sim.http_get(client.dashboard_link)
        assert refused.value.code == 500
        refused.value.close()
        assert "distributed.dashboard.scheduler.connect" in caplog.text
