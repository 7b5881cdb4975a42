"""Fixtures for webhooks: callers with secrets, a real receiver that verifies every delivery,
and the delivery worker run a tick at a time."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response

from app.archive.worker import ArchiveWorker, build_archive_worker
from app.config import Settings
from app.evolink.schemas import Task
from app.jobs import service as jobs_service
from app.jobs.models import EventSource
from app.jobs.schemas import JobCreate
from app.jobs.state_machine import Observation, apply_observation
from app.notifications.worker import NotificationWorker, build_notification_worker
from tests.conftest import BETA_KEY, make_settings
from tests.support import evolink_payloads as payloads
from tests.support.http_server import ScriptedServer, serving

Sessions = async_sessionmaker[AsyncSession]


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


ALPHA_SECRET = new_secret()
GAMMA_NEW, GAMMA_OLD = new_secret(), new_secret()
ALPHA_KEY_FILE = "key-alpha-0123456789"
GAMMA_KEY = "key-gamma-0123456789"


def callers_toml(path: Path, alpha_key: str = ALPHA_KEY_FILE, gamma_key: str = GAMMA_KEY) -> Path:
    """A callers file: alpha with one webhook secret, gamma rotating (new, old)."""
    path.write_text(
        f'[callers.alpha]\napi_key = "{alpha_key}"\nwebhook_secrets = ["{ALPHA_SECRET}"]\n\n'
        f'[callers.gamma]\napi_key = "{gamma_key}"\n'
        f'webhook_secrets = ["{GAMMA_NEW}", "{GAMMA_OLD}"]\n'
    )
    return path


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """alpha and gamma (CALLERS_FILE, with secrets), beta (API_KEYS, none); the receiver on
    127.0.0.1 allow-listed; retries in a blink."""
    return make_settings(
        database_url,
        api_keys=f"beta:{BETA_KEY}",
        callers_file=str(callers_toml(tmp_path / "callers.toml")),
        notify_allowed_hosts="127.0.0.1/32",
        notify_retry_schedule="0,0,0",
        notify_timeout_seconds=2,
    )


@pytest.fixture
def notifier(app: FastAPI, settings: Settings) -> Iterator[NotificationWorker]:
    """Delivery work, run a tick at a time by the test."""
    yield build_notification_worker(settings, app.state.session_factory)


@pytest.fixture
def archiver(app: FastAPI, settings: Settings) -> ArchiveWorker:
    """Archive work (off in these settings: it ends each completed job's archiving as `off`)."""
    return build_archive_worker(settings, app.state.session_factory, app.state.archive_store)


@dataclass
class Delivery:
    """One request the receiver got, and what verifying it said."""

    headers: dict[str, str]
    body: bytes
    verified_with: list[str] = field(default_factory=list)  # the secrets that verify it

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A path on the scripted server that records deliveries and answers from a script."""

    server: ScriptedServer
    secrets: list[str]
    answers: list[int] = field(default_factory=list)  # then 200
    deliveries: list[Delivery] = field(default_factory=list)
    path: str = field(default_factory=lambda: f"/hooks/{uuid.uuid4().hex}")

    def __post_init__(self) -> None:
        self.url = self.server.route(self.path, self._handle)

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        delivery = Delivery(headers, body)
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            delivery.verified_with.append(secret)
        self.deliveries.append(delivery)
        status = self.answers.pop(0) if self.answers else 200
        return Response("ok" if status < 400 else "no", status_code=status)


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    with serving(server):
        yield server


@pytest.fixture
def receiver(receiver_server: ScriptedServer) -> Receiver:
    """A fresh path that verifies with alpha's secret and gamma's two."""
    return Receiver(receiver_server, [ALPHA_SECRET, GAMMA_NEW, GAMMA_OLD])


async def new_job(sessions: Sessions, notify_url: str | None, caller: str = "alpha") -> uuid.UUID:
    """A job as POST /v1/jobs stores it (the submit-time checks are tested over HTTP)."""
    body: dict[str, Any] = {"prompt": "a cat"}
    if notify_url is not None:
        body["notify_url"] = notify_url
    async with sessions() as session:
        job = await jobs_service.create_job(session, caller, JobCreate.model_validate(body), {})
        await session.commit()
    return job.id


async def observe(sessions: Sessions, job_id: uuid.UUID, task: dict[str, Any]) -> None:
    """EvoLink tells us `task` about the job (through the state machine)."""
    async with sessions() as session:
        await apply_observation(
            session, job_id, Observation(Task.model_validate(task), EventSource.POLL)
        )
        await session.commit()


async def complete(sessions: Sessions, job_id: uuid.UUID) -> None:
    await observe(sessions, job_id, payloads.completed_task(f"task-unified-{job_id.hex}", []))


async def fail(sessions: Sessions, job_id: uuid.UUID, status: str = "failed") -> None:
    await observe(
        sessions, job_id, payloads.failed_task(f"task-unified-{job_id.hex}", status=status)
    )


async def deliver_all(notifier: NotificationWorker, ticks: int = 1) -> None:
    """Run `ticks` delivery ticks, each to the end of its deliveries."""
    for _ in range(ticks):
        await notifier.tick()
        await notifier.drain()
