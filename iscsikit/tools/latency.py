"""A bounded-memory latency histogram with log-linear buckets (HdrHistogram's layout).

Values are non-negative integers (nanoseconds in ``iscsikit-perf``).  Values below
``2 * SUB_BUCKETS`` (256) each have their own bucket; above that, every power of two is cut
into ``SUB_BUCKETS`` (128) equal buckets, so a bucket is at most 1/128 of its lower bound
wide: any value read back is within 0.79 % of a recorded one (the goal is 1 %).  The
counts live in one fixed list of :data:`BUCKETS` integers (58 KiB), whatever the run's
length; nothing is allocated per value.

The bucket of ``v`` is ``(shift << SUB_BITS) + (v >> shift)`` with
``shift = max(0, v.bit_length() - SUB_BITS - 1)``: :func:`bucket_index` is that formula,
and the tool's per-I/O loop inlines it (a call costs more than the arithmetic).

This module owns the bucket layout and reading values back (percentiles, max); it
does not read clocks or print.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: log2 of the number of buckets per power of two.
SUB_BITS = 7
#: Buckets per power of two above the exact range: relative bucket width <= 1/128.
SUB_BUCKETS = 1 << SUB_BITS
#: Enough buckets for every value below 2**64.
BUCKETS = (64 - SUB_BITS - 1) * SUB_BUCKETS + 2 * SUB_BUCKETS


def bucket_index(value: int) -> int:
    """The index of the bucket that counts ``value`` (0 <= value < 2**64)."""
    shift = value.bit_length() - SUB_BITS - 1
    if shift <= 0:
        return value
    return (shift << SUB_BITS) + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and highest value that land in bucket ``index``."""
    if index < 2 * SUB_BUCKETS:
        return index, index
    shift = (index >> SUB_BITS) - 1
    low = (index - (shift << SUB_BITS)) << shift
    return low, low + (1 << shift) - 1


class LatencyHistogram:
    """Counts of values per log-linear bucket.

    ``counts`` is public so a hot loop can bind it and increment
    ``counts[bucket_index(v)]`` inline, as :meth:`record` does.  The exact sum (for the
    mean) is the caller's to keep: the loop that measures already adds it up.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS

    def record(self, value: int) -> None:
        """Count one value (an integer >= 0)."""
        shift = value.bit_length() - SUB_BITS - 1
        self.counts[value if shift <= 0 else (shift << SUB_BITS) + (value >> shift)] += 1

    def record_all(self, values: Iterable[int]) -> None:
        for value in values:
            self.record(value)

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this one (in place: a bound ``counts`` stays valid)."""
        counts = self.counts
        for index, count in enumerate(other.counts):
            if count:
                counts[index] += count

    @property
    def total(self) -> int:
        """How many values were counted."""
        return sum(self.counts)

    def percentiles(self, wanted: Sequence[float]) -> list[int | None]:
        """The value at each percentile in ``wanted`` (0-100), in one pass over the counts.

        As HdrHistogram: the highest value of the first bucket at which at least that
        share of the values is counted (a percentile is never reported low).  ``None``
        for each when nothing was recorded.
        """
        total = sum(self.counts)
        if not total:
            return [None] * len(wanted)
        order = sorted(range(len(wanted)), key=lambda i: wanted[i])
        # The rank (1-based) that each percentile needs: at least one value.
        # (rounded first: 99.9 * 1000 / 100 is 999.0000000000001 in binary floating point).
        ranks = [max(1, math.ceil(round(wanted[i] * total / 100, 6))) for i in order]
        found: list[int | None] = [None] * len(wanted)
        seen = 0
        k = 0
        for index, count in enumerate(self.counts):
            if not count:
                continue
            seen += count
            while k < len(ranks) and seen >= ranks[k]:
                found[order[k]] = bucket_bounds(index)[1]
                k += 1
            if k == len(ranks):
                break
        return found

    def percentile(self, wanted: float) -> int | None:
        """The value at one percentile (0-100); see :meth:`percentiles`."""
        return self.percentiles([wanted])[0]

    def max(self) -> int | None:
        """The highest value of the highest non-empty bucket (within 0.79 % of the max)."""
        counts = self.counts
        for index in range(len(counts) - 1, -1, -1):
            if counts[index]:
                return bucket_bounds(index)[1]
        return None
