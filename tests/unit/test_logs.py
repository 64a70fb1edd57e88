"""Structured logs: JSON lines with context fields, text for people, level changes at run time."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import pytest

from ivr_server import logs
from ivr_server.logs import fields


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    logs.shutdown()
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
    assert logs.flush()
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
    assert logs.flush()
    text = out.getvalue()
    assert "hidden" not in text
    assert text.rstrip().endswith("shown session=1 peer=127.0.0.1:5")
    with pytest.raises(ValueError):
        logs.set_level("LOUD")


def test_auto_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    logs.configure("INFO", "auto", out)
    logging.getLogger("ivr_server").info("x")
    assert logs.flush()
    assert json.loads(out.getvalue())["message"] == "x"


class StuckOutput(io.StringIO):
    """An output whose writes wait until it is released, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.writing = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        self.release.wait(30)
        return super().write(text)


def test_a_stuck_output_never_blocks_the_logger_and_drops_are_counted() -> None:
    out = StuckOutput()
    before = logs.records_dropped()
    logs.configure("INFO", "json", out, queue_size=10)
    log = logging.getLogger("ivr_server.service")
    log.info("first")
    assert out.writing.wait(10)  # the writer thread is now stuck on "first"
    started = time.perf_counter()
    for i in range(1000):
        log.info("line %d", i)
    elapsed = time.perf_counter() - started
    assert elapsed < 5  # put, never wait: with a blocking write this would never return
    assert logs.records_dropped() - before == 990  # 10 fit in the queue
    out.release.set()
    assert logs.flush()
    log.warning("after")
    assert logs.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    messages = [line["message"] for line in lines]
    assert messages[:11] == ["first", *(f"line {i}" for i in range(10))]
    assert "990 log records dropped" in messages[11] and lines[11]["level"] == "WARNING"
    assert messages[12:] == ["after"]


def test_message_is_made_when_logged_and_long_texts_are_cut() -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", out)
    log = logging.getLogger("ivr_server.service")
    items = ["a"]
    log.info("items %s", items)
    items.append("b")  # changed after the call: the line says what it was then
    log.info("x" * (logs.MAX_MESSAGE_CHARS + 10), extra=fields(call_id="C" * 5000))
    assert logs.flush()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "items ['a']"
    assert second["message"] == "x" * logs.MAX_MESSAGE_CHARS + "... [cut: 16394 characters in all]"
    assert second["call_id"].startswith("C" * logs.MAX_FIELD_CHARS + "... [cut: 5000")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_tracebacks_are_written_by_the_writer(fmt: logs.LogFormat) -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt, out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("ivr_server.runtime").exception("internal error")
    assert logs.flush()
    text = out.getvalue()
    if fmt == "json":
        line = json.loads(text)
        assert line["message"] == "internal error"
        assert "RuntimeError: boom" in line["exception"]
    else:
        assert "internal error" in text and "Traceback" in text and "RuntimeError: boom" in text


def test_shutdown_writes_the_last_lines() -> None:
    out = io.StringIO()
    logs.configure("INFO", "text", out)
    for i in range(500):
        logging.getLogger("ivr_server").info("line %d", i)
    logging.getLogger("ivr_server").info("stopping")
    logs.shutdown()
    lines = out.getvalue().splitlines()
    assert len(lines) == 501 and lines[-1].endswith("stopping")
    assert logs.flush(0.1)  # no writer left: nothing to wait for
