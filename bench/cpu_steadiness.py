#!/usr/bin/env python3
"""How steady is this machine's CPU 0? Run it with nothing else running.

A tight loop pinned to CPU 0 (where the benchmarks put the server) counts how much work it gets
done in each 50 ms window for ``--seconds``, and prints the slowest windows as a share of the
median one. On a physical machine at a fixed clock they all stay within a few percent; on a
virtual machine whose host shares the core (or changes its clock), some windows run much slower.
A server 85-90% busy that loses 30% of its core for a tenth of a second falls behind by tens of
milliseconds of work: that, not the server, is what the p99 of an open loop near saturation
measures on such a machine (docs/performance.md, §6).

It also says who took the slow windows' time. For each window it compares the CPU time the guest
kernel charged to the loop (``time.thread_time``) with the wall-clock time: if the kernel had the
loop on its core for the whole of the slow windows, no other task of this machine took the core,
and the lost work went below the kernel (the hypervisor, or the host's clock); if not, another
task, interrupt handling or steal time that the host reports took part of it.
"""

from __future__ import annotations

import argparse
import os
import time

from common import add_common_args, record

WINDOW = 0.05
SLOW = 0.85  # a window doing less than this share of the median's work is a slow one
ON_CORE = 0.97  # thread CPU time / wall time above which the kernel had the loop on its core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)  # --seconds (default 15), --quick (3 s)
    args, _ = ap.parse_known_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    end = time.perf_counter() + (args.seconds or (3.0 if args.quick else 15.0))
    windows: list[tuple[int, float]] = []  # (work done, share of the window on the core)
    while time.perf_counter() < end:
        start, cpu, n = time.perf_counter(), time.thread_time(), 0
        while (now := time.perf_counter()) - start < WINDOW:
            for _ in range(200):
                pass
            n += 1
        windows.append((n, (time.thread_time() - cpu) / (now - start)))
    work = sorted(n for n, _ in windows)
    median = work[len(work) // 2]
    slow = [on_core for n, on_core in windows if n < SLOW * median]

    def share(q: float) -> str:
        return f"{work[int(q * (len(work) - 1))] / median:.0%}"

    print(
        f"CPU 0, {len(work)} windows of {WINDOW * 1e3:.0f} ms: work done in the slowest window "
        f"{share(0)}, 1st percentile {share(0.01)}, 5th percentile {share(0.05)} of the median "
        f"window (fastest {share(1)})"
    )
    if slow:
        print(
            f"  slow windows (under {SLOW:.0%} of the median): {len(slow)}; in them the guest "
            f"kernel had the loop on CPU 0 {sum(slow) / len(slow):.0%} of the time"
            + (
                ": no other task took the core, the work was lost below the guest kernel"
                if min(slow) >= ON_CORE
                else ": another task, interrupts or steal time the host reported took part of it"
            )
        )
    record(
        "machine",
        "CPU 0 speed, 5th percentile of 50 ms windows, % of the median",
        work[int(0.05 * (len(work) - 1))] / median * 100,
        "%",
    )


if __name__ == "__main__":
    main()
