"""Simulated tasks: state derived from the clock, and the in-memory store that holds them."""

from __future__ import annotations

import secrets
import string
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from app.simulator.faults import Outcome, QueuedPoll, ResolvedFaults

Clock = Callable[[], float]
Status = Literal["pending", "processing", "completed", "failed", "cancelled", "canceled"]
CallbackState = Literal["none", "lost", "scheduled", "sending", "delivered", "failed"]

CREDITS_PER_IMAGE = 2.5
# Share of a task's duration spent "pending" before it starts "processing".
PENDING_SHARE = 0.1
_ID_ALPHABET = string.ascii_lowercase + string.digits
_MAX_REQUESTS = 1000


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """One POST to a callback URL, as the control API reports it."""

    kind: str  # final, stale or manual
    copy: int  # which of a duplicated callback's copies
    attempt: int  # 1, then 2..4 for the retries
    at: float
    url: str
    status_code: int | None
    error: str | None
    delivered: bool


@dataclass(slots=True)
class PollRecord:
    """One `GET /v1/tasks/{id}`, and how it was answered (`fault`: the forced failure, if any)."""

    at: float
    task_id: str
    fault: str | None
    # None until answered; a hang that the client gave up on stays None.
    status_code: int | None = None


@dataclass(slots=True)
class RecordedRequest:
    """A create request exactly as received, and what became of it."""

    at: float
    headers: list[tuple[str, str]]
    body: Any
    status_code: int | None = None
    task_id: str | None = None
    faults: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (headers as a list of pairs: names may repeat)."""
        return asdict(self)


@dataclass(slots=True)
class SimTask:
    """One task; its status is a pure function of the clock unless the control API ends it."""

    id: str
    created: float
    duration: float
    outcome: Outcome
    error_code: str | None
    n: int
    size: str | None
    prompt: str
    callback_url: str | None
    base_url: str
    faults: ResolvedFaults
    request: RecordedRequest
    ended_at: float | None = None
    callback_state: CallbackState = "none"
    callback_attempts: list[CallbackAttempt] = field(default_factory=list)
    # Failures still to come for this task's polls, next first.
    poll_faults: deque[QueuedPoll] = field(default_factory=deque)

    @property
    def end_at(self) -> float:
        """When the task reaches its final status."""
        return self.ended_at if self.ended_at is not None else self.created + self.duration

    @property
    def cost(self) -> float:
        """Credits reserved at creation and charged if the task completes."""
        return CREDITS_PER_IMAGE * self.n

    def status(self, now: float) -> Status:
        """The status at time `now`."""
        if now >= self.end_at:
            return self.outcome
        if now - self.created < self.duration * PENDING_SHARE:
            return "pending"
        return "processing"

    def is_terminal(self, now: float) -> bool:
        """Whether the task has ended at time `now`."""
        return now >= self.end_at

    def progress(self, now: float) -> int:
        """Progress percentage at `now`: rising while processing, 100 only when completed."""
        status = self.status(now)
        if status == "completed":
            return 100
        if status != "processing":
            return 0
        share = (now - self.created) / self.duration if self.duration else 1.0
        return max(1, min(99, int(share * 100)))

    def end_now(self, outcome: Outcome, error_code: str | None, now: float) -> None:
        """End the task at `now` with the given outcome (control API)."""
        self.outcome = outcome
        self.error_code = error_code
        self.ended_at = now


class TaskStore:
    """Every task and create request since the last reset, plus the credit accounts."""

    def __init__(self, clock: Clock, initial_credits: float) -> None:
        self.clock = clock
        self.initial_credits = initial_credits
        self._tasks: dict[str, SimTask] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=_MAX_REQUESTS)
        self._polls: deque[PollRecord] = deque(maxlen=_MAX_REQUESTS)

    def new_id(self) -> str:
        """An id shaped like EvoLink's: `task-unified-<unix>-<8 lowercase alnum>`."""
        suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        return f"task-unified-{int(self.clock())}-{suffix}"

    def add(self, task: SimTask) -> None:
        """Keep a new task."""
        self._tasks[task.id] = task

    def get(self, task_id: str) -> SimTask | None:
        """The task with this id, if any."""
        return self._tasks.get(task_id)

    def tasks(self) -> list[SimTask]:
        """All tasks, oldest first."""
        return list(self._tasks.values())

    def record_request(self, request: RecordedRequest) -> None:
        """Remember a create request (the last 1000 are kept)."""
        self._requests.append(request)

    def requests(self) -> list[RecordedRequest]:
        """Recorded create requests, oldest first."""
        return list(self._requests)

    def record_poll(self, poll: PollRecord) -> None:
        """Remember a poll (the last 1000 are kept)."""
        self._polls.append(poll)

    def polls(self, task_id: str | None = None) -> list[PollRecord]:
        """Recorded polls (of one task, if given), oldest first."""
        return [p for p in self._polls if task_id is None or p.task_id == task_id]

    def used_credits(self) -> float:
        """Credits charged so far: completed tasks only, failed and cancelled ones are refunded."""
        now = self.clock()
        return sum(t.cost for t in self._tasks.values() if t.status(now) == "completed")

    def reserved_credits(self) -> float:
        """Credits held by tasks still running."""
        now = self.clock()
        return sum(t.cost for t in self._tasks.values() if not t.is_terminal(now))

    def remaining_credits(self) -> float:
        """Credits neither charged nor reserved: EvoLink deducts a task's reservation at creation
        and settles it at the end (charged if completed, released if failed or cancelled)."""
        return self.initial_credits - self.used_credits() - self.reserved_credits()

    def can_afford(self, cost: float) -> bool:
        """Whether a new reservation of `cost` fits in what is left."""
        return self.remaining_credits() >= cost

    def clear(self) -> None:
        """Forget every task and request (credits come back with them)."""
        self._tasks.clear()
        self._requests.clear()
        self._polls.clear()
