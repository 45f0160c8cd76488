"""Create .venv with a working pip, even where Debian's python3 lacks ensurepip.

`python3 -m venv` needs the python3-venv package on Debian. Without it this script makes the
venv `--without-pip` and installs pip from its wheel on PyPI (the package registry, nothing
else), so `make install` works on a machine with nothing but Python 3.11+ and make.
Usage: python3 requirements/make_venv.py .venv
"""

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
    with urllib.request.urlopen(f"https://pypi.org/pypi/pip/{PIP_VERSION}/json", timeout=60) as r:
        files = json.load(r)["urls"]
    wheel = next(f for f in files if f["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp, wheel["filename"])
        urllib.request.urlretrieve(wheel["url"], dest)
        subprocess.run([python, f"{dest}/pip", "install", "-q", str(dest)], check=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
