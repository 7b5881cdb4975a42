"""The spend settings: the price table and its one-line mistakes, and the other two."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.spend.policy import SpendPolicy
from app.spend.prices import job_price


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_default_price_is_evolink_s_reservation_per_image() -> None:
    prices = settings().credits_per_image
    assert prices == {"gpt-4o-image": 2.5}
    assert job_price(prices, "gpt-4o-image", 4) == 10


def test_prices_come_from_the_environment_as_model_credits_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDITS_PER_IMAGE", " gpt-4o-image = 3.25 ,")
    monkeypatch.setenv("CREDITS_WARN_BELOW", "")
    monkeypatch.setenv("OUT_OF_CREDITS_BACKOFF_SECONDS", "5")
    loaded = Settings(_env_file=None)
    assert loaded.credits_per_image == {"gpt-4o-image": 3.25}
    assert loaded.credits_warn_below is None
    policy = SpendPolicy.from_settings(loaded)
    assert policy.prices == {"gpt-4o-image": 3.25}
    assert policy.out_of_credits_backoff_seconds == 5


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("gpt-4o-image", "is not model=credits"),
        ("gpt-4o-image=cheap", "is not a number"),
        ("gpt-4o-image=0", "must be greater than 0"),
        ("gpt-4o-image=-1", "must be greater than 0"),
        ("gpt-4o-image=2.5,dall-e=1", "unknown model 'dall-e'"),
        ("", "no price for model(s) gpt-4o-image"),
    ],
)
def test_a_bad_price_table_is_one_line_naming_the_mistake(value: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(credits_per_image=value)
    errors = caught.value.errors()
    assert len(errors) == 1 and errors[0]["loc"] == ("credits_per_image",)
    assert named in errors[0]["msg"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"credits_warn_below": -1}, "credits_warn_below"),
        ({"out_of_credits_backoff_seconds": 0}, "out_of_credits_backoff_seconds"),
    ],
)
def test_the_other_spend_settings_are_checked(values: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    assert named in str(caught.value)
