"""What the console shows: job tables, the follow-a-job progress bar, JSON for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.console.client import Job, JobStatus, is_final

# C0 and C1 control characters (ESC starts the ANSI sequences that repaint a terminal) and DEL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PROMPT_CHARS = 40
WIDE_TABLE = 120  # terminal columns from which `jobs list` also shows size and count
STATUS_STYLES: dict[str, str] = {
    JobStatus.QUEUED: "dim",
    JobStatus.PENDING: "cyan",
    JobStatus.PROCESSING: "blue",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "yellow",
}


# Characters JSON may carry raw that a terminal obeys (C1 controls such as CSI, U+009B) or that
# breaks lines in some readers; JSON escapes C0 controls itself.
_RAW_IN_JSON = re.compile("[\u0080-\u009f\u2028\u2029]")


def dumps(value: Any) -> str:
    """Indented JSON, as scripts and `jq` read it; caller text cannot drive a terminal."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def jobs_table(jobs: list[Job], width: int) -> Table:
    """One row per job, newest first as given; size and count only when `width` allows."""
    wide = width >= WIDE_TABLE
    table = Table(
        title=f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("ID", no_wrap=True, min_width=36)
    table.add_column("Status", no_wrap=True)
    if wide:
        table.add_column("Size", no_wrap=True)
        table.add_column("N", justify="right", no_wrap=True)
    table.add_column("Created (UTC)", min_width=10)
    table.add_column("Prompt", min_width=10)
    for job in jobs:
        prompt = job["prompt"]
        if len(prompt) > PROMPT_CHARS:
            prompt = prompt[: PROMPT_CHARS - 1] + "…"
        cells = [job["id"], _status(job["status"], job["progress"])]
        if wide:
            cells += [_text(job["size"] or "-"), str(job["n"])]
        cells += [_time(job["created_at"], utc_suffix=False), _text(prompt)]
        table.add_row(*cells)
    return table


def job_table(job: Job, base_url: str = "") -> Table:
    """Every field of one job, one per row; archived image paths are made absolute on
    `base_url`."""
    table = Table(show_header=False, title=f"Job {job['id']}", title_justify="left")
    table.add_column("Field", style="bold", no_wrap=True)
    table.add_column("Value", overflow="fold")
    error = job["error"]
    rows: list[tuple[str, str]] = [
        ("ID", job["id"]),
        ("Status", _status(job["status"])),
        ("Progress", f"{job['progress']}%"),
        ("Model", _text(job["model"])),
        ("Prompt", _text(job["prompt"])),
        ("Size", _text(job["size"] or "-")),
        ("N", str(job["n"])),
        ("Image URLs", _lines(job["image_urls"])),
        ("Mask URL", _text(job["mask_url"] or "-")),
        ("Metadata", _text(json.dumps(job["metadata"])) if job["metadata"] is not None else "-"),
        ("EvoLink task", _text(job["evolink_task_id"] or "-")),
        ("Results", _lines(job["results"])),
        ("Archive", _text(job.get("archive_status") or "-")),
        ("Images", _lines([base_url + image["url"] for image in job.get("images", [])])),
        ("Error", _text(f"{error['code']}: {error['message'] or ''}") if error else "-"),
        ("Estimated", f"{job['estimated_time']} s" if job["estimated_time"] is not None else "-"),
        ("Created", _time(job["created_at"])),
        ("Updated", _time(job["updated_at"])),
        ("Completed", _time(job["completed_at"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def outcome_line(job: Job) -> str:
    """Why a final job that did not complete ended, in one line."""
    error = job["error"]
    reason = f"{error['code']}: {error['message'] or 'no message'}" if error else "no error given"
    return CONTROL_CHARACTERS.sub("?", f"job {job['id']} {job['status']}: {reason}")


def follow(job: Job, updates: Iterable[Job], *, console: Console | None) -> Job:
    """Show the job's progress from `updates` until it is final, with a progress bar on
    `console` when it is a terminal; the job as it ended.

    KeyboardInterrupt propagates: the job keeps running on the service.
    """
    show = console is not None and console.is_terminal
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    )
    with progress:
        task = progress.add_task(_description(job), total=_total(job), completed=job["progress"])
        for update in updates:
            job = update
            progress.update(
                task, description=_description(job), total=_total(job), completed=job["progress"]
            )
            if is_final(job):
                break
    return job


def _total(job: Job) -> float | None:
    # Until EvoLink reports progress, a pulsing bar says "waiting" better than a stuck 0%.
    waiting = job["status"] in (JobStatus.QUEUED, JobStatus.PENDING) and not job["progress"]
    return None if waiting else 100


def _description(job: Job) -> str:
    return f"job {job['id'][:8]} {_status(job['status'])}"


def _status(status: str, progress: int | None = None) -> str:
    style = STATUS_STYLES.get(status)
    text = _text(status)
    if progress is not None and status in (JobStatus.PENDING, JobStatus.PROCESSING):
        text += f" {progress}%"
    return f"[{style}]{text}[/]" if style else text


def _lines(values: list[str]) -> str:
    return "\n".join(_text(value) for value in values) if values else "-"


def _text(value: str) -> str:
    """Caller-supplied text made inert: control characters shown as \\xNN, markup escaped."""
    return escape(CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", value))


def _time(value: str | None, *, utc_suffix: bool = True) -> str:
    if value is None:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _text(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    suffix = " UTC" if utc_suffix and moment.tzinfo else ""
    return moment.strftime("%Y-%m-%d %H:%M:%S") + suffix
