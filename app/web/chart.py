"""Credits per day as a stacked bar chart: the geometry a template turns into inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from app.web.views import credits

WIDTH, HEIGHT = 900, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36
PALETTE = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    label: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_bottom: float
    plot_right: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[tuple[str, str]]


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0):
        if step * power >= value:
            return step * power
    return 10.0 * power


def stacked_bars(days: list[date], by_caller: dict[str, list[float]]) -> Chart:
    """One bar per day, one coloured segment per caller, with axis ticks and a legend."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(series[i] for series in by_caller.values()) for i in range(len(days))]
    top_value = _nice_ceiling(max(totals, default=0.0))
    slot = plot_width / max(len(days), 1)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(by_caller)}
    bars: list[Bar] = []
    for i, day in enumerate(days):
        base = 0.0
        for name, series in by_caller.items():
            amount = series[i]
            if amount <= 0:
                continue
            height = amount / top_value * plot_height
            y = TOP + plot_height - (base + amount) / top_value * plot_height
            label = f"{day.isoformat()}: {name} {credits(amount)} credits"
            bars.append(
                Bar(LEFT + i * slot + slot * 0.15, y, slot * 0.7, height, colors[name], label)
            )
            base += amount
    y_ticks = [
        Tick(TOP + plot_height - fraction * plot_height, credits(top_value * fraction))
        for fraction in (0, 0.25, 0.5, 0.75, 1)
    ]
    x_ticks = [
        Tick(LEFT + i * slot + slot / 2, day.strftime("%b %d"))
        for i, day in enumerate(days)
        if i % 5 == (len(days) - 1) % 5
    ]
    return Chart(
        WIDTH, HEIGHT, LEFT, TOP, TOP + plot_height, LEFT + plot_width,
        bars, y_ticks, x_ticks, list(colors.items()),
    )  # fmt: skip
