"""Server-side SVG charts: geometry computed here, drawn by the template (no JavaScript).

Pure Python: takes numbers and dates, returns dataclasses the template turns into <svg>.
"""

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    start: date
    end: date  # last day of the week, inclusive
    title: str  # the tooltip (<title>), also read by screen readers


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar]
    ticks: list[Tick]
    gridlines: list[tuple[float, int]]  # (y, value)
    maximum: int
    total: int
    summary: str


WIDTH, HEIGHT = 780, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 14, 34
GAP = 4


def _nice_maximum(value: int) -> int:
    """A round axis maximum ≥ value (1, 2, 5, 10, 20, 50, …)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def expiry_timeline(counts: list[int], first_day: date) -> Timeline:
    """Bars of certificates expiring per week; week i starts at first_day + 7·i days."""
    maximum = _nice_maximum(max(counts, default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(counts), 1)
    bars, ticks = [], []
    for i, count in enumerate(counts):
        start = first_day + timedelta(weeks=i)
        end = start + timedelta(days=6)
        height = plot_height * count / maximum
        noun = "certificate expires" if count == 1 else "certificates expire"
        title = f"{count} {noun} in the week of {start:%d %b} – {end:%d %b %Y}"
        x = LEFT + i * slot
        bars.append(
            Bar(
                x + GAP / 2,
                TOP + plot_height - height,
                slot - GAP,
                height,
                count,
                start,
                end,
                title,
            )
        )
        if i % 4 == 0:
            ticks.append(Tick(x + slot / 2, f"{start:%d %b}"))
    gridlines = [
        (TOP + plot_height - plot_height * value / maximum, value)
        for value in sorted({0, maximum // 2, maximum})
    ]
    return Timeline(
        width=WIDTH,
        height=HEIGHT,
        plot_top=TOP,
        plot_bottom=TOP + plot_height,
        bars=bars,
        ticks=ticks,
        gridlines=gridlines,
        maximum=maximum,
        total=sum(counts),
        summary=_summary(bars),
    )


def _summary(bars: list[Bar]) -> str:
    """A sentence for screen readers: the total, the busiest week, and the next expiries."""
    total = sum(bar.count for bar in bars)
    if not bars or total == 0:
        return f"No certificate expires in the next {len(bars)} weeks."
    busiest = max(bars, key=lambda bar: bar.count)
    first = next(bar for bar in bars if bar.count)
    noun = "certificate expires" if total == 1 else "certificates expire"
    return (
        f"{total} {noun} in the next {len(bars)} weeks. "
        f"The first in the week of {first.start:%d %b %Y} ({first.count}); "
        f"the busiest week is that of {busiest.start:%d %b %Y} with {busiest.count}."
    )
