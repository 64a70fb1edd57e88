"""Run the fuzz targets with atheris (coverage-guided, libFuzzer) for a bounded time.

    python3 fuzz/run.py                        every target, 60 s each
    python3 fuzz/run.py codec --seconds 300    one target (gli, codec, link, service)
    python3 fuzz/run.py --grow service         keep what the engine finds in fuzz/corpus/service/
    python3 fuzz/run.py --replay FILE...       run inputs once, without the engine (tracebacks)
    python3 fuzz/run.py codec -- -runs=1000    anything after ``--`` goes to libFuzzer
    python3 fuzz/run.py --grow link -- -merge=1 DIR   add DIR's inputs that reach new code

Each target runs in a process of its own, starting from ``fuzz/corpus/<target>/``. An input
that breaks a property is written to ``fuzz/crashes/<target>/`` (libFuzzer names it
``crash-<sha1>``, ``timeout-<sha1>`` or ``oom-<sha1>``): keep it, as the test suite replays every
file there (``tests/unit/test_fuzz_regressions.py``). The exit status is 1 when any target found
something, 2 when the engine cannot run. See docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``fuzz`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.harness import CORPUS_DIR, CRASHES_DIR, FUZZ_DIR, TARGETS

DICTIONARY = FUZZ_DIR / "gctimsg.dict"
_TARGET = "IVR_SERVER_FUZZ_TARGET"
"""Set for the engine's process: the target it runs (its libFuzzer re-runs inherit it)."""
_ARGV0 = "IVR_SERVER_FUZZ_ARGV0"
"""An executable that starts this file again with the same Python (libFuzzer's re-runs)."""


def _engine(name: str, args: list[str]) -> int:
    """The child process: instrument the package, then hand over to libFuzzer (never returns)."""
    try:
        import atheris
    except ImportError:
        print("fuzz: atheris is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    if any(m == "ivr_server" or m.startswith("ivr_server.") for m in sys.modules):
        print("fuzz: ivr_server was imported before instrumentation", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["ivr_server"]):
        module = importlib.import_module(TARGETS[name].module)
    import ivr_server

    compiled = ivr_server.compiled_modules()
    if compiled:
        print(
            f"fuzz: {', '.join(compiled)} are compiled (mypyc), which atheris cannot instrument:"
            " fuzz the pure-Python package (pip install -e .)",
            file=sys.stderr,
        )
        return 2
    # libFuzzer runs argv[0] again for -merge and -fork: the wrapper that comes back here
    atheris.Setup([os.environ.get(_ARGV0, sys.argv[0]), *args], module.one_input)
    atheris.Fuzz()
    return 0


def _artifacts(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _fuzz(name: str, seconds: int, *, grow: bool, input_timeout: int, extra: list[str]) -> bool:
    """Fuzz one target in a child process; true when it found nothing."""
    target = TARGETS[name]
    corpus = CORPUS_DIR / name
    crashes = CRASHES_DIR / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = _artifacts(crashes)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as work:
        dirs = [str(corpus)] if grow else [work, str(corpus)]  # new finds go to the first
        dirs += [e for e in extra if not e.startswith("-")]  # more corpora to read (or merge)
        args = [
            f"-max_total_time={seconds}",
            f"-timeout={input_timeout}",
            f"-max_len={target.max_len}",
            f"-dict={DICTIONARY}",
            f"-artifact_prefix={crashes}{os.sep}",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            *(e for e in extra if e.startswith("-")),
            *dirs,
        ]
        log_path = Path(work) / "engine.log"
        wrapper = Path(work) / "engine"
        wrapper.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n'
        )
        wrapper.chmod(0o755)
        env = {**os.environ, _TARGET: name, _ARGV0: str(wrapper)}
        print(f"fuzz {name}: {target.about}, {seconds} s", flush=True)
        with log_path.open("w") as log:
            done = subprocess.run(
                [str(wrapper), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=seconds + input_timeout + 300,
                check=False,
            )
        text = log_path.read_text(errors="replace")
    found = sorted(_artifacts(crashes) - before)
    summary = [line for line in text.splitlines() if "DONE" in line or line.startswith("Done ")]
    for line in summary[-2:]:
        print(f"fuzz {name}: {line}")
    if done.returncode == 0 and not found:
        return True
    print(text[-6000:], file=sys.stderr)
    print(f"fuzz {name}: FAILED (exit status {done.returncode})", file=sys.stderr)
    for artifact in found:
        print(
            f"fuzz {name}: kept {crashes / artifact}; replay it with\n"
            f"    python3 fuzz/run.py --replay {name} {crashes / artifact}",
            file=sys.stderr,
        )
    return False


def _replay(name: str, files: list[str]) -> int:
    module = importlib.import_module(TARGETS[name].module)
    failed = 0
    for path in files:
        try:
            module.one_input(Path(path).read_bytes())
        except Exception:
            failed += 1
            print(f"{path}: FAILED", file=sys.stderr)
            traceback.print_exc()
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    engine_target = os.environ.get(_TARGET)
    if engine_target:  # the engine's process: every argument is libFuzzer's
        return _engine(engine_target, argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="fuzz/run.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help=f"of {', '.join(TARGETS)} (default: all)"
    )
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument(
        "--input-timeout",
        type=int,
        default=10,
        help="seconds one input may take before it counts as a hang (default 10)",
    )
    parser.add_argument(
        "--grow", action="store_true", help="keep new interesting inputs in fuzz/corpus/<target>/"
    )
    parser.add_argument(
        "--replay",
        nargs="+",
        metavar=("TARGET", "FILE"),
        help="run TARGET once on each FILE, without the engine",
    )
    args = parser.parse_args(argv)
    if args.replay:
        name, *files = args.replay
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}")
        return _replay(name, files)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("fuzz: atheris is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    results = {
        name: _fuzz(
            name,
            args.seconds,
            grow=args.grow,
            input_timeout=args.input_timeout,
            extra=extra,
        )
        for name in args.targets or list(TARGETS)
    }
    bad = [name for name, ok in results.items() if not ok]
    print(f"fuzz: {len(results) - len(bad)} target(s) clean" + (f", FAILED: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
