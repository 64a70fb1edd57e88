"""Every error answer the server gives, decided in one place (PROTOCOL.md §9, DECISIONS.md).

Handlers raise :class:`Refusal` carrying the exact reply; the dispatcher catches it and sends it.
Documents that could not be decoded are answered by :func:`answer_for_rejected`. An error answer
echoes the request's CallId, ReqId and RequestId cut to what a reply may carry
(:func:`~ivr_server.wire.limits.fit_echo`), so that it can always be sent.
"""

from __future__ import annotations

from typing import Final

from ivr_server.errors import RemoteProtocolError
from ivr_server.wire import DecodeError, Message
from ivr_server.wire.limits import ECHO_ALWAYS_FITS, MAX_ECHOED, fit_echo
from ivr_server.wire.messages import CallError, EndCall, LoginResp, StatResp, UDataResp

__all__ = [
    "BLOCKED_REQ",
    "INVALID_REQ",
    "LINK_DOWN",
    "UNSUP_OPER",
    "Refusal",
    "answer_for_rejected",
    "blocked",
    "internal_error",
    "invalid_request",
    "no_such_call",
    "too_long",
    "unsupported",
]

INVALID_REQ: Final = "INVALID_REQ"
"""Symbolic TlibErrCode for an invalid request (W: the real server uses it)."""
BLOCKED_REQ: Final = "BLOCKED_REQ"
"""Symbolic TlibErrCode for a request not allowed in the current state (W)."""
UNSUP_OPER: Final = "UNSUP_OPER"
"""Our symbolic TlibErrCode for a request the call's mode does not support (D)."""
LINK_DOWN: Final = "LINK_DOWN"
"""Our symbolic TlibErrCode for agent control while the port's T-Server link is down (D)."""

_UDATA_TAGS: Final = frozenset({"UDataSet", "UDataGet", "UDataGetAll", "UDataDel"})
_STAT_TAGS: Final = frozenset({"PeekStatReq", "GetStatReq"})


class Refusal(RemoteProtocolError):
    """A request that gets an error answer instead of being carried out."""

    def __init__(self, call_id: str | None, reply: Message | None, reason: str) -> None:
        super().__init__(reason)
        self.call_id = call_id
        """CallId the reply goes out on."""
        self.reply = reply
        """The answer, or ``None`` when the protocol says nothing is answered."""
        self.reason = reason
        """Why, for the log."""

    @property
    def kind(self) -> str:
        """The error's kind for metrics: ``NoSuchCall``, ``BLOCKED_REQ``, ``EndCall:Resources``…"""
        reply = self.reply
        if reply is None:
            return "unanswered"
        tag = reply.tag
        if tag == "CallError":
            code = getattr(reply, "TlibErrCode", None)
            failed: str = getattr(reply, "FailedReq", "Unknown")
            return code if code is not None and not code.isdigit() else failed
        if tag == "EndCall":
            return f"EndCall:{getattr(reply, 'EndCause', '')}"
        result = getattr(reply, "Result", None) or getattr(reply, "ResultCode", None)
        return f"{tag}:{result}" if result is not None else tag


def invalid_request(call_id: str | None, reason: str, req_id: str | None = None) -> Refusal:
    """``CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'`` (+ ReqId)."""
    return Refusal(
        call_id, CallError(FailedReq="Unknown", TlibErrCode=INVALID_REQ, ReqId=req_id), reason
    )


def blocked(call_id: str | None, reason: str, failed_req: str = "Unknown") -> Refusal:
    """``CallError FailedReq=… TlibErrCode='BLOCKED_REQ'``: not allowed in the current state."""
    return Refusal(call_id, CallError(FailedReq=failed_req, TlibErrCode=BLOCKED_REQ), reason)  # type: ignore[arg-type]


def unsupported(call_id: str | None, reason: str) -> Refusal:
    """``CallError FailedReq='Unknown' TlibErrCode='UNSUP_OPER'``: a request the call's mode does
    not have (Network mode allows only ``Unknown`` and ``NoSuchCall``, MODES-AND-HA G20)."""
    return Refusal(call_id, CallError(FailedReq="Unknown", TlibErrCode=UNSUP_OPER), reason)


