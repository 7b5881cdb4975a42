"""The outbox and its delivery, in process, against a real receiver that verifies every request
with the `standardwebhooks` library: what is written with which change, how it is signed, and
what each answer of the receiver leads to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import func, select, update
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.archive.worker import ArchiveWorker
from app.config import Settings
from app.db import utcnow
from app.evolink.schemas import Task
from app.jobs.models import EventSource
from app.jobs.state_machine import Observation, apply_observation
from app.metrics import REGISTRY
from app.notifications.models import Notification
from app.notifications.worker import NotificationWorker, build_notification_worker
from tests.conftest import client_for
from tests.notifications.conftest import (
    ALPHA_KEY_FILE,
    ALPHA_SECRET,
    GAMMA_KEY,
    GAMMA_NEW,
    GAMMA_OLD,
    Receiver,
    Sessions,
    complete,
    deliver_all,
    fail,
    new_job,
)
from tests.support import evolink_payloads as payloads


@pytest.fixture
async def alpha(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, ALPHA_KEY_FILE) as c:
        yield c


@pytest.fixture
async def gamma(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, GAMMA_KEY) as c:
        yield c


async def notifications(client: httpx.AsyncClient, job_id: uuid.UUID) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/jobs/{job_id}/notifications")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_a_failed_job_is_announced_signed_with_the_job_as_get_returns_it(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id)
    [queued] = await notifications(alpha, job_id)
    assert queued["status"] == "pending" and queued["attempts"] == []

    await deliver_all(notifier)

    [delivery] = receiver.deliveries
    assert delivery.verified_with == [ALPHA_SECRET]  # and not gamma's secrets
    assert delivery.event_id == queued["event_id"]
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["webhook-signature"].startswith("v1,")
    body = delivery.json()
    assert body["type"] == "job.failed"
    assert body["data"] == (await alpha.get(f"/v1/jobs/{job_id}")).json()
    assert body["data"]["error"]["code"] == "content_policy_violation"
    assert body["timestamp"].endswith("Z")

    [shown] = await notifications(alpha, job_id)
    assert shown["status"] == "delivered" and shown["delivered_at"] is not None
    assert shown["payload"] == body and shown["url"] == receiver.url
    [attempt] = shown["attempts"]
    assert attempt["http_status"] == 200 and attempt["error"] is None
    assert attempt["latency_seconds"] >= 0


async def test_a_cancelled_job_is_announced(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id, status="cancelled")
    await deliver_all(notifier)
    [delivery] = receiver.deliveries
    assert delivery.json()["type"] == "job.cancelled"
    assert delivery.json()["data"]["status"] == "cancelled"


async def test_completed_is_announced_once_archiving_has_ended(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    archiver: ArchiveWorker,
    receiver: Receiver,
) -> None:
    job_id = await new_job(session_factory, receiver.url)
    await complete(session_factory, job_id)
    assert await notifications(alpha, job_id) == []  # archiving has not ended yet
    await deliver_all(notifier)
    assert receiver.deliveries == []

    await archiver.tick()  # archiving is off here: it ends at once, `off`
    await deliver_all(notifier)

    [delivery] = receiver.deliveries
    body = delivery.json()
    assert body["type"] == "job.completed"
    assert body["data"]["status"] == "completed" and body["data"]["archive_status"] == "off"
    assert body["data"] == (await alpha.get(f"/v1/jobs/{job_id}")).json()


async def test_the_event_is_written_in_the_transaction_of_the_change(
    alpha: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job_id = await new_job(session_factory, "http://127.0.0.1:9/hooks")
    task = Task.model_validate(payloads.failed_task(f"task-unified-{job_id.hex}"))
    async with session_factory() as session:
        await apply_observation(session, job_id, Observation(task, EventSource.POLL))
        await session.rollback()
    assert (await alpha.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"
    assert await notifications(alpha, job_id) == []

    async with session_factory() as session:
        await apply_observation(session, job_id, Observation(task, EventSource.POLL))
        await session.commit()
    assert (await alpha.get(f"/v1/jobs/{job_id}")).json()["status"] == "failed"
    assert [n["type"] for n in await notifications(alpha, job_id)] == ["job.failed"]


async def test_a_job_without_notify_url_has_no_events(
    alpha: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job_id = await new_job(session_factory, None)
    await fail(session_factory, job_id)
    assert await notifications(alpha, job_id) == []
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0


async def test_500_twice_then_200_is_three_attempts_of_one_event(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    receiver.answers = [500, 500]
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id)
    delivered = _sample("evolink_jobs_notification_deliveries_total", outcome="delivered")

    for expected in ("pending", "pending", "delivered"):
        await deliver_all(notifier)
        [shown] = await notifications(alpha, job_id)
        assert shown["status"] == expected
    await deliver_all(notifier, ticks=2)

    assert len(receiver.deliveries) == 3
    assert {d.event_id for d in receiver.deliveries} == {shown["event_id"]}
    assert all(d.verified_with == [ALPHA_SECRET] for d in receiver.deliveries)
    assert [a["http_status"] for a in shown["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in shown["attempts"]] == ["HTTP 500", "HTTP 500", None]
    assert _sample("evolink_jobs_notification_deliveries_total", outcome="delivered") == (
        delivered + 1
    )


async def test_410_gone_stops_at_once(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    receiver.answers = [410]
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id)
    await deliver_all(notifier, ticks=4)
    assert len(receiver.deliveries) == 1
    [shown] = await notifications(alpha, job_id)
    assert shown["status"] == "failed" and shown["next_attempt_at"] is None
    assert [a["http_status"] for a in shown["attempts"]] == [410]


async def test_the_schedule_running_out_fails_the_event(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    receiver.answers = [503] * 10
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id)
    await deliver_all(notifier, ticks=8)
    # NOTIFY_RETRY_SCHEDULE has three delays: the first attempt and three retries.
    assert len(receiver.deliveries) == 4
    [shown] = await notifications(alpha, job_id)
    assert shown["status"] == "failed" and len(shown["attempts"]) == 4


async def test_retries_wait_for_the_schedule(
    settings: Settings,
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    receiver: Receiver,
) -> None:
    slow = settings.model_copy(update={"notify_retry_schedule": (3600.0,)})
    notifier = build_notification_worker(slow, session_factory)
    receiver.answers = [500]
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id)
    await deliver_all(notifier, ticks=3)
    assert len(receiver.deliveries) == 1
    [shown] = await notifications(alpha, job_id)
    assert shown["status"] == "pending"
    [attempt] = shown["attempts"]
    waited = _seconds_between(attempt["attempted_at"], shown["next_attempt_at"])
    assert 3590 < waited < 3610


async def test_rotating_secrets_send_both_signatures(
    gamma: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    job_id = await new_job(session_factory, receiver.url, caller="gamma")
    await fail(session_factory, job_id)
    await deliver_all(notifier)
    [delivery] = receiver.deliveries
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    # A receiver holding either secret verifies it; one holding another secret does not.
    assert delivery.verified_with == [GAMMA_NEW, GAMMA_OLD]


async def test_redirects_are_not_followed(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    elsewhere = Receiver(receiver.server, [ALPHA_SECRET])

    async def bounce(_request: Request) -> Response:
        return RedirectResponse(elsewhere.url, status_code=307)

    url = receiver.server.route(f"/bounce/{uuid.uuid4().hex}", bounce)
    job_id = await new_job(session_factory, url)
    await fail(session_factory, job_id)
    await deliver_all(notifier)
    assert elsewhere.deliveries == []
    [shown] = await notifications(alpha, job_id)
    [attempt] = shown["attempts"]
    assert attempt["http_status"] == 307 and "not followed" in attempt["error"]
    assert shown["status"] == "pending"


async def test_a_receiver_slower_than_the_timeout_is_an_attempt_that_timed_out(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    async def slow(_request: Request) -> Response:
        await asyncio.sleep(5)  # NOTIFY_TIMEOUT_SECONDS is 2 here
        return Response("late")

    url = receiver.server.route(f"/slow/{uuid.uuid4().hex}", slow)
    job_id = await new_job(session_factory, url)
    await fail(session_factory, job_id)
    await deliver_all(notifier)
    [shown] = await notifications(alpha, job_id)
    [attempt] = shown["attempts"]
    assert attempt["http_status"] is None and attempt["error"] == "timed out"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254"])
async def test_forbidden_addresses_are_refused_again_at_connect_time(
    alpha: httpx.AsyncClient,
    settings: Settings,
    session_factory: Sessions,
    receiver: Receiver,
    host: str,
) -> None:
    # Accepted at submit time (the allow-list named it then); the list is gone at delivery.
    url = receiver.url.replace("127.0.0.1", host)
    job_id = await new_job(session_factory, url)
    await fail(session_factory, job_id)
    strict = settings.model_copy(update={"notify_allowed_hosts": ()})
    await deliver_all(build_notification_worker(strict, session_factory), ticks=2)
    assert receiver.deliveries == []
    [shown] = await notifications(alpha, job_id)
    [attempt] = shown["attempts"]
    assert attempt["error"].startswith("address refused") and attempt["http_status"] is None
    assert shown["status"] == "failed"


async def test_a_failed_attempt_is_logged_without_secrets_or_the_path(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    receiver.answers = [500]
    url = receiver.url + "?token=s3cr3t-receiver-token"
    job_id = await new_job(session_factory, url)
    await fail(session_factory, job_id)
    with structlog.testing.capture_logs() as logs:
        await deliver_all(notifier)
    [line] = [entry for entry in logs if entry["event"] == "notification_attempt_failed"]
    assert line["target"] == receiver.server.url and line["http_status"] == 500
    signature = receiver.deliveries[0].headers["webhook-signature"]
    text = repr(logs)
    for secret in (ALPHA_SECRET, ALPHA_SECRET.removeprefix("whsec_"), signature, "s3cr3t"):
        assert secret not in text
    assert receiver.path not in text


async def test_retry_delivers_again_with_the_same_webhook_id(
    alpha: httpx.AsyncClient,
    session_factory: Sessions,
    notifier: NotificationWorker,
    receiver: Receiver,
) -> None:
    receiver.answers = [410]
    job_id = await new_job(session_factory, receiver.url)
    await fail(session_factory, job_id)
    await deliver_all(notifier)
    [failed] = await notifications(alpha, job_id)
    assert failed["status"] == "failed"

    response = await alpha.post(f"/v1/jobs/{job_id}/notifications/{failed['event_id']}/retry")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    await deliver_all(notifier)

    assert [d.event_id for d in receiver.deliveries] == [failed["event_id"]] * 2
    assert all(d.verified_with == [ALPHA_SECRET] for d in receiver.deliveries)
    [shown] = await notifications(alpha, job_id)
    assert shown["status"] == "delivered"
    assert [a["http_status"] for a in shown["attempts"]] == [410, 200]

    # A delivered event can be replayed too.
    await alpha.post(f"/v1/jobs/{job_id}/notifications/{failed['event_id']}/retry")
    await deliver_all(notifier)
    assert len(receiver.deliveries) == 3


async def test_retry_while_a_delivery_is_in_flight_is_409(
    alpha: httpx.AsyncClient, session_factory: Sessions, notifier: NotificationWorker
) -> None:
    job_id = await new_job(session_factory, "http://127.0.0.1:9/hooks")
    await fail(session_factory, job_id)
    [shown] = await notifications(alpha, job_id)
    async with session_factory() as session:  # a replica holds it under a live lease
        await session.execute(
            update(Notification).values(
                claimed_by="elsewhere", claim_expires_at=utcnow() + timedelta(minutes=1)
            )
        )
        await session.commit()
    response = await alpha.post(f"/v1/jobs/{job_id}/notifications/{shown['event_id']}/retry")
    assert response.status_code == 409 and response.json()["code"] == "notification_in_flight"


async def test_only_the_jobs_caller_sees_or_retries_its_events(
    alpha: httpx.AsyncClient, gamma: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job_id = await new_job(session_factory, "http://127.0.0.1:9/hooks")
    await fail(session_factory, job_id)
    [shown] = await notifications(alpha, job_id)
    listed = await gamma.get(f"/v1/jobs/{job_id}/notifications")
    assert listed.status_code == 404 and listed.json()["code"] == "job_not_found"
    retried = await gamma.post(f"/v1/jobs/{job_id}/notifications/{shown['event_id']}/retry")
    assert retried.status_code == 404 and retried.json()["code"] == "job_not_found"
    unknown = await alpha.post(f"/v1/jobs/{job_id}/notifications/msg_{uuid.uuid4().hex}/retry")
    assert unknown.status_code == 404 and unknown.json()["code"] == "notification_not_found"
    for malformed in ("msg_nope", "msg_%00", shown["event_id"] + "0"):
        bad = await alpha.post(f"/v1/jobs/{job_id}/notifications/{malformed}/retry")
        assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
    other_job = await new_job(session_factory, None)
    wrong_job = await alpha.post(f"/v1/jobs/{other_job}/notifications/{shown['event_id']}/retry")
    assert wrong_job.status_code == 404


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def test_a_running_worker_is_woken_by_the_commit_that_writes_an_event(
    settings: Settings, session_factory: Sessions, receiver: Receiver
) -> None:
    # Its loop looks for work once an hour: only the wake-up on commit can deliver in time.
    hourly = settings.model_copy(update={"worker_interval_seconds": 3600.0})
    notifier = build_notification_worker(hourly, session_factory)
    notifier.start()
    try:
        await asyncio.sleep(0.5)  # its first look, at start, found nothing
        job_id = await new_job(session_factory, receiver.url)
        async with session_factory() as session:  # rolled back: no event, no delivery
            task = Task.model_validate(payloads.failed_task(f"task-unified-{job_id.hex}"))
            await apply_observation(session, job_id, Observation(task, EventSource.POLL))
            await session.rollback()
        await fail(session_factory, job_id)
        for _ in range(300):
            if receiver.deliveries:
                break
            await asyncio.sleep(0.1)
        assert [d.json()["type"] for d in receiver.deliveries] == ["job.failed"]
    finally:
        await notifier.stop(5)
