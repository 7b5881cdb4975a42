"""`submit --wait --download DIR`: save a completed job's images, from the archive when it has
them (EvoLink's links die after 24 h), else from EvoLink's links."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from app.console.client import Job, JobsClient
from app.console.stream import job_updates

ARCHIVE_WAIT_SECONDS = 120
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def wait_for_archive(client: JobsClient, job: Job, interval: float) -> Job:
    """The job once its archiving has ended (or after ARCHIVE_WAIT_SECONDS, as it stands),
    followed on its event stream; `interval` is the pause before reopening a dropped one."""
    if job.get("archive_status") != "pending":
        return job
    until = time.monotonic() + ARCHIVE_WAIT_SECONDS
    with contextlib.closing(
        job_updates(client, job["id"], reconnect_delay=interval, until=until)
    ) as updates:
        for update in updates:
            job = update
            if job.get("archive_status") != "pending":
                break
    return job


def save_images(client: JobsClient, job: Job, folder: Path) -> list[Path]:
    """Save each of the job's images into `folder` as `<job id>-<index>.<ext>`; the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    archived = {image["index"]: image for image in job.get("images", [])}
    saved = []
    for index, source_url in enumerate(job["results"]):
        image = archived.get(index)
        if image is not None:
            path = folder / f"{job['id']}-{index}.{EXTENSIONS.get(image['content_type'], 'img')}"
            client.download(image["url"], path)
        else:
            path = folder / f"{job['id']}-{index}.{source_url.rsplit('.', 1)[-1][:4] or 'img'}"
            client.download(source_url, path)
        saved.append(path)
    return saved
