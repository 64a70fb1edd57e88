"""A reload's outcome, and the pid file and the reload status file beside it: how ``ivr-server
reload`` learns the outcome.

A signal carries nothing back, so a server started with ``--pid-file FILE`` keeps a small JSON
file ``FILE.reload`` next to it (:func:`reload_status_path`): written once the signal handlers are
in place (``seq`` 0, no outcome yet), then after every reload request, whoever made it (SIGHUP,
SIGUSR2, ``POST /api/v1/reload``), with ``seq`` one higher each time; removed with the pid file
when the server stops. ``ivr-server reload`` reads ``seq``, sends the signal, and waits for a
record of the same ``pid`` with a higher ``seq``. Writes go to a temporary file renamed over the
old one, so a reader sees the old record or the new one, never half of one. Whoever may signal the
server can read the file; it holds no user data (calls are named by CallId, port and IVR).

Reloads are coalesced (:mod:`.reload`): the requests that arrive while one runs are served by
the next one. A record says ``"running": true`` while a reload reads and applies the file; each
requester sees the outcome of a reload that started after it asked, of the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ivr_server.service import ReloadReport, StrandedCall

__all__ = [
    "PidFileError",
    "ReloadOutcome",
    "ReloadStatusFile",
    "read_reload_status",
    "reload_status_path",
    "remove_pid_file",
    "write_pid_file",
]

LISTED: Final = 20
"""Stranded calls and problems written out (the totals count them all)."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload request came to (for the log, the API's answer and ``ivr-server reload``)."""

    result: Literal["applied", "refused", "invalid", "no-file"]
    """``applied``; ``refused``: it would strand live calls (``stranded``) and was not forced;
    ``invalid``: the file does not load (``problems``); ``no-file``: running on the built-in
    default, there is nothing to re-read. In every case but ``applied`` nothing changed."""
    message: str
    """The same in words (the log line)."""
    report: ReloadReport | None = None
    """What changed (``applied`` only)."""
    stranded: tuple[StrandedCall, ...] = ()
    """The live calls the file would strand (``refused``), or that a forced reload ended
    (``applied``)."""
    problems: tuple[str, ...] = ()
    """Why the file does not load (``invalid``)."""
    force: bool = False
    """Whether the reload was forced (SIGUSR2, ``reload --force``, ``{"force": true}``)."""


def reload_status_path(pid_file: str | Path) -> Path:
    """The status file of the server whose pid file is ``pid_file``: ``<pid_file>.reload``."""
    path = Path(pid_file)
    return path.with_name(f"{path.name}.reload")


class PidFileError(Exception):
    """The pid file cannot be written; the message is one line for the operator."""


def write_pid_file(pid_file: str | Path) -> None:
    """Write this process's id to ``pid_file``; :class:`PidFileError` if it cannot be written
    (``cannot write the pid file /dev/null/x: Not a directory``)."""
    try:
        Path(pid_file).write_text(f"{os.getpid()}\n", encoding="ascii")
    except OSError as exc:
        raise PidFileError(f"cannot write the pid file {pid_file}: {exc.strerror or exc}") from None


def remove_pid_file(pid_file: str | Path) -> None:
    """Remove the pid file and the status file beside it (if they are still there)."""
    for path in (Path(pid_file), reload_status_path(pid_file)):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


class ReloadStatusFile:
    """The reload status file of this process (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        """Reload requests recorded so far."""
        self.last: dict[str, Any] = {}
        """The record written last."""

    def started(self) -> None:
        """Write the first record: this process, no reload yet."""
        self._write({"pid": os.getpid(), "seq": 0, "time": time.time(), "result": None})

    def running(self) -> None:
        """A reload is reading the file (:attr:`IvrServer.on_reload_start`): the last record
        again, with ``"running": true`` and the same ``seq``. ``ivr-server reload`` that reads
        it waits for the record after the next one: the running reload may have read the file
        before the edit it was started for."""
        self._write({**self.last, "running": True})

    def record(self, outcome: ReloadOutcome) -> None:
        """Write the outcome of a reload request (:attr:`IvrServer.on_reload`)."""
        self.seq += 1
        report = outcome.report
        self._write(
            {
                "pid": os.getpid(),
                "seq": self.seq,
                "time": time.time(),
                "result": outcome.result,
                "force": outcome.force,
                "message": outcome.message,
                "changes": list(report.changes) if report is not None else [],
                "problems": list(outcome.problems[:LISTED]),
                "problems_total": len(outcome.problems),
                "stranded_calls": [
                    {"call_id": c.call_id, "ivr": c.ivr, "port": c.port, "reason": c.reason}
                    for c in outcome.stranded[:LISTED]
                ],
                "stranded_total": len(outcome.stranded),
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        self.last = record
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


def read_reload_status(path: Path) -> dict[str, Any] | None:
    """The record in ``path``; ``None`` if there is none (no file, not a record)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
        return None
    return record
