"""docker-compose.yml and docker/Dockerfile, checked without a Docker engine.

(tests/test_docker_image.py builds the image with a real engine and runs the compose file.)

A real compose implementation parses and normalizes the compose file (the docker CLI's compose
plugin if present, else `docker-compose`: Debian's package, which .ci/run installs); the safety
properties are checked on its output. Then the services' own commands, taken from that output,
run as local processes (service names and container ports mapped to 127.0.0.1 and free ports,
container paths to temporary folders) and must complete a job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool
from distributed import Client
from PIL import Image

from pipeline.samples import write_samples

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
# variables the compose file reads: unset, so the defaults are what is checked
COMPOSE_VARS = (
    *("INPUT_DIR", "OUTPUT_DIR", "MAX_SIZE", "JPEG_QUALITY", "DASK_SCHEDULER_ADDRESS"),
    *("DASHBOARD_PORT", "WORKER_MEMORY", "PIPELINE_UID", "PIPELINE_GID"),
    *("PIPELINE_IMAGE", "PYTHON_IMAGE"),
    *("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"),
)
DATA_SERVICES = ("worker", "runner")  # the ones that read inputs and write outputs
INPUT, OUTPUT = "/data/input", "/data/output"
SCHEDULER_PORT = 8786
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|cmake|rustc|cargo)\b")
START_TIMEOUT = 30.0


# ---- the compose parser -------------------------------------------------------------------


def compose_command() -> list[str]:
    """The first compose implementation found (skipped without one, failed in CI)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    hint = "`apt-get install docker-compose` (or the docker compose plugin) validates the file"
    return [require_tool("docker-compose", hint=hint)]


