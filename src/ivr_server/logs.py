"""Structured logging: one JSON object per line, or readable text on a terminal.

Log calls stay plain ``logging`` calls; what concerns a session or a call is passed as fields in
``extra`` (``session``, ``peer``, ``ivr``, ``call_id``, ``conn_id``…), see :func:`fields`. The
JSON formatter writes every such field as a key of its own, so a line about a call can be found
by its CallId or ConnId with ``jq``; the text formatter appends them as ``key=value``. The level
can be changed while the server runs (:func:`set_level`, the API's ``PUT /api/v1/log-level``).

Writing never holds up the server. :func:`configure` puts a :class:`DroppingQueueHandler` on the
root logger: a log call makes the record's text (``msg % args``, capped at
:data:`MAX_MESSAGE_CHARS`) and the traceback's, and puts the record on a bounded queue without
waiting; a :class:`LogWriter` thread formats and writes it. When the output does not keep up (a
full disk, a pipe its reader stopped reading), the queue fills and further records are dropped and
counted (:func:`records_dropped`, exported by ``/metrics``); the writer says how many in a line of
its own when it can write again. :func:`shutdown` writes what is queued before the process ends.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from ivr_server.vocabulary import LogFormat

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "FIELDS",
    "MAX_FIELD_CHARS",
    "MAX_MESSAGE_CHARS",
    "DroppingQueueHandler",
    "JsonFormatter",
    "LogFormat",
    "LogWriter",
    "TextFormatter",
    "configure",
    "fields",
    "flush",
    "get_level",
    "records_dropped",
    "set_level",
    "shutdown",
]

ROOT: Final = "ivr_server"
"""The logger every module of the package logs under."""

FIELDS: Final = (
    "session",
    "peer",
    "ivr",
    "call_id",
    "conn_id",
    "port",
    "dn",
    "ivr_level",
    "event",
)
"""Context fields a log record may carry (``extra=fields(...)``), in output order."""

DEFAULT_QUEUE_SIZE: Final = 10_000
"""Records that may wait for the writer thread (``[server] log-queue-size``)."""

MAX_MESSAGE_CHARS: Final = 16 * 1024
"""A record's message is cut to this many characters (a traceback is kept whole): whatever a peer
managed to put into a line, one line stays readable and the queue's memory bounded."""

MAX_FIELD_CHARS: Final = 1024
"""A context field's text (a CallId, a peer) is cut to this many characters."""

_CUT: Final = "... [cut: {} characters in all]"


