"""The series the per-packet paths update: compiled (collector.compiled.HOT_MODULES).

A counter's or histogram's labelled series here is a plain number or list,
bound once and kept: prometheus-client's own take a lock and run Python for
every observation. collector.telemetry, which is not compiled (its health
state overrides `__setattr__`), defines the metrics these belong to, exposes
them at scrape time and exports these classes.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.telemetry import Telemetry


class FastCounterChild:
    """One labelled series of a FastCounter: a plain number, no lock."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount`."""
        self.value += amount


class FastHistogramChild:
    """One labelled series of a FastHistogram: bucket counts and a sum, no lock."""

    __slots__ = ("counts", "sum", "upper")

    def __init__(self, upper: list[float]) -> None:
        self.upper = upper
        self.counts = [0] * (len(upper) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (buckets are inclusive upper bounds)."""
        self.counts[bisect.bisect_left(self.upper, value)] += 1
        self.sum += value


class PacketCounts:
    """`packets_total` of one listener: how every receiver counts its packets.

    Each (source, outcome) series is bound on first use and kept, so the
    per-packet cost is one dict look-up; `series` binds one ahead (a receiver
    that wants its sources' series to exist before any packet).
    """

    __slots__ = ("_bound", "_packets", "listener")

    def __init__(self, telemetry: Telemetry, listener: str) -> None:
        self._packets = telemetry.packets
        self.listener = listener
        self._bound: dict[tuple[str, str], FastCounterChild] = {}

    def series(self, source: str, outcome: str) -> FastCounterChild:
        """The series of `source` and `outcome`, bound once."""
        child = self._bound.get((source, outcome))
        if child is None:
            child = self._bound[(source, outcome)] = self._packets.labels(
                self.listener, source, outcome
            )
        return child

    def count(self, source: str, outcome: str) -> None:
        """One packet of `source` with `outcome` (one of PACKET_OUTCOMES)."""
        child = self._bound.get((source, outcome))
        if child is None:
            child = self.series(source, outcome)
        child.value += 1.0

    def forget(self) -> None:
        """Let go of the bound series (after a reload removed sources); counts stay."""
        self._bound.clear()