def compose_config(path: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    """`<compose> -f path config`: validates the file, prints it normalized (YAML)."""
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
    argv = [*compose_command(), "-f", str(path), "--env-file", str(env_file), "config"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    empty_env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    empty_env_file.write_text("")
    result = compose_config(COMPOSE_FILE, empty_env_file)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = config["services"]
    return found


def test_compose_file_validates(services: dict[str, Any]) -> None:
    assert set(services) == {"scheduler", "worker", "runner"}


def test_the_parser_rejects_a_broken_file(tmp_path: Path) -> None:
    """Proof that the check above validates, not just reads YAML."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    broken.write_text(text.replace("mem_limit: 1g", "mem_limmit: 1g", 1))
    assert broken.read_text() != text
    (tmp_path / "empty.env").write_text("")
    result = compose_config(broken, tmp_path / "empty.env")
    assert result.returncode != 0
    assert "mem_limmit" in result.stdout + result.stderr


# ---- the safety properties, on the normalized file -----------------------------------------


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(host ip, published port, container port) in either normalized form."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # compose v2: long syntax
            entry = (port.get("host_ip", ""), str(port.get("published", "")), int(port["target"]))
        else:  # docker-compose v1: "127.0.0.1:8787:8787/tcp"
            parts = str(port).split("/")[0].split(":")
            parts = ["", "", *parts][-3:]
            entry = (parts[0], parts[1], int(parts[2]))
        ports.append(entry)
    return ports


def mounts(service: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """container path -> (host path, read-only), in either normalized form."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = (volume.get("source", ""), bool(volume.get("read_only")))
        else:
            source, target, *mode = str(volume).split(":")
            found[target] = (source, "ro" in (mode[0].split(",") if mode else []))
    return found


def memory_bytes(service: Mapping[str, Any]) -> int:
    limit = service.get("mem_limit") or service.get("deploy", {}).get("resources", {}).get(
        "limits", {}
    ).get("memory")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)i?b?", str(limit or "").lower())
    assert match, f"no memory limit: {limit!r}"
    return int(float(match[1]) * 1024 ** " kmg".index(match[2] or " "))


def test_ports_published_on_localhost_only(services: dict[str, Any]) -> None:
    published = {name: published_ports(s) for name, s in services.items()}
    assert published["scheduler"], "the dashboard is published"
    for name, ports in published.items():
        for host_ip, host_port, container_port in ports:
            assert host_ip == "127.0.0.1", (name, host_ip, host_port)
            assert SCHEDULER_PORT not in (container_port, int(host_port or 0)), name


def test_data_mounts_same_paths_input_read_only(services: dict[str, Any]) -> None:
    expected = {INPUT: (str(REPO / "data" / "input"), True)}
    expected[OUTPUT] = (str(REPO / "data" / "output"), False)
    for name in DATA_SERVICES:
        assert mounts(services[name]) == expected, name
    runner = services["runner"]["command"]
    assert runner[runner.index("--input") + 1] == INPUT
    assert runner[runner.index("--output") + 1] == OUTPUT
    assert services["runner"]["environment"]["DASK_SCHEDULER_ADDRESS"] == "tcp://scheduler:8786"


def test_memory_limits_and_one_image(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert memory_bytes(service) >= 256 * 2**20, name
    assert {s["image"] for s in services.values()} == {"pipeline:local"}
    assert [n for n, s in services.items() if "build" in s] == ["scheduler"]
    assert services["scheduler"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["scheduler"]["build"]["args"] == {"PYTHON_IMAGE": "python:3.11-slim-bookworm"}


def test_services_wait_for_health(services: dict[str, Any]) -> None:
    assert services["scheduler"]["healthcheck"]["test"][0] == "CMD"
    assert services["worker"]["depends_on"]["scheduler"]["condition"] == "service_healthy"
    runner_deps = services["runner"]["depends_on"]
    assert {runner_deps[s]["condition"] for s in ("scheduler", "worker")} == {"service_healthy"}


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[(INSTRUCTION, arguments)] per stage; the global ARGs before the first FROM are stage 0."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def test_dockerfile_final_stage() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 3, "multi-stage: a build stage and a final stage"
    final = stages[-1]
    global_args = dict(a.split("=", 1) for i, a in stages[0] if i == "ARG" and "=" in a)
    base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m[1]], final[0][1])
    assert base == "python:3.11-slim-bookworm"
    users = [a for i, a in final if i == "USER"]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [a for i, a in final if i == "HEALTHCHECK"]
    assert healthchecks, "no HEALTHCHECK in the final stage"
    assert "NONE" not in healthchecks[-1].upper()
    runs = " ".join(a for i, a in final if i == "RUN")
    assert not COMPILERS.search(runs), runs
    assert any(i == "COPY" and "--from=build" in a and "/opt/venv" in a for i, a in final)


def test_dockerfile_installs_runtime_dependencies_at_the_lock_versions_then_the_package() -> None:
    runs = [a for stage in dockerfile_stages()[1:-1] for i, a in stage if i == "RUN"]
    assert any("pip install -c /tmp/lock.txt -r /tmp/runtime.txt" in r for r in runs)
    assert not any(re.search(r"-r \S*lock\.txt", r) for r in runs)  # not the test/lint tools
    assert any("pip install --no-deps" in r for r in runs)


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = {line.strip().strip("/") for line in lines if not line.startswith("#")}
    assert {".git", ".venv", "data", "**/__pycache__"} <= ignored


# ---- the services' commands as local processes ---------------------------------------------


class Ports(dict[int, int]):
    """Container port -> a free local port, allocated on first use."""

    def __missing__(self, key: int) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self[key] = sock.getsockname()[1]
        return self[key]


ADDRESS = re.compile(r"(?:\b(?:scheduler|localhost|\d+\.\d+\.\d+\.\d+))?:(\d{2,5})\b")


def localize(arg: str, ports: Ports, paths: Mapping[str, Path]) -> str:
    """One argument or env value as it must be outside the containers."""
    for container, local in paths.items():
        if arg == container or arg.startswith(container + "/"):
            return str(local) + arg[len(container) :]
    return ADDRESS.sub(lambda m: f"127.0.0.1:{ports[int(m[1])]}", arg)


def local_argv(argv: list[str], ports: Ports, paths: Mapping[str, Path]) -> list[str]:
    """The container's command for this machine: its python, 127.0.0.1, free ports, temp dirs."""
    out, program = [], {"dask": [sys.executable, "-m", "dask"], "python": [sys.executable]}
    for prev, arg in zip(["", *argv], argv, strict=False):
        if prev == "--host":
            out.append("127.0.0.1")
        elif prev == "--port":
            out.append(str(ports[int(arg)]))
        else:
            out.append(localize(arg, ports, paths))
    if argv[0] == "dask" and "--host" not in argv:
        out += ["--host", "127.0.0.1"]
    return program.get(out[0], [out[0]]) + out[1:]


def local_env(service: Mapping[str, Any], ports: Ports, paths: Mapping[str, Path]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
    env = {k: v for k, v in env.items() if not k.startswith("DASK_")}
    for name, value in (service.get("environment") or {}).items():
        env[name] = localize(str(value), ports, paths)
    return env


def healthcheck_argv(service: Mapping[str, Any], ports: Ports) -> list[str]:
    test = list(service["healthcheck"]["test"])
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", localize(test[1], ports, {})]
    return local_argv(test[1:], ports, {})


@contextlib.contextmanager
def process_group(argv: list[str], env: dict, cwd: Path, log: Path) -> Iterator[Any]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the whole group: `dask worker` starts a nanny
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)


def wait_healthy(argv: list[str], env: dict, proc: Any, log: Path) -> None:
    """Run the service's own healthcheck until it passes, as `depends_on` would."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        if subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise TimeoutError(f"healthcheck {argv} never passed:\n{log.read_text(errors='replace')}")


def test_compose_services_complete_a_job(services: dict[str, Any], tmp_path: Path) -> None:
    inputs = write_samples(tmp_path / "in", scale=0.05)
    (tmp_path / "out").mkdir()
    host_dirs = {  # the host folders the compose file mounts -> local temp folders
        str(REPO / "data" / "input"): tmp_path / "in",
        str(REPO / "data" / "output"): tmp_path / "out",
    }
    ports, workers = Ports(), 2
    with contextlib.ExitStack() as stack:
        start = _starter(stack, tmp_path, host_dirs)
        start("scheduler", services["scheduler"], ports)
        for i in range(workers):  # --scale worker=2: each has its own container ports
            start(f"worker-{i}", services["worker"], Ports(ports))
        with Client(f"tcp://127.0.0.1:{ports[SCHEDULER_PORT]}", timeout=10) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT)
        runner, paths = services["runner"], _paths(services["runner"], host_dirs)
        result = subprocess.run(
            local_argv(runner["command"], Ports(ports), paths),
            env=local_env(runner, Ports(ports), paths),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    assert result.returncode == 0, result.stdout + result.stderr + logs
    assert f"http://127.0.0.1:{ports[8787]}/status" in result.stdout  # the link for the host
    _assert_outputs(tmp_path / "in", tmp_path / "out", inputs)


def _paths(service: Mapping[str, Any], host_dirs: Mapping[str, Path]) -> dict[str, Path]:
    """The service's container paths -> the local folders standing in for their host folders."""
    return {target: host_dirs[source] for target, (source, _) in mounts(service).items()}


def _starter(stack: contextlib.ExitStack, tmp_path: Path, host_dirs: Mapping[str, Path]) -> Any:
    def start(name: str, service: Mapping[str, Any], ports: Ports) -> None:
        paths, log = _paths(service, host_dirs), tmp_path / f"{name}.log"
        env, argv = local_env(service, ports, paths), local_argv(service["command"], ports, paths)
        proc = stack.enter_context(process_group(argv, env, tmp_path, log))
        wait_healthy(healthcheck_argv(service, ports), env, proc, log)

    return start


def _assert_outputs(root: Path, out: Path, inputs: list[Path]) -> None:
    report = json.loads((out / "report.json").read_text())
    rows = {row["input"]: row for row in report["files"]}
    assert sorted(rows) == sorted(str(p.relative_to(root)) for p in inputs)
    assert {row["status"] for row in rows.values()} == {"ok"}
    for row in rows.values():
        with Image.open(out / row["output"]) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
            im.load()
    written = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "report.json")
    assert len(written) == len(inputs)
