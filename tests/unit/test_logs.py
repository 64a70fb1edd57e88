"""Structured logs: JSON lines with context fields, text for people, level changes at run time."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ivr_server import logs
from ivr_server.logs import fields


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger(logs.ROOT).setLevel(logging.NOTSET)


def test_json_lines_carry_the_call_fields() -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", out)
    log = logging.getLogger("ivr_server.calls")
    log.info("call %s ended", "C1", extra=fields(call_id="C1", conn_id="00ab", session=3, ivr=None))
    log.debug("not shown")
    line = json.loads(out.getvalue())
    assert line["message"] == "call C1 ended" and line["level"] == "INFO"
    assert (line["call_id"], line["conn_id"], line["session"]) == ("C1", "00ab", 3)
    assert "ivr" not in line and line["logger"] == "ivr_server.calls"
    assert out.getvalue().count("\n") == 1


def test_text_format_and_level_change_at_run_time() -> None:
    out = io.StringIO()
    logs.configure("WARNING", "text", out)
    log = logging.getLogger("ivr_server.service")
    log.info("hidden")
    logs.set_level("debug")
    assert logs.get_level() == "DEBUG"
    log.debug("shown", extra=fields(session=1, peer="127.0.0.1:5"))
    text = out.getvalue()
    assert "hidden" not in text
    assert text.rstrip().endswith("shown session=1 peer=127.0.0.1:5")
    with pytest.raises(ValueError):
        logs.set_level("LOUD")


def test_auto_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    logs.configure("INFO", "auto", out)
    logging.getLogger("ivr_server").info("x")
    assert json.loads(out.getvalue())["message"] == "x"
