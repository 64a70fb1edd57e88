"""A call's timeline as people read it: each entry's kind, a short summary, and for errors the
T-Library name of the code with a plain-language explanation.

The entries (:mod:`ivr_server.calls.timeline`) hold the objects that passed; they are formatted
here, only when someone reads the timeline. A summary is the element or event name and its
attributes; user data and extensions appear as their keys only, never their values, so that what
callers typed (PINs, account numbers) stays out of it. Long values are cut.

An error is a ``CallError`` (or a ``UDataResp`` other than ``Success``) sent to the IVR, or a
switch's ``EventError``. Its code is explained by :data:`EXPLANATIONS`: every
:class:`~ivr_server.switch.errors.TErrorCode` and the IVR side's own symbols (``INVALID_REQ``,
``BLOCKED_REQ``, ``UNSUP_OPER``, ``LINK_DOWN``, ``NoSuchCall``); an ``EventError`` also carries
the switch's own text, which for a premise switch is the PBX's raw error (CSTA error value,
MODES-AND-HA G12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ivr_server.calls.replies import BLOCKED_REQ, INVALID_REQ, LINK_DOWN, UNSUP_OPER, Refusal
from ivr_server.calls.timeline import IN, OUT, Entry
from ivr_server.switch import EventError, RequestApplyTreatment, RequestRouteCall, SwitchEvent
from ivr_server.switch.errors import TErrorCode
from ivr_server.wire import Message

__all__ = ["EXPLANATIONS", "explain", "view"]

_E = TErrorCode

EXPLANATIONS: Final[Mapping[str, str]] = {
    _E.TERR_NOT_REGISTERED.name: "The DN is not registered by the server, so the switch "
    "refuses requests on it.",
    _E.TERR_IN_SAME_STATE.name: "The object is already in the state the request asks for.",
    _E.TERR_UNKNOWN_ERROR.name: "The switch refused the request without a precise reason "
    "(also: the agent's state does not allow it).",
    _E.TERR_UNSUP_OPER.name: "The switch does not support this operation on this DN.",
    _E.TERR_INVALID_ATTR.name: "An attribute of the request has an invalid value (for "
    "example an empty or unknown destination).",
    _E.TERR_NO_SWITCH.name: "The server has no connection to the switch (its link is down), "
    "so the request could not be carried out.",
    _E.TERR_INV_CONNID.name: "The switch does not know this call or connection any more (it "
    "ended, or was transferred away).",
    _E.TERR_TIMEOUT.name: "The switch did not answer the request in time.",
    _E.TERR_OUT_OF_SERVICE.name: "The DN is out of service.",
    _E.TERR_NOT_CONFIGURED.name: "The DN is not configured on the switch (unknown DN).",
    _E.TERR_INV_CALL_DN.name: "The calling DN is invalid.",
    _E.TERR_INV_CALD_DN.name: "The destination is invalid: the switch cannot call or "
    "transfer to that number.",
    _E.TERR_ORIG_DN_BUSY.name: "The originating DN is busy.",
    _E.TERR_UNKNOWN.name: "The switch gave a reason that has no T-Library counterpart; its "
    "own error text says what it was.",
    _E.TERR_TOO_MANY_REQ.name: "The switch has too many requests outstanding and refused this one.",
    _E.TERR_ACCESS_RESTICT.name: "The switch does not allow this (a privilege or security "
    "restriction, e.g. a transfer to that destination is barred).",
    _E.TERR_RES_UNAVAIL.name: "A resource the switch needs is unavailable (the PBX or its "
    "network is busy or out of service).",
    _E.TERR_SET_WRONG_STATE.name: "The call or connection is not in a state that allows the "
    "request (e.g. it is held, ringing, or already being transferred).",
    _E.TERR_DN_NO_ANSWER.name: "Nobody answered at the destination in time.",
    _E.TERR_CONN_ATMPT_FAIL.name: "The attempt to connect the call failed.",
    _E.TERR_SOFT_AGENT_ID_IN_USE.name: "The agent id is already logged in on another DN.",
    INVALID_REQ: "The IVR's request was invalid: an attribute is missing or wrong, or the "
    "request makes no sense for a call.",
    BLOCKED_REQ: "The request is not allowed in the call's current state (e.g. a transfer "
    "before the call is established, or while another one is in progress).",
    UNSUP_OPER: "The call's mode does not support this request (e.g. call control on a "
    "switch that cannot carry it out).",
    LINK_DOWN: "The link to the call's switch is down, so the request could not be sent.",
    "NoSuchCall": "The server has no call with this CallId (it ended, or never existed).",
    "MiscError": "The server could not carry out the request (see the server's log).",
    "NoMatch": "The user data has no such key.",
    "FeatureNotSupported": "The call's mode does not support this request.",
}
"""T-Library error name or IVR-side symbol -> what it means, in plain words."""

_ROUTER_EVENTS: Final = (RequestRouteCall, RequestApplyTreatment)
_CUT: Final = 48
"""Longest value shown in a summary (characters)."""
_SKIPPED: Final = frozenset({"call_id", "switch"})
"""Event attributes left out of summaries (the T-Server call id, the switch is the call's)."""


def explain(code: str | int | None, failed: str | None = None) -> dict[str, Any]:
    """The error ``code`` (a T-Library decimal, a symbol, or ``None``) of a failed request
    ``failed``: its name, its plain-language explanation, the request."""
    text = str(code) if code is not None else None
    name: str | None = text
    if text is not None and text.lstrip("-").isdigit():
        number = int(text)
        known = TErrorCode._value2member_map_.get(number)
        name = known.name if isinstance(known, TErrorCode) else None
        explanation = (
            EXPLANATIONS.get(name, "")
            if name is not None
            else f"T-Library error {number}, which this server has no description of."
        )
    elif failed == "NoSuchCall" and text is None:
        name = "NoSuchCall"
        explanation = EXPLANATIONS["NoSuchCall"]
    elif text is None:
        explanation = "The request failed; the answer gives no error code."
    else:
        explanation = EXPLANATIONS.get(text, f"The request failed with {text}.")
    return {"code": text, "name": name, "explanation": explanation, "request": failed}


def view(entries: list[Entry], wall_offset: float = 0.0) -> list[dict[str, Any]]:
    """The entries as JSON-ready dictionaries, oldest first. ``time`` is the entry's time plus
    ``wall_offset`` (the clock's offset to the wall clock: Unix seconds), ``offset`` the seconds
    since the first entry kept."""
    start = entries[0][0] if entries else 0.0
    return [_entry(at, direction, item, start, wall_offset) for at, direction, item in entries]


def _entry(
    at: float, direction: int, item: Any, start: float, wall_offset: float
) -> dict[str, Any]:
    reason: str | None = None
    if isinstance(item, Refusal):
        reason = item.reason
        item = item.reply
    error: dict[str, Any] | None = None
    if isinstance(item, SwitchEvent):
        name = item.name
        kind = "router" if isinstance(item, _ROUTER_EVENTS) else "switch-event"
        if isinstance(item, EventError):
            kind = "error"
            error = explain(item.error_code, item.request)
            error["switch_text"] = item.error_message or None
    elif isinstance(item, Message):
        name = item.tag
        kind = "ivr-in" if direction == IN else "ivr-out"
        if direction == OUT:
            error = _reply_error(item)
            if error is not None:
                kind = "error"
    else:  # nothing to say (the reply of a refusal that is never answered)
        name = "(no answer)" if direction == OUT else type(item).__name__
        kind = "ivr-out" if direction == OUT else "ivr-in"
    entry: dict[str, Any] = {
        "time": round(at + wall_offset, 6),
        "offset": round(at - start, 6),
        "kind": kind,
        "name": name,
        "summary": summary(item) if item is not None else name,
    }
    if reason is not None:
        entry["reason"] = reason
    if error is not None:
        entry["error"] = error
    return entry


def _reply_error(reply: Message) -> dict[str, Any] | None:
    """The error a reply to the IVR reports, if it reports one."""
    tag = reply.tag
    if tag == "CallError":
        return explain(getattr(reply, "TlibErrCode", None), getattr(reply, "FailedReq", None))
    if tag == "UDataResp":
        result: str = getattr(reply, "Result", "Success")
        if result != "Success":
            return explain(result, tag)
    return None


def summary(item: Message | SwitchEvent) -> str:
    """``Name attr=value …``: user data and extensions as their keys only, long values cut."""
    if isinstance(item, SwitchEvent):
        name = item.name
        skipped = _SKIPPED
    else:
        name = item.tag
        skipped = frozenset()
    parts = [name]
    for field in item.__struct_fields__:
        if field in skipped:
            continue
        value = getattr(item, field)
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            keys = [_key(element) for element in value]
            parts.append(f"{field}[keys]={','.join(_cut(key) for key in keys)}")
        else:
            shown = value.value if hasattr(value, "value") and not isinstance(value, int) else value
            parts.append(f"{field}={_cut(str(shown))}")
    return " ".join(parts)


def _key(element: Any) -> str:
    """The key of a user data item (``Node``, ``List``, ``NVPair``) or of a pair."""
    for attribute in ("Name", "NVName"):
        key = getattr(element, attribute, None)
        if isinstance(key, str):
            return key
    if isinstance(element, tuple) and element:
        return str(element[0])
    return "?"


def _cut(text: str) -> str:
    return text if len(text) <= _CUT else text[: _CUT - 1] + "…"
