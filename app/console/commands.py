"""The operator console: submit, list and show jobs over the REST API, and follow them."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from app.console import downloads, output, stream
from app.console.client import (
    USAGE_EXIT_CODE,
    ConsoleError,
    Job,
    JobRequest,
    JobsClient,
    JobStatus,
    is_final,
)

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_PAGE_SIZE = 200  # the API's own limit per page


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Print one readable line to stderr and exit with `exit_code`."""
    typer.echo(f"evolink-jobs: {' '.join(message.split())}", err=True)
    raise typer.Exit(code=exit_code)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a ConsoleError into its one line and exit code."""
    try:
        yield
    except ConsoleError as exc:
        fail(exc.message, exc.exit_code)


UrlOption = Annotated[
    str,
    typer.Option(
        "--url", envvar="EVOLINK_JOBS_URL", help="Base URL of the evolink-jobs API.", metavar="URL"
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="EVOLINK_JOBS_API_KEY", help="Your API key (required).", metavar="KEY"
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON only, for scripts (no tables, no colour).")
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Follow the job until it ends: exit 0 if it completed, 1 if it failed or was "
        "cancelled.",
    ),
]
# Hidden: how long --wait pauses before opening a dropped event stream again; tests shorten it.
PollIntervalOption = Annotated[
    float,
    typer.Option(
        "--poll-interval", hidden=True, min=0.0, help="Seconds before reopening a dropped stream."
    ),
]


def connect(url: str, api_key: str | None) -> JobsClient:
    """A client for the API at `url`, or a usage error when no key was given."""
    if not api_key:
        raise ConsoleError(
            "no API key: pass --api-key or set EVOLINK_JOBS_API_KEY", exit_code=USAGE_EXIT_CODE
        )
    if not api_key.isascii() or not api_key.isprintable():
        raise ConsoleError("invalid API key: not printable ASCII", exit_code=USAGE_EXIT_CODE)
    return JobsClient(url, api_key)


def parse_metadata(text: str) -> dict[str, Any]:
    """--metadata as a JSON object, or a usage error saying what is wrong."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConsoleError(
            f"invalid --metadata: not JSON ({exc})", exit_code=USAGE_EXIT_CODE
        ) from None
    if not isinstance(value, dict):
        raise ConsoleError(
            'invalid --metadata: must be a JSON object, like \'{"order": "A-1"}\'',
            exit_code=USAGE_EXIT_CODE,
        )
    return value


def checked_job_id(job_id: str) -> str:
    """The id as the API spells it, or a usage error: job ids are UUIDs."""
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise ConsoleError(
            f"invalid job id {job_id!r}: expected a UUID",
            exit_code=USAGE_EXIT_CODE,
        ) from None


