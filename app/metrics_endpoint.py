"""`GET /metrics`: Prometheus text. The database's job gauges come from an in-memory snapshot
(app/metrics_snapshot.py), so a scrape never touches the request pool."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.dependencies import SettingsDep
from app.errors import Unauthenticated
from app.metrics import REGISTRY
from app.metrics_snapshot import JobGauges

router = APIRouter(tags=["operations"])

metrics_bearer = HTTPBearer(
    auto_error=False, description="METRICS_TOKEN, when the operators set one."
)


async def require_metrics_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
) -> None:
    """401 unless METRICS_TOKEN is unset or the request carries it as a bearer token."""
    if settings.metrics_token is None:
        return
    expected = settings.metrics_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected):
        raise Unauthenticated("Send Authorization: Bearer <METRICS_TOKEN> to read /metrics.")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_token)],
    # The bearer token is optional (needed only when METRICS_TOKEN is set); `{}` says so.
    openapi_extra={"security": [{}]},
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        401: {"description": "METRICS_TOKEN is set and the request did not carry it"},
    },
)
async def metrics(request: Request) -> Response:
    """Counters of this process, and the jobs gauges of the latest snapshot."""
    gauges: JobGauges = request.app.state.job_gauges
    await gauges.before_scrape()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
