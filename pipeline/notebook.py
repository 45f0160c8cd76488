"""Jupyter helpers: a live progress bar, before/after thumbnails, the throughput plot inline.

    from pipeline import notebook
    report = pipeline.run(src, dst, client=client, progress=notebook.ProgressBar())
    notebook.show_pairs(report)
    notebook.output_notebook(); bokeh.io.show(notebook.throughput_plot(client))

Importing this module does no work and needs neither IPython nor ipywidgets: they are
imported when first used, and `ProgressBar` falls back to a text line outside a kernel.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import sys
from itertools import islice
from typing import IO, Any

from pipeline.report import RunReport
from pipeline.storage import Store

THUMB_QUALITY = 80
TRANSPARENT_SHOWN_AS = (200, 200, 200)  # inputs' transparency, so it differs from the output


def progress_text(report: RunReport) -> str:
    """`done/total images, N failed, X images/s` for a report that is still filling in."""
    total = max(report.discovered, report.total)
    failed = report.counts["failed"]
    fails = f", {failed} failed" if failed else ""
    return f"{report.total}/{total} images{fails}, {report.images_per_second:.1f} images/s"


class ProgressBar:
    """A `progress=` callback for `pipeline.run`: a widget in a kernel, a text line elsewhere.

    One instance can serve several runs: each run (new `run_id`) gets a bar of its own.
    `widget=False` forces the text line; `stream` is where that line goes (stderr).
    """

    def __init__(self, *, widget: bool | None = None, stream: IO[str] | None = None) -> None:
        self.use_widget = _in_kernel() if widget is None else widget
        self.stream = stream
        self.text = ""
        self._run_id: str | None = None
        self._bar: Any = None
        self._label: Any = None

    def __call__(self, report: RunReport) -> None:
        previous = self.text if report.run_id == self._run_id else ""
        self.text = progress_text(report)
        if self.use_widget:
            self._update_widget(report)
        else:
            self._write_line(previous, report.total >= report.discovered)
        self._run_id = report.run_id

    def _write_line(self, previous: str, finished: bool) -> None:
        out = self.stream or sys.stderr
        out.write("\r" + self.text.ljust(len(previous)) + ("\n" if finished else ""))
        out.flush()

    def _update_widget(self, report: RunReport) -> None:
        if self._bar is None or report.run_id != self._run_id:
            import ipywidgets  # type: ignore[import-untyped]
            from IPython.display import display

            self._bar = ipywidgets.IntProgress(min=0, description="images")
            self._label = ipywidgets.HTML()
            display(ipywidgets.HBox([self._bar, self._label]))
        self._bar.max = max(1, report.discovered, report.total)
        self._bar.value = report.total
        if report.total >= report.discovered:
            self._bar.bar_style = "danger" if report.counts["failed"] else "success"
        self._label.value = html.escape(self.text)


def _in_kernel() -> bool:
    """True inside a Jupyter kernel that has ipywidgets; False in a terminal or a script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    in_kernel = shell is not None and getattr(shell, "kernel", None) is not None
    return in_kernel and importlib.util.find_spec("ipywidgets") is not None


def show_pairs(report: RunReport, n: int = 4, size: int = 256) -> Any:
    """An IPython HTML display of up to `n` inputs (as stored) beside their outputs.

    Thumbnails fit within `size` px and are inline base64 JPEG data URIs, so the notebook
    needs no files beside it. Needs the report's records (kept or spooled, as `run` does).
    """
    from IPython.display import HTML

    return HTML(pairs_html(report, n=n, size=size))


def pairs_html(report: RunReport, n: int = 4, size: int = 256) -> str:
    """The HTML of `show_pairs`: one row per input with two captioned thumbnails."""
    if report.options is None or report.records is None:
        raise ValueError("show_pairs needs a report from pipeline.run with its records kept")
    src, dst = Store.at(report.options.input), Store.at(report.options.output)
    done = (r for r in report.records if r["output"] is not None and r["status"] != "failed")
    rows = [
        _pair_row(src.read(r["input"]), dst.read(r["output"]), r, size) for r in islice(done, n)
    ]
    if not rows:
        return "<p>No outputs to show.</p>"
    return '<div class="pipeline-pairs">' + "".join(rows) + "</div>"


def _pair_row(source: bytes, target: bytes, record: dict[str, Any], size: int) -> str:
    before, after = _thumbnail(source, size), _thumbnail(target, size)
    name, status = html.escape(str(record["input"])), html.escape(str(record["status"]))
    return (
        '<div style="display:flex;gap:12px;align-items:flex-end;margin:6px 0">'
        + _figure(before, f"{name}: input {before[1]}")
        + _figure(after, f"output {after[1]}, {status}")
        + "</div>"
    )


def _figure(thumb: tuple[str, str], caption: str) -> str:
    return (
        f'<figure style="margin:0"><img src="{thumb[0]}" alt="{caption}">'
        f'<figcaption style="font-size:smaller">{caption}</figcaption></figure>'
    )


def _thumbnail(data: bytes, size: int) -> tuple[str, str]:
    """A data URI of the picture as stored (no EXIF rotation) and a short description."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        desc = f"{image.width}x{image.height} {image.format}"
        orientation = image.getexif().get(0x0112, 1)
        if orientation != 1:
            desc += f", EXIF orientation {orientation}"
        image.draft("RGB", (size, size))
        image.thumbnail((size, size))
        rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, TRANSPARENT_SHOWN_AS)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, "JPEG", quality=THUMB_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode(), desc


def output_notebook() -> None:
    """Send bokeh plots to this notebook, with bokeh's JavaScript inline (works offline)."""
    from bokeh.io import output_notebook as bokeh_output_notebook
    from bokeh.resources import INLINE

    bokeh_output_notebook(resources=INLINE, hide_banner=True)


def throughput_plot(client: Any, run: str | None = None) -> Any:
    """The bokeh layout of the per-core throughput of one run (default: the newest).

    Show it with `bokeh.io.show(...)` after `output_notebook()`; the live version is the
    dashboard page `pipeline.dashboard.register(client)` returns.
    """
    from pipeline import dashboard

    return dashboard.throughput_figure(dashboard.snapshot(client), run)
