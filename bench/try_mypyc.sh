#!/usr/bin/env bash
# The measured proposal of docs/performance.md: compile the hot-path modules with mypyc (the
# compiler of the mypy project, already a dev dependency; it needs a C compiler and the Python
# headers), unchanged, into a copy of the package, and run the same benchmarks on the copy and on
# the plain package. Nothing in the repository is modified; the copy is deleted afterwards.
#
#   bash bench/try_mypyc.sh            # codec and in-process per-call cost, both builds
#   bash bench/try_mypyc.sh --server   # also bench_fullcall.py against a server run from the copy
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../src"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$src/ivr_server" "$work/"
modules=(
    wire/codec.py wire/gli.py session/link.py calls/manager.py calls/machine.py
    switch/virtual.py service/core.py timers.py routing/rules.py stats/waits.py
)
echo "== compiling ${#modules[@]} modules with mypyc (about a minute)"
(cd "$work" && mypyc "${modules[@]/#/ivr_server/}" > build.log 2>&1) || {
    tail -20 "$work/build.log"
    exit 1
}
for build in plain mypyc; do
    if [ "$build" = mypyc ]; then export PYTHONPATH="$work"; fi
    echo "== $build: $(python3 -c 'import ivr_server.service.core as c; print(c.__file__)')"
    python3 "$here/bench_codec.py" --seconds 1 | tail -18
    python3 "$here/bench_inprocess.py"
    if [ "${1:-}" = --server ]; then python3 "$here/bench_fullcall.py" --duration 5; fi
done
