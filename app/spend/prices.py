"""The price table: credits per image for each model, as `CREDITS_PER_IMAGE` sets it."""

from __future__ import annotations

from collections.abc import Mapping

from app.evolink.models import MODELS

# EvoLink's create answer for gpt-4o-image reserves 2.5 credits per image (shared/evolink/API.md:
# `"credits_reserved": 2.5` for one image); its prices change, so the table is a setting.
DEFAULT_CREDITS_PER_IMAGE: dict[str, float] = {"gpt-4o-image": 2.5}


def parse_prices(text: str) -> dict[str, float]:
    """`model=credits,model=credits` as a table; ValueError naming the first mistake."""
    prices: dict[str, float] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        model, sep, value = pair.partition("=")
        model = model.strip()
        if not sep or not model:
            raise ValueError(f"{pair!r} is not model=credits")
        try:
            credits = float(value)
        except ValueError:
            raise ValueError(f"the price of {model} ({value.strip()!r}) is not a number") from None
        prices[model] = credits
    return prices


def check_prices(prices: Mapping[str, float]) -> dict[str, float]:
    """The table if it prices every model we accept, and only those, at a positive figure."""
    for model, credits in prices.items():
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r} (known: {', '.join(sorted(MODELS))})")
        if not 0 < credits < 1e9:
            raise ValueError(f"the price of {model} must be greater than 0")
    missing = sorted(set(MODELS) - set(prices))
    if missing:
        raise ValueError(f"no price for model(s) {', '.join(missing)}")
    return dict(prices)


def job_price(prices: Mapping[str, float], model: str, n: int) -> float:
    """What a job of `n` images of `model` is expected to cost."""
    return prices[model] * n
