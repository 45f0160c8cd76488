"""Machines for tests: Linux network namespaces joined by a bridge, as root.

    with Lab() as lab:
        s3 = lab.host("s3", 2)
        s3.spawn([sys.executable, "-m", "moto.server", "-H", s3.ip], env=env, log=path)
        worker = lab.host("w1", 11, private_tmp=True)
        ...
        lab.cut(worker)  # drops every frame to and from the worker at the bridge, silently

Every host is a network namespace with one veth into a bridge that lives in a namespace of its
own, so nothing of the test is visible in the machine's own namespace and addresses
(10.77.0.0/24) are private to the lab: parallel labs use the same subnet without meeting.
A host made with `private_tmp=True` runs each process in a mount namespace with an empty tmpfs
on /tmp, so it shares no scratch disk with the other hosts. `cut` drops frames with an nftables
rule of the `bridge` family in the bridge's namespace: no link event, no reset, as when a
machine vanishes. `close` (also on failure) kills every process group it started and deletes
the namespaces, which removes the veths, the bridge and the nftables table with them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUBNET = "10.77.0"
TOOLS = ("ip", "nft", "unshare", "mount")
STOP_TIMEOUT = 10.0
_PREFIX = "plmh"
_STALE = re.compile(rf"^{_PREFIX}(\d+)\.\d+-")
_counter = itertools.count(1)
REPO = Path(__file__).resolve().parents[1]


def private_tmp(keep: Path = REPO) -> list[str]:
    """A prefix that runs a command with an empty private /tmp (in a mount namespace that ends
    with the process). A checkout that itself lives under /tmp (its venv, the package) stays
    visible at its path: it is bound aside on /mnt, /tmp is covered, and it is moved back."""
    script = 'mount -t tmpfs none /tmp && cd /tmp && exec "$@"'
    if keep.is_relative_to("/tmp"):
        path = shlex.quote(str(keep))
        script = (
            f"mount --bind {path} /mnt && mount -t tmpfs none /tmp && mkdir -p {path} && "
            f'mount --move /mnt {path} && cd /tmp && exec "$@"'
        )
    return ["unshare", "-m", "sh", "-c", script, "sh"]


def missing() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "multi-host tests need root (network namespaces, nftables)"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"multi-host tests need {', '.join(absent)}: apt-get install iproute2 nftables"
    return None


def require() -> None:
    """Skip with the reason; fail instead under CI, where the lab is required."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required when CI is set)")
    pytest.skip(reason)


def sh(*argv: str, stdin: str | None = None, timeout: float = 30) -> str:
    """Run a command, raise with its output when it fails; return stdout."""
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Host:
    """One machine: a network namespace with an address on the lab's bridge."""

    lab: Lab
    role: str
    ns: str
    ip: str
    veth: str  # its port on the bridge (in the bridge's namespace)
    private_tmp: bool
    procs: list[subprocess.Popen] = field(default_factory=list)

    def argv(self, command: Sequence[str]) -> list[str]:
        wrap = private_tmp() if self.private_tmp else []
        return ["ip", "netns", "exec", self.ns, *wrap, *command]

    def spawn(
        self, command: Sequence[str], *, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen:
        """Start a long-running process here, in a process group of its own (stopped by close)."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.argv(command), env=dict(env), cwd="/", stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.lab.procs.append(proc)
        self.procs.append(proc)
        return proc

    def run(
        self, command: Sequence[str], *, env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command here to its end (bounded by `timeout`)."""
        return subprocess.run(
            self.argv(command), env=dict(env), cwd="/", capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip


@dataclass
class Lab:
    """A bridge in a namespace of its own, and hosts plugged into it."""

    name: str = field(default_factory=lambda: f"{_PREFIX}{os.getpid()}.{next(_counter)}")
    hosts: list[Host] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def bridge_ns(self) -> str:
        return f"{self.name}-br"

    def __enter__(self) -> Lab:
        remove_stale_labs()
        try:
            self._netns("add", self.bridge_ns)
            self._in_bridge("link", "add", "br0", "type", "bridge")
            self._in_bridge("link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def host(self, role: str, octet: int, *, private_tmp: bool = False) -> Host:
        """A new machine at 10.77.0.<octet>, plugged into the bridge."""
        ns, veth = f"{self.name}-{role}", f"v-{role}"[:15]
        self._netns("add", ns)
        host = Host(self, role, ns, f"{SUBNET}.{octet}", veth, private_tmp)
        self.hosts.append(host)
        self._in_bridge("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._in_bridge("link", "set", veth, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return host

    def cut(self, host: Host) -> None:
        """Drop every frame to and from `host` at the bridge: it goes silent, links stay up."""
        rules = (
            "table bridge lab {\n"
            "  chain isolate {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            f'    iifname "{host.veth}" drop\n'
            f'    oifname "{host.veth}" drop\n'
            "  }\n}\n"
        )
        sh("ip", "netns", "exec", self.bridge_ns, "nft", "-f", "-", stdin=rules)

    def remove(self, host: Host) -> None:
        """Stop the host's processes and unplug it (also lifts a cut: the table goes too)."""
        for proc in reversed(host.procs):
            self.stop(proc)
        _delete_namespace(host.ns)
        self.hosts.remove(host)
        with contextlib.suppress(RuntimeError):
            sh("ip", "netns", "exec", self.bridge_ns, "nft", "delete", "table", "bridge", "lab")

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the process group, SIGKILL what is left after STOP_TIMEOUT."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            if proc.poll() is not None and sig == signal.SIGTERM:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group: a `dask worker` runs a nanny and a worker
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)

    def close(self) -> None:
        """Stop every process, then delete every namespace (their links go with them)."""
        for proc in reversed(self.procs):
            self.stop(proc)
        for ns in [h.ns for h in self.hosts] + [self.bridge_ns]:
            _delete_namespace(ns)
        self.hosts.clear()

    def _netns(self, *args: str) -> None:
        sh("ip", "netns", *args)

    def _in_bridge(self, *args: str) -> None:
        sh("ip", "-n", self.bridge_ns, *args)


def _delete_namespace(ns: str) -> None:
    """Kill whatever still runs in `ns`, then delete it (bounded; a missing ns is fine)."""
    with contextlib.suppress(RuntimeError):
        for pid in sh("ip", "netns", "pids", ns).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        proc = subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        if proc.returncode == 0 or ns not in _namespaces():
            return
        time.sleep(0.2)


def _namespaces() -> list[str]:
    return [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]


def remove_stale_labs() -> None:
    """Delete the namespaces of labs whose test process died without cleaning up."""
    for ns in _namespaces():
        match = _STALE.match(ns)
        if match and not Path(f"/proc/{match[1]}").exists():
            _delete_namespace(ns)
