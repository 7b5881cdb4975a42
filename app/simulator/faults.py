"""Fault specs: what a create request (and the task's polls) ask the simulator to do wrong.

Three sources, highest precedence first: a spec queued through the control API, `X-Sim-*` request
headers, and `[sim key=value ...]` directives in the prompt. Sources merge field by field.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Generic, Literal, TypeVar

from app.simulator import errors
from app.simulator.config import SimulatorConfig
from app.simulator.errors import FORCEABLE_STATUSES, POLL_STATUSES

# "canceled" is EvoLink's other spelling: the task's status is spelled as asked.
Outcome = Literal["completed", "failed", "cancelled", "canceled"]
CallbackKind = Literal["normal", "lost", "duplicate", "delayed", "stale", "early"]
ErrorShape = errors.Shape
ErrorBody = errors.Body
# Retry-After of a forced error: whole seconds, "none" for no header, None for the default.
RetryAfter = int | Literal["none"] | None

DIRECTIVE = re.compile(r"\[\s*sim\b([^\]]*)\]", re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[\s,;]+")
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
HEADER_PREFIX = "x-sim-"
T = TypeVar("T")
V = TypeVar("V")

_KEYS = {
    "outcome": "outcome",
    "status": "outcome",
    "code": "code",
    "error": "code",
    "error_code": "code",
    "duration": "duration",
    "seconds": "duration",
    "callback": "callback",
    "cb": "callback",
    "create": "create",
    "retry_after": "retry_after",
    "poll": "poll",
    "shape": "shape",
    "error_shape": "shape",
    "body": "body",
    "error_body": "body",
}
_OUTCOMES: dict[str, Outcome] = {
    "completed": "completed",
    "complete": "completed",
    "success": "completed",
    "succeeded": "completed",
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "cancelled": "cancelled",
    "cancel": "cancelled",
    "canceled": "canceled",
}
_CALLBACKS: dict[str, CallbackKind] = {
    "normal": "normal",
    "default": "normal",
    "lost": "lost",
    "lose": "lost",
    "none": "lost",
    "drop": "lost",
    "duplicate": "duplicate",
    "duplicated": "duplicate",
    "dup": "duplicate",
    "delayed": "delayed",
    "delay": "delayed",
    "stale": "stale",
    "early": "early",
}
# Create modes besides a forced HTTP status.
CREATE_MODES = frozenset({"ok", "hang", "accept_then_500", "accept_then_hang"})
# Poll faults besides a forced HTTP status.
POLL_MODES = frozenset({"hang", "reset", "not_json"})
_POLL_ALIASES = {"garbage": "not_json", "invalid_json": "not_json", "html": "not_json"}
_SHAPES: dict[str, ErrorShape] = {
    "string": "string",
    "new": "string",
    "newer": "string",
    "integer": "integer",
    "int": "integer",
    "old": "integer",
    "older": "integer",
}
_BODIES: dict[str, ErrorBody] = {"json": "json", "html": "html", "empty": "empty", "none": "empty"}


class FaultSyntaxError(ValueError):
    """A fault directive, header or JSON spec that cannot be understood."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


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


def parse_mapping(values: Mapping[str, object], param: str | None = None) -> FaultSpec:
    """Parse `key -> value` pairs; `param` names the source in errors (default: the key)."""
    parsed: dict[str, Any] = {}
    for raw_key, raw_value in values.items():
        key = _KEYS.get(raw_key.strip().lower().replace("-", "_"))
        where = param or raw_key
        if key is None:
            raise FaultSyntaxError(f"unknown simulator fault key {raw_key!r}", where)
        if raw_value is None or isinstance(raw_value, bool):
            raise FaultSyntaxError(f"invalid value for simulator fault {raw_key!r}", where)
        value = str(raw_value).strip().strip("'\"")
        parsed[key] = _parse_value(key, value, raw_key, where)
    return FaultSpec(**parsed)


def from_prompt(prompt: str) -> FaultSpec:
    """Parse every `[sim ...]` directive in a prompt; later directives win."""
    spec = FaultSpec()
    for match in DIRECTIVE.finditer(prompt):
        pairs: dict[str, str] = {}
        for token in _TOKEN_SPLIT.split(match.group(1).strip()):
            if not token:
                continue
            key, sep, value = token.partition("=")
            if not sep:
                raise FaultSyntaxError(
                    f"simulator directive token {token!r} is not key=value", "prompt"
                )
            pairs[key] = value
        spec = parse_mapping(pairs, "prompt").over(spec)
    return spec