def no_such_call(call_id: str | None, message: Message) -> Refusal:
    """The answer to a call request on an unknown CallId, by request type (PROTOCOL.md §9.4.4)."""
    tag = message.tag
    reason = f"{tag} for unknown CallId {call_id!r}"
    if tag in _UDATA_TAGS:
        request_id = getattr(message, "RequestId", "")
        return Refusal(call_id, UDataResp(Result="NoSuchCall", RequestId=request_id), reason)
    if tag in _STAT_TAGS:
        return Refusal(call_id, CallError(FailedReq="Unknown"), reason)
    return Refusal(call_id, CallError(FailedReq="NoSuchCall"), reason)


def before_login(call_id: str | None, message: Message) -> Refusal:
    """A request other than LoginReq from a session that is not logged in (DECISIONS.md)."""
    reason = f"{message.tag} before a successful login"
    if message.tag in ("NewCall", "MakeCall", "DialOutInit"):
        return Refusal(call_id, EndCall(EndCause="FeatureNotSupported"), reason)
    return invalid_request(call_id, reason, getattr(message, "ReqId", None))


def internal_error(call_id: str | None, message: Message) -> Refusal | None:
    """The answer when handling ``message`` failed on our side (a bug, logged by the caller, or a
    reply that could not be sent), so that the IVR does not wait for a reply in vain: the
    request's own error form (UData requests ``UDataResp Result='MiscError'``, stat requests
    ``StatResp ResultCode='MiscError'``, others ``CallError FailedReq='Unknown'``), identifiers
    cut to fit; nothing for messages that are never answered."""
    if call_id is None or message.tag in ("LogMsg", "Reset", "EndCall", "CallStatus"):
        return None
    return Refusal(fit_echo(call_id), _error_answer(message, None), "internal error")


def too_long(call_id: str | None, message: Message, name: str, size: int) -> Refusal:
    """A request carrying ``name`` (CallId, ReqId, RequestId, ANI...) of ``size`` bytes as a reply
    would write it, more than :data:`~ivr_server.wire.limits.MAX_ECHOED`: refused before it is
    carried out, as a schema violation is (UData requests ``UDataResp Result='MiscError'``, stat
    requests ``StatResp ResultCode='MiscError'``, others ``CallError FailedReq='Unknown'
    TlibErrCode='INVALID_REQ'``), every identifier echoed cut to fit."""
    return Refusal(
        _fit(call_id),
        _error_answer(message, INVALID_REQ),
        f"{message.tag}: {name} of {size} bytes is longer than a reply may echo ({MAX_ECHOED})",
    )


def _error_answer(message: Message, tlib_err_code: str | None) -> Message:
    """The error form of ``message``'s own answer, its RequestId or ReqId cut to fit."""
    tag = message.tag
    request_id: str | None = getattr(message, "RequestId", None)
    if tag in _UDATA_TAGS and request_id is not None:
        return UDataResp(Result="MiscError", RequestId=fit_echo(request_id))
    if tag in _STAT_TAGS and request_id is not None:
        return StatResp(ResultCode="MiscError", RequestId=fit_echo(request_id))
    return CallError(
        FailedReq="Unknown", TlibErrCode=tlib_err_code, ReqId=_fit(getattr(message, "ReqId", None))
    )


def _fit(text: str | None) -> str | None:
    return text if text is None or len(text) <= ECHO_ALWAYS_FITS else fit_echo(text)


def answer_for_rejected(error: DecodeError, version_string: str) -> tuple[str, Message] | None:
    """The answer to a Data frame that did not decode, or ``None`` when nothing can be answered.
    The CallId, ReqId and RequestId it echoes are cut to fit (:func:`fit_echo`)."""
    call_id = error.call_id
    if call_id is None:
        return None
    call_id = fit_echo(call_id)
    if error.well_formed:
        tag = error.tag
        if tag == "LoginReq" and error.attribute == "Version":
            return call_id, LoginResp(IServerVer=version_string, Result="InvalidProtocolVer")
        if tag in ("NewCall", "DialOutInit") and error.attribute == "Version":
            return call_id, EndCall(EndCause="InvalidVersion")
        request_id = error.request_id
        if tag in _UDATA_TAGS and request_id is not None:
            return call_id, UDataResp(Result="MiscError", RequestId=fit_echo(request_id))
        if tag in _STAT_TAGS and request_id is not None:
            return call_id, StatResp(ResultCode="MiscError", RequestId=fit_echo(request_id))
        return call_id, CallError(
            FailedReq="Unknown", TlibErrCode=INVALID_REQ, ReqId=_fit(error.req_id)
        )
    return call_id, CallError(FailedReq="Unknown", TlibErrCode=INVALID_REQ)
