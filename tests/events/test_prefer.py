"""`Prefer: wait=N` as RFC 7240 reads it: first instance wins, unreadable preferences ignored."""

from __future__ import annotations

import pytest

from app.events.prefer import MAX_WAIT_SECONDS, requested_wait


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["wait=5"], 5),
        (["wait=0"], 0),
        (["respond-async, wait=10"], 10),
        (["WAIT = 7"], 7),
        (['wait="3"'], 3),
        (['handling=lenient; strict="a,b", wait=2'], 2),
        (["return=minimal", "wait=4"], 4),
        (["wait=3", "wait=9"], 3),
        (["wait=3, wait=9"], 3),
        (["wait=61"], MAX_WAIT_SECONDS),
        (["wait=99999999999999999999"], MAX_WAIT_SECONDS),
    ],
)
def test_wait_is_read(headers: list[str], expected: int) -> None:
    assert requested_wait(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [[], [""], ["wait"], ["wait="], ["wait=soon"], ["wait=5.5"], ["wait=-1"], ["wait=١٢"],
     ["respond-async"], ["return=minimal;wait=4"], ["waiting=5"]],
)  # fmt: skip
def test_absent_or_unreadable_wait_is_ignored(headers: list[str]) -> None:
    assert requested_wait(headers) is None
