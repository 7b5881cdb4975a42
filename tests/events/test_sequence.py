"""A job's sequence grows with every change the state machine allows, and only then."""

from __future__ import annotations

from dataclasses import dataclass

from app.events.sequence import is_final, is_settled, sequence


@dataclass
class State:
    status: str
    progress: int = 0
    error_code: str | None = None
    archive_status: str | None = None


def test_every_step_of_a_job_has_a_larger_sequence() -> None:
    path = [
        State("queued"),
        State("pending"),
        State("pending", 5),
        State("processing", 5),
        State("processing", 60),
        State("failed", 60, "deadline_exceeded"),  # our verdict, which EvoLink may overturn
        State("completed", 100, None, "pending"),
        State("completed", 100, None, "archived"),
    ]
    sequences = [sequence(state) for state in path]
    assert sequences == sorted(set(sequences)), sequences


def test_a_final_answer_from_evolink_outranks_any_unfinished_state() -> None:
    final = [State("failed", 0, "content_policy_violation"), State("cancelled", 0, "x")]
    assert all(sequence(f) > sequence(State("processing", 100)) for f in final)
    assert sequence(State("failed", 0, "service_error")) > sequence(
        State("failed", 99, "deadline_exceeded")
    )


def test_final_and_settled() -> None:
    assert not is_final(State("processing", 50))
    assert is_final(State("completed", 100, None, "pending"))
    assert not is_settled(State("completed", 100, None, "pending"))
    for archive in ("archived", "failed", "off", None):
        assert is_settled(State("completed", 100, None, archive))
    assert is_settled(State("failed", 0, "service_error"))
