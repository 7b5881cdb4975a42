"""Background delivery of webhooks: claim due events (under a lease), sign, POST, record.

Its own loop and its own claimable rows (notifications), beside the jobs and archive workers: a
process that runs background work runs all three. A killed process's events are taken over when
its lease lapses, so an event is delivered at least once; `webhook-id` lets receivers drop the
rare duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.callers import Callers
from app.config import Settings
from app.db import utcnow
from app.jobs.policy import process_identity
from app.metrics import NOTIFICATION_ATTEMPTS, NOTIFICATION_DELIVERIES, NOTIFICATION_LAG
from app.net.guard import guarded_transport, refused
from app.notifications import repository, targets, wakeups
from app.notifications import service as notifications_service
from app.notifications.models import Notification, NotificationStatus
from app.notifications.service import AttemptResult
from app.notifications.signing import signed_headers
from app.worker.outage import OutageLog
from app.worker.shutdown import finish_in_flight, release_at_shutdown

log = structlog.get_logger(__name__)

USER_AGENT = "evolink-jobs-webhooks"
LEASE_MARGIN_SECONDS = 5.0


class Deliverer:
    """Delivers one claimed event: one signed POST, then one short transaction recording it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        callers: Callers,
        *,
        schedule: Sequence[float],
        timeout: float,
        lease_seconds: float,
        owner: str,
    ) -> None:
        self.sessions = sessions
        self.timeout = timeout
        self.http = http
        self.callers = callers
        self.schedule = tuple(schedule)
        self.lease_seconds = lease_seconds
        self.owner = owner

    async def deliver(self, notification: Notification) -> None:
        """POST the event to its URL and record how it went."""
        structlog.contextvars.bind_contextvars(
            job_id=str(notification.job_id), event_id=notification.event_id
        )
        attempted_at = utcnow()
        result = await self._post(notification, attempted_at)
        async with self.sessions() as session:
            status = await notifications_service.record_attempt(
                session, notification, self.owner, attempted_at, result, self.schedule
            )
            await session.commit()
        NOTIFICATION_ATTEMPTS.labels(result=_result_label(result)).inc()
        if not result.delivered:
            log.warning(
                "notification_attempt_failed",
                target=_origin(notification.url),
                attempt=notification.attempts + 1,
                http_status=result.http_status,
                error=result.error,
                status=status or "claim_lost",
            )
        if status == NotificationStatus.DELIVERED:
            NOTIFICATION_DELIVERIES.labels(outcome="delivered").inc()
            lag = (utcnow() - notification.created_at).total_seconds()
            NOTIFICATION_LAG.observe(max(0.0, lag))
            log.info("notification_delivered", http_status=result.http_status)
        elif status == NotificationStatus.FAILED:
            NOTIFICATION_DELIVERIES.labels(outcome="failed").inc()

    async def _post(self, notification: Notification, attempted_at: datetime) -> AttemptResult:
        caller = self.callers.get(notification.caller)
        if caller is None or not caller.webhook_secrets:
            return AttemptResult(None, None, "the caller has no webhook secret", refused=True)
        headers = {
            **signed_headers(
                caller.webhook_secrets, notification.event_id, attempted_at, notification.payload
            ),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        started = time.monotonic()
        try:
            # One deadline for the whole attempt (httpx's own timeouts are per read or write).
            async with asyncio.timeout(self.timeout):
                # Streamed and never read: a receiver's answer is its status, whatever its body.
                async with self.http.stream(
                    "POST", notification.url, content=notification.payload.encode(), headers=headers
                ) as response:
                    latency = time.monotonic() - started
                    return AttemptResult(response.status_code, latency, _status_error(response))
        except TimeoutError:
            return AttemptResult(None, time.monotonic() - started, "timed out")
        except httpx.HTTPError as exc:
            latency = time.monotonic() - started
            if refused(exc):
                return AttemptResult(None, latency, f"address refused: {exc}", refused=True)
            if isinstance(exc, httpx.TimeoutException):
                return AttemptResult(None, latency, f"timed out ({type(exc).__name__})")
            return AttemptResult(None, latency, f"{type(exc).__name__}: {exc}"[:300])


def _status_error(response: httpx.Response) -> str | None:
    if response.is_success:
        return None
    if response.is_redirect:
        return f"HTTP {response.status_code}: redirects are not followed"
    return f"HTTP {response.status_code}"


def _result_label(result: AttemptResult) -> str:
    if result.http_status is not None:
        return f"{result.http_status // 100}xx"
    if result.refused:
        return "refused"
    return "timeout" if result.error and result.error.startswith("timed out") else "error"


def _origin(url: str) -> str:
    # Receivers often put a token in the path or query: only scheme, host and port are logged.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class NotificationWorker:
    """Every `interval` seconds (or when woken): claim due events and deliver them concurrently,
    at most `batch_size` at once."""

    def __init__(self, deliverer: Deliverer, *, interval: float, batch_size: int) -> None:
        self.deliverer = deliverer
        self.sessions = deliverer.sessions
        self.interval = interval
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] = lambda: None
        self.outage = OutageLog()

    @property
    def owner(self) -> str:
        return self.deliverer.owner

    def start(self) -> None:
        """Run the loop in the background of the current event loop, woken by every commit in
        this process that writes an event."""
        self._unsubscribe = wakeups.subscribe(self.wake)
        self._loop_task = asyncio.create_task(self.run(), name="evolink-jobs-notifications")

    def wake(self) -> None:
        """Look for due events now instead of at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Loop until stopped."""
        while not self._stopping:
            try:
                await self.tick()
            except Exception as exc:
                if not self.outage.failed(exc):
                    log.exception("notification_tick_failed")
            else:
                self.outage.succeeded()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    async def tick(self) -> int:
        """Claim what is due (up to the free capacity) and start delivering it; how many."""
        capacity = self.batch_size - len(self._in_flight)
        if capacity <= 0:
            return 0
        now = utcnow()
        lease = now + timedelta(seconds=self.deliverer.lease_seconds)
        async with self.sessions() as session:
            claimed = await repository.claim_due(session, self.owner, now, lease, capacity)
            await session.commit()
        for notification in claimed:
            task = asyncio.create_task(self._deliver(notification))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def drain(self) -> None:
        """Wait for every delivery under way."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming, let deliveries finish for `grace_seconds`, then release every claim."""
        self._stopping = True
        self._unsubscribe()
        self.wake()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await finish_in_flight(self._in_flight, grace_seconds)
        await release_at_shutdown(
            self.sessions, repository.release_all, self.owner, "notification_release_failed"
        )
        await self.deliverer.http.aclose()

    async def _deliver(self, notification: Notification) -> None:
        try:
            await self.deliverer.deliver(notification)
        except Exception as exc:
            if not self.outage.failed(exc):
                log.exception("notification_delivery_crashed", event_id=notification.event_id)


def build_webhook_client(settings: Settings) -> httpx.AsyncClient:
    """The client that POSTs webhooks: every connection checked against the target policy, the
    timeout from the settings, no redirects followed, no proxy from the environment."""
    policy = targets.target_policy(settings.notify_allowed_hosts)
    return httpx.AsyncClient(
        transport=guarded_transport(policy),
        timeout=httpx.Timeout(settings.notify_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    )


def build_notification_worker(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> NotificationWorker:
    """The webhook delivery worker configured from the settings."""
    deliverer = Deliverer(
        sessions,
        build_webhook_client(settings),
        settings.callers,
        schedule=settings.notify_retry_schedule,
        timeout=settings.notify_timeout_seconds,
        # The claim must outlive one delivery, or a second replica could send the event meanwhile.
        lease_seconds=max(
            settings.claim_lease_seconds, settings.notify_timeout_seconds + LEASE_MARGIN_SECONDS
        ),
        owner=process_identity(),
    )
    return NotificationWorker(
        deliverer, interval=settings.worker_interval_seconds, batch_size=settings.worker_batch_size
    )
