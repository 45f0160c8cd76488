"""Live per-core throughput on the Dask dashboard (`/throughput`) and its after-run report.

    plugin    the SchedulerPlugin, and register / snapshot / page_url for the client
    state     exact per-worker counters and binned images/s, fed one event at a time
    view      a run's snapshot -> the columns the page draws
    page      the Bokeh layout: the live page, `throughput_figure`, `save_throughput_report`
    metrics   the Prometheus counters on the scheduler's /metrics
    plumbing  the undocumented parts of distributed's dashboard, in one guarded place

In a notebook: `url = dashboard.register(client)`, run, then
`dashboard.save_throughput_report(dashboard.snapshot(client), "throughput.html")`.
"""

from pipeline.dashboard.page import PAGE_PATH, save_throughput_report, throughput_figure
from pipeline.dashboard.plugin import PLUGIN_NAME, ThroughputPlugin, page_url, register, snapshot

__all__ = [
    "PAGE_PATH",
    "PLUGIN_NAME",
    "ThroughputPlugin",
    "page_url",
    "register",
    "save_throughput_report",
    "snapshot",
    "throughput_figure",
]
