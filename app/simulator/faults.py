"""Fault specs: what a create request (and the task's polls) ask the simulator to do wrong.

Three sources, highest precedence first: a spec queued through the control API, `X-Sim-*` request
headers, and `[sim key=value ...]` directives in the prompt (their syntax: `fault_syntax.py`).
Sources merge field by field.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Generic, Literal, TypeVar

from app.simulator import errors
from app.simulator.config import SimulatorConfig

# "canceled" is EvoLink's other spelling: the task's status is spelled as asked.
Outcome = Literal["completed", "failed", "cancelled", "canceled"]
CallbackKind = Literal["normal", "lost", "duplicate", "delayed", "stale", "early"]
ErrorShape = errors.Shape
ErrorBody = errors.Body
# Retry-After of a forced error: whole seconds, "none" for no header, None for the default.
RetryAfter = int | Literal["none"] | None

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallbackFault:
    """How the final callback misbehaves; count and delay apply to duplicate and delayed."""

    kind: CallbackKind
    count: int | None = None
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class PollFault:
    """How the next `count` polls of a task fail: an HTTP status, hang, reset or not_json."""

    kind: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class ErrorStyle:
    """How a forced error is written: shape (None: the simulator's default), body, Retry-After."""

    shape: ErrorShape | None = None
    body: ErrorBody = "json"
    retry_after: RetryAfter = None


@dataclass(frozen=True, slots=True)
class QueuedPoll:
    """One poll that is to fail, and how its error is written."""

    kind: str
    style: ErrorStyle

    @classmethod
    def from_spec(cls, spec: FaultSpec) -> list[QueuedPoll]:
        """The polls a spec's `poll` fault makes fail (none without one)."""
        if spec.poll is None:
            return []
        style = ErrorStyle(spec.shape, spec.body or "json", spec.retry_after)
        return [cls(spec.poll.kind, style)] * spec.poll.count


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A partial fault description from one source; None means "not said here"."""

    outcome: Outcome | None = None
    code: str | None = None
    duration: float | None = None
    callback: CallbackFault | None = None
    create: str | None = None
    retry_after: RetryAfter = None
    poll: PollFault | None = None
    shape: ErrorShape | None = None
    body: ErrorBody | None = None

    def over(self, lower: FaultSpec) -> FaultSpec:
        """Merge field by field, this spec winning where it says something."""
        changes = {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }
        return replace(lower, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, without unset fields."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True, slots=True)
class ResolvedFaults:
    """The complete behaviour chosen for one create request."""

    outcome: Outcome
    error_code: str | None
    duration: float
    callback: CallbackKind
    callback_count: int
    callback_delay: float
    create: str
    poll: PollFault | None
    style: ErrorStyle

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def queued_polls(self) -> list[QueuedPoll]:
        """The task's polls that are to fail, in order."""
        if self.poll is None:
            return []
        return [QueuedPoll(self.poll.kind, self.style)] * self.poll.count


def resolve(specs: Iterable[FaultSpec | None], config: SimulatorConfig) -> ResolvedFaults:
    """Merge specs (highest precedence first) and fill the defaults."""
    merged = FaultSpec()
    for spec in reversed(list(specs)):
        if spec is not None:
            merged = spec.over(merged)
    # A bare error code is enough to ask for a failure.
    outcome = merged.outcome or ("failed" if merged.code else "completed")
    error_code = None
    if outcome == "failed":
        error_code = merged.code or "service_error"
    elif outcome in ("cancelled", "canceled"):
        error_code = merged.code or "request_cancelled"
    callback = merged.callback or CallbackFault("normal")
    # An early callback has to exist before the create answer, so the task ends at once.
    duration = 0.0 if callback.kind == "early" else merged.duration
    return ResolvedFaults(
        outcome=outcome,
        error_code=error_code,
        duration=config.task_seconds if duration is None else duration,
        callback=callback.kind,
        callback_count=callback.count
        or (config.duplicate_count if callback.kind == "duplicate" else 1),
        callback_delay=(
            (callback.delay if callback.delay is not None else config.callback_delay_seconds)
            if callback.kind == "delayed"
            else 0.0
        ),
        create=merged.create or "ok",
        poll=merged.poll,
        style=ErrorStyle(merged.shape, merged.body or "json", merged.retry_after),
    )


class FaultQueue(Generic[T]):
    """Specs queued by the control API, each consumed by one request, first in first out."""

    def __init__(self) -> None:
        self._specs: deque[T] = deque()

    def push(self, spec: T, count: int = 1) -> int:
        """Queue `count` copies of a spec; returns the queue length."""
        self._specs.extend([spec] * count)
        return len(self._specs)

    def pop(self) -> T | None:
        """Take the oldest spec, if any."""
        return self._specs.popleft() if self._specs else None

    def items(self) -> list[T]:
        """The queued specs, oldest first."""
        return list(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def clear(self) -> None:
        """Drop every queued spec."""
        self._specs.clear()
