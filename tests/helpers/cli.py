"""The CLI in tests, through typer's CliRunner, and the checks of a one-line error (of the CLI and of
build_config): an exit code, one line on stderr naming what is wrong, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from core.schema.config import ConfigError
from core.schema.presets import build_config

WIDE = {"COLUMNS": "200"}


def cli(*args: str | Path, env: dict[str, str] | None = None, input: str | None = None) -> Any:
    from cltui.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], env={**WIDE, **(env or {})}, input=input)


def no_traceback(result: Any) -> None:
    """The command ended by its own exit (never an exception escaping to CliRunner) and printed no
    traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert "Traceback" not in result.output, result.output


def assert_one_line_error(result: Any, *words: str, code: int = 2) -> str:
    """Exit code `code`, exactly one line on stderr ("error: ..."), no traceback; the line."""
    no_traceback(result)
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def assert_bad_input(result, *words: str) -> None:
    """Exit code 2, one line on stderr naming what is wrong, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def config_error(**kwargs) -> str:
    """build_config(**kwargs) must fail with a ConfigError of one line; its text."""
    with pytest.raises(ConfigError) as info:
        build_config(**kwargs)
    text = str(info.value)
    assert "\n" not in text, f"not one line: {text!r}"
    assert text.strip() == text and text
    return text
