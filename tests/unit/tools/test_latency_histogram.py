"""iscsikit.tools.latency: the log-linear buckets, percentiles against exact ones, bounds."""

from __future__ import annotations

import math
import random

import pytest

from iscsikit.tools.latency import (
    BUCKETS,
    SUB_BUCKETS,
    LatencyHistogram,
    bucket_bounds,
    bucket_index,
)


def exact_percentile(values: list[int], p: float) -> int:
    """The nearest-rank percentile: the smallest value with at least p % at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(p * len(ordered) / 100, 6)))
    return ordered[rank - 1]


def test_small_values_have_a_bucket_each() -> None:
    for value in range(2 * SUB_BUCKETS):
        assert bucket_index(value) == value
        assert bucket_bounds(value) == (value, value)


@pytest.mark.parametrize("bits", range(8, 64))
def test_every_bucket_holds_its_bounds_and_is_at_most_1_128_wide(bits: int) -> None:
    rng = random.Random(bits)
    lowest = 1 << (bits - 1)
    for drawn in [lowest, (1 << bits) - 1, *(rng.getrandbits(bits) for _ in range(200))]:
        value = max(drawn, lowest)
        index = bucket_index(value)
        assert 0 <= index < BUCKETS
        low, high = bucket_bounds(index)
        assert low <= value <= high
        assert (high - low + 1) / low <= 1 / SUB_BUCKETS
        # the neighbours' bounds touch: no gap, no overlap
        assert bucket_bounds(index - 1)[1] == low - 1
        if index + 1 < BUCKETS:
            assert bucket_bounds(index + 1)[0] == high + 1


def test_the_largest_64_bit_value_fits() -> None:
    assert bucket_index((1 << 64) - 1) == BUCKETS - 1
    assert bucket_bounds(BUCKETS - 1)[1] == (1 << 64) - 1


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_are_within_1_percent_of_the_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    # log-normal latencies around 80 µs with a tail into the milliseconds, in ns
    values = [int(rng.lognormvariate(math.log(80_000), 0.6)) for _ in range(20_000)]
    values += [rng.randrange(1, 300) for _ in range(50)]  # and a few tiny ones
    histogram = LatencyHistogram()
    histogram.record_all(values)
    assert histogram.total == len(values)
    wanted = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    got = histogram.percentiles(wanted)
    for p, value in zip(wanted, got, strict=True):
        exact = exact_percentile(values, p)
        assert value is not None
        assert exact <= value <= exact * 1.01, (p, exact, value)
    top = histogram.max()
    assert top is not None and max(values) <= top <= max(values) * 1.01
    assert got[-1] == top


def test_percentiles_of_a_few_values_are_exact() -> None:
    histogram = LatencyHistogram()
    histogram.record_all([10, 20, 30, 40, 200])
    assert histogram.percentiles([50, 80, 99, 100]) == [30, 40, 200, 200]
    assert histogram.percentile(0) == 10
    assert histogram.max() == 200


def test_an_empty_histogram_has_no_percentiles() -> None:
    histogram = LatencyHistogram()
    assert histogram.percentiles([50, 99]) == [None, None]
    assert histogram.max() is None and histogram.total == 0


def test_memory_is_bounded_whatever_is_recorded() -> None:
    histogram = LatencyHistogram()
    counts = histogram.counts
    for value in (0, 1, 10**6, 10**12, (1 << 64) - 1):
        for _ in range(1000):
            histogram.record(value)
    assert histogram.counts is counts and len(counts) == BUCKETS
    assert histogram.total == 5000


def test_merge_adds_counts_in_place() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    counts = a.counts
    a.record_all([100, 1000])
    b.record_all([1000, 10**6])
    a.merge(b)
    assert a.counts is counts and a.total == 4
    assert a.percentile(50) == bucket_bounds(bucket_index(1000))[1] == 1003
    assert a.max() == bucket_bounds(bucket_index(10**6))[1]
