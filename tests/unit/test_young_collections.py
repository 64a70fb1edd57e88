"""The server's own collections of the young generations (src/ivr_server/memory.py,
``YoungCollections``; docs/performance.md §13, "Stalls"): which generation each tick collects,
and the interpreter's behaviour they work around."""

from __future__ import annotations

import gc
import sys

import pytest

from ivr_server.memory import YoungCollections


def test_the_middle_generation_is_collected_every_tenth_tick() -> None:
    young = YoungCollections()
    assert [young.tick() for _ in range(20)] == ([0] * 9 + [1]) * 2
    assert young.ticks == 20


def test_the_period_of_the_middle_generation_is_a_parameter() -> None:
    young = YoungCollections(every=3)
    assert [young.tick() for _ in range(6)] == [0, 0, 1, 0, 0, 1]


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13's collector counts otherwise")
@pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (coverage) may allocate")
def test_freeing_old_objects_lets_the_young_generation_grow_past_its_threshold() -> None:
    """Why the server collects itself: the interpreter starts a young collection when the tracked
    objects allocated *minus those freed* pass the threshold (700), so a program that frees an
    old object for each new one (calls ending as calls start) never reaches it, and the young
    generation grows without bound until one collection walks all of it."""
    gc.collect()
    old: list[list[int]] = [[] for _ in range(6000)]
    gc.collect()  # now old: freeing them counts against the new ones
    new: list[list[int]] = []
    for _ in range(5000):
        new.append([])
        del old[-1]
    assert gc.isenabled()
    assert len(gc.get_objects(0)) >= 4000  # not collected: 5,000 new lists, far past 700
    gc.collect(0)
    assert len(gc.get_objects(0)) <= 1  # the young generation walked once (what the server does)
