"""`Prefer: wait=N` (RFC 7240): how long a caller is willing to wait for a final answer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Header

MAX_WAIT_SECONDS = 60

# One preference: a token, optionally `=` a token or quoted string, then `;` parameters (ignored).
_PREFERENCE = re.compile(
    r"""\s*(?P<name>[!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*
        (?:=\s*(?P<value>"(?:[^"\\]|\\.)*"|[^,;\s]*))?\s*
        (?P<params>(?:;(?:[^,"]|"(?:[^"\\]|\\.)*")*)?)\s*(?:,|$)""",
    re.VERBOSE,
)


def requested_wait(headers: Iterable[str]) -> int | None:
    """The `wait` preference in seconds, clamped to MAX_WAIT_SECONDS; None if absent or invalid.

    RFC 7240: the first instance of a preference counts, and one the server cannot read is
    ignored rather than refused.
    """
    for header in headers:
        position = 0
        while position < len(header):
            match = _PREFERENCE.match(header, position)
            if match is None or match.end() == position:
                break  # the rest of this header cannot be read: ignore it
            position = match.end()
            if match["name"].lower() != "wait":
                continue
            value = (match["value"] or "").strip('"')
            if not (value.isascii() and value.isdigit()):
                return None
            return min(int(value), MAX_WAIT_SECONDS)
    return None


async def get_prefer_wait(
    prefer: Annotated[
        list[str] | None,
        Header(
            alias="Prefer",
            description="`wait=N` (RFC 7240): hold the answer until the job is final or N "
            f"seconds pass (at most {MAX_WAIT_SECONDS}; larger values count as "
            f"{MAX_WAIT_SECONDS}). The answer then says `Preference-Applied: wait=N`.",
        ),
    ] = None,
) -> int | None:
    """The seconds this request may be held, from its `Prefer` headers."""
    return requested_wait(prefer or ())


PreferWaitDep = Annotated[int | None, Depends(get_prefer_wait)]


def preference_applied(seconds: int) -> dict[str, str]:
    """The header saying the wait was honoured."""
    return {"Preference-Applied": f"wait={seconds}"}


def waited_response(status: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: the `Preference-Applied` header of a route's `status` answer."""
    header = {
        "description": "`wait=N` when the request's `Prefer: wait=N` was honoured.",
        "schema": {"type": "string", "example": "wait=30"},
    }
    return {status: {"headers": {"Preference-Applied": header}}}
