"""PNG plots of a run with matplotlib (the optional ``plots`` extra): latency over time and the
latency histogram, one line per request type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivr_server.loadtest.report import Merged, percentile

__all__ = ["PlotsUnavailable", "draw_plots", "require_matplotlib"]


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(
            "--plots needs matplotlib: pip install 'ivr-server[plots]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def require_matplotlib() -> None:
    """Raise :class:`PlotsUnavailable` when matplotlib cannot be imported."""
    _pyplot()


def draw_plots(merged: Merged, directory: Path, title: str) -> list[Path]:
    """Write ``latency-over-time.png`` and ``latency-histogram.png`` into ``directory``."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    labels = [label for label in merged.labels if merged.latencies[label]]
    span = max((max(merged.times[label]) for label in labels), default=1.0)
    bucket = max(0.1, span / 120)
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(11, 5.5))
    for label in labels:
        groups: dict[int, list[float]] = {}
        for t, value in zip(merged.times[label], merged.latencies[label], strict=True):
            groups.setdefault(int(t / bucket), []).append(value)
        xs = sorted(groups)
        p50 = [percentile(sorted(groups[x]), 0.5) * 1e3 for x in xs]
        p99 = [percentile(sorted(groups[x]), 0.99) * 1e3 for x in xs]
        seconds = [(x + 0.5) * bucket for x in xs]
        (line,) = ax.plot(seconds, p99, label=f"{label} p99", linewidth=1.4)
        ax.plot(
            seconds,
            p50,
            linestyle="--",
            color=line.get_color(),
            linewidth=1.0,
            label=f"{label} p50",
        )
    ax.set_xlabel(f"seconds since start (buckets of {bucket:.2g} s)")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Latency over time: {title}")
    ax.grid(True, alpha=0.3)
    if labels:
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path = directory / "latency-over-time.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(11, 5.5))
    values = [v for label in labels for v in merged.latencies[label] if v > 0]
    if values:
        low, high = min(values) * 1e3, max(values) * 1e3
        high = max(high, low * 1.01)
        count = 80
        edges = [low * (high / low) ** (i / count) for i in range(count + 1)]
        for label in labels:
            ax.hist(
                [v * 1e3 for v in merged.latencies[label]],
                bins=edges,
                histtype="step",
                label=label,
                linewidth=1.3,
            )
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("requests")
    ax.set_title(f"Latency histogram: {title}")
    ax.grid(True, alpha=0.3)
    if labels:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = directory / "latency-histogram.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written
