"""Problems a job submission can end in, as the caller sees them."""

from __future__ import annotations

from app.errors import AppError


class EvolinkRejected(AppError):
    status, code, title = 422, "evolink_rejected", "EvoLink rejected the request"


class GatewayMisconfigured(AppError):
    status, code, title = 502, "gateway_misconfigured", "EvoLink refused this service's credentials"


class GatewayOutOfCredits(AppError):
    status, code, title = 503, "gateway_out_of_credits", "EvoLink account is out of credits"


class TaskMismatch(AppError):
    status, code, title = 409, "task_mismatch", "Callback is for another task"
