"""Make docs/throughput.png: a real pipeline run on generated photos, shot mid-run.

Starts a local cluster of two single-threaded workers, runs the pipeline on generated sample
photos in a thread, and has headless Chromium (Debian's `chromium`) load the /throughput page
while the run goes, using the DevTools helpers of tests/test_dashboard_browser.py.

    .venv/bin/python docs/screenshot.py [docs/throughput.png]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTLE_SECONDS = 7
sys.path.insert(0, str(ROOT / "tests"))


def main(target: Path) -> None:
    from distributed import Client, LocalCluster
    from test_dashboard_browser import headless_chromium, load_and_shoot

    import pipeline
    from pipeline import dashboard
    from pipeline.samples import write_samples

    with tempfile.TemporaryDirectory() as tmp:
        write_samples(Path(tmp, "in"), count=320, scale=0.45)
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
            Client(c) as client,
            headless_chromium() as devtools,
        ):
            url = dashboard.register(client)
            run = threading.Thread(
                target=pipeline.run,
                args=(Path(tmp, "in"), Path(tmp, "out")),
                kwargs={"client": client},
            )
            run.start()
            time.sleep(SETTLE_SECONDS)  # a few seconds of curves before the shot
            asyncio.run(load_and_shoot(devtools, url, target))
            still_running = run.is_alive()
            run.join()
    print(f"wrote {target} ({'mid-run' if still_running else 'after the run ended: rerun'})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "throughput.png")
