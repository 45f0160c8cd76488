"""The texts of `python -m pipeline --help` and of each command's `--help`."""

MAIN_EXAMPLES = """\
examples:
  python -m pipeline samples --output data/input
  python -m pipeline run --input data/input --output data/output
  python -m pipeline run --input photos --output web --dry-run

The README says more: installation, outputs, the report, clusters, Docker."""

RUN_DESCRIPTION = """\
Fit every image under the input folder (searched recursively) within N x N pixels and write it
as a JPEG to the output folder, in the same sub-folders. Inputs whose output is already up to
date are skipped. The work runs on a local Dask cluster using every core, or on an existing
cluster given by --scheduler; a failed image is reported, never fatal.

Flags beat environment variables, which beat defaults: [$VARIABLE; default] after each option.
Exit status: 0 every input ok or skipped; 1 at least one input failed (the others are still
written); 2 usage or set-up error (one line on stderr); 130 interrupted (Ctrl-C or SIGTERM: the
report is still written)."""

RUN_EXAMPLES = """\
examples:
  python -m pipeline run --input photos --output web
  python -m pipeline run --input photos --output web --dry-run     # what would be done
  python -m pipeline run --input photos --output web --max-size 1280 --quality 80 \\
      --report web/report.json
  python -m pipeline run --scheduler tcp://10.0.0.5:8786 --input /mnt/in --output /mnt/out
  python -m pipeline run --input phone --output web --include '2026/**' --exclude '*.png' \\
      --keep-metadata copyright     # phone photos of 2026, not screenshots; credits kept
  INPUT_DIR=photos OUTPUT_DIR=web python -m pipeline run -v"""

SAMPLES_DESCRIPTION = """\
Write generated photo-like test images (JPEG, PNG, WebP, TIFF, BMP; 2-48 MP at scale 1) to a
folder, so that a run has something to work on. `make run` does this when data/input is empty.

examples:
  python -m pipeline samples --output data/input
  python -m pipeline samples --output /tmp/small --count 6 --scale 0.25"""
