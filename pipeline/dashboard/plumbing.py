"""The parts of distributed's dashboard that the throughput page needs and distributed does not
document, all in this one module.

distributed offers no public API for adding a page to a scheduler's dashboard; its maintainers
suggest mounting a Bokeh application from a scheduler plugin, which is what this does:
- Dask's own pages are one Bokeh app among `scheduler.http_application.applications` (a
  `RoutingApplication`), found by the "/status" in its `app_paths`; its `prefix` is the
  dashboard's (e.g. `--dashboard-prefix`).
- `distributed.dashboard.core.BokehApplication` builds a Bokeh server app configured as Dask's
  own; `http_application.add_application(app)` routes to it, `app.initialize(IOLoop)` and
  `app.start()` serve it.
- `distributed.dashboard.scheduler.template_variables(scheduler)` is the memoized dict every
  page's navbar is drawn from; adding to its "pages" list puts a tab on all of them.
- `distributed.dashboard.components.scheduler` has the page template (`env`) and `BOKEH_THEME`.
- Dask's Task Stream (on /status) shows what `distributed.diagnostics.task_stream`'s
  `TaskStreamPlugin` recorded, and that is installed when a page first needs it: a run that
  ends before anyone opens /status would leave it empty. `record_task_stream` installs it
  with the throughput plugin (a deque append per task; the pipeline's tasks are partitions).

`problems(scheduler)` checks each of these and names what is missing, so a distributed upgrade
that moves one is reported loudly (the plugin logs an error; tests/test_dashboard_plumbing.py
fails) rather than leaving a page silently missing. The look (template, theme, navbar tab) is
optional: without it the page still works, in Bokeh's plain style.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

DASK_PAGE = "/status"


class PlumbingError(RuntimeError):
    """distributed's dashboard no longer looks as this module expects."""


def problems(scheduler: Any) -> list[str]:
    """What of the undocumented plumbing is missing for this scheduler (empty: all there)."""
    return _server_problems(scheduler) + _module_problems()


def _server_problems(scheduler: Any) -> list[str]:
    http_app = getattr(scheduler, "http_application", None)
    found = [
        f"scheduler.http_application.{name}"
        for name in ("applications", "add_application")
        if not hasattr(http_app, name)
    ]
    dashboard = dask_pages(scheduler) if not found else None
    if dashboard is not None and not isinstance(getattr(dashboard, "prefix", None), str):
        found.append("the dashboard app's prefix")
    return found


def _module_problems() -> list[str]:
    found: list[str] = []
    for module, names in (
        ("distributed.dashboard.core", ("BokehApplication",)),
        ("distributed.dashboard.scheduler", ("template_variables",)),
        ("distributed.dashboard.components.scheduler", ("BOKEH_THEME", "env")),
        ("distributed.diagnostics.task_stream", ("TaskStreamPlugin",)),
    ):
        found += [f"{module}.{name}" for name in names if not _importable(module, name)]
    return found


def dask_pages(scheduler: Any) -> Any:
    """Dask's own Bokeh app on this scheduler, or None (the scheduler serves no dashboard)."""
    apps = getattr(getattr(scheduler, "http_application", None), "applications", [])
    return next((app for app in apps if DASK_PAGE in getattr(app, "app_paths", ())), None)


def serves(scheduler: Any, path: str) -> bool:
    """Whether one of the scheduler's HTTP apps serves `path`."""
    apps = getattr(getattr(scheduler, "http_application", None), "applications", [])
    return any(path in getattr(app, "app_paths", ()) for app in apps)


def mount(scheduler: Any, path: str, make_doc: Callable[..., None]) -> Any:
    """Serve `make_doc(scheduler, extra, doc)` at `path` beside Dask's pages; return the app.

    None when the scheduler serves no dashboard or `path` is served already; `PlumbingError`
    when distributed has changed under us.
    """
    _raise_if(_server_problems(scheduler))
    dashboard = dask_pages(scheduler)
    if dashboard is None or serves(scheduler, path):
        return None
    _raise_if(_module_problems())
    from distributed.dashboard.core import BokehApplication
    from tornado.ioloop import IOLoop

    add_tab(scheduler, path)
    app = BokehApplication(
        {path: make_doc}, scheduler, prefix=dashboard.prefix, template_variables=nav(scheduler)
    )
    scheduler.http_application.add_application(app)
    app.initialize(IOLoop.current())
    app.start()
    return app


def record_task_stream(scheduler: Any) -> None:
    """Have Dask's Task Stream record from now on, as it would once /status was opened."""
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    if TaskStreamPlugin.name not in scheduler.plugins:
        scheduler.add_plugin(TaskStreamPlugin(scheduler))


def _raise_if(found: list[str]) -> None:
    if found:
        raise PlumbingError("undocumented dashboard API missing: " + ", ".join(found))


def unmount(scheduler: Any, app: Any, path: str) -> None:
    """Stop serving `app` (the scheduler is closing) and drop its navbar tab."""
    app.stop(wait=False)
    applications = scheduler.http_application.applications
    if app in applications:
        applications.remove(app)
    variables = nav(scheduler)
    name = path.strip("/")
    if name in variables.get("pages", []):
        variables["pages"].remove(name)


def add_tab(scheduler: Any, path: str) -> None:
    """A navbar tab for `path` on every dashboard page, before "info" (Dask's last tab)."""
    pages = nav(scheduler).get("pages")
    name = path.strip("/")
    if isinstance(pages, list) and name not in pages:
        pages.insert(pages.index("info") if "info" in pages else len(pages), name)


def nav(scheduler: Any) -> dict[str, Any]:
    """The template variables Dask's pages share (empty if distributed has none)."""
    try:
        from distributed.dashboard.scheduler import template_variables

        variables: dict[str, Any] = template_variables(scheduler)
    except Exception:  # the page works without the navbar
        logger.warning("Dask's dashboard navbar is unavailable", exc_info=True)
        return {}
    return variables


def dask_look(doc: Any, extra: dict[str, Any]) -> None:
    """Give a Bokeh document Dask's page template and theme (it works without them)."""
    try:
        from distributed.dashboard.components.scheduler import BOKEH_THEME, env

        doc.template = env.get_template("simple.html")
        doc.template_variables.update(extra)
        doc.theme = BOKEH_THEME
    except Exception:
        logger.warning("Dask's dashboard template is unavailable; plain Bokeh page", exc_info=True)


def dask_theme() -> Any:
    """Dask's Bokeh theme for a standalone report, or None (Bokeh's default)."""
    try:
        from distributed.dashboard.components.scheduler import BOKEH_THEME
    except Exception:
        return None
    return BOKEH_THEME


def _importable(module: str, name: str) -> bool:
    import importlib

    try:
        return hasattr(importlib.import_module(module), name)
    except Exception:
        return False
