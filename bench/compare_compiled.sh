#!/usr/bin/env bash
# The compiled build against the pure-Python package: the same benchmarks, one after the other.
# Both are built into throw-away virtual environments from this checkout: the pure-Python package
# (IVR_SERVER_COMPILE=0, seconds) and the compiled one (IVR_SERVER_COMPILE=1, about a minute and a
# half: mypyc and a C compiler; docs/performance.md); nothing else changes.
#
#   bash bench/compare_compiled.sh            # codec and the in-process cost per call
#   bash bench/compare_compiled.sh --server   # also request/response and full calls (servers)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for build in 0 1; do
    echo "== building the package (IVR_SERVER_COMPILE=$build) in $work/venv$build"
    python3 -m venv "$work/venv$build"
    (cd "$here/.." && IVR_SERVER_COMPILE=$build "$work/venv$build/bin/python" -m pip install -q .) \
        > "$work/build$build.log" 2>&1 || {
        tail -20 "$work/build$build.log"
        exit 1
    }
done
cd "$work"  # not the checkout: its src/ must not shadow the installed packages
for build in 0 1; do
    python="$work/venv$build/bin/python"
    echo "== $("$python" -c 'import ivr_server as p, ivr_server.runtime.app
n = len(p.compiled_modules())
print(f"compiled hot path ({n} modules)" if n else "pure Python")')"
    "$python" "$here/bench_codec.py" --seconds 1 | tail -18
    "$python" "$here/bench_inprocess.py"
    if [ "${1:-}" = --server ]; then
        "$python" "$here/bench_reqresp.py"
        "$python" "$here/bench_fullcall.py" --duration 5
    fi
done
