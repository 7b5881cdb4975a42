"""Rules for text and JSON that reach the database or a response, checked before they do.

PostgreSQL refuses a NUL in `text` and NaN/Infinity in `json`; neither driver encodes a lone
surrogate (UTF-16 half, `"\\ud800"`); Pydantic refuses to serialise JSON nested past 255 levels and
Python's `json` past about 1,000. Each of these is the caller's mistake, so schemas check them
(a 4xx naming the field) rather than let the database or the renderer fail (a 500). The walks
are iterative: the input that breaks recursion must not break the check.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deep enough for any sensible document (EvoLink's tasks are 3 levels deep, metadata rarely 5).
MAX_JSON_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None: a NUL, or a lone surrogate."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates (invalid Unicode)"
    return None


def check_text(value: str) -> str:
    """`value`, or ValueError when it cannot be stored as text."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` (parsed JSON) cannot be stored and rendered as JSON, or None.

    Nested deeper than `max_depth`, a number that is not finite (NaN, Infinity, or a literal
    such as 1e400 that overflows to it), or a string or key that `text_problem` refuses.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"must not be nested more than {max_depth} levels deep"
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and (problem := text_problem(key)) is not None:
                        return f"keys {problem}"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "must not contain NaN, Infinity or numbers too large for a double"
        elif isinstance(item, str) and (problem := text_problem(item)) is not None:
            return f"strings {problem}"
    return None


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`value`, or ValueError when it cannot be stored and rendered as JSON."""
    problem = json_problem(value, max_depth)
    if problem is not None:
        raise ValueError(problem)
    return value


def storable_text(text: str) -> str:
    """Raw text made safe for a `text` column: NULs and lone surrogates become U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def renderable(text: str) -> Any:
    """Stored body text as a response shows it: its JSON when that renders safely, else the text.

    A body nested too deep to render (or carrying NaN, or invalid JSON at all) is shown as the
    raw text it was, so one hostile body can never make a job's history unreadable.
    """
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return text if json_problem(parsed) is not None else parsed
