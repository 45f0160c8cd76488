"""Turn one run of a throughput snapshot into the columns the bokeh page and report draw.

Pure functions over the JSON-able run dict of `state.RunStats.to_dict()`.
Images/s counts ok + failed images (work done); skipped files appear in the table only.
"""

from __future__ import annotations

import time
from typing import Any

RECENT_BINS = 5  # the bar chart's "now" is the mean over this many complete bins
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
TABLE_COLUMNS = (
    "worker",
    "threads",
    "ok",
    "failed",
    "skipped",
    "mb_read",
    "mb_written",
    "rate",
    "rate_per_core",
    "ms_per_image",
)
OUTPUT_COLUMNS = ("format", "size", "files", "mb_written", "kb_per_file")


def _bins(run: dict[str, Any]) -> dict[str, list[float]]:
    """Bins per worker, padded to one length; a running run's last (partial) bin is dropped."""
    images = run["series"]["images"]
    length = max((len(b) for b in images.values()), default=0)
    if run["state"] == "running":
        length = max(length - 1, 0)
    return {addr: (b + [0.0] * length)[:length] for addr, b in images.items()}


def series(run: dict[str, Any]) -> dict[str, Any]:
    """Multi-line columns (one row per worker) plus the cluster lines, x in epoch ms."""
    t0, bin_s = run["series"]["t0"], run["series"]["bin_s"]
    bins = _bins(run)
    length = len(next(iter(bins.values()), []))
    x = [(t0 + (i + 0.5) * bin_s) * 1000.0 for i in range(length)]
    workers = sorted(bins)
    threads = {addr: max(run["workers"][addr]["nthreads"], 1) for addr in workers}
    rates = {addr: [v / bin_s for v in bins[addr]] for addr in workers}
    cluster = [sum(col) for col in zip(*rates.values(), strict=True)] if rates else []
    total_threads = sum(threads.values()) or 1
    return {
        "workers": {
            "xs": [x] * len(workers),
            "ys": [rates[addr] for addr in workers],
            "ys_core": [[v / threads[addr] for v in rates[addr]] for addr in workers],
            "worker": workers,
            "color": [PALETTE[i % len(PALETTE)] for i in range(len(workers))],
        },
        "cluster": {"x": x, "y": cluster, "y_core": [v / total_threads for v in cluster]},
    }


def bars(run: dict[str, Any]) -> dict[str, list[Any]]:
    """Recent images/s per core for each worker (mean of the last complete bins)."""
    bins, bin_s = _bins(run), run["series"]["bin_s"]
    workers = sorted(run["workers"])
    window = min(RECENT_BINS, len(next(iter(bins.values()), []))) or 1
    recent = [sum(bins.get(a, [])[-RECENT_BINS:]) / (window * bin_s) for a in workers]
    per_core = [
        r / max(run["workers"][a]["nthreads"], 1) for a, r in zip(workers, recent, strict=True)
    ]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(workers))]
    return {"worker": workers, "rate_per_core": per_core, "color": colors}


def table(run: dict[str, Any]) -> dict[str, list[Any]]:
    """One row per worker: counts, MB, mean images/s over its active span, ms per image."""
    rows = [_row(addr, w) for addr, w in sorted(run["workers"].items())]
    return {col: [row[col] for row in rows] for col in TABLE_COLUMNS}


def outputs(run: dict[str, Any]) -> dict[str, list[Any]]:
    """One row per rendition written (format, size): files, MB, mean KB per file.

    Formats in the order jpeg, webp, avif; sizes largest first.
    """
    order = {"jpeg": 0, "webp": 1, "avif": 2}
    rows = []
    for key, counts in run.get("outputs", {}).items():
        fmt, _, size = key.partition(" ")
        files, size_bytes = counts["files"], counts["bytes"]
        rows.append(
            {
                "format": fmt,
                "size": int(size) if size.isdigit() else 0,
                "files": files,
                "mb_written": size_bytes / 1e6,
                "kb_per_file": size_bytes / 1e3 / files if files else 0.0,
            }
        )
    rows.sort(key=lambda r: (order.get(r["format"], 9), r["format"], -r["size"]))
    return {col: [row[col] for row in rows] for col in OUTPUT_COLUMNS}


def _row(addr: str, w: dict[str, Any]) -> dict[str, Any]:
    images = w["ok"] + w["failed"]
    span = (w["last"] - w["first"]) if w["first"] is not None else 0.0
    rate = images / span if span > 0 else 0.0
    threads = max(w["nthreads"], 1)
    return {
        "worker": addr,
        "threads": w["nthreads"],
        "ok": w["ok"],
        "failed": w["failed"],
        "skipped": w["skipped"],
        "mb_read": w["bytes_read"] / 1e6,
        "mb_written": w["bytes_written"] / 1e6,
        "rate": rate,
        "rate_per_core": rate / threads,
        "ms_per_image": 1000.0 * w["busy"] / images if images else 0.0,
    }


def progress(run: dict[str, Any] | None, now: float | None = None) -> str:
    """One line of HTML: run id, state, done / total, percent, elapsed and ETA."""
    if run is None:
        return "<b>No run yet.</b> Waiting for the first pipeline events..."
    done, total = run["done"], run["total"]
    end = run["finished"] or (now if now is not None else time.time())
    elapsed = max(end - run["started"], 0.0)
    parts = [f"<b>Run {run['run']}</b> ({run['state']})"]
    if total:
        parts.append(f"{done:,} / {total:,} images ({100.0 * done / total:.1f}%)")
    else:
        parts.append(f"{done:,} / ? images")
    parts.append(f"ok {run['ok']:,}, failed {run['failed']:,}, skipped {run['skipped']:,}")
    written = run.get("outputs", {})
    if len(written) > 1:  # several renditions: how many files they came to
        files = sum(v["files"] for v in written.values())
        parts.append(f"{files:,} files in {len(written)} renditions")
    parts.append(f"elapsed {_clock(elapsed)}")
    if run["state"] == "running" and total and done and elapsed > 0:
        parts.append(f"ETA {_clock(max(total - done, 0) * elapsed / done)}")
    return " &middot; ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
