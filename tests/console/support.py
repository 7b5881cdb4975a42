"""Running the console as an operator would, and checking what it printed."""

from __future__ import annotations

import traceback

import typer
from typer.testing import CliRunner, Result

Env = dict[str, str | None]


def run(console: typer.Typer, env: Env, *args: str) -> Result:
    """Run the console with `args`, stdout and stderr kept apart."""
    result = CliRunner().invoke(console, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(result.exception)) + result.stderr)
    return result


def one_line_failure(result: Result, exit_code: int) -> str:
    """The single stderr line of a failed command (nothing on stdout), without its prefix."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("evolink-jobs: "), lines[0]
    return lines[0].removeprefix("evolink-jobs: ")
