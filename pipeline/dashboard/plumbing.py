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

- `distributed.dashboard.scheduler.connect` mounts Dask's pages on a scheduler; `defer_pages`
  calls it at the first request to a scheduler started without them (see there). A route is a
  tornado `Application` among `applications` whose `find_handler` answers until then.

`problems(scheduler)` checks each of these and names what is missing, so a distributed upgrade
that moves one is reported loudly (the plugin logs an error; tests/test_dashboard_plumbing.py
fails) rather than leaving a page silently missing. The look (template, theme, navbar tab) is
optional: without it the page still works, in Bokeh's plain style.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tornado import web

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
        ("distributed.dashboard.scheduler", ("connect", "template_variables")),
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
    """Whether one of the scheduler's HTTP apps serves `path` (or will, at the first request)."""
    apps = getattr(getattr(scheduler, "http_application", None), "applications", [])
    deferred = _deferred(scheduler)
    return any(path in getattr(app, "app_paths", ()) for app in apps) or (
        deferred is not None and not deferred.mounted and path in deferred.pages
    )


def mount(scheduler: Any, path: str, make_doc: Callable[..., None]) -> Any:
    """Serve `make_doc(scheduler, extra, doc)` at `path` beside Dask's pages; return the app.

    None when the scheduler serves no dashboard or `path` is served already; `PlumbingError`
    when distributed has changed under us. On a scheduler whose pages are deferred
    (`defer_pages`), the page is mounted with them, at the first request; until then what is
    returned is a stand-in that `unmount` takes as well.
    """
    _raise_if(_server_problems(scheduler))
    deferred = _deferred(scheduler)
    if deferred is not None and not deferred.mounted:
        return deferred.add(path, make_doc)
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
    if getattr(app, "deferred_page", False):  # a stand-in from `mount` on deferred pages
        app.cancel()
        app = app.app  # the page it became at the first request, if any
        if app is None:
            return
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


# -- Dask's pages from the first request on -------------------------------------------------------


def defer_pages(scheduler: Any, prefix: str = "/") -> None:
    """Serve Dask's Bokeh pages, and those `mount` is given, once the dashboard is first opened.

    For a scheduler started with its HTTP server but without its Bokeh pages
    (`Scheduler(dashboard=False, dashboard_address=...)`): importing Bokeh and building Dask's
    pages takes ~0.4 s of CPU in the scheduler's process, which at the start of a run on a
    machine whose cores all run workers delays the first images. The first request to any
    path the plain routes do not serve mounts them all (`connect`, then each page given to
    `mount`), then redirects to the same URL. Nothing is lost by waiting: the throughput
    plugin and the task stream record from the start.
    """
    _raise_if(_server_problems(scheduler))
    if dask_pages(scheduler) is None and _deferred(scheduler) is None:
        scheduler.http_application.add_application(_Deferred(scheduler, prefix))


def _deferred(scheduler: Any) -> Any:
    """The scheduler's deferred pages (`defer_pages`), or None. Found by a marker attribute,
    not a class: the plugin runs a by-value copy of this module."""
    apps = getattr(getattr(scheduler, "http_application", None), "applications", [])
    return next((app for app in apps if getattr(app, "defers_pages", False)), None)


class _Deferred(web.Application):
    """Answers every request with "mount the pages, then ask again", until they are mounted."""

    defers_pages = True

    def __init__(self, scheduler: Any, prefix: str) -> None:
        super().__init__()
        self.scheduler, self.prefix = scheduler, prefix
        self.pages: dict[str, _Page] = {}
        self.mounted = False

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        if self.mounted:  # the mounted apps, after this one, answer
            return None
        return self.get_handler_delegate(request, _MountFirst, {"deferred": self})

    def add(self, path: str, make_doc: Callable[..., None]) -> _Page:
        self.pages[path] = _Page(self, path, make_doc)
        return self.pages[path]

    def mount_all(self) -> None:
        """Mount Dask's pages and the pages added (once; on the scheduler's event loop)."""
        if self.mounted:
            return
        _raise_if(_module_problems())
        from distributed.dashboard.scheduler import connect

        self.mounted = True
        http = self.scheduler.http_application
        connect(http, self.scheduler.http_server, self.scheduler, prefix=self.prefix)
        for page in list(self.pages.values()):
            page.app = mount(self.scheduler, page.path, page.make_doc)


class _Page:
    """What `mount` returns for a page on deferred pages: `app` once mounted."""

    deferred_page = True

    def __init__(self, deferred: _Deferred, path: str, make_doc: Callable[..., None]) -> None:
        self.deferred, self.path, self.make_doc = deferred, path, make_doc
        self.app: Any = None

    def cancel(self) -> None:
        if self.deferred.pages.get(self.path) is self:
            del self.deferred.pages[self.path]


class _MountFirst(web.RequestHandler):
    def initialize(self, deferred: _Deferred) -> None:
        self.deferred = deferred

    def get(self) -> None:
        try:
            self.deferred.mount_all()
        except PlumbingError:
            logger.exception("Dask's dashboard pages could not be mounted")
            raise web.HTTPError(500) from None
        self.redirect(self.request.uri or "/")

    head = get
