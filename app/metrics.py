"""Prometheus instruments: what this process does (counters, histograms) and what the database
holds (gauges, refreshed by metrics_snapshot.py, so every replica reports the same)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_PREFIX = "evolink_jobs_"
HTTP_REQUESTS = Counter(
    _PREFIX + "http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    _PREFIX + "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    registry=REGISTRY,
)
HOT_PATHS = Counter(
    _PREFIX + "hot_path_requests",
    "Requests a hot path took (README, Performance), by path and outcome: `answered` by the hot "
    "path, `passed_on` to the FastAPI app (its common case did not apply), `stepped_aside` after "
    "a database error. Paths `poll` and `submit` count the worker's final poll answers and create "
    "answers the same way.",
    ["path", "outcome"],
    registry=REGISTRY,
)
CALLBACKS = Counter(
    _PREFIX + "callbacks",
    "EvoLink callbacks received, by outcome (applied, deferred, duplicate, stale, rejected).",
    ["outcome"],
    registry=REGISTRY,
)
EVENT_BODIES_DROPPED = Counter(
    _PREFIX + "event_bodies_dropped",
    "Job events stored without their body: the job already kept its share (app/jobs/events.py).",
    registry=REGISTRY,
)
EVOLINK_REQUESTS = Counter(
    _PREFIX + "evolink_requests",
    "Calls to EvoLink, by operation, HTTP status (or `error`) and EvoLink's error code.",
    ["operation", "status", "code"],
    registry=REGISTRY,
)
EVOLINK_LATENCY = Histogram(
    _PREFIX + "evolink_request_duration_seconds",
    "Time EvoLink took to answer, by operation.",
    ["operation"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    _PREFIX + "jobs_finished",
    "Jobs this process brought to a final state, by what told us (submit, callback, poll, local).",
    ["source", "status"],
    registry=REGISTRY,
)
JOBS = Gauge(_PREFIX + "jobs", "Jobs in the database, by status.", ["status"], registry=REGISTRY)
FINAL_JOBS = Gauge(
    _PREFIX + "final_jobs",
    "Final jobs by what ended them and whether any callback arrived (callback-loss rate: "
    'final_jobs{callback="false"} / sum(final_jobs)).',
    ["final_source", "callback"],
    registry=REGISTRY,
)
RECONCILER_BACKLOG = Gauge(
    _PREFIX + "reconciler_backlog",
    "Unfinished jobs whose next background check (poll, retry, deadline) is due now.",
    registry=REGISTRY,
)
SUBMISSION_QUEUE = Gauge(
    _PREFIX + "submission_queue_depth",
    "Jobs waiting to be submitted to EvoLink.",
    registry=REGISTRY,
)
METRICS_SNAPSHOT_AGE = Gauge(
    _PREFIX + "metrics_snapshot_age_seconds",
    "How old the database gauges above are (refreshed in the background, METRICS_REFRESH_SECONDS).",
    registry=REGISTRY,
)

ARCHIVE_IMAGES = Counter(
    _PREFIX + "archive_images",
    "Result images the archive finished with, by outcome (archived, failed).",
    ["outcome"],
    registry=REGISTRY,
)
ARCHIVE_BYTES = Counter(
    _PREFIX + "archive_stored_bytes", "Bytes of images stored in the archive.", registry=REGISTRY
)
ARCHIVE_LAG = Histogram(
    _PREFIX + "archive_lag_seconds",
    "Time from a job's completion to one of its images being archived.",
    buckets=(1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)


def job_finished(source: str, status: str) -> None:
    """Count a job reaching a final state here."""
    JOBS_FINISHED.labels(source=source, status=status).inc()


CREDITS_SPENT = Counter(
    _PREFIX + "credits_spent",
    "EvoLink credits the ledger settled as spent (the cost of finished jobs), by caller.",
    ["caller"],
    registry=REGISTRY,
)
QUOTA_REFUSALS = Counter(
    _PREFIX + "quota_refusals",
    "Creates refused with 429 quota_exceeded, by caller and limit (global ones: global.<name>).",
    ["caller", "limit"],
    registry=REGISTRY,
)
EVOLINK_CREDITS = Gauge(
    _PREFIX + "evolink_credits_remaining",
    "EvoLink's remaining credits for this service's key, as last read from EvoLink.",
    registry=REGISTRY,
)
WAITERS = Gauge(
    _PREFIX + "waiters",
    "Requests (Prefer: wait) and event streams waiting on a job in this process (cap: "
    "MAX_WAITERS).",
    registry=REGISTRY,
)
WAITERS_REFUSED = Counter(
    _PREFIX + "waiters_refused",
    "Waits and streams refused with 503 because MAX_WAITERS were already open.",
    registry=REGISTRY,
)
NOTIFICATION_DELIVERIES = Counter(
    _PREFIX + "notification_deliveries",
    "Webhook events this process finished delivering, by outcome (delivered, failed).",
    ["outcome"],
    registry=REGISTRY,
)
NOTIFICATION_ATTEMPTS = Counter(
    _PREFIX + "notification_attempts",
    "Webhook POSTs made, by result (2xx, 3xx, 4xx, 5xx, timeout, error, refused).",
    ["result"],
    registry=REGISTRY,
)
NOTIFICATION_LAG = Histogram(
    _PREFIX + "notification_delivery_lag_seconds",
    "Time from a webhook event entering the outbox to its delivery (2xx).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 24 * 3600),
    registry=REGISTRY,
)
