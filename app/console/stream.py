"""Following a job through its event stream (`GET /v1/jobs/{id}/stream`), not by polling.

A dropped connection is opened again with `Last-Event-ID`, so nothing is seen twice or missed;
the stream itself ends once the job is final and its archiving has ended.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator

from app.console.client import ConsoleError, Job, JobsClient, StreamInterrupted, is_final

# Interrupted streams in a row before giving up.
MAX_RECONNECTS = 5


def is_settled(job: Job) -> bool:
    """Whether the job will not change any more (its stream ends there)."""
    return is_final(job) and job.get("archive_status") != "pending"


def job_updates(
    client: JobsClient, job_id: str, *, reconnect_delay: float, until: float | None = None
) -> Generator[Job]:
    """Each new state of the job, the first being the job now, until it is settled (or the
    monotonic time `until` passes). ConsoleError when the stream cannot be (re)opened."""
    last_event_id: str | None = None
    last: Job | None = None
    interrupted = 0
    while True:
        try:
            with client.job_stream(job_id, last_event_id) as response:
                if response.status_code == 204:  # nothing newer will ever come
                    return
                for event_id, job in _events(response.iter_lines(), until):
                    interrupted = 0
                    last_event_id, last = event_id or last_event_id, job
                    yield job
            if (until is not None and time.monotonic() >= until) or (
                last is not None and is_settled(last)
            ):
                return
            # Ended early: the service is restarting. Its replacement (or a replica) resumes.
            failure = StreamInterrupted(f"the service ended the stream of job {job_id} early")
        except StreamInterrupted as exc:
            failure = exc
        interrupted += 1
        if interrupted > MAX_RECONNECTS:
            raise ConsoleError(failure.message)
        time.sleep(reconnect_delay)


def _events(lines: Iterator[str], until: float | None) -> Iterator[tuple[str | None, Job]]:
    """The `job` events of an SSE body (the parts of the format the service uses)."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if until is not None and time.monotonic() >= until:
            return
        if line == "":
            if data and kind == "job":
                yield event_id, json.loads("\n".join(data))
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a heartbeat
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = value
        elif field == "event":
            kind = value
        elif field == "data":
            data.append(value)
