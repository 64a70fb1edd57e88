"""The final report: merging the workers' results, percentiles, the text table and the JSON."""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ivr_server.loadtest.work import WorkerResult

__all__ = [
    "PERCENTILES",
    "Merged",
    "ServerUsage",
    "build_report",
    "merge",
    "percentile",
    "render",
    "write_json",
]

PERCENTILES: Final = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))
REPORT_VERSION: Final = 1
GENERATOR_BUSY_PERCENT: Final = 90.0
"""A generator process that used this much of a core may have held the load back: the report says
so (``generator.busy``), since a load test must measure the server, not its generator."""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(len(sorted_values), rank) - 1]


@dataclass
class ServerUsage:
    """The server process seen through /proc during the run (None: not measured)."""

    pid: int
    cpu_percent: float | None = None
    """Average over the measurement window, in percent of one core."""
    cpu_peak_percent: float | None = None
    """Highest over one sampling interval (about half a second)."""
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    rss_peak_mb: float | None = None
    samples: int = 0
    problem: str | None = None


@dataclass
class Merged:
    """Every worker's result, merged."""

    labels: list[str]
    latencies: dict[str, array[float]]
    times: dict[str, array[float]]
    results: list[WorkerResult]
    errors: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(int(getattr(r, name)) for r in self.results)

    @property
    def window(self) -> float:
        """The measurement window in seconds (the workers start together)."""
        windows = [r.window for r in self.results if r.window > 0]
        return sum(windows) / len(windows) if windows else 0.0


def merge(results: list[WorkerResult]) -> Merged:
    labels: list[str] = []
    for result in results:
        labels.extend(label for label in result.labels if label not in labels)
    merged = Merged(
        labels,
        {label: array("d") for label in labels},
        {label: array("d") for label in labels},
        sorted(results, key=lambda r: r.worker),
    )
    for result in merged.results:
        for label in result.labels:
            merged.latencies[label].extend(result.latencies[label])
            merged.times[label].extend(result.times[label])
        for kind, count in result.errors.items():
            merged.errors[kind] = merged.errors.get(kind, 0) + count
            examples = merged.examples.setdefault(kind, [])
            examples.extend(result.examples.get(kind, [])[: 3 - len(examples)])
    return merged


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value * 1e3, 4)


def latency_table(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    row: dict[str, Any] = {"count": len(ordered)}
    for name, q in PERCENTILES:
        row[name] = _ms(percentile(ordered, q))
    row["max"] = _ms(ordered[-1]) if ordered else None
    row["mean"] = _ms(sum(ordered) / len(ordered)) if ordered else None
    return row


def build_report(
    merged: Merged,
    *,
    settings: dict[str, Any],
    server: ServerUsage | None,
) -> dict[str, Any]:
    """The report as a JSON-able dictionary (the fields are listed in docs/loadtest.md)."""
    window = merged.window
    per_s = (lambda n: round(n / window, 1)) if window > 0 else (lambda n: 0.0)
    completed_w = merged.total("window_completed")
    sent_w, received_w = merged.total("window_sent"), merged.total("window_received")
    all_latencies: array[float] = array("d")
    for label in merged.labels:
        all_latencies.extend(merged.latencies[label])
    latency = {label: latency_table(merged.latencies[label]) for label in merged.labels}
    latency["all"] = latency_table(all_latencies)
    cpu = [r.cpu_seconds / window * 100 if window > 0 else 0.0 for r in merged.results]
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        **settings,
        "processes": len(merged.results),
        "sessions": merged.total("sessions"),
        "ports": merged.total("ports"),
        "duration_s": round(window, 3),
        "calls": {
            "started": merged.total("started"),
            "completed": merged.total("completed"),
            "failed": merged.total("failed"),
            "unfinished": merged.total("unfinished"),
            "peak_in_flight": merged.total("peak_in_flight"),
            "completed_in_window": completed_w,
            "per_second": per_s(completed_w),
        },
        "messages": {
            "sent": merged.total("sent"),
            "received": merged.total("received"),
            "per_second": per_s(sent_w + received_w),
            "sent_per_second": per_s(sent_w),
            "received_per_second": per_s(received_w),
        },
        "latency_ms": latency,
        "errors": {
            "total": sum(merged.errors.values()),
            "by_kind": dict(sorted(merged.errors.items(), key=lambda kv: -kv[1])),
            "examples": merged.examples,
        },
        "generator": {
            "cpu_percent": round(sum(cpu), 1),
            "cpu_percent_per_process": [round(c, 1) for c in cpu],
            "busy": any(c >= GENERATOR_BUSY_PERCENT for c in cpu),
        },
        "server": None if server is None else _server(server),
    }
    if settings.get("mode") == "open":
        lag: array[float] = array("d")
        for result in merged.results:
            lag.extend(result.start_lag)
        ordered = sorted(lag)
        report["open_loop"] = {
            "offered_per_second": settings.get("rate"),
            "start_lag_p99_ms": _ms(percentile(ordered, 0.99)),
            "start_lag_max_ms": _ms(ordered[-1]) if ordered else None,
        }
    return report


