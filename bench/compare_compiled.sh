#!/usr/bin/env bash
# The compiled build against the pure-Python package: the same benchmarks, one after the other.
# The compiled package (IVR_SERVER_COMPILE=1 pip install ., docs/performance.md) is built into a
# throw-away virtual environment (about a minute: mypyc and a C compiler); nothing else changes.
#
#   bash bench/compare_compiled.sh            # codec and the in-process cost per call
#   bash bench/compare_compiled.sh --server   # also request/response and full calls (servers)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== building the compiled package in $work/venv"
python3 -m venv "$work/venv"
(cd "$here/.." && IVR_SERVER_COMPILE=1 "$work/venv/bin/python" -m pip install -q .) \
    > "$work/build.log" 2>&1 || {
    tail -20 "$work/build.log"
    exit 1
}
for python in python3 "$work/venv/bin/python"; do
    echo "== $("$python" -c 'import ivr_server as p, ivr_server.service.core
n = len(p.compiled_modules())
print(f"compiled hot path ({n} modules)" if n else "pure Python")')"
    "$python" "$here/bench_codec.py" --seconds 1 | tail -18
    "$python" "$here/bench_inprocess.py"
    if [ "${1:-}" = --server ]; then
        "$python" "$here/bench_reqresp.py"
        "$python" "$here/bench_fullcall.py" --duration 5
    fi
done
