"""The web view's rate samples: a fixed ring of samples, rates between consecutive ones."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from ivr_server.api.rates import RateSampler
from ivr_server.service import IvrService


def _service() -> Any:
    metrics = SimpleNamespace(
        calls_started=0, messages_in={"NewCall": 0}, messages_out={}, errors={}
    )
    return SimpleNamespace(metrics=metrics, calls=SimpleNamespace(completed=0))


def test_rates_cover_the_window_oldest_first_after_the_ring_wraps() -> None:
    service = _service()
    sampler = RateSampler(cast(IvrService, service), interval=1.0, window=3.0)  # 4 samples kept
    seen = []
    for t in range(7):
        service.metrics.calls_started = t * t  # 2t - 1 calls per second over [t - 1, t]
        service.metrics.messages_in["NewCall"] = 3 * t
        sampler.sample(100.0 + t)
        seen.append(sampler.rates()["samples"])
    assert seen[0] == []
    assert [s["time"] for s in seen[2]] == [101.0, 102.0]
    last = seen[-1]
    assert [s["time"] for s in last] == [104.0, 105.0, 106.0]
    assert [s["calls_started"] for s in last] == [7.0, 9.0, 11.0]
    assert all(s["documents_in"] == 3.0 and s["errors"] == 0.0 for s in last)


def test_a_counter_that_went_back_reads_as_no_traffic() -> None:
    service = _service()
    sampler = RateSampler(cast(IvrService, service), interval=5.0)
    service.metrics.calls_started = 10
    sampler.sample(0.0)
    service.metrics.calls_started = 4  # e.g. after a restart of the counters
    sampler.sample(5.0)
    assert sampler.rates()["samples"][0]["calls_started"] == 0.0
