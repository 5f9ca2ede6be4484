"""Line and bar charts drawn on the server as SVG: pictures without JavaScript.

The panel's CSP forbids inline scripts, and a chart of 48 hours or 90 days is small, so
the server writes the whole ``<svg>``. Every piece of text (titles, labels, series names)
is escaped here; the result is marked safe for the template only after that. Each chart
is an ``img`` role with a ``<title>`` and a ``<desc>`` so a screen reader announces it,
and the page shows the same numbers in a table (or a CSV) next to it.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe (Okabe-Ito) colours, one per series in order.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 28, 44
MAX_X_LABELS = 12


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float]


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    top: float

    @property
    def plot_width(self) -> float:
        return self.width - MARGIN_LEFT - MARGIN_RIGHT

    @property
    def plot_height(self) -> float:
        return self.height - MARGIN_TOP - MARGIN_BOTTOM

    def y(self, value: float) -> float:
        return MARGIN_TOP + self.plot_height * (1 - value / self.top)


def nice_ticks(largest: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``largest`` (steps of 1, 2 or 5 times 10^k)."""
    if largest <= 0:
        return [0, 1]
    raw = largest / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1) if largest >= 1 else step
    return [step * i for i in range(math.ceil(largest / step) + 1)]


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _axes(frame: _Frame, ticks: list[float], labels: list[str], x_of: list[float]) -> list[str]:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="#dde1e7"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#5f6b7a">{_number(tick)}</text>'
        )
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    baseline = frame.height - MARGIN_BOTTOM
    for i, (label, x) in enumerate(zip(labels, x_of, strict=True)):
        if i % every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{baseline + 16}" text-anchor="middle" font-size="11" '
                f'fill="#5f6b7a">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}" y1="{baseline}" '
        f'y2="{baseline}" stroke="#5f6b7a"/>'
    )
    return parts


def _legend(series: list[Series], frame: _Frame) -> list[str]:
    parts, x = [], MARGIN_LEFT
    for i, one in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(
            f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="17" font-size="12" fill="#1d2330">{escape(one.label)}</text>'
        )
        x += 24 + 7 * len(one.label)
    return parts


def _svg(title: str, description: str, frame: _Frame, body: list[str]) -> SafeString:
    ident = f"chart-{uuid.uuid4().hex[:8]}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="100%" '
        f'aria-labelledby="{ident}-t {ident}-d">'
        f'<title id="{ident}-t">{escape(title)}</title>'
        f'<desc id="{ident}-d">{escape(description)}</desc>'
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 (every text escaped above)


def _describe(labels: list[str], series: list[Series]) -> str:
    if not labels:
        return "No data."
    totals = ", ".join(f"{s.label}: {_number(sum(s.values))} in total" for s in series)
    return f"From {labels[0]} to {labels[-1]}. {totals}."


def line_chart(
    title: str, labels: list[str], series: list[Series], *, width: int = 720, height: int = 240
) -> SafeString:
    """A line per series over the labels (one point per label)."""
    largest = max((v for s in series for v in s.values), default=0)
    ticks = nice_ticks(largest)
    frame = _Frame(width, height, top=ticks[-1])
    steps = max(len(labels) - 1, 1)
    x_of = [MARGIN_LEFT + frame.plot_width * i / steps for i in range(len(labels))]
    body = _axes(frame, ticks, labels, x_of) + _legend(series, frame)
    for i, one in enumerate(series):
        points = " ".join(
            f"{x:.1f},{frame.y(v):.1f}" for x, v in zip(x_of, one.values, strict=True)
        )
        body.append(
            f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2" '
            f'points="{points}"/>'
        )
    return _svg(title, _describe(labels, series), frame, body)


def bar_chart(
    title: str, labels: list[str], series: list[Series], *, width: int = 720, height: int = 240
) -> SafeString:
    """Grouped bars: one group per label, one bar per series, each with its value as a tooltip."""
    largest = max((v for s in series for v in s.values), default=0)
    ticks = nice_ticks(largest)
    frame = _Frame(width, height, top=ticks[-1])
    slot = frame.plot_width / max(len(labels), 1)
    bar = max(slot * 0.8 / max(len(series), 1), 1)
    x_of = [MARGIN_LEFT + slot * (i + 0.5) for i in range(len(labels))]
    body = _axes(frame, ticks, labels, x_of) + _legend(series, frame)
    baseline = frame.height - MARGIN_BOTTOM
    for i, one in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        for j, value in enumerate(one.values):
            x = MARGIN_LEFT + slot * j + slot * 0.1 + bar * i
            y = frame.y(value)
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{baseline - y:.1f}" '
                f'fill="{colour}"><title>{escape(labels[j])}: {escape(one.label)} '
                f"{_number(value)}</title></rect>"
            )
    return _svg(title, _describe(labels, series), frame, body)
