"""Parsing and merging fault specs from prompts, headers and JSON."""

from __future__ import annotations

import pytest

from app.simulator.config import SimulatorConfig
from app.simulator.fault_syntax import (
    FaultSyntaxError,
    from_headers,
    from_prompt,
    parse_mapping,
    strip_directives,
)
from app.simulator.faults import (
    CallbackFault,
    ErrorStyle,
    FaultQueue,
    FaultSpec,
    PollFault,
    QueuedPoll,
    resolve,
)

CONFIG = SimulatorConfig(task_seconds=3.0, duplicate_count=5, callback_delay_seconds=7.0)


def test_prompt_directive_with_every_key() -> None:
    prompt = (
        "a cat [sim outcome=failed code=content_policy_violation duration=1.5 "
        "callback=duplicate:3 create=429 retry_after=3] on a mat"
    )
    assert from_prompt(prompt) == FaultSpec(
        outcome="failed",
        code="content_policy_violation",
        duration=1.5,
        callback=CallbackFault("duplicate", count=3),
        create="429",
        retry_after=3,
    )


def test_prompt_directive_is_forgiving_about_case_separators_and_quotes() -> None:
    spec = from_prompt(
        'x [ SIM Outcome=Cancelled, Callback="delayed:2.5"; create=accept-then-500 ]'
    )
    assert spec == FaultSpec(
        outcome="cancelled", callback=CallbackFault("delayed", delay=2.5), create="accept_then_500"
    )


def test_later_directive_wins_and_earlier_fields_survive() -> None:
    spec = from_prompt("[sim outcome=failed duration=4] text [sim outcome=completed]")
    assert spec == FaultSpec(outcome="completed", duration=4.0)


def test_prompt_without_directive_says_nothing() -> None:
    assert from_prompt("a simple [simple] prompt") == FaultSpec()


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("[sim outcome=exploded]", "outcome"),
        ("[sim duration=-1]", "non-negative"),
        ("[sim duration=soon]", "number"),
        ("[sim callback=sometimes]", "callback"),
        ("[sim callback=duplicate:0]", "positive"),
        ("[sim callback=stale:3]", "no argument"),
        ("[sim create=418]", "create"),
        ("[sim retry_after=1.5]", "whole seconds"),
        ("[sim colour=blue]", "unknown"),
        ("[sim failed]", "key=value"),
        ("[sim code=bad/code]", "code"),
    ],
)
def test_bad_directives_are_reported(prompt: str, message: str) -> None:
    with pytest.raises(FaultSyntaxError, match=message) as caught:
        from_prompt(prompt)
    assert caught.value.param == "prompt"


def test_strip_directives_leaves_the_users_text() -> None:
    assert strip_directives("  a cat [sim outcome=failed] ") == "a cat"


def test_headers_are_parsed_and_named_in_errors() -> None:
    headers = [
        ("x-sim-outcome", "failed"),
        ("X-Sim-Code", "generation_timeout"),
        ("x-sim-callback", "lost"),
        ("x-sim-retry-after", "9"),
        ("authorization", "Bearer k"),
    ]
    assert from_headers(headers) == FaultSpec(
        outcome="failed", code="generation_timeout", callback=CallbackFault("lost"), retry_after=9
    )
    with pytest.raises(FaultSyntaxError) as caught:
        from_headers([("X-Sim-Duration", "abc")])
    assert caught.value.param == "X-Sim-Duration"


def test_json_values_may_be_numbers() -> None:
    assert parse_mapping({"create": 503, "duration": 2}) == FaultSpec(create="503", duration=2.0)
    with pytest.raises(FaultSyntaxError):
        parse_mapping({"duration": True})


def test_precedence_is_queue_then_headers_then_prompt_field_by_field() -> None:
    queued = FaultSpec(create="500")
    headers = FaultSpec(create="429", outcome="cancelled")
    prompt = FaultSpec(create="400", outcome="failed", duration=9.0)
    resolved = resolve([queued, headers, prompt], CONFIG)
    assert (resolved.create, resolved.outcome, resolved.duration) == ("500", "cancelled", 9.0)
    assert resolved.error_code == "request_cancelled"


def test_defaults() -> None:
    resolved = resolve([None, FaultSpec(), None], CONFIG)
    assert resolved.as_dict() == {
        "outcome": "completed",
        "error_code": None,
        "duration": 3.0,
        "callback": "normal",
        "callback_count": 1,
        "callback_delay": 0.0,
        "create": "ok",
        "poll": None,
        "style": {"shape": None, "body": "json", "retry_after": None},
    }


def test_a_code_alone_means_failed_and_failed_alone_means_service_error() -> None:
    assert resolve([FaultSpec(code="x_y")], CONFIG).outcome == "failed"
    assert resolve([FaultSpec(outcome="failed")], CONFIG).error_code == "service_error"


def test_callback_arguments_default_from_config_and_early_ends_at_once() -> None:
    assert resolve([FaultSpec(callback=CallbackFault("duplicate"))], CONFIG).callback_count == 5
    assert resolve([FaultSpec(callback=CallbackFault("delayed"))], CONFIG).callback_delay == 7.0
    early = FaultSpec(duration=5.0, callback=CallbackFault("early"))
    assert resolve([early], CONFIG).duration == 0.0


def test_poll_shape_body_and_absent_retry_after_parse_from_every_source() -> None:
    prompt = from_prompt("x [sim poll=502:3 body=html shape=old retry_after=none]")
    assert prompt == FaultSpec(
        poll=PollFault("502", 3), body="html", shape="integer", retry_after="none"
    )
    headers = from_headers([("x-sim-poll", "Garbage"), ("x-sim-error-shape", "new")])
    assert headers == FaultSpec(poll=PollFault("not_json"), shape="string")
    mapping = parse_mapping({"poll": "reset", "body": "empty"})
    assert mapping == FaultSpec(poll=PollFault("reset"), body="empty")
    resolved = resolve([mapping, prompt], CONFIG)
    style = ErrorStyle(shape="integer", body="empty", retry_after="none")
    assert resolved.queued_polls() == [QueuedPoll("reset", style)]


def test_canceled_keeps_its_spelling_and_is_a_cancellation() -> None:
    resolved = resolve([from_prompt("x [sim outcome=canceled]")], CONFIG)
    assert (resolved.outcome, resolved.error_code) == ("canceled", "request_cancelled")


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        ("[sim poll=418]", "poll must be one of"),
        ("[sim poll=503:0]", "positive"),
        ("[sim poll=sometimes]", "poll must be one of"),
        ("[sim shape=xml]", "shape"),
        ("[sim body=pdf]", "body"),
    ],
)
def test_bad_poll_and_style_values_are_reported(directive: str, message: str) -> None:
    with pytest.raises(FaultSyntaxError, match=message):
        from_prompt(directive)


def test_queue_is_first_in_first_out_and_consumed_once() -> None:
    queue: FaultQueue[FaultSpec] = FaultQueue()
    assert queue.push(FaultSpec(create="500"), count=2) == 2
    assert queue.push(FaultSpec(create="429")) == 3
    popped = [queue.pop(), queue.pop(), queue.pop(), queue.pop()]
    assert [spec.create if spec else None for spec in popped] == ["500", "500", "429", None]