def strip_directives(prompt: str) -> str:
    """The prompt without its `[sim ...]` directives (what validation measures)."""
    return DIRECTIVE.sub("", prompt).strip()


def from_headers(headers: Iterable[tuple[str, str]]) -> FaultSpec:
    """Parse `X-Sim-*` headers (`X-Sim-Outcome`, `X-Sim-Retry-After`, ...)."""
    spec = FaultSpec()
    for name, value in headers:
        if name.lower().startswith(HEADER_PREFIX):
            key = name[len(HEADER_PREFIX) :]
            # ASGI lowercases header names; errors name them as the documentation does.
            shown = "-".join(part.capitalize() for part in name.split("-"))
            spec = parse_mapping({key: value}, param=shown).over(spec)
    return spec


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


def _parse_value(key: str, value: str, raw_key: str, where: str) -> object:
    lowered = value.lower()
    if key == "outcome":
        if lowered not in _OUTCOMES:
            raise FaultSyntaxError(
                f"outcome must be completed, failed, cancelled or canceled: {value!r}", where
            )
        return _OUTCOMES[lowered]
    if key == "code":
        if not _CODE.fullmatch(value):
            raise FaultSyntaxError(f"invalid task error code {value!r}", where)
        return value
    if key == "duration":
        return _number(value, raw_key, where)
    if key == "retry_after":
        if lowered in ("none", "absent"):
            return "none"
        seconds = _number(value, raw_key, where)
        if not seconds.is_integer():
            raise FaultSyntaxError(f"{raw_key} must be whole seconds: {value!r}", where)
        return int(seconds)
    if key == "create":
        return _create_mode(lowered, where)
    if key == "poll":
        return _poll(lowered, where)
    if key == "shape":
        return _choice(_SHAPES, lowered, "shape must be string or integer", where)
    if key == "body":
        return _choice(_BODIES, lowered, "body must be json, html or empty", where)
    return _callback(lowered, where)


def _choice(choices: Mapping[str, V], value: str, message: str, where: str) -> V:
    if value not in choices:
        raise FaultSyntaxError(f"{message}: {value!r}", where)
    return choices[value]


def _number(value: str, raw_key: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FaultSyntaxError(f"{raw_key} must be a number: {value!r}", where) from None
    if not math.isfinite(number) or number < 0:
        raise FaultSyntaxError(f"{raw_key} must be a non-negative number: {value!r}", where)
    return number


def _create_mode(value: str, where: str) -> str:
    mode = value.replace("-", "_")
    if mode in {"normal", "200"}:
        return "ok"
    if mode in CREATE_MODES or (mode.isdigit() and int(mode) in FORCEABLE_STATUSES):
        return mode
    allowed = ", ".join([*sorted(str(s) for s in FORCEABLE_STATUSES), *sorted(CREATE_MODES)])
    raise FaultSyntaxError(f"create must be one of {allowed}: {value!r}", where)


def _poll(value: str, where: str) -> PollFault:
    name, _, argument = value.replace("-", "_").partition(":")
    kind = _POLL_ALIASES.get(name, name)
    if not (kind in POLL_MODES or (kind.isdigit() and int(kind) in POLL_STATUSES)):
        allowed = ", ".join([*sorted(str(s) for s in POLL_STATUSES), *sorted(POLL_MODES)])
        raise FaultSyntaxError(f"poll must be one of {allowed}, then :K: {value!r}", where)
    if not argument:
        return PollFault(kind)
    if not argument.isdigit() or int(argument) < 1:
        raise FaultSyntaxError(f"poll count must be a positive integer: {value!r}", where)
    return PollFault(kind, int(argument))


def _callback(value: str, where: str) -> CallbackFault:
    name, _, argument = value.partition(":")
    kind = _CALLBACKS.get(name.strip())
    if kind is None:
        allowed = "normal, lost, duplicate[:K], delayed[:D], stale, early"
        raise FaultSyntaxError(f"callback must be one of {allowed}: {value!r}", where)
    if not argument:
        return CallbackFault(kind)
    if kind == "duplicate":
        if not argument.isdigit() or int(argument) < 1:
            raise FaultSyntaxError(f"duplicate count must be a positive integer: {value!r}", where)
        return CallbackFault(kind, count=int(argument))
    if kind == "delayed":
        return CallbackFault(kind, delay=_number(argument, "callback delay", where))
    raise FaultSyntaxError(f"callback {name!r} takes no argument: {value!r}", where)