def fields(**values: Any) -> dict[str, Any]:
    """``extra`` for a log call: the context fields that have a value."""
    return {key: value for key, value in values.items() if value is not None}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {key: getattr(record, key) for key in FIELDS if getattr(record, key, None) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_context(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # made by DroppingQueueHandler.prepare in the logging thread
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value…`` for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = _context(record)
        if context:
            text += " " + " ".join(f"{key}={value}" for key, value in context.items())
        return text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + _CUT.format(len(text))


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Puts records on a bounded queue and never waits: a record that does not fit is dropped and
    counted in :attr:`dropped`."""

    def __init__(self, records: queue.Queue[Any]) -> None:
        super().__init__(records)
        self.dropped = 0
        """Records dropped because the queue was full (only written under the handler's lock)."""
        self._exceptions = logging.Formatter()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy with the message made now (its arguments may change once the call returns)
        and capped, the traceback as text, long context fields cut. The formatting into a line is
        left to the writer thread."""
        message = _cut(record.getMessage(), MAX_MESSAGE_CHARS)
        record = copy.copy(record)
        record.message = record.msg = message
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._exceptions.formatException(record.exc_info)
            record.exc_info = None
        for key in FIELDS:
            value = getattr(record, key, None)
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                setattr(record, key, _cut(value, MAX_FIELD_CHARS))
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class LogWriter(logging.handlers.QueueListener):
    """The thread that formats and writes the queued records, and flushes the output whenever the
    queue is empty. After records were dropped it writes a warning saying how many, once it has
    written the records queued before them.

    It is a daemon thread writing through no :class:`logging.Handler` of its own (and, for a
    stream with a file descriptor, through a stream of its own on a duplicate of it), so that a
    write stuck on an output nobody reads holds no lock that anything else takes: not the
    handlers' locks ``logging.shutdown`` takes at exit, not standard error's buffer, which
    Python flushes at exit. The process then ends without it."""

    def __init__(
        self,
        records: queue.Queue[Any],
        formatter: logging.Formatter,
        output: TextIO,
        source: DroppingQueueHandler,
        *,
        owns_output: bool = False,
    ) -> None:
        super().__init__(records)
        self._records = records
        self._formatter = formatter
        self._output = output
        self._owns_output = owns_output
        self._source = source
        self._reported = 0
        self._written = 0
        self._report_at = -1
        """``_written`` count at which the drops seen are reported (-1: none seen)."""

    def handle(self, record: logging.LogRecord) -> None:
        if isinstance(record, threading.Event):  # a flush() marker: all before it is written
            self.report_drops()
            self._flush_output()
            record.set()
            return
        self._write(record)
        self._written += 1
        if self._source.dropped > self._reported:
            if self._report_at < 0:
                self._report_at = self._written + self._records.qsize()
            if self._written >= self._report_at or self._records.empty():
                self.report_drops()
        if self._records.empty():
            self._flush_output()

    def _write(self, record: logging.LogRecord) -> None:
        # an output gone (a closed pipe) or a record that cannot be formatted: nobody to tell
        with contextlib.suppress(Exception):
            self._output.write(self._formatter.format(record) + "\n")

    def _flush_output(self) -> None:
        with contextlib.suppress(Exception):
            self._output.flush()

    def report_drops(self) -> None:
        """Write how many records were dropped since the last such line, if any."""
        dropped = self._source.dropped
        if dropped <= self._reported:
            return
        notice = logging.LogRecord(
            f"{ROOT}.logs",
            logging.WARNING,
            __file__,
            0,
            "%d log records dropped: the log output did not keep up and the log queue was full "
            "(ivr_server_log_records_dropped_total)",
            (dropped - self._reported,),
            None,
        )
        self._reported = dropped
        self._report_at = -1
        self._write(notice)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything queued so far is written."""
        if self._thread is None:
            return False
        done = threading.Event()
        try:
            self._records.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting up to ``timeout`` seconds for a slow output), then end
        the thread. An output that stays blocked is given up on: the thread is left behind."""
        thread = self._thread
        if thread is None:
            return
        self.flush(timeout)
        with contextlib.suppress(queue.Full):
            self._records.put(None, timeout=0.1)  # QueueListener's sentinel: the thread ends
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():
            return
        self.report_drops()  # drops after the last record written
        self._flush_output()
        if self._owns_output:
            with contextlib.suppress(Exception):
                self._output.close()


def _own_output(stream: TextIO) -> TextIO | None:
    """A stream of the writer's own on a duplicate of ``stream``'s file descriptor (None when it
    has none, e.g. a StringIO)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        stream.flush()
        return open(  # closed by LogWriter.stop
            os.dup(fd),
            "w",
            encoding=getattr(stream, "encoding", None) or "utf-8",
            errors="backslashreplace",
            closefd=True,
        )
    except (OSError, ValueError):
        return None


_writer: LogWriter | None = None
_queue_handler: DroppingQueueHandler | None = None
_dropped_before = 0
"""Records dropped by the queue handlers of earlier :func:`configure` calls."""
_atexit_registered = False


def configure(
    level: str = "INFO",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    *,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> None:
    """Send the logs to ``stream`` (standard error) in ``fmt``: ``auto`` = text on a terminal, JSON
    otherwise; through a queue of ``queue_size`` records written by a thread of its own (see the
    module's docstring). Replaces the root logger's handlers (and an earlier configuration's
    writer, after it has written what it had)."""
    global _writer, _queue_handler, _dropped_before, _atexit_registered
    stream = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    shutdown()
    if _queue_handler is not None:
        _dropped_before += _queue_handler.dropped
    records: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
    handler = DroppingQueueHandler(records)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    own = _own_output(stream)
    writer = LogWriter(
        records,
        formatter,
        own if own is not None else stream,
        handler,
        owns_output=own is not None,
    )
    writer.start()
    _writer, _queue_handler = writer, handler
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True
    set_level(level)


def flush(timeout: float = 5.0) -> bool:
    """Wait until the records logged so far are written (False: not within ``timeout`` s)."""
    writer = _writer
    return writer.flush(timeout) if writer is not None else True


def shutdown(timeout: float = 2.0) -> None:
    """Write what is queued and stop the writer thread (at the end of ``serve``, and at exit).
    Records logged afterwards wait in the queue, or are dropped once it is full."""
    global _writer
    writer, _writer = _writer, None
    if writer is not None:
        writer.stop(timeout)


def records_dropped() -> int:
    """Log records dropped so far because the log queue was full."""
    handler = _queue_handler
    return _dropped_before + (handler.dropped if handler is not None else 0)


def set_level(level: str) -> None:
    """Change the log level at run time (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``,
    ``CRITICAL``); raises ``ValueError`` for another name."""
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    logging.getLogger().setLevel(value)
    logging.getLogger(ROOT).setLevel(value)


def get_level() -> str:
    """The package's current log level name."""
    return logging.getLevelName(logging.getLogger(ROOT).getEffectiveLevel())
