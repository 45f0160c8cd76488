"""One input's outcome: the statuses and the record fields the report is built from."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.record import STATUSES, Record
from pipeline.report import REPORT_FIELDS, RunReport


def test_the_report_fields_are_the_records_own_in_order() -> None:
    assert REPORT_FIELDS[:4] == ("input", "output", "status", "error")
    assert set(REPORT_FIELDS) == set(Record.__required_keys__)
    assert not {"resumed", "fatal"} & set(REPORT_FIELDS)  # they steer the run, nothing more


def test_every_status_is_counted(tmp_path: Path) -> None:
    report = RunReport(run_id="r")
    base = {"output": None, "error": None, "note": None, "bytes_read": 1, "bytes_written": 0}
    size = {"seconds": 0.0, "width": None, "height": None}
    report.add([Record(input=s, status=s, **base, **size) for s in STATUSES])
    assert report.counts == dict.fromkeys(STATUSES, 1)
    rows = json.loads(json.dumps(report.records))
    assert [tuple(row) for row in rows] == [REPORT_FIELDS] * len(STATUSES)
