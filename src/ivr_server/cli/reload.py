"""``ivr-server reload``: signal a running server, then read what came of it from the status file
beside its pid file (:mod:`ivr_server.runtime.status`)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final, NoReturn

import click

__all__ = ["RELOAD_EXIT", "reload"]


RELOAD_EXIT: Final = {"applied": 0, "refused": 1, "invalid": 1, "no-file": 2}
"""``ivr-server reload``'s exit status for each outcome; 2 also when there is no answer."""


@click.command()
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pid file given to `ivr-server serve --pid-file`; the outcome is read from the "
    "status file beside it.",
)
@click.option(
    "--pid",
    type=int,
    help="The server's process id, instead of --pid-file (the outcome is then only in the "
    "server's log).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply the file even if it takes away the IVR, port, switch or DN of live calls "
    "(they are ended first). Sends SIGUSR2 instead of SIGHUP.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the server's answer.",
)
def reload(pid_file: Path | None, pid: int | None, force: bool, timeout: float) -> None:
    """Make a running server re-read its configuration file, and say what came of it.

    Sends the server SIGHUP (--force: SIGUSR2) and waits for its answer in the status file
    beside its pid file (<pid-file>.reload). The server refuses a file that does not load, or
    that would take away the IVR, port, switch or DN of a live call (an emptied file, say), and
    keeps its configuration; --force applies the latter anyway, ending those calls first.

    Exit status: 0 applied (what changed is printed); 1 refused (why is printed); 2 nothing to
    re-read (the server runs on the built-in default), no answer, or no such server.
    """
    from ivr_server.runtime.status import read_reload_status, reload_status_path

    if pid is None:
        if pid_file is None:
            raise click.UsageError("give --pid-file or --pid")
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            _reload_fails(f"cannot read a pid from {pid_file}: {exc} (is the server running?)")
    status_path = reload_status_path(pid_file) if pid_file is not None else None
    before = read_reload_status(status_path) if status_path is not None else None
    sig = signal.SIGUSR2 if force else signal.SIGHUP
    try:
        os.kill(pid, sig)
    except OSError as exc:
        _reload_fails(f"cannot signal process {pid}: {exc}")
    what = "forced reload" if force else "reload"
    if status_path is None or before is None or before.get("pid") != pid:
        why = (
            "--pid was given instead of --pid-file"
            if status_path is None
            else f"process {pid} keeps no status file {status_path}"
        )
        click.echo(
            f"{what} requested from process {pid} ({sig.name}); its outcome can only be seen in "
            f"the server's log ({why})"
        )
        return
    click.echo(f"{what} requested from process {pid} ({sig.name}); waiting for its answer")
    # a reload running when we read may have read the file before the edit: wait for the next
    seq = int(before["seq"]) + (1 if before.get("running") else 0)
    record = _await_reload(status_path, pid, seq, timeout)
    result = str(record.get("result"))
    stranded = record.get("stranded_calls") or []
    total = int(record.get("stranded_total") or 0)
    calls = [
        f"  {c.get('call_id')} on port {c.get('port')} of {c.get('ivr')}: {c.get('reason')}"
        for c in stranded
    ]
    if total > len(stranded):
        calls.append(f"  and {total - len(stranded)} more")
    message = str(record.get("message"))
    if result == "applied":
        click.echo(message)
        if calls:
            click.echo(f"live calls ended first (EndCall EndCause='Timeout'): {total}")
            click.echo("\n".join(calls))
        return
    if result == "refused":
        click.echo(f"reload refused: {message}", err=True)
        if calls:
            click.echo("\n".join(calls), err=True)
    elif result == "invalid":
        problems = record.get("problems") or []
        click.echo(
            "reload refused: the file does not load; the running configuration stays", err=True
        )
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        extra = int(record.get("problems_total") or 0) - len(problems)
        if extra > 0:
            click.echo(
                f"  and {extra} more (ivr-server check-config FILE lists them all)", err=True
            )
    else:
        click.echo(f"nothing reloaded: {message}", err=True)
    sys.exit(RELOAD_EXIT.get(result, 2))


def _reload_fails(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _await_reload(path: Path, pid: int, seq: int, timeout: float) -> dict[str, Any]:
    """The record in ``path`` that follows ``seq``, written by process ``pid``."""
    from ivr_server.runtime.status import read_reload_status

    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.05)
        record = read_reload_status(path)
        if record is not None and record.get("pid") == pid and int(record["seq"]) > seq:
            return record
        if record is None or record.get("pid") != pid or not _alive(pid):
            _reload_fails(f"process {pid} stopped before it answered (see the server's log)")
        if time.monotonic() > deadline:
            _reload_fails(
                f"no answer from process {pid} within {timeout:g} s (see the server's log)"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True