def _server(usage: ServerUsage) -> dict[str, Any]:
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "pid": usage.pid,
        "cpu_percent": r(usage.cpu_percent),
        "cpu_peak_percent": r(usage.cpu_peak_percent),
        "rss_start_mb": r(usage.rss_start_mb),
        "rss_end_mb": r(usage.rss_end_mb),
        "rss_peak_mb": r(usage.rss_peak_mb),
        "samples": usage.samples,
        "problem": usage.problem,
    }


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def render(report: dict[str, Any]) -> str:
    """The report for people."""
    calls, msgs, errors = report["calls"], report["messages"], report["errors"]
    mode = (
        f"closed loop, {report['concurrency']} calls in flight"
        if report["mode"] == "closed"
        else f"open loop, {report['rate']:g} calls/s"
    )
    lines = [
        f"ivr-server loadtest: {report['target']}, script {report['script']} ({mode})",
        f"  {len(report['ivrs'])} IVR(s) {', '.join(report['ivrs'][:4])}"
        f"{'…' if len(report['ivrs']) > 4 else ''}; {report['sessions']} sessions, "
        f"{report['ports']} ports, {report['processes']} process(es); "
        f"{report['duration_s']:.2f} s measured",
        f"  calls      {calls['per_second']:>12,.1f} /s   started {calls['started']:,}, "
        f"completed {calls['completed']:,}, failed {calls['failed']:,}, "
        f"unfinished {calls['unfinished']:,}, peak in flight {calls['peak_in_flight']:,}",
        f"  messages   {msgs['per_second']:>12,.1f} /s   sent {msgs['sent']:,} "
        f"({msgs['sent_per_second']:,.1f}/s), received {msgs['received']:,} "
        f"({msgs['received_per_second']:,.1f}/s)",
    ]
    if "open_loop" in report:
        ol = report["open_loop"]
        lines.append(
            f"  open loop  call start lag behind schedule p99 {_f(ol['start_lag_p99_ms'])} ms, "
            f"max {_f(ol['start_lag_max_ms'])} ms"
        )
    header = f"  {'latency (ms)':<14}" + "".join(f"{n:>9}" for n, _ in PERCENTILES)
    lines.append(header + f"{'max':>9}{'count':>11}")
    for label, row in report["latency_ms"].items():
        cells = "".join(f"{_f(row[n]):>9}" for n, _ in PERCENTILES)
        lines.append(f"  {label:<14}{cells}{_f(row['max']):>9}{row['count']:>11,}")
    lines.append(f"  errors     {errors['total']:,}")
    for kind, count in errors["by_kind"].items():
        lines.append(f"    {count:>9,} × {kind}")
        for example in errors["examples"].get(kind, [])[:1]:
            lines.append(f"                e.g. {example[:160]}")
    server = report["server"]
    if server is None:
        lines.append("  server     CPU n/a, memory n/a (give --server-pid)")
    elif server["problem"] and server["samples"] == 0:
        lines.append(f"  server     n/a: {server['problem']}")
    else:
        lines.append(
            f"  server     pid {server['pid']}: CPU {_f(server['cpu_percent'], '.0f')}% "
            f"(peak {_f(server['cpu_peak_percent'], '.0f')}%), RSS "
            f"{_f(server['rss_start_mb'], '.1f')} → {_f(server['rss_end_mb'], '.1f')} MB "
            f"(peak {_f(server['rss_peak_mb'], '.1f')} MB)"
        )
    gen = report["generator"]
    lines.append(
        f"  generator  CPU {gen['cpu_percent']:.0f}% "
        f"({', '.join(f'{c:.0f}%' for c in gen['cpu_percent_per_process'])} per process)"
    )
    if gen["busy"]:
        lines.append(
            f"  warning    a generator process used {GENERATOR_BUSY_PERCENT:.0f}% or more of a core: "
            "the generator may have limited the load; run more --processes on free cores"
        )
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
