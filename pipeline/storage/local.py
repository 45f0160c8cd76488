"""A local folder: atomic writes that follow no link, reads confined to the folder on request."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pipeline import outputs, safety
from pipeline.storage.base import Entry, Store

FS_CLOCK_SLACK_NS = 20_000_000  # 20 ms: a few ticks of the kernel's coarse file-time clock


@dataclass(frozen=True)
class LocalStore(Store):
    """A folder, by its resolved absolute path.

    `confined`: reads refuse a path whose symbolic links lead outside the root. Outputs are
    written below the root without following any link (`outputs`), whatever `confined` says.
    """

    root: str
    confined: bool = False
    remote: ClassVar[bool] = False

    def list_folder(self, rel: str) -> list[Entry]:
        with os.scandir(self.url(rel)) as entries:
            return [_entry(e) for e in entries if _listed(e)]

    def identity(self, rel: str) -> tuple[int, str]:
        st = os.stat(self._source(rel))
        return st.st_size, str(st.st_mtime_ns)

    def read(self, rel: str) -> bytes:
        return Path(self._source(rel)).read_bytes()

    def inspect(self, rel: str) -> tuple[bool, bytes | None]:
        return outputs.inspect(*self._output(rel))

    def written_by(self, rel: str, run_id: str, started_ns: int) -> bool:
        """The run id kept with the file (`outputs.RUN_ATTRIBUTE`), else its mtime.

        Where the file system keeps no extended attributes, a file modified since the run
        started is taken for its own. The kernel stamps files from its coarse clock, which lags
        `time.time_ns()` by up to one timer tick, so a file written just after the start can
        carry an earlier time: FS_CLOCK_SLACK_NS allows for it. There, an output that an
        earlier run wrote in the last moments before this one started counts as this run's.
        """
        path, root = self._output(rel)
        tag = outputs.run_of(path, root)
        if tag is not None:
            return tag == run_id
        modified = outputs.modified_ns(path, root)
        return modified is not None and modified >= started_ns - FS_CLOCK_SLACK_NS

    def write(self, rel: str, data: bytes, marker: bytes, run_id: str = "") -> None:
        # the marker is inside `data`; the run id goes with the file where it can
        path, root = self._output(rel)
        outputs.write_atomic(path, data, root, run_id)

    def check_writable(self) -> None:
        import tempfile  # here: the CLI's start-up does not need it

        Path(self.root).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.root, prefix=".pipeline-probe-"):
            pass

    def _source(self, rel: str) -> str:
        """The path to read `rel` from: its real path when links must stay inside."""
        return safety.confined(self.root, rel) if self.confined else self.url(rel)

    def _output(self, rel: str) -> tuple[Path, Path]:
        """(the output path, the root) for reaching it below the root without following links."""
        return Path(self.url(rel)), Path(self.root)


def _listed(entry: os.DirEntry[str]) -> bool:
    """Folders that are not symbolic links, and files (following links)."""
    with contextlib.suppress(OSError):
        return entry.is_dir(follow_symlinks=False) or entry.is_file()
    return False


def _entry(entry: os.DirEntry[str]) -> Entry:
    if entry.is_dir(follow_symlinks=False):
        return Entry(entry.name, True)
    try:
        size = entry.stat().st_size  # one stat per file, following links; cached by the entry
    except OSError:
        size = 0
    return Entry(entry.name, False, size)
