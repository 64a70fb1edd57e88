#!/usr/bin/env python3
"""Run the whole benchmark suite and print its figures (no assertions: tests assert behaviour)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )
    for script in ("bench_codec.py", "bench_roundtrip.py", "bench_fullcall.py"):
        print(f"\n== {script}")
        sys.stdout.flush()
        subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)


if __name__ == "__main__":
    main()
