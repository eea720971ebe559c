"""Medians, ratios against the baselines, goal checks and the Markdown page.

Every ratio pairs two targets measured in the same round, then takes the
median over the rounds, so a machine that slows down between rounds moves
both sides of each ratio together.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass
class Measurement:
    """One measured run of one target in one scenario and round."""

    scenario: str
    target: str
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    unexpected_statuses: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Summary:
    """The medians of one target in one scenario."""

    scenario: str
    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    rounds: int
    errors: int


def summarise(measurements: list[Measurement]) -> dict[tuple[str, str], Summary]:
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for measurement in measurements:
        groups.setdefault((measurement.scenario, measurement.target), []).append(measurement)
    return {
        key: Summary(
            scenario=key[0],
            target=key[1],
            requests_per_s=statistics.median(m.requests_per_s for m in runs),
            p50_ms=statistics.median(m.p50_ms for m in runs),
            p99_ms=statistics.median(m.p99_ms for m in runs),
            rounds=len(runs),
            errors=sum(m.socket_errors + m.unexpected_statuses for m in runs),
        )
        for key, runs in groups.items()
    }


def paired(
    measurements: list[Measurement], scenario: str, target: str, baseline: str, field: str
) -> list[tuple[float, float]]:
    """Return (target value, baseline value) pairs of `field`, one per round
    in which both were measured."""
    by_round: dict[int, dict[str, float]] = {}
    for measurement in measurements:
        if measurement.scenario == scenario and measurement.target in (target, baseline):
            by_round.setdefault(measurement.round, {})[measurement.target] = getattr(measurement, field)
    return [
        (values[target], values[baseline])
        for _, values in sorted(by_round.items())
        if target in values and baseline in values
    ]


def ratio(measurements: list[Measurement], scenario: str, target: str, baseline: str) -> float | None:
    """Return the median over rounds of target req/s divided by baseline req/s."""
    pairs = paired(measurements, scenario, target, baseline, "requests_per_s")
    ratios = [value / base for value, base in pairs if base > 0]
    return statistics.median(ratios) if ratios else None


def p99_excess_ms(
    measurements: list[Measurement], scenario: str, target: str, baseline: str
) -> float | None:
    """Return the median over rounds of target p99 minus baseline p99, in ms."""
    pairs = paired(measurements, scenario, target, baseline, "p99_ms")
    return statistics.median(value - base for value, base in pairs) if pairs else None


@dataclass
class Goal:
    """One goal of the benchmark with its measured value."""

    text: str
    measured: str
    met: bool | None  # None: not measured


def format_rate(value: float) -> str:
    return f"{value:,.0f}"


def format_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)
