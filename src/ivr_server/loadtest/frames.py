"""The generator's side of the wire, kept cheap: requests are pre-encoded templates where only the
CallId changes (:func:`request`); replies are read with byte searches (CallId, element, telling
attributes), never decoded as XML."""

from __future__ import annotations

import re
from typing import Final

from ivr_server.loadtest.scripts import PROLOG
from ivr_server.wire import GliType, encode_frame

__all__ = ["REPLY", "describe", "login_problem", "request"]

REPLY: Final = re.compile(rb"<GctiMsg>(?:<CallId>([^<]*)</CallId>)?<([A-Za-z]+)")
"""A reply's CallId (absent for the DialOut form) and element."""
_KEY_ATTR: Final = re.compile(
    rb"\b(Event|EndCause|Result|RouteType|ErrorCode|Status|FailedReq|TlibErrCode)='([^']*)'"
)


def request(call_id: bytes, body: bytes) -> bytes:
    """One GLI Data frame: the fixed prolog, the CallId, the pre-encoded message element."""
    return encode_frame(GliType.DATA, PROLOG + call_id + body)


_LOGIN_STATUS: Final = re.compile(rb"<LoginResp\b[^>]*\bStatus='([^']*)'")
_LOGIN_RESULT: Final = re.compile(rb"<LoginResp\b[^>]*\bResult='([^']*)'")
_FLOW: Final = re.compile(rb"<FlowControl\b[^>]*\bStatus='([^']*)'")
_LOGIN_STATUS_WHY: Final = {
    "NoSuchClient": "the server has no IVR of that name (the IVRs it serves are listed by"
    " GET /api/v1/ivrs on its HTTP API)",
    "InitInProgress": "a T-Server link of that IVR is down, so its ports cannot take calls",
}


def login_problem(ivr: str, first: bytes, resp: bytes, second: bytes, flow: bytes) -> str | None:
    """Why the server's answer to our ``LoginReq`` rules out a load test, in the server's own
    words (``None``: logged in, ready for calls)."""
    if (first, second) != (b"LoginResp", b"FlowControl"):
        return (
            f"IVR {ivr!r}: login answered with {first.decode('latin-1')} and "
            f"{second.decode('latin-1')}, not LoginResp and FlowControl: {resp[91:400]!r}"
        )
    result = _LOGIN_RESULT.search(resp)
    if result is None or result.group(1) != b"Success":
        words = result.group(1).decode("latin-1") if result else "?"
        return f"IVR {ivr!r}: login refused: LoginResp Result='{words}'"
    status = _LOGIN_STATUS.search(resp)
    if status is not None and status.group(1) != b"OK":
        words = status.group(1).decode("latin-1")
        why = _LOGIN_STATUS_WHY.get(words, "the server cannot take calls from it")
        return f"IVR {ivr!r}: LoginResp Status='{words}': {why}"
    control = _FLOW.search(flow)
    if control is None or control.group(1) != b"Off":
        return (
            f"IVR {ivr!r}: FlowControl Status='On': the server takes no new calls "
            "(its flow control is on)"
        )
    return None


def describe(element: bytes, payload: bytes) -> str:
    """The reply's element and its telling attributes, in the server's own words, e.g.
    ``CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'``."""
    start = payload.find(b"<" + element)
    end = payload.find(b">", start)
    got = element.decode("latin-1")
    for match in _KEY_ATTR.finditer(payload, start, end if end >= 0 else len(payload)):
        got += f" {match.group(1).decode()}='{match.group(2).decode('latin-1')}'"
    return got