def follow_to_end(client: JobsClient, job: Job, interval: float, as_json: bool) -> Job:
    """Follow the job's event stream until it ends (a progress bar on a terminal, nothing with
    --json); `interval` is the pause before opening a dropped stream again."""
    console = None if as_json else Console(stderr=True)
    hint = f"it keeps running; follow it again with: evolink-jobs jobs show {job['id']} --wait"
    try:
        if is_final(job):
            return job
        with contextlib.closing(
            stream.job_updates(client, job["id"], reconnect_delay=interval)
        ) as updates:
            return output.follow(job, updates, console=console)
    except ConsoleError as exc:
        raise ConsoleError(f"{exc.message} ({hint})", exit_code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise ConsoleError(f"stopped following job {job['id']}: {hint}", exit_code=130) from None


def end_with_outcome(job: Job, *, as_json: bool) -> None:
    """Exit 0 for a completed job; otherwise say why (unless --json) and exit 1."""
    if job["status"] == JobStatus.COMPLETED:
        return
    if not as_json:
        typer.echo(f"evolink-jobs: {output.outcome_line(job)}", err=True)
    raise typer.Exit(code=1)


def register(cli: typer.Typer) -> None:
    """Add `submit` and `jobs list|show` to the root command `cli`."""
    cli.command("submit")(submit)
    jobs = typer.Typer(
        help="List and inspect your jobs.",
        no_args_is_help=True,
    )
    jobs.command("list")(list_jobs)
    jobs.command("show")(show_job)
    cli.add_typer(jobs, name="jobs")


def submit(
    prompt: Annotated[str, typer.Argument(help="What to draw, or how to edit the input image.")],
    size: Annotated[
        str | None, typer.Option(help="1:1, 2:3, 3:2, 1024x1024, 1024x1536 or 1536x1024.")
    ] = None,
    n: Annotated[int | None, typer.Option("--n", help="Number of images: 1, 2 or 4.")] = None,
    image_url: Annotated[
        list[str] | None,
        typer.Option(
            "--image-url", metavar="URL", help="A reference image URL (repeat for up to 5)."
        ),
    ] = None,
    mask_url: Annotated[
        str | None, typer.Option(help="Edit mask (PNG); needs exactly one --image-url.")
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(help="A JSON object stored with the job.", metavar="JSON"),
    ] = None,
    wait: WaitOption = False,
    download: Annotated[
        Path | None,
        typer.Option(
            help="With --wait: save the images into this folder (once archived).",
            file_okay=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    poll_interval: PollIntervalOption = 1.0,
) -> None:
    """Submit an image-generation job; with --wait, follow it and print the result URLs."""
    with reported():
        if download is not None and not wait:
            raise ConsoleError("--download needs --wait", exit_code=USAGE_EXIT_CODE)
        request: JobRequest = {"prompt": prompt}
        if size is not None:
            request["size"] = size
        if n is not None:
            request["n"] = n
        if image_url:
            request["image_urls"] = image_url
        if mask_url is not None:
            request["mask_url"] = mask_url
        if metadata is not None:
            request["metadata"] = parse_metadata(metadata)
        with connect(url, api_key) as client:
            job = client.create_job(request)
            if wait:
                if not as_json:
                    typer.echo(f"job {job['id']} submitted", err=True)
                job = follow_to_end(client, job, poll_interval, as_json)
            if download is not None and job["status"] == JobStatus.COMPLETED:
                job = downloads.wait_for_archive(client, job, poll_interval)
                for path in downloads.save_images(client, job, download):
                    typer.echo(f"saved {path}", err=True)
    if as_json:
        typer.echo(output.dumps(job))
    elif not wait:
        typer.echo(f"job {job['id']} {job['status']}")
        typer.echo(f"follow it with: evolink-jobs jobs show {job['id']} --wait", err=True)
    else:
        for result in job["results"]:
            typer.echo(result)
    if wait:
        end_with_outcome(job, as_json=as_json)


def list_jobs(
    status: Annotated[
        JobStatus | None, typer.Option(help="Only jobs with this status.", case_sensitive=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many jobs to show, newest first.")] = 20,
    all_jobs: Annotated[bool, typer.Option("--all", help="Show every job (ignores --limit).")] = (
        False
    ),
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """List your jobs, newest first."""
    jobs: list[Job] = []
    cursor: str | None = None
    with reported(), connect(url, api_key) as client:
        while True:
            wanted = MAX_PAGE_SIZE if all_jobs else min(MAX_PAGE_SIZE, limit - len(jobs))
            page = client.list_jobs(status=status, limit=wanted, cursor=cursor)
            jobs.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None or (not all_jobs and len(jobs) >= limit):
                break
    if as_json:
        typer.echo(output.dumps({"data": jobs, "next_cursor": cursor}))
        return
    console = Console()
    console.print(output.jobs_table(jobs, console.width))
    if cursor is not None:
        typer.echo(f"more jobs exist: raise --limit (now {limit}) or pass --all", err=True)


def show_job(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    wait: WaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
    poll_interval: PollIntervalOption = 1.0,
) -> None:
    """Show one job; with --wait, follow it until it ends first."""
    with reported():
        job_id = checked_job_id(job_id)
        with connect(url, api_key) as client:
            job = client.get_job(job_id)
            if wait:
                job = follow_to_end(client, job, poll_interval, as_json)
    if as_json:
        typer.echo(output.dumps(job))
    else:
        Console().print(output.job_table(job, url.rstrip("/")))
    if wait:
        end_with_outcome(job, as_json=as_json)
