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
task, interrupt handling or steal time that the host reports took part of it. And it tells a
stopped core from a slowed one: gaps of over 50 µs between two of the loop's clock readings are
time the loop did not run at all; the work done in the rest of the window, against the median
window's, is the speed the core ran at while it ran. On this project's benchmark VM the slow
windows are slowed, not stopped (docs/performance.md, §6).
"""

from __future__ import annotations

import argparse
import os
import time

from common import add_common_args, record

WINDOW = 0.05
SLOW = 0.85  # a window doing less than this share of the median's work is a slow one
ON_CORE = 0.97  # thread CPU time / wall time above which the kernel had the loop on its core
GAP = 50e-6  # a longer gap between two clock readings of the loop: it was not running


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)  # --seconds (default 15), --quick (3 s)
    args, _ = ap.parse_known_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    end = time.perf_counter() + (args.seconds or (3.0 if args.quick else 15.0))
    # (work done, share of the window on the core, share of it stopped, work per second running)
    windows: list[tuple[int, float, float, float]] = []
    while time.perf_counter() < end:
        start, cpu, n, stopped = time.perf_counter(), time.thread_time(), 0, 0.0
        last = start
        while (now := time.perf_counter()) - start < WINDOW:
            if now - last > GAP:
                stopped += now - last
            last = now
            for _ in range(200):
                pass
            n += 1
        wall = now - start
        running = max(wall - stopped, 1e-9)
        windows.append((n, (time.thread_time() - cpu) / wall, stopped / wall, n / running))
    work = sorted(w[0] for w in windows)
    median = work[len(work) // 2]
    speeds = sorted(w[3] for w in windows)
    median_speed = speeds[len(speeds) // 2]
    slow = [w for w in windows if w[0] < SLOW * median]

    def share(q: float) -> str:
        return f"{work[int(q * (len(work) - 1))] / median:.0%}"

    print(
        f"CPU 0, {len(work)} windows of {WINDOW * 1e3:.0f} ms: work done in the slowest window "
        f"{share(0)}, 1st percentile {share(0.01)}, 5th percentile {share(0.05)} of the median "
        f"window (fastest {share(1)})"
    )
    if slow:
        on_core = [w[1] for w in slow]
        halted = sum(w[2] for w in slow) / len(slow)
        speed = sorted(w[3] / median_speed for w in slow)
        print(
            f"  slow windows (under {SLOW:.0%} of the median): {len(slow)}; in them the guest "
            f"kernel had the loop on CPU 0 {sum(on_core) / len(on_core):.1%} of the time "
            f"(at least {min(on_core):.1%} in each)"
            + (
                ": no other task took the core, the work was lost below the guest kernel"
                if min(on_core) >= ON_CORE
                else ": in some, another task, interrupts or steal time the host reported took "
                "part of it"
            )
        )
        print(
            f"  the loop was stopped (gaps over {GAP * 1e6:.0f} µs) {halted:.1%} of those "
            f"windows and ran at {speed[0]:.0%}-{speed[-1]:.0%} of its median speed in the "
            "rest: "
            + (
                "the core was slowed, not taken away (a host core shared with other work, or "
                "its clock lowered)"
                if halted < 0.1
                else "the core was taken away for part of the time"
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
