"""Structured logging: one JSON object per line, or readable text on a terminal.

Log calls stay plain ``logging`` calls; what concerns a session or a call is passed as fields in
``extra`` (``session``, ``peer``, ``ivr``, ``call_id``, ``conn_id``…), see :func:`fields`. The
JSON formatter writes every such field as a key of its own, so a line about a call can be found
by its CallId or ConnId with ``jq``; the text formatter appends them as ``key=value``. The level
can be changed while the server runs (:func:`set_level`, the API's ``PUT /api/v1/log-level``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "configure",
    "fields",
    "get_level",
    "set_level",
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

LogFormat = Literal["auto", "json", "text"]


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
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
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


def configure(level: str = "INFO", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Send the package's logs to ``stream`` (standard error) in ``fmt``: ``auto`` = text on a
    terminal, JSON otherwise."""
    stream = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


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
