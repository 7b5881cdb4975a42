"""The syntax of fault specs: `[sim key=value ...]` prompt directives, `X-Sim-*` headers and the
control API's JSON, parsed into `FaultSpec`s."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from app.simulator.errors import FORCEABLE_STATUSES, POLL_STATUSES
from app.simulator.faults import (
    CallbackFault,
    CallbackKind,
    ErrorBody,
    ErrorShape,
    FaultSpec,
    Outcome,
    PollFault,
)

V = TypeVar("V")

DIRECTIVE = re.compile(r"\[\s*sim\b([^\]]*)\]", re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[\s,;]+")
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
HEADER_PREFIX = "x-sim-"

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
