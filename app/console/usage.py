"""`evolink-jobs usage`: a caller's jobs and credits today and this month, and its limits."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from app.console import output
from app.console.commands import ApiKeyOption, JsonOption, UrlOption, connect, reported

DEFAULT_URL = "http://127.0.0.1:8000"


def register(cli: typer.Typer) -> None:
    """Add `usage` to the root command `cli`."""
    cli.command("usage")(usage)


def usage(
    caller: Annotated[
        str | None,
        typer.Option(help="Another caller's usage (admin keys only).", metavar="NAME"),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show jobs and credits today and this month, by status, and the limits with what remains."""
    with reported(), connect(url, api_key) as client:
        report = client.get_usage(caller)
    if as_json:
        typer.echo(output.dumps(report))
        return
    Console().print(usage_tables(report))


def usage_tables(report: dict[str, Any]) -> Group:
    """The usage report as two tables: spend by status, then the limits."""
    spend = Table(
        title=f"Usage of {escape(str(report['caller']))} (UTC)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    spend.add_column("Window")
    spend.add_column("Status")
    spend.add_column("Jobs", justify="right")
    spend.add_column("Credits", justify="right")
    for label, key in (("today", "today"), ("this month", "month")):
        window = report[key]
        for status, figures in window["by_status"].items():
            spend.add_row(label, escape(status), str(figures["jobs"]), _number(figures["credits"]))
        spend.add_row(
            f"[bold]{label}[/bold]",
            "[bold]all[/bold]",
            f"[bold]{window['jobs']}[/bold]",
            f"[bold]{_number(window['credits'])}[/bold]",
        )
    limits = Table(title="Limits", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("Limit", "Scope", "Value", "Used", "Remaining", "Resets (UTC)"):
        limits.add_column(column, justify="right" if column in ("Value", "Used") else "left")
    for limit in report["limits"]:
        limits.add_row(
            escape(limit["name"]),
            escape(limit["scope"]),
            "none" if limit["value"] is None else _number(limit["value"]),
            _number(limit["used"]),
            "-" if limit["remaining"] is None else _number(limit["remaining"]),
            escape(limit["resets_at"] or "-"),
        )
    return Group(spend, limits)


def _number(value: float) -> str:
    return f"{value:g}"
