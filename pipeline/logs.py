"""Log levels for the CLI: `-v`, `-vv` and `--log-level` set the pipeline's and Dask's.

The pipeline's own loggers (`pipeline.*`) print `LEVEL name: message` on stderr. Dask's loggers
(`distributed`, which configures itself on import) get the same level in this process, and,
through the `DASK_LOGGING__DISTRIBUTED` variable, in worker processes started from it.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DASK_LOGGERS = ("distributed", "bokeh", "tornado")
DASK_ENV = "DASK_LOGGING__DISTRIBUTED"  # read by each process when it imports distributed


def level_for(*, verbose: int, explicit: str | None) -> str | None:
    """The level asked for: `--log-level` wins over -v (INFO) and -vv (DEBUG).

    None when nothing was asked for: the defaults stay (warnings and errors are shown).
    `-q`/`--quiet` hides the progress and the summary, not warnings: `--log-level ERROR` does.
    """
    if explicit:
        return explicit.upper()
    if verbose:
        return "DEBUG" if verbose > 1 else "INFO"
    return None


def configure(level: str | None) -> None:
    """Apply `level` to the pipeline's and Dask's loggers here and in workers started later."""
    ours = logging.getLogger("pipeline")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False
    ours.setLevel(level or "WARNING")
    if level is None:
        return
    os.environ[DASK_ENV] = level.lower()
    for name in DASK_LOGGERS:
        logging.getLogger(name).setLevel(level)
