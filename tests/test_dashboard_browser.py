"""End to end: real headless Chromium loads /throughput during a run and sees data.

Chromium is driven through the DevTools protocol over tornado's websocket client (no extra
dependency). Missing Chromium is a failure, not a skip: CI installs it (Debian: `chromium`).
Set CHROMIUM to use another binary, PIPELINE_SCREENSHOT to also copy the screenshot there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import dashboard_helpers as sim
import pytest
from conftest import require_tool
from distributed import Client, LocalCluster
from tornado.websocket import websocket_connect

from pipeline import dashboard
from pipeline.events import RUN_TOPIC

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1500,1000",
    "--hide-scrollbars",
)
SOURCES = ("tp-workers", "tp-cluster", "tp-bars", "tp-table")
# Column lengths of our named data sources, points on the first per-worker curve, and
# whether the table as drawn (its cells, inside shadow roots) shows the source's current counts.
PROBE_JS = """(() => {
  if (!window.Bokeh || !Bokeh.documents || Bokeh.documents.length < 1) return null;
  const doc = Bokeh.documents[0], out = {roots: doc.roots().length, sources: {}};
  const column = (model, k) => {
    const data = model.data;
    return Array.from((data instanceof Map ? data.get(k) : data[k]) || []);
  };
  for (const name of SOURCES) {
    const model = doc.get_model_by_name(name);
    if (!model) continue;
    const data = model.data;
    const keys = data instanceof Map ? [...data.keys()] : Object.keys(data);
    out.sources[name] = Object.fromEntries(keys.map((k) => [k, column(model, k).length]));
  }
  const workers = doc.get_model_by_name("tp-workers"), table = doc.get_model_by_name("tp-table");
  out.points = workers ? (column(workers, "ys")[0] || []).length : 0;
  out.ok = table ? column(table, "ok") : [];
  const cells = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) walk(child);
    if (node.classList && node.classList.contains("slick-cell")) cells.push(node.textContent);
  };
  walk(document.body);
  out.table_drawn = out.ok.length > 0 && out.ok.every((v) => cells.includes(String(v)));
  return JSON.stringify(out);
})()""".replace("SOURCES", json.dumps(SOURCES))


def chromium_binary() -> str:
    names = filter(
        None, (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome")
    )
    hint = "install it (Debian/Ubuntu: apt-get install -y chromium) or set CHROMIUM=/path/to/it"
    return require_tool(*names, hint=hint)


@contextlib.contextmanager
def headless_chromium():
    """Start Chromium with a fresh profile; yield the DevTools HTTP base URL."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        log = Path(profile) / "chromium.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            port = sim.wait_until(
                lambda: _devtools_port(Path(profile), proc),
                30,
                "Chromium did not open its DevTools port",
            )
            assert proc.poll() is None, f"Chromium exited:\n{log.read_text(errors='replace')}"
            yield f"http://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _devtools_port(profile: Path, proc: subprocess.Popen) -> str | None:
    """The port Chromium chose (it writes DevToolsActivePort); "exited" if it died."""
    if proc.poll() is not None:
        return "exited"
    with contextlib.suppress(FileNotFoundError, IndexError):
        return (profile / "DevToolsActivePort").read_text().split()[0]
    return None


class DevTools:
    """Minimal DevTools protocol client: one page target, request/response by id."""

    def __init__(self, ws):
        self.ws, self.ids = ws, itertools.count(1)

    async def send(self, method: str, **params):
        msg_id = next(self.ids)
        await self.ws.write_message(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), 30)
            assert raw is not None, "DevTools websocket closed"
            reply = json.loads(raw)
            if reply.get("id") == msg_id:
                assert "error" not in reply, reply
                return reply["result"]

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def page_has_data(probe) -> bool:
    if not probe:
        return False
    sources = probe["sources"]
    return (
        set(sources) == set(SOURCES)
        and probe.get("points", 0) >= 3
        and all(all(n > 0 for n in cols.values()) for cols in sources.values())
    )


async def poll(tools: DevTools, done, seconds: float, what: str) -> dict:
    """Evaluate PROBE_JS until `done(probe)`; fail with the last probe at the deadline."""
    probe, deadline = None, time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = json.loads(await tools.evaluate(PROBE_JS) or "null")
        if probe and done(probe):
            return probe
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} within {seconds}s; last probe: {probe}")


async def load_and_shoot(devtools_url: str, page_url: str, screenshot: Path) -> dict:
    targets = json.loads(sim.http_get(f"{devtools_url}/json/list")[1])
    page = next(t for t in targets if t["type"] == "page")
    ws = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=64 << 20)
    try:
        tools = DevTools(ws)
        await tools.send("Page.enable")
        await tools.send("Page.navigate", url=page_url)
        first = await poll(tools, page_has_data, 40, "the page never showed data")
        later = await poll(
            tools,
            lambda p: p["table_drawn"] and sum(p["ok"]) > sum(first["ok"]),
            10,
            "the drawn table did not follow the live counts",
        )
        shot = await tools.send("Page.captureScreenshot", format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return later
    finally:
        ws.close()


def test_chromium_sees_live_throughput(tmp_path):
    with (
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
        headless_chromium() as devtools,
    ):
        url = dashboard.register(client)
        n = 3000  # ~15 s of simulated work on 2 workers: the run is still going at the shot
        client.log_event(
            RUN_TOPIC, {"run": "browser", "state": "discovered", "total": n, "t": time.time()}
        )
        future = client.compute(
            sim.simulated_bag(n, "browser", npartitions=8, every=20, delay=0.01)
        )
        shot = tmp_path / "throughput.png"
        probe = asyncio.run(load_and_shoot(devtools, url, shot))
        assert not future.done(), "the screenshot must be taken mid-run"
        assert probe["roots"] >= 1
        assert shot.stat().st_size > 20_000
        if os.environ.get("PIPELINE_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["PIPELINE_SCREENSHOT"])
        future.cancel()
