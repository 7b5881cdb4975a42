"""Settings of the EvoLink simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

ErrorShapes = Literal["alternate", "random", "string", "integer"]


def error_shapes(value: str) -> ErrorShapes:
    """Check a configured error-shape mode (from the command line)."""
    if value not in get_args(ErrorShapes):
        raise ValueError("error shape must be alternate, random, string or integer")
    return cast(ErrorShapes, value)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulator behaves; the defaults mirror EvoLink where EvoLink documents a value."""

    # None accepts any non-empty bearer key, as a local tool should.
    api_key: str | None = None
    # EvoLink takes about 100 s per image; a short default keeps local runs quick.
    task_seconds: float = 3.0
    # EvoLink's result URLs live for 24 hours.
    result_ttl_seconds: float = 86_400.0
    # Base for result URLs; None derives it from each create request's own base URL.
    public_base_url: str | None = None
    # True enforces EvoLink's rule: HTTPS callbacks to public addresses only.
    strict_callbacks: bool = False
    initial_credits: float = 1_000.0
    callback_timeout: float = 10.0
    retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    # How long GET /v1/tasks/{id} keeps answering; EvoLink does not document it. None: forever.
    task_ttl_seconds: float | None = None
    # How long a `hang` create request stays unanswered.
    hang_seconds: float = 120.0
    retry_after_seconds: int = 2
    duplicate_count: int = 5
    callback_delay_seconds: float = 5.0
    # The shape of a forced error whose fault does not choose one: "alternate" (per status, from
    # the shape EvoLink's pages show), "random" (seeded by error_seed), or always that one shape.
    error_shape: ErrorShapes = "alternate"
    error_seed: int | None = None
    # Grace uvicorn gives in-flight requests (hanging ones) before cancelling them at shutdown.
    shutdown_grace_seconds: int = 1

    def __post_init__(self) -> None:
        for name in (
            "task_seconds",
            "result_ttl_seconds",
            "callback_timeout",
            "hang_seconds",
            "callback_delay_seconds",
            "shutdown_grace_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.task_ttl_seconds is not None and self.task_ttl_seconds < 0:
            raise ValueError("task_ttl_seconds must not be negative")
        if any(delay < 0 for delay in self.retry_delays):
            raise ValueError("retry_delays must not be negative")
        if self.duplicate_count < 1:
            raise ValueError("duplicate_count must be at least 1")
        error_shapes(self.error_shape)
        if self.api_key == "":
            raise ValueError("api_key must be None or non-empty")
