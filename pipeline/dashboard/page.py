"""The bokeh side of the throughput page: one layout for the live page and the HTML report.

`doc` fills a Bokeh document of the live page (`plumbing.mount` serves it beside Dask's pages);
`throughput_figure` and `save_throughput_report` draw the same layout from a snapshot. Only
distributed, bokeh and our own by-value modules are imported here, bokeh only when a page or
report is built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.dashboard import plumbing, view

if TYPE_CHECKING:
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.models.layouts import LayoutDOM
    from bokeh.models.widgets.tables import DataTable
    from bokeh.plotting import figure

logger = logging.getLogger(__name__)

PAGE_PATH = "/throughput"
UPDATE_MS = 1000
MAX_LEGEND = 12
_TITLES = {
    "worker": "Worker",
    "threads": "Threads",
    "ok": "OK",
    "failed": "Failed",
    "skipped": "Skipped",
    "mb_read": "MB read",
    "mb_written": "MB written",
    "rate": "Images/s",
    "rate_per_core": "Images/s/core",
    "ms_per_image": "ms/image",
    "format": "Format",
    "size": "Size (px)",
    "files": "Files written",
    "kb_per_file": "KB/file",
}
_DECIMALS = frozenset(
    {"mb_read", "mb_written", "rate", "rate_per_core", "ms_per_image", "kb_per_file"}
)


def _sources() -> dict[str, ColumnDataSource]:
    from bokeh.models import ColumnDataSource

    return {
        "workers": ColumnDataSource(
            {"xs": [], "ys": [], "ys_core": [], "worker": [], "color": []}, name="tp-workers"
        ),
        "cluster": ColumnDataSource({"x": [], "y": [], "y_core": []}, name="tp-cluster"),
        "bars": ColumnDataSource({"worker": [], "rate_per_core": [], "color": []}, name="tp-bars"),
        "table": ColumnDataSource({c: [] for c in view.TABLE_COLUMNS}, name="tp-table"),
        "outputs": ColumnDataSource({c: [] for c in view.OUTPUT_COLUMNS}, name="tp-outputs"),
    }


def _line_figure(sources: dict[str, ColumnDataSource], per_core: bool, title: str) -> figure:
    from bokeh.models import DataRange1d, HoverTool
    from bokeh.plotting import figure

    suffix = "_core" if per_core else ""
    fig = figure(
        title=title,
        x_axis_type="datetime",
        y_range=DataRange1d(start=0),
        height=300,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        y_axis_label="images/s per core" if per_core else "images/s",
    )
    fig.multi_line(
        xs="xs",
        ys=f"ys{suffix}",
        color="color",
        legend_field="worker",
        line_width=1.5,
        source=sources["workers"],
    )
    fig.line(
        x="x",
        y=f"y{suffix}",
        source=sources["cluster"],
        color="black",
        line_width=3,
        legend_label="cluster mean per core" if per_core else "cluster",
    )
    fig.legend.location = "bottom_right"
    fig.legend.click_policy = "hide"
    label = "images/s per core" if per_core else "images/s"
    fig.add_tools(HoverTool(tooltips=[("worker", "@worker"), (label, "$y{0,0.0}")]))
    return fig


def _bar_figure(sources: dict[str, ColumnDataSource]) -> figure:
    from bokeh.models import DataRange1d, FactorRange, HoverTool
    from bokeh.plotting import figure

    title = f"Images/s per core, last {view.RECENT_BINS} bins"
    fig = figure(
        title=title,
        y_range=FactorRange(),
        x_range=DataRange1d(start=0),
        height=300,
        sizing_mode="stretch_width",
        tools="",
        toolbar_location=None,
    )
    fig.hbar(y="worker", right="rate_per_core", height=0.8, color="color", source=sources["bars"])
    fig.add_tools(HoverTool(tooltips=[("worker", "@worker"), ("images/s/core", "@rate_per_core")]))
    return fig


def _table(
    sources: dict[str, ColumnDataSource], name: str = "table", height: int = 300
) -> DataTable:
    from bokeh.models import CustomJS
    from bokeh.models.widgets.tables import DataTable, NumberFormatter, TableColumn

    fields = view.TABLE_COLUMNS if name == "table" else view.OUTPUT_COLUMNS
    columns = [
        TableColumn(field=c, title=_TITLES[c], width=240 if c == "worker" else 90) for c in fields
    ]
    for col in columns:
        if col.field in _DECIMALS:
            col.formatter = NumberFormatter(format="0,0.0")
    table = DataTable(
        source=sources[name],
        columns=columns,
        index_position=None,
        height=height,
        sizing_mode="stretch_width",
    )
    sources[name].js_on_change("data", CustomJS(args={"table": table}, code=_REDRAW_TABLE))
    return table


# BokehJS (3.9) redraws a DataTable only when its row count changes: the CDSView's indices
# stay equal, so no change event reaches the table. Redraw it ourselves on every new data.
_REDRAW_TABLE = """
const views = (table.document && table.document.views_manager) || Bokeh.index;
for (const view of views.find(table)) {
  if (typeof view.updateGrid === "function") { view.updateGrid(); } else { table.change.emit(); }
}
"""


def build() -> tuple[LayoutDOM, dict[str, Any]]:
    """The page layout and the handles `fill` updates."""
    from bokeh.layouts import column, row
    from bokeh.models.widgets.markups import Div

    sources = _sources()
    handles: dict[str, Any] = dict(sources)
    handles["progress"] = Div(text=view.progress(None), sizing_mode="stretch_width")
    handles["rate"] = _line_figure(sources, False, "Images/s: cluster and per worker")
    handles["core"] = _line_figure(sources, True, "Images/s per core (worker thread)")
    handles["bar"] = _bar_figure(sources)
    title = Div(text="<b>Outputs written, by format and size</b>", sizing_mode="stretch_width")
    layout = column(
        handles["progress"],
        row(handles["rate"], handles["core"], sizing_mode="stretch_width"),
        row(handles["bar"], _table(sources), sizing_mode="stretch_width"),
        title,
        _table(sources, "outputs", height=150),
        sizing_mode="stretch_width",
    )
    return layout, handles


def fill(handles: dict[str, Any], run: dict[str, Any] | None, now: float | None = None) -> None:
    """Point every source at `run` (a run dict from a snapshot), or clear them."""
    handles["progress"].text = view.progress(run, now)
    if run is None:
        return
    lines = view.series(run)
    handles["workers"].data = lines["workers"]
    for fig in (handles["rate"], handles["core"]):  # a legend of 50 workers hides the plot
        fig.legend.visible = len(lines["workers"]["worker"]) <= MAX_LEGEND
    handles["cluster"].data = lines["cluster"]
    bars = view.bars(run)
    handles["bar"].y_range.factors = list(reversed(bars["worker"]))
    handles["bars"].data = bars
    handles["table"].data = view.table(run)
    handles["outputs"].data = view.outputs(run)


def doc(
    get_run: Callable[[], dict[str, Any] | None],
    scheduler: Any,
    extra: dict[str, Any],
    document: Document,
) -> None:
    """Fill `document` with the live page of `get_run()`'s run (a Bokeh app's doc function)."""
    layout, handles = build()
    fill(handles, get_run())

    def update() -> None:
        try:
            fill(handles, get_run(), time.time())
        except Exception:  # a broken update must not kill the page session
            logger.exception("Throughput page update failed")

    document.add_periodic_callback(update, UPDATE_MS)
    document.title = "Dask: Throughput"
    document.add_root(layout)
    plumbing.dask_look(document, extra)


def throughput_figure(snap: dict[str, Any], run: str | None = None) -> Any:
    """A bokeh layout of one run (default: the newest): curves, bars, table, progress.

    In a notebook: `bokeh.io.output_notebook(); bokeh.io.show(throughput_figure(snap))`.
    """
    layout, handles = build()
    run_id = run if run is not None else snap.get("current")
    fill(handles, snap.get("runs", {}).get(run_id), snap.get("generated"))
    return layout


def save_throughput_report(snap: dict[str, Any], path: str | Path, run: str | None = None) -> None:
    """Write a standalone HTML page (bokeh resources inline, opens offline) of one run."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    title = f"Pipeline throughput: run {run or snap.get('current') or '-'}"
    html = file_html(throughput_figure(snap, run), INLINE, title, theme=plumbing.dask_theme())
    Path(path).write_text(html, encoding="utf-8")
