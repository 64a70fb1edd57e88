"""``GET /metrics``: the server's counters in the Prometheus text format.

The service counts with plain integers (:mod:`ivr_server.metrics`); this collector reads them at
scrape time, so nothing is paid on the hot path for Prometheus. It is registered in a private
``CollectorRegistry`` (never the process-global one), one per API server.
"""

from __future__ import annotations

__all__ = ["ApiRequestCounter", "ServiceCollector", "exposition"]

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from ivr_server.api.handlers.ha import ha_families
from ivr_server.logs import records_dropped
from ivr_server.metrics import Histogram
from ivr_server.service import IvrService

PREFIX = "ivr_server"


class ApiRequestCounter:
    """HTTP requests the API answered, by method, route template and status."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, method: str, route: str, status: int) -> None:
        self.counts[(method, route, str(status))] += 1


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [(le, float(count)) for le, count in histogram.cumulative()]


class ServiceCollector(Collector):
    """Reads ``service.metrics`` (and a few live sizes) when Prometheus scrapes."""

    def __init__(
        self,
        service: IvrService,
        api_requests: ApiRequestCounter,
        websocket_clients: Callable[[], int],
    ) -> None:
        self._service = service
        self._api_requests = api_requests
        self._websocket_clients = websocket_clients

    def collect(self) -> Iterator[Metric]:
        service = self._service
        metrics = service.metrics

        yield GaugeMetricFamily(
            f"{PREFIX}_sessions_open", "IVR sessions connected now.", value=len(service.sessions)
        )
        yield CounterMetricFamily(
            f"{PREFIX}_sessions_opened", "IVR sessions accepted.", value=metrics.sessions_opened
        )
        yield CounterMetricFamily(
            f"{PREFIX}_sessions_closed", "IVR sessions closed.", value=metrics.sessions_closed
        )
        logins = CounterMetricFamily(
            f"{PREFIX}_logins", "LoginReq outcomes by result.", labels=["result"]
        )
        for result, count in sorted(metrics.logins.items()):
            logins.add_metric([result], count)
        yield logins

        for name, doc, counter in (
            ("messages_in", "Documents received from IVRs, by element.", metrics.messages_in),
            ("messages_out", "Documents sent to IVRs, by element.", metrics.messages_out),
        ):
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["type"])
            for tag, count in sorted(counter.items()):
                family.add_metric([tag], count)
            yield family
        errors = CounterMetricFamily(f"{PREFIX}_errors", "Error answers by kind.", labels=["kind"])
        for kind, count in sorted(metrics.errors.items()):
            errors.add_metric([kind], count)
        yield errors
        refusals = CounterMetricFamily(
            f"{PREFIX}_refusals",
            "Requests refused, by request element and cause (what the IVR is told).",
            labels=["request", "cause"],
        )
        for (request, cause), count in sorted(metrics.refusals.items()):
            refusals.add_metric([request, cause], count)
        yield refusals

        yield GaugeMetricFamily(
            f"{PREFIX}_calls_active", "Calls of IVR ports now.", value=len(service.calls.calls)
        )
        yield CounterMetricFamily(
            f"{PREFIX}_calls_started",
            "Calls admitted (NewCall, DialOutInit).",
            value=metrics.calls_started,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_calls_completed", "Calls that ended.", value=service.calls.completed
        )
        routing = CounterMetricFamily(
            f"{PREFIX}_routing",
            "RouteResponses sent, by RouteType (Default includes router timeouts).",
            labels=["route_type"],
        )
        for route_type, count in sorted(metrics.routing.items()):
            routing.add_metric([route_type], count)
        yield routing
        yield CounterMetricFamily(
            f"{PREFIX}_router_timeouts",
            "Calls answered by the router timeout's default route.",
            value=metrics.router_timeouts,
        )
        latency = HistogramMetricFamily(
            f"{PREFIX}_routing_latency_seconds", "RouteRequest to RouteResponse."
        )
        latency.add_metric(
            [], _buckets(metrics.routing_latency), sum_value=metrics.routing_latency.total
        )
        yield latency
        requests = HistogramMetricFamily(
            f"{PREFIX}_request_latency_seconds",
            "Handling time of IVR documents, by element.",
            labels=["type"],
        )
        for tag, histogram in sorted(metrics.request_latency.items()):
            requests.add_metric([tag], _buckets(histogram), sum_value=histogram.total)
        yield requests
        lag = HistogramMetricFamily(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 0.25 s (about 1 ms is its resolution).",
        )
        lag.add_metric([], _buckets(metrics.loop_lag), sum_value=metrics.loop_lag.total)
        yield lag
        yield CounterMetricFamily(
            f"{PREFIX}_log_records_dropped",
            "Log records dropped because the log output did not keep up (the log queue was full).",
            value=records_dropped(),
        )
        logmsg = CounterMetricFamily(
            f"{PREFIX}_logmsg_dropped",
            "IVR LogMsg documents not logged, by reason (rate_limit: over logmsg-rate).",
            labels=["reason"],
        )
        for reason in sorted({"rate_limit", *metrics.logmsg_dropped}):  # 0 before the first
            logmsg.add_metric([reason], metrics.logmsg_dropped[reason])
        yield logmsg
        yield CounterMetricFamily(
            f"{PREFIX}_logmsg_truncated",
            "IVR LogMsg texts cut to logmsg-max-length.",
            value=metrics.logmsg_truncated,
        )

        links = GaugeMetricFamily(
            f"{PREFIX}_link_up", "T-Server link state per switch (1 = up).", labels=["switch"]
        )
        for name, switch in service.switches.items():
            links.add_metric([name], 1.0 if switch.view.link_up else 0.0)
        yield links

        api = CounterMetricFamily(
            f"{PREFIX}_api_requests",
            "HTTP API requests, by method, route and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in sorted(self._api_requests.counts.items()):
            api.add_metric([method, route, status], count)
        yield api
        yield GaugeMetricFamily(
            f"{PREFIX}_event_stream_clients",
            "WebSocket event-stream clients connected now.",
            value=self._websocket_clients(),
        )
        yield from _access_numbers(service)
        if metrics.ha is not None:  # [ha] on (runtime/ha.py): issue 25's hook
            yield from ha_families(metrics.ha)


def _access_numbers(service: IvrService) -> Iterator[Metric]:
    """Each Location's DNIS pool now and what happened to its numbers (docs/access-numbers.md)."""
    numbers = service.access_numbers.numbers
    now = GaugeMetricFamily(
        f"{PREFIX}_access_numbers",
        "Numbers of each Location's DNIS pool now, by state (free, reserved).",
        labels=["location", "state"],
    )
    done = CounterMetricFamily(
        f"{PREFIX}_access_numbers_events",
        "What happened to each pool's numbers: reserved, handed_off (the call arrived or a "
        "claim), expired, cancelled, exhausted (a request found none free).",
        labels=["location", "event"],
    )
    for name, pool in numbers.pools.items():
        now.add_metric([name, "free"], pool.free)
        now.add_metric([name, "reserved"], pool.in_use)
        counts = pool.counts
        for event, count in (
            ("reserved", counts.reserved),
            ("handed_off", counts.handed_off),
            ("expired", counts.expired),
            ("cancelled", counts.cancelled),
            ("exhausted", counts.exhausted),
        ):
            done.add_metric([name, event], count)
    yield now
    yield done
    peers = GaugeMetricFamily(
        f"{PREFIX}_access_numbers_on_peers",
        "Peer Locations now: numbers calls of this server hold there (held), requests waiting "
        "for the peer's answer (asking).",
        labels=["state"],
    )
    peers.add_metric(["held"], numbers.held_on_peers())
    peers.add_metric(["asking"], numbers.asking())
    yield peers


def exposition(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The registry in the format the scraper's ``Accept`` header asks for (the Prometheus text
    format by default, OpenMetrics on request), and its content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
