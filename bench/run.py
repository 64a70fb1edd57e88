#!/usr/bin/env python3
"""Run the whole benchmark suite and print its figures (no assertions: tests assert behaviour).

    python3 bench/run.py             # the full suite (about 5 minutes on 2 cores)
    python3 bench/run.py --quick     # a smoke test (about 1 minute)

Every option is passed to every benchmark (each takes the ones it knows): --seconds, --quick,
--depth (bench_reqresp), --rate, --duration, --config (bench_fullcall and bench_fairness),
--calls, --connections (bench_held). Each benchmark prints its details; the table at the end
gathers the figures with their targets (issue 2, issue 5, issue 19, issue 22: behind.py, Behind
mode against the CSTA simulator and In-Front in the same run; issue 23: transfer.py, Behind calls
ending in a transfer beside plain Behind calls; issue 24: network.py, Network-mode calls and
access-number round trips beside In-Front calls).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "cpu_steadiness.py",
    "bench_codec.py",
    "bench_roundtrip.py",
    "bench_reqresp.py",
    "bench_fullcall.py",
    "bench_held.py",
    "bench_inprocess.py",
    "bench_fairness.py",
    "behind.py",
    "transfer.py",
    "network.py",
)
RESULTS_ENV = "IVR_BENCH_RESULTS"  # as in common.py


def parse_args() -> argparse.Namespace:
    """Only to check the options and to answer --help: the benchmarks parse them again."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, small sizes (< 1 minute)")
    ap.add_argument("--seconds", "--duration", type=float, help="seconds per measurement")
    ap.add_argument("--depth", type=int, help="bench_reqresp: requests in flight when pipelined")
    ap.add_argument(
        "--rate", type=float, help="bench_fullcall, bench_fairness: fixed open-loop calls/s"
    )
    ap.add_argument("--config", type=Path, help="bench_fullcall: server configuration")
    ap.add_argument("--calls", help="bench_held: numbers of held calls, e.g. 10000,50000")
    ap.add_argument("--connections", type=int, help="bench_held: IVR sessions (default 200)")
    ap.add_argument("--only", help="comma-separated benchmarks to run, e.g. reqresp,held")
    return ap.parse_args()


def header() -> str:
    """The package measured (which build) and the machine."""
    model = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import uvloop

        loop = f"uvloop {getattr(uvloop, '__version__', '?')}"
    except ImportError:
        loop = "asyncio loop"
    import ivr_server
    import ivr_server.runtime.app  # imports the whole hot path, compiled or not

    compiled = len(ivr_server.compiled_modules())
    build = f"hot path compiled with mypyc ({compiled} modules)" if compiled else "pure Python"
    return (
        f"package: ivr-server {ivr_server.__version__}, {build} ({ivr_server.__file__})\n"
        f"machine: {os.cpu_count()} CPUs ({model}, {platform.machine()}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {loop}"
    )


def table(rows: list[dict[str, object]]) -> None:
    width = max([len(str(r["name"])) for r in rows] + [20]) + 2
    print(f"\n{'benchmark':<10}{'figure':<{width}}{'value':>14}  {'target':<20}")
    for r in rows:
        value = float(str(r["value"]))
        unit = str(r["unit"])
        shown = f"{value:,.2f} {unit}" if unit == "ms" else f"{value:,.0f} {unit}"
        if unit == "%":
            shown = (
                f"{value:+.0f} %" if str(r["name"]).startswith("RSS after") else f"{value:.0f} %"
            )
        if unit == "MB":
            shown = f"{value:,.1f} MB"
        met = r["met"]
        verdict = "" if met is None else ("met" if met else "NOT met")
        print(
            f"{r['benchmark']!s:<10}{r['name']!s:<{width}}{shown:>14}  {r['target']!s:<20}{verdict}"
        )


def main() -> None:
    args = parse_args()
    only = {name.strip() for name in (args.only or "").split(",") if name.strip()}
    passed = [a for a in sys.argv[1:] if not a.startswith("--only")]
    if args.only and "--only" in passed:
        i = passed.index("--only")
        del passed[i : i + 2]
    print(header())
    started = time.perf_counter()
    failed: list[str] = []
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as results:
        env = {**os.environ, RESULTS_ENV: results.name}
        for script in SCRIPTS:
            if only and script.removeprefix("bench_").removesuffix(".py") not in only:
                continue
            print(f"\n== {script}")
            sys.stdout.flush()
            done = subprocess.run(
                [sys.executable, str(HERE / script), *passed], env=env, check=False
            )
            if done.returncode:
                failed.append(f"{script} (exit status {done.returncode})")
        rows = [json.loads(line) for line in results.read().splitlines() if line.strip()]
    table(rows)
    print(f"\nsuite: {time.perf_counter() - started:.0f} s; command: {' '.join(sys.argv)}")
    if failed:
        print("FAILED: " + ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
