"""High availability as the API shows it: ``GET /api/v1/ha`` (this node's role, epoch, store,
commit latency, takeovers; docs/ha.md, "What the API and the web view show") and the
``ivr_server_ha_*`` families of ``/metrics``. Read from ``runtime/ha.py``'s ``HaNode`` and
``metrics.HaMetrics`` as they are; nothing is kept here."""

from __future__ import annotations

__all__ = ["HaCommitLatency", "HaTakeover", "HaView", "get_ha", "ha_families", "ha_view"]

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from pydantic import BaseModel, ConfigDict

from ivr_server.api.answers import json_response
from ivr_server.metrics import HaMetrics, Histogram

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

PREFIX = "ivr_server_ha"


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HaCommitLatency(_Reply):
    """Seconds from a turn's batch sent to its acknowledgement: the last one, and the median
    and 99th percentile of the last 2,048 (``null`` before the first)."""

    last: float | None
    p50: float | None
    p99: float | None


class HaTakeover(_Reply):
    """This node's last takeover."""

    seconds: float
    """From winning the lease to answering."""
    at: float
    """When it ended (Unix time)."""
    calls: int
    """Calls restored from the store."""
    replayed: int
    """Requests of the driver replayed (hot standby)."""
    slot: str
    epoch: int
    load_seconds: float
    """Of ``seconds``: reading the slot from the store (``prefetched``: read before the lease
    lapsed, not part of ``seconds``)."""
    restore_seconds: float
    """Of ``seconds``: rebuilding the calls from the records (``prefetched``: installing what
    was built ahead)."""
    records: int
    """Records read from the store."""
    prefetched: bool = False
    """The old holder had missed a renewal: the slot was read and its calls built before its
    lease lapsed, and the takeover only installed them (docs/ha.md "Ready before the lease
    lapses")."""
    build_seconds: float = 0.0
    """With ``prefetched``: building the calls ahead (not part of ``seconds``)."""
    waited_seconds: float = 0.0
    """Of ``seconds``: waiting for the state built ahead, and checking it is the store's."""


class HaView(_Reply):
    """This node's high availability (``[ha]``). With ``mode = "off"`` only ``mode`` is set
    (``"off"``) and the rest is ``null``."""

    mode: str
    node_id: str | None = None
    role: str | None = None
    """``leader`` (answers and writes) or ``standby``."""
    epoch: int | None = None
    """The fencing epoch of the slot this node writes (0: none held)."""
    slots: dict[str, int] | None = None
    """Slots held, with their epochs (active mode: its own and those it adopted)."""
    store_url: str | None = None
    store_state: str | None = None
    """``ok`` or ``lost`` (the store does not answer: see ``on-store-loss``)."""
    durability: str | None = None
    queued: int | None = None
    """State records queued while the store is lost."""
    commit_latency: HaCommitLatency | None = None
    batches: int | None = None
    """Batches the store acknowledged."""
    in_flight: int | None = None
    """Batches sent and not yet acknowledged."""
    replayed: int | None = None
    fenced_count: int | None = None
    last_takeover: HaTakeover | None = None
    journal: dict[str, int] | None = None
    """Hot standby: the driver's requests kept by this node as standby (``journaled``), dropped
    at the leader's marks (``trimmed``), for a full journal (``overflowed``), with their session
    (``closed``), replayed at takeovers (``replayed``), or not replayed because the stream did
    not line up with the leader's (``unaligned``)."""
    prefetch: dict[str, int] | None = None
    """Warm and hot standby: the takeovers built ahead because the holder missed a renewal
    (``started``), installed at a takeover (``used``), or dropped because the holder renewed
    after all or the slot changed since (``discarded``; docs/ha.md "Ready before the lease
    lapses")."""


def ha_view(api: ApiServer) -> dict[str, Any]:
    """This node's :class:`HaView` as JSON."""
    node = api.server.ha
    if node is None:
        return {"mode": "off"}
    return node.view()


async def get_ha(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(ha_view(api))


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [(le, float(count)) for le, count in histogram.cumulative()]


def ha_families(ha: HaMetrics) -> Iterator[Metric]:
    """The ``ivr_server_ha_*`` families (``api/metrics.py`` yields them when ``[ha]`` is on)."""
    labels = ["mode", "node"]
    values = [ha.mode, ha.node]
    role = GaugeMetricFamily(
        f"{PREFIX}_role", "This node's role: 1 leader, 0 standby.", labels=labels
    )
    role.add_metric(values, ha.role)
    yield role
    epoch = GaugeMetricFamily(
        f"{PREFIX}_epoch",
        "The fencing epoch of the slot this node writes (0: none).",
        labels=labels,
    )
    epoch.add_metric(values, ha.epoch)
    yield epoch
    yield GaugeMetricFamily(
        f"{PREFIX}_store_up",
        "1 while the shared store answers, 0 while it is lost.",
        value=ha.store_up,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_queued_records",
        "State records queued while the store is lost.",
        value=ha.queued_records,
    )
    latency = HistogramMetricFamily(
        f"{PREFIX}_commit_latency_seconds", "A turn's batch sent to its acknowledgement."
    )
    latency.add_metric([], _buckets(ha.commit_latency), sum_value=ha.commit_latency.total)
    yield latency
    takeover = HistogramMetricFamily(
        f"{PREFIX}_takeover_seconds", "Lease won to answering, per takeover."
    )
    takeover.add_metric([], _buckets(ha.takeover), sum_value=ha.takeover.total)
    yield takeover
    for name, doc, value in (
        ("batches", "Batches of state changes the store acknowledged.", ha.batches),
        ("replayed_requests", "Driver requests replayed at takeovers (hot standby).", ha.replayed),
        ("fenced", "Times this node found another holding its slot and demoted itself.", ha.fenced),
        ("takeovers", "Takeovers by this node.", ha.takeovers),
        ("adopted_calls", "Calls adopted from dead nodes (active mode).", ha.adopted_calls),
        (
            "replica_timeouts",
            "Batches not acknowledged by every replica asked for within wait-timeout.",
            ha.replica_timeouts,
        ),
    ):
        yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
