"""The run report: counts as results stream in, a summary line, and the JSON file.

Per-file records can be many (a million inputs): the report keeps them in memory only when
asked (`keep_records`) and otherwise spools them to an unlinked temporary file (beside the JSON
report, or in the temporary folder), so the client's memory stays flat; `records` then reads
them back from the spool. Failed records are kept in memory too (up to MAX_FAILURES_KEPT).
The JSON report carries the run's options, so `RunReport.from_json` gives a report that
`pipeline.rerun` can repeat.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from pipeline.config import RunOptions
from pipeline.record import STATUSES, Record
from pipeline.records import SpooledRecords, options_from_json, options_to_json
from pipeline.safety import json_row, name_from_json

MAX_FAILURES_KEPT = 10_000  # in memory when records are spooled; the JSON report has them all
#: A record's fields in the report: all but the optional ones, which only steer the run.
REPORT_FIELDS = tuple(key for key in Record.__annotations__ if key in Record.__required_keys__)


class RunReport:
    """What a run did: counts, time, and the per-file records."""

    def __init__(
        self, *, run_id: str, keep_records: bool = True, spool_dir: Path | None = None
    ) -> None:
        self.run_id = run_id
        self.counts = dict.fromkeys(STATUSES, 0)
        self.seconds = 0.0
        self.interrupted = False
        self.stopped: str | None = None  # why the run stopped early (e.g. "output disk full")
        self.discovered = 0
        self.dashboard_link = ""
        self.throughput_link = ""
        self._records: list[dict[str, Any]] | None = [] if keep_records else None
        self.failures: list[dict[str, Any]] = []
        self.bytes_read = 0
        self.bytes_written = 0
        self.options: RunOptions | None = None  # set by the runner: what this run was asked
        self._spool: IO[str] | None = None
        if spool_dir is not None:
            # an unlinked file: nothing is left behind, whatever happens to this process
            self._spool = tempfile.TemporaryFile(  # noqa: SIM115 - closed in close()
                "w+", dir=spool_dir, prefix=".pipeline-report-"
            )
            # a report handed to the caller (run() returns it) owns the file until it is dropped
            weakref.finalize(self, self._spool.close)

    # -- filling in ---------------------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            row = {key: record.get(key) for key in REPORT_FIELDS}
            self.counts[record["status"]] += 1
            self.bytes_read += record.get("bytes_read") or 0
            self.bytes_written += record.get("bytes_written") or 0
            if record.get("fatal") and self.stopped is None:
                self.stopped = record["fatal"]
            if row["status"] == "failed" and (
                self._records is not None or len(self.failures) < MAX_FAILURES_KEPT
            ):
                self.failures.append(row)
            if self._records is not None:
                self._records.append(row)
            if self._spool is not None:
                self._spool.write(json.dumps(_json_safe(row)) + "\n")

    # -- reading ------------------------------------------------------------------------------
    @property
    def records(self) -> list[dict[str, Any]] | SpooledRecords | None:
        """Every per-file record: in memory, read back from the spool, or None (not kept)."""
        if self._records is not None:
            return self._records
        if self._spool is not None:
            return SpooledRecords(self._spool.fileno(), self._spool.flush, lambda: self.total)
        return None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed_inputs(self) -> list[str]:
        """Input paths (relative to the input folder) that failed: pass to `run(only=...)`."""
        return [row["input"] for row in self.failures]

    @property
    def images_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "total": self.total,
            **self.counts,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "megabytes_read": round(self.bytes_read / 1e6, 3),
            "megabytes_written": round(self.bytes_written / 1e6, 3),
            "interrupted": self.interrupted,
            "stopped": self.stopped,
            "run_id": self.run_id,
        }

    def summary_line(self) -> str:
        c = self.counts
        head = "interrupted after" if self.interrupted else "done:"
        if self.stopped:
            head = f"stopped ({self.stopped}) after"
        return (
            f"{head} {self.total} images: {c['ok']} ok, {c['skipped']} skipped, "
            f"{c['failed']} failed in {self.seconds:.1f} s ({self.images_per_second:.1f} images/s)"
        )

    def write_json(self, path: Path) -> None:
        """Write the report to `path` atomically: summary first, then one record per input."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write('{\n"summary": ' + json.dumps(self.summary()) + ",\n")
                if self.options is not None:
                    out.write('"run": ' + json.dumps(options_to_json(self.options)) + ",\n")
                out.write('"files": [')
                for i, line in enumerate(self._record_lines()):
                    out.write(("\n" if i == 0 else ",\n") + line)
                out.write("\n]\n}\n")
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _record_lines(self) -> Iterable[str]:
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            for line in self._spool:
                yield line.rstrip("\n")
        else:
            for row in self._records or self.failures:
                yield json.dumps(_json_safe(row))

    @classmethod
    def from_json(cls, path: str | Path) -> RunReport:
        """Load a report written by `write_json` (the CLI's `--report`): for `rerun`, `to_frame`.

        Its records are spooled to a temporary file as they are read, not kept in memory.
        """
        with open(path, encoding="utf-8") as source:
            head = source.readline().strip()
            if head != "{":  # not laid out by write_json: parse it whole
                source.seek(0)
                return cls._from_parsed(json.load(source))
            parts: dict[str, Any] = {}
            for line in source:
                key, _, value = line.partition(": ")
                if key == '"files"':
                    break
                parts[json.loads(key)] = json.loads(value.rstrip().rstrip(","))
            report = cls._from_parsed({**parts, "files": []})
            rows = (line.rstrip().rstrip(",") for line in source)
            report.add(_exact_names(json.loads(row)) for row in rows if row.startswith("{"))
        return report

    @classmethod
    def _from_parsed(cls, data: dict[str, Any]) -> RunReport:
        summary = data.get("summary", {})
        report = cls(
            run_id=str(summary.get("run_id") or "loaded"),
            keep_records=False,
            spool_dir=Path(tempfile.gettempdir()),
        )
        report.seconds = float(summary.get("seconds") or 0.0)
        report.interrupted = bool(summary.get("interrupted"))
        if data.get("run") is not None:
            report.options = options_from_json(data["run"])
        report.add(_exact_names(row) for row in data.get("files", []))
        report.stopped = summary.get("stopped")
        return report

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    # -- notebooks ----------------------------------------------------------------------------
    def to_frame(self) -> Any:
        """The per-file records as a pandas DataFrame (needs pandas; empty if none are kept)."""
        import pandas as pd

        return pd.DataFrame(list(self.records or []), columns=list(REPORT_FIELDS))

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.summary().items()
        )
        fails = "".join(
            f"<li><code>{html.escape(f['input'])}</code>: {html.escape(str(f['error']))}</li>"
            for f in self.failures[:20]
        )
        more = f"<p>Failed:</p><ul>{fails}</ul>" if fails else ""
        return f"<p><b>{html.escape(self.summary_line())}</b></p><table>{cells}</table>{more}"

    def __repr__(self) -> str:
        return f"<RunReport {self.summary_line()}>"


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """`safety.json_row` of the row and of each of its outputs (`path` as `output` is kept)."""
    safe = dict(json_row(row))
    if row.get("outputs"):
        safe["outputs"] = [_safe_output(entry) for entry in row["outputs"]]
    return safe


def _safe_output(entry: dict[str, Any]) -> dict[str, Any]:
    safe = json_row({"output": entry["path"]})
    out = {**entry, "path": safe["output"]}
    if "output_bytes" in safe:
        out["path_bytes"] = safe["output_bytes"]
    return out


def _exact_names(row: dict[str, Any]) -> Any:
    """A report row with its exact input and output names (see `safety.json_row`)."""
    exact = {
        **row,
        "input": name_from_json(row, "input"),
        "output": name_from_json(row, "output"),
    }
    if row.get("outputs"):
        exact["outputs"] = [_exact_output(entry) for entry in row["outputs"]]
    return exact


def _exact_output(entry: dict[str, Any]) -> dict[str, Any]:
    raw = {"output": entry["path"], "output_bytes": entry.get("path_bytes")}
    kept = {k: v for k, v in entry.items() if k != "path_bytes"}
    return {**kept, "path": name_from_json(raw, "output")}
