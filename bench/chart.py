"""An SVG chart of the HTTP scenarios: for each scenario, one row per
target with its median requests/s and its median p50 and p99 latency.

Bars are scaled per scenario, because throughput differs by orders of
magnitude between, say, a 1 MiB body and a small GET. Each bar carries its
value as text, so the chart reads without an axis.
"""

from __future__ import annotations

from html import escape

from report import Summary, format_ms, format_rate

ROW_HEIGHT = 18
PANEL_GAP = 14
TITLE_HEIGHT = 22
LABEL_WIDTH = 240
RATE_WIDTH = 300
LATENCY_WIDTH = 300
COLUMN_GAP = 90
MARGIN = 16

RATE_COLOUR = "#4878a8"
P50_COLOUR = "#e0a030"
P99_COLOUR = "#b04040"


def _text(x: float, y: float, content: str, size: int = 11, anchor: str = "start", weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}">{escape(content)}</text>'
    )


def _bar(x: float, y: float, width: float, height: float, colour: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0.5):.1f}" height="{height:.1f}" fill="{colour}"/>'


def render_chart(
    title: str,
    panels: list[tuple[str, list[tuple[str, Summary]]]],
) -> str:
    """Return the SVG document. `panels` holds, per scenario, its title and
    the (target label, summary) rows in display order."""
    width = MARGIN * 2 + LABEL_WIDTH + RATE_WIDTH + COLUMN_GAP + LATENCY_WIDTH + COLUMN_GAP
    rate_x = MARGIN + LABEL_WIDTH
    latency_x = rate_x + RATE_WIDTH + COLUMN_GAP
    parts: list[str] = []
    y = MARGIN + 16
    parts.append(_text(MARGIN, y, title, size=14, weight="bold"))
    y += 20
    parts.append(_bar(rate_x, y - 9, 10, 10, RATE_COLOUR))
    parts.append(_text(rate_x + 14, y, "requests/s (median of rounds)"))
    parts.append(_bar(latency_x, y - 9, 10, 10, P50_COLOUR))
    parts.append(_text(latency_x + 14, y, "p50 ms"))
    parts.append(_bar(latency_x + 70, y - 9, 10, 10, P99_COLOUR))
    parts.append(_text(latency_x + 84, y, "p99 ms"))
    y += 10

    for panel_title, rows in panels:
        y += PANEL_GAP + TITLE_HEIGHT - 6
        parts.append(_text(MARGIN, y, panel_title, size=12, weight="bold"))
        y += 6
        top_rate = max((summary.requests_per_s for _, summary in rows), default=1) or 1
        top_latency = max((summary.p99_ms for _, summary in rows), default=1) or 1
        for label, summary in rows:
            half = (ROW_HEIGHT - 4) / 2
            parts.append(_text(rate_x - 8, y + ROW_HEIGHT - 5, label, anchor="end"))
            rate_width = RATE_WIDTH * summary.requests_per_s / top_rate
            parts.append(_bar(rate_x, y + 2, rate_width, ROW_HEIGHT - 4, RATE_COLOUR))
            parts.append(_text(rate_x + rate_width + 4, y + ROW_HEIGHT - 5, format_rate(summary.requests_per_s)))
            p50_width = LATENCY_WIDTH * summary.p50_ms / top_latency
            p99_width = LATENCY_WIDTH * summary.p99_ms / top_latency
            parts.append(_bar(latency_x, y + 2, p50_width, half, P50_COLOUR))
            parts.append(_bar(latency_x, y + 2 + half, p99_width, half, P99_COLOUR))
            parts.append(
                _text(
                    latency_x + p99_width + 4,
                    y + ROW_HEIGHT - 5,
                    f"{format_ms(summary.p50_ms)} / {format_ms(summary.p99_ms)}",
                )
            )
            y += ROW_HEIGHT
    height = y + MARGIN
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n"
    )
