"""Create .venv with a working pip, even where Debian's python3 lacks ensurepip.

`python3 -m venv` needs the python3-venv package on Debian. Without it this script makes the
venv `--without-pip` and installs pip from its wheel on PyPI (the package registry, nothing
else), so `make install` works on a machine with nothing but Python 3.11+ and make.
Usage: python3 requirements/make_venv.py .venv
"""

import hashlib
import json
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

PIP_VERSION = "26.3"


def main(target: str) -> None:
    path = Path(target)
    python = path / "bin" / "python"
    try:
        venv.create(path, with_pip=True, clear=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"venv with pip failed ({exc}); installing pip from PyPI instead", file=sys.stderr)
        venv.create(path, with_pip=False, clear=True)
        _install_pip(python)
    subprocess.run([python, "-m", "pip", "install", "-q", f"pip=={PIP_VERSION}"], check=True)


def _install_pip(python: Path) -> None:
    """Fetch pip's wheel through PyPI's simple index (JSON form), check its hash, install it."""
    name = f"pip-{PIP_VERSION}-py3-none-any.whl"
    request = urllib.request.Request(
        "https://pypi.org/simple/pip/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        entry = next(f for f in json.load(response)["files"] if f["filename"] == name)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(tmp, name)
        urllib.request.urlretrieve(entry["url"], wheel)
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != entry["hashes"]["sha256"]:
            raise SystemExit(f"{name}: hash mismatch, not installing it")
        subprocess.run([python, f"{wheel}/pip", "install", "-q", str(wheel)], check=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
