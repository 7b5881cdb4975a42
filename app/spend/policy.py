"""What the spend rules are told by the settings: prices, callers' and global limits, back-off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.auth.callers import CallerLimits, Callers, GlobalLimits
from app.config import Settings
from app.spend.prices import DEFAULT_CREDITS_PER_IMAGE


@dataclass(frozen=True)
class SpendPolicy:
    """The spend settings of one app."""

    prices: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CREDITS_PER_IMAGE))
    callers: Callers = field(default_factory=Callers)
    out_of_credits_backoff_seconds: float = 30.0
    # How long a job usually takes: when a caller at its in-flight limit may try again.
    typical_job_seconds: float = 100.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SpendPolicy:
        """The policy the settings describe."""
        return cls(
            prices=settings.credits_per_image,
            callers=settings.callers,
            out_of_credits_backoff_seconds=settings.out_of_credits_backoff_seconds,
            typical_job_seconds=settings.default_estimated_seconds,
        )

    def limits_of(self, caller: str) -> CallerLimits:
        """A caller's limits (none for a caller the settings do not know)."""
        known = self.callers.get(caller)
        return known.limits if known is not None else CallerLimits()

    @property
    def global_limits(self) -> GlobalLimits:
        """The limits across all callers."""
        return self.callers.limits
