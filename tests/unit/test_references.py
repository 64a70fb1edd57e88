"""ReferenceIDs: each client of a switch draws from a 32-bit-safe range of its own."""

from __future__ import annotations

import itertools

import pytest

from ivr_server.switch.references import (
    CALLS,
    CONTROL,
    REFERENCE_ID_MAX,
    ROUTERS,
    SERVICE,
    ReferenceIds,
)


def test_a_range_hands_out_its_ids_in_turn_and_wraps_at_its_end() -> None:
    refs = ReferenceIds(5, 7)
    assert [refs() for _ in range(5)] == [5, 6, 7, 5, 6]
    assert (refs.first, refs.last) == (5, 7)
    assert 7 in refs and 8 not in refs and "5" not in refs


@pytest.mark.parametrize(("first", "last"), [(0, 5), (5, 4), (1, REFERENCE_ID_MAX + 1)])
def test_a_range_outside_32_bits_or_empty_is_refused(first: int, last: int) -> None:
    with pytest.raises(ValueError, match="not within"):
        ReferenceIds(first, last)


def test_the_ranges_are_disjoint_and_fit_a_signed_32_bit_field() -> None:
    ranges = sorted([SERVICE, CALLS, ROUTERS, CONTROL])
    assert ranges[0][0] >= 1 and ranges[-1][1] <= 2**31 - 1
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end < start
    last = ReferenceIds(*CONTROL)
    assert last.last == REFERENCE_ID_MAX
