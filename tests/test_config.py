from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import build_parser, resolve
from pipeline.config import RunOptions, Settings, parse_background
from pipeline.errors import UsageError


def options(argv: list[str], env: dict[str, str] | None = None) -> RunOptions:
    return resolve(build_parser().parse_args(["run", *argv]), env or {})


def test_defaults_match_the_contract() -> None:
    opts = options([])
    assert opts.input == Path("data/input")
    assert opts.output == Path("data/output")
    assert (opts.settings.max_size, opts.settings.quality) == (1920, 85)
    assert opts.scheduler is None
    assert opts.workers is None
    assert opts.overwrite is False


def test_env_vars_beat_defaults_and_flags_beat_env_vars() -> None:
    env = {
        "INPUT_DIR": "/env/in",
        "OUTPUT_DIR": "/env/out",
        "MAX_SIZE": "800",
        "JPEG_QUALITY": "70",
        "DASK_SCHEDULER_ADDRESS": "tcp://env:8786",
    }
    from_env = options([], env)
    assert (from_env.input, from_env.output) == (Path("/env/in"), Path("/env/out"))
    assert (from_env.settings.max_size, from_env.settings.quality) == (800, 70)
    assert from_env.scheduler == "tcp://env:8786"
    argv = [
        "--input",
        "/f/in",
        "--output",
        "/f/out",
        "--max-size",
        "640",
        "--quality",
        "60",
        "--scheduler",
        "tcp://flag:8786",
    ]
    from_flags = options(argv, env)
    assert (from_flags.input, from_flags.output) == (Path("/f/in"), Path("/f/out"))
    assert (from_flags.settings.max_size, from_flags.settings.quality) == (640, 60)
    assert from_flags.scheduler == "tcp://flag:8786"


def test_quoted_scheduler_address_in_env_is_unquoted() -> None:
    assert options([], {"DASK_SCHEDULER_ADDRESS": '"tcp://s:8786"'}).scheduler == "tcp://s:8786"


def test_empty_env_values_fall_back_to_defaults() -> None:
    assert options([], {"MAX_SIZE": "", "INPUT_DIR": ""}).settings.max_size == 1920


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--quality", "0"], {}, "--quality must be an integer from 1 to 95"),
        (["--quality", "96"], {}, "--quality must be an integer from 1 to 95"),
        (["--max-size", "0"], {}, "--max-size must be an integer from 1"),
        ([], {"JPEG_QUALITY": "high"}, "JPEG_QUALITY must be an integer"),
        ([], {"MAX_SIZE": "-5"}, "--max-size must be an integer from 1"),
        (["--workers", "0"], {}, "--workers must be an integer from 1"),
        (["--background", "purple"], {}, "--background must be"),
        (["--timeout", "0"], {}, "--timeout must be a positive number"),
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options(argv, env)


def test_non_integer_flag_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid int value"):
        options(["--max-size", "big"])


def test_fingerprint_changes_with_every_output_setting() -> None:
    base = Settings()
    variants = [Settings(max_size=1000), Settings(quality=80), Settings(background=(0, 0, 0))]
    prints = {s.fingerprint() for s in [base, *variants]}
    assert len(prints) == 4
    assert Settings().fingerprint() == base.fingerprint()
    # the pixel cap decides whether an output exists, not what it looks like
    assert Settings(max_pixels=10).fingerprint() == base.fingerprint()


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("white", (255, 255, 255)),
        ("Black", (0, 0, 0)),
        ("#ff8000", (255, 128, 0)),
        ("10, 20, 30", (10, 20, 30)),
    ],
)
def test_parse_background(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_background(text) == rgb


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in [
        "--input",
        "--output",
        "--max-size",
        "--quality",
        "--scheduler",
        "--workers",
        "--overwrite",
        "--report",
        "INPUT_DIR",
        "OUTPUT_DIR",
        "MAX_SIZE",
        "JPEG_QUALITY",
        "DASK_SCHEDULER_ADDRESS",
    ]:
        assert flag in text
