"""The scheduler plugin behind `/throughput`, and the client-side calls that install and read it.

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
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from pipeline import events, record
from pipeline.dashboard import metrics, page, plumbing, state

logger = logging.getLogger(__name__)

PLUGIN_NAME = "pipeline-throughput"


class ThroughputPlugin(SchedulerPlugin):
    """Counts throughput events on the scheduler, serves `/throughput` and /metrics counters."""

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        self.state = state.ThroughputState()
        self.scheduler: Any = None
        self.app: Any = None
        self.collector: metrics.ThroughputCollector | None = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._replay(scheduler)
        self.collector = metrics.attach(self.state)
        try:
            self.app = plumbing.mount(scheduler, page.PAGE_PATH, self._make_doc)
            if self.app is not None:
                plumbing.record_task_stream(scheduler)
        except plumbing.PlumbingError:  # counting goes on; the page is what is lost
            from importlib.metadata import version

            logger.exception("No %s page on distributed %s", page.PAGE_PATH, version("distributed"))
        if self.app is None and plumbing.dask_pages(scheduler) is None:
            logger.info("The scheduler serves no dashboard: no %s page", page.PAGE_PATH)

    def _make_doc(self, scheduler: Any, extra: dict[str, Any], doc: Any) -> None:
        page.doc(self._current_run, scheduler, extra, doc)

    async def close(self) -> None:
        if self.collector is not None:
            metrics.detach(self.collector)
            self.collector = None
        if self.app is not None:
            plumbing.unmount(self.scheduler, self.app, page.PAGE_PATH)
            self.app = None

    def _replay(self, scheduler: Any) -> None:
        """Count the events logged before this plugin was registered, oldest first.

        The runner registers it once the first images are on their way, so a run's first
        events may already be in the scheduler's event log (its last
        `distributed.admin.low-level-log-length` per topic). Nothing is awaited between this
        and the scheduler adding the plugin, so no event is counted twice or missed.
        """
        topics = (events.RUN_TOPIC, events.THROUGHPUT_TOPIC)
        logged = [(t, topic, msg) for topic in topics for t, msg in scheduler.get_events(topic)]
        for _, topic, msg in sorted(logged, key=lambda event: event[0]):
            self.log_event(topic, msg)

    def log_event(self, topic: str, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if topic == events.THROUGHPUT_TOPIC:
            if not msg.get("nthreads") and self.scheduler is not None:
                worker = self.scheduler.workers.get(msg.get("worker"))
                msg = {**msg, "nthreads": worker.nthreads if worker else 1}
            self.state.add_batch(msg)
        elif topic == events.RUN_TOPIC:
            self.state.add_run_event(msg)

    def _current_run(self) -> dict[str, Any] | None:
        """The newest run of the plugin registered now (looked up by name: it may be replaced)."""
        plugins = getattr(self.scheduler, "plugins", {})
        run = plugins.get(PLUGIN_NAME, self).state.current()
        return run.to_dict() if run is not None else None


def register(client: Any) -> str:
    """Install the plugin on the client's scheduler (a no-op if it is there); return the page URL.

    The URL is `client.dashboard_link` with `/status` replaced by `/throughput`, or "" when the
    scheduler serves no such page (no dashboard, or the page could not be mounted).
    """
    with _pickled_by_value():
        client.register_plugin(ThroughputPlugin())
        served = client.run_on_scheduler(_page_is_served)
    return page_url(client) if served else ""


def _page_is_served(dask_scheduler: Any = None) -> bool:
    return plumbing.serves(dask_scheduler, page.PAGE_PATH)


def page_url(client: Any) -> str:
    """Where the page is, derived from the client's dashboard link; "" without a dashboard."""
    try:
        link = client.dashboard_link or ""
    except (AttributeError, KeyError):
        return ""
    if not link:
        return ""
    base = link[: -len("status")] if link.endswith("/status") else link.rstrip("/") + "/"
    return base + page.PAGE_PATH.strip("/")


def snapshot(client: Any) -> dict[str, Any]:
    """The plugin's state, JSON-able: per-worker totals, binned time series and runs."""
    with _pickled_by_value():
        snap: dict[str, Any] = client.run_on_scheduler(_scheduler_snapshot)
    return snap


def _scheduler_snapshot(dask_scheduler: Any = None) -> dict[str, Any]:
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME) if dask_scheduler is not None else None
    counted = plugin.state if plugin is not None else state.ThroughputState()
    return counted.snapshot()


@contextlib.contextmanager
def _pickled_by_value() -> Iterator[None]:
    """Pickle the scheduler-side modules by value for the duration of one call.

    The scheduler unpickles the plugin (and `_scheduler_snapshot`); by value it needs only
    distributed, bokeh and tornado, not this package. Each module is registered by name, the
    package's and its own: distributed pickles by value only objects whose own module is in
    cloudpickle's registry. `events` and `record` are shared with the workers.
    """
    import cloudpickle

    package = __name__.rpartition(".")[0]
    modules = [events, record, *_package_modules(package)]
    added = [m for m in modules if m.__name__ not in cloudpickle.list_registry_pickle_by_value()]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


def _package_modules(package: str) -> list[Any]:
    """The package and its imported submodules."""
    loaded = list(sys.modules.items())
    return [m for name, m in loaded if name == package or name.startswith(package + ".")]
