"""Live per-core throughput on the Dask dashboard (`/throughput`) and its after-run report.

`register(client)` ships `ThroughputPlugin` to the scheduler *by value* (cloudpickle), so it
also works on a plain `dask scheduler` that lacks this package: there it only needs
distributed, bokeh and tornado (and prometheus_client for /metrics). Workers feed the plugin
with `get_worker().log_event(THROUGHPUT_TOPIC, BatchEvent)`, the client with
`client.log_event(RUN_TOPIC, RunEvent)`; the scheduler calls the plugin's `log_event` hook
for every event, so the totals stay exact however short the scheduler's event log is.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from pipeline import _throughput_metrics, _throughput_page, _throughput_state, _throughput_view
from pipeline import events as _events

logger = logging.getLogger(__name__)

PLUGIN_NAME = "pipeline-throughput"


class ThroughputPlugin(SchedulerPlugin):
    """Counts throughput events on the scheduler, serves `/throughput` and /metrics counters."""

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        self.state = _throughput_state.ThroughputState()
        self._scheduler: Any = None
        self._app: Any = None
        self._metrics = False
        self._closed = False

    async def start(self, scheduler: Any) -> None:
        self._scheduler = scheduler
        self._replay(scheduler)
        self._metrics = _throughput_metrics.attach(self.state)
        _throughput_page.when_served(scheduler, self._mount_page)

    def _mount_page(self) -> None:
        if self._closed or self._app is not None:
            return
        try:
            self._app = _throughput_page.mount(self._scheduler, self._current_run)
        except Exception:  # no page is better than a scheduler that refuses the plugin
            logger.exception("Could not mount %s", _throughput_page.PAGE_PATH)

    async def close(self) -> None:
        self._closed = True
        if self._metrics:
            _throughput_metrics.detach(self.state)
            self._metrics = False
        if self._app is not None:
            _throughput_page.unmount(self._scheduler, self._app)
            self._app = None

    def _replay(self, scheduler: Any) -> None:
        """Count the events logged before this plugin was registered, oldest first.

        The runner registers it once the first images are on their way, so a run's first
        events may already be in the scheduler's event log (its last
        `distributed.admin.low-level-log-length` per topic). Nothing is awaited between this
        and the scheduler adding the plugin, so no event is counted twice or missed.
        """
        topics = (_events.RUN_TOPIC, _events.THROUGHPUT_TOPIC)
        logged = [(t, topic, msg) for topic in topics for t, msg in scheduler.get_events(topic)]
        for _, topic, msg in sorted(logged, key=lambda event: event[0]):
            self.log_event(topic, msg)

    def log_event(self, topic: str, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if topic == _events.THROUGHPUT_TOPIC:
            if not msg.get("nthreads") and self._scheduler is not None:
                worker = self._scheduler.workers.get(msg.get("worker"))
                msg = {**msg, "nthreads": worker.nthreads if worker else 1}
            self.state.add_batch(msg)
        elif topic == _events.RUN_TOPIC:
            self.state.add_run_event(msg)

    def _current_run(self) -> dict[str, Any] | None:
        """The newest run of the plugin registered now (looked up by name: it may be replaced)."""
        plugins = getattr(self._scheduler, "plugins", {})
        run = plugins.get(PLUGIN_NAME, self).state.current()
        return run.to_dict() if run is not None else None


def register(client: Any) -> str:
    """Install the plugin on the client's scheduler (a no-op if it is there); return the page URL.

    The URL is `client.dashboard_link` with `/status` replaced by `/throughput`, or "" when the
    scheduler serves no dashboard (so no page).
    """
    with _pickled_by_value():
        client.register_plugin(ThroughputPlugin())
        served = client.run_on_scheduler(_page_is_served)
    return page_url(client) if served else ""


def _page_is_served(dask_scheduler: Any = None) -> bool:
    """Whether the page is served, or will be with Dask's pages on their first request."""
    apps = getattr(getattr(dask_scheduler, "http_application", None), "applications", [])
    return any(
        _throughput_page.PAGE_PATH in getattr(app, "app_paths", ())
        or (_throughput_page.stands_in(app) and not app.mounted)
        for app in apps
    )


def page_url(client: Any) -> str:
    """Where the page is, derived from the client's dashboard link; "" without a dashboard."""
    try:
        link = client.dashboard_link or ""
    except (AttributeError, KeyError):
        return ""
    if not link:
        return ""
    base = link[: -len("status")] if link.endswith("/status") else link.rstrip("/") + "/"
    return base + _throughput_page.PAGE_PATH.strip("/")


def snapshot(client: Any) -> dict[str, Any]:
    """The plugin's state, JSON-able: per-worker totals, binned time series and runs."""
    with _pickled_by_value():
        snap: dict[str, Any] = client.run_on_scheduler(_scheduler_snapshot)
    return snap


def _scheduler_snapshot(dask_scheduler: Any = None) -> dict[str, Any]:
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME) if dask_scheduler is not None else None
    state = plugin.state if plugin is not None else _throughput_state.ThroughputState()
    return state.snapshot()


def throughput_figure(snap: dict[str, Any], run: str | None = None) -> Any:
    """A bokeh layout of one run (default: the newest): curves, bars, table, progress.

    In a notebook: `bokeh.io.output_notebook(); bokeh.io.show(throughput_figure(snap))`.
    """
    layout, handles = _throughput_page.build()
    run_id = run if run is not None else snap.get("current")
    _throughput_page.fill(handles, snap.get("runs", {}).get(run_id), snap.get("generated"))
    return layout


def save_throughput_report(snap: dict[str, Any], path: str | Path, run: str | None = None) -> None:
    """Write a standalone HTML page (bokeh resources inline, opens offline) of one run."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    title = f"Pipeline throughput: run {run or snap.get('current') or '-'}"
    html = file_html(throughput_figure(snap, run), INLINE, title, theme=_dask_theme())
    Path(path).write_text(html, encoding="utf-8")


def _dask_theme() -> Any:
    try:
        from distributed.dashboard.components.scheduler import BOKEH_THEME
    except Exception:  # the report still renders in bokeh's default look
        return None
    return BOKEH_THEME


@contextlib.contextmanager
def _pickled_by_value() -> Iterator[None]:
    """Pickle our scheduler-side modules by value for the duration of one call.

    The scheduler unpickles the plugin (and `_scheduler_snapshot`); by value it needs only
    distributed, bokeh and tornado, not this package.
    """
    import cloudpickle

    modules = [
        _events,
        _throughput_state,
        _throughput_view,
        _throughput_page,
        _throughput_metrics,
        sys.modules[__name__],
    ]
    added = [m for m in modules if m.__name__ not in cloudpickle.list_registry_pickle_by_value()]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)
