"""Worker tuning takes effect in real worker processes: a LocalCluster's Nanny-spawned workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster

from pipeline import tuning

TRIM = "MALLOC_TRIM_THRESHOLD_"


def _trim_env() -> str | None:
    return os.environ.get(TRIM)


def _blocks_max() -> int:
    from PIL import Image

    return int(Image.core.get_blocks_max())


@pytest.fixture
def no_leaked_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Nanny copies pre-spawn-environ into its own process: earlier clusters leak it to us."""
    for name in tuning.MALLOC_ENVIRON:
        monkeypatch.delenv(name, raising=False)


def _malloc_env() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in tuning.MALLOC_ENVIRON}


REFAULT_MIB, REFAULT_TIMES = 48, 10
PAGES = (REFAULT_MIB << 20) // 4096


def _refaults() -> int:
    """Page faults of allocating, filling and freeing a buffer the size of a 24 MP photo's
    JPEG coefficients, REFAULT_TIMES over, in a new thread as the worker's image thread is."""
    import resource
    import threading

    def churn() -> None:
        for _ in range(REFAULT_TIMES):
            buffer = bytearray(REFAULT_MIB << 20)  # zero-filled: every page touched
            del buffer

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _cluster(config: dict[str, Any]) -> Iterator[Client]:
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def tuned_client(no_leaked_trim: None) -> Iterator[Client]:
    yield from _cluster(tuning.local_config())


@pytest.mark.slow
def test_local_workers_keep_freed_image_memory(tuned_client: Client) -> None:
    """Started with MALLOC_ENVIRON instead of the Nanny's trim threshold, a worker reuses a
    freed 48 MiB buffer: its pages are faulted in once, not once per image."""
    assert list(tuned_client.run(_malloc_env).values()) == [tuning.MALLOC_ENVIRON]
    (faults,) = tuned_client.run(_refaults).values()
    assert faults < 2 * PAGES


def _quiet_settings() -> list[bool]:
    return [bool(dask.config.get(key)) for key in tuning.QUIET_WORKERS]


@pytest.mark.slow
def test_local_workers_run_without_the_profiler(tuned_client: Client) -> None:
    assert list(tuned_client.run(_quiet_settings).values()) == [[False, False]]


def _tick_ms(dask_worker: Any = None, dask_scheduler: Any = None) -> float:
    server = dask_worker or dask_scheduler
    return float(server.periodic_callbacks["tick"].callback_time)


def test_local_workers_and_scheduler_tick_slower(tuned_client: Client) -> None:
    assert list(tuned_client.run(_tick_ms).values()) == [500.0]
    assert tuned_client.run_on_scheduler(_tick_ms) == 500.0


def _timers_ms(dask_worker: Any = None, dask_scheduler: Any = None) -> dict[str, float]:
    server = dask_worker or dask_scheduler
    names = ("monitor", "memory_monitor")
    return {
        n: float(server.periodic_callbacks[n].callback_time)
        for n in names
        if n in server.periodic_callbacks
    }


def test_local_monitors_run_less_often(tuned_client: Client) -> None:
    assert list(tuned_client.run(_timers_ms).values()) == [
        {"monitor": 1000.0, "memory_monitor": 250.0}
    ]
    assert tuned_client.run_on_scheduler(_timers_ms) == {"monitor": 1000.0}


@pytest.mark.slow
def test_without_our_config_the_nanny_sets_it(no_leaked_trim: None) -> None:
    """The control: Dask's default really is what local_config() undoes, and with it every
    buffer is faulted in again each time."""
    for client in _cluster({}):
        assert list(client.run(_trim_env).values()) == ["65536"]
        (faults,) = client.run(_refaults).values()
        assert faults > (REFAULT_TIMES - 1) * PAGES


def _pillow_imported() -> bool:
    return "PIL.Image" in sys.modules


@pytest.mark.slow
def test_plugin_gives_trimming_workers_a_block_cache_also_after_a_restart(
    no_leaked_trim: None,
) -> None:
    """Workers started with Dask's default (as on a remote cluster) get Pillow's block cache."""
    here = os.environ.get(tuning.BLOCKS_VARIABLE)
    for client in _cluster({}):
        assert list(client.run(_pillow_imported).values()) == [False]
        tuning.register(client)
        tuning.register(client)  # idempotent: no error, one plugin
        assert list(client.run(_blocks_max).values()) == [tuning.PIL_BLOCKS_MAX]
        assert os.environ.get(tuning.BLOCKS_VARIABLE) == here  # the client process is left alone
        client.restart()
        assert list(client.run(_blocks_max).values()) == [tuning.PIL_BLOCKS_MAX]


@pytest.mark.slow
def test_plugin_leaves_our_untrimmed_local_workers_alone(tuned_client: Client) -> None:
    tuning.register(tuned_client)
    assert list(tuned_client.run(_blocks_max).values()) == [0]


def test_register_failure_is_a_warning_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    class Refusing:
        def register_plugin(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("no plugins here")

    tuning.register(Refusing())
    assert "worker tuning not applied: no plugins here" in capsys.readouterr().err


def test_a_fork_servers_environment_is_the_workers_own() -> None:
    """What a process that local workers are forked from starts with: the malloc settings,
    the user's own values first (as a Nanny has it), and Pillow's block cache if they trim."""
    blocks = {tuning.BLOCKS_VARIABLE: str(tuning.PIL_BLOCKS_MAX)}
    assert tuning.worker_environ({}) == tuning.MALLOC_ENVIRON
    assert tuning.worker_environ({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"
    assert tuning.worker_environ({TRIM: "65536"}) == {
        **tuning.MALLOC_ENVIRON,
        TRIM: "65536",
        **blocks,
    }
    assert tuning.worker_environ({TRIM: "65536", tuning.BLOCKS_VARIABLE: "64"}) == {
        **tuning.MALLOC_ENVIRON,
        TRIM: "65536",
    }


def _apply_in_child(code: str, **env: str) -> list[str]:
    full_env = {k: v for k, v in os.environ.items() if k != tuning.BLOCKS_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", f"from pipeline import tuning; {code}"],
        capture_output=True,
        text=True,
        check=True,
        env={**full_env, TRIM: "65536", **env},
    )
    return done.stdout.split()


def test_apply_sets_pillows_documented_variable_before_pillow_starts() -> None:
    code = (
        "r = tuning.apply_in_process(); from PIL import Image;"
        "print(r['pil_blocks_max'], r['applied'], Image.core.get_blocks_max())"
    )
    assert _apply_in_child(code) == [str(tuning.PIL_BLOCKS_MAX), "True", str(tuning.PIL_BLOCKS_MAX)]


def test_apply_never_lowers_a_larger_setting() -> None:
    code = "r = tuning.apply_in_process(); print(r['pil_blocks_max'], r['applied'])"
    assert _apply_in_child(code, PILLOW_BLOCKS_MAX="64") == ["64", "True"]


def test_apply_after_pillow_started_says_it_changed_nothing() -> None:
    code = (
        "from PIL import Image; r = tuning.apply_in_process();"
        "print(r['pil_blocks_max'], r['applied'], Image.core.get_blocks_max())"
    )
    assert _apply_in_child(code) == ["0", "False", "0"]


def test_importing_does_no_work() -> None:
    code = (
        "import sys; from pipeline import tuning; from PIL import Image;"
        "print(Image.core.get_blocks_max(), 'distributed' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False"]
