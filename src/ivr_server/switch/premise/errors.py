"""The CSTA error values a PBX refuses a request with, mapped to T-Library error codes (G12).

A negative response (ECMA-269 §12 ``CSTAErrorCode``: a category element holding a value) becomes
the :class:`~ivr_server.switch.errors.TErrorCode` of the request's EventError: the value's own row
in :data:`CSTA_ERRORS` when ``tliberr.h`` has a clear counterpart, else its category's row in
:data:`CATEGORY_ERRORS`, else ``TERR_UNKNOWN`` (100). The raw CSTA error goes into the EventError's
message and the log (:func:`describe`), never lost. docs/behind.md prints the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode

__all__ = [
    "BUSY_CAUSES",
    "CATEGORY_ERRORS",
    "CSTA_ERRORS",
    "FAILED_CAUSES",
    "INVOKE_TIMEOUT_ERROR",
    "describe",
    "failed_cause_error",
    "tlib_error",
]

_E = TErrorCode

CSTA_ERRORS: Final[Mapping[str, TErrorCode]] = {
    # operation
    "invalidCstaCallIdentifier": _E.TERR_INV_CONNID,
    "invalidCstaConnectionIdentifier": _E.TERR_INV_CONNID,
    "invalidConnectionID": _E.TERR_INV_CONNID,
    "invalidCallID": _E.TERR_INV_CONNID,
    "invalidCallingDevice": _E.TERR_INV_CALL_DN,
    "invalidCalledDevice": _E.TERR_INV_CALD_DN,
    "invalidDestination": _E.TERR_INV_CALD_DN,
    "invalidForwardingDestination": _E.TERR_INV_CALD_DN,
    "invalidCstaDeviceIdentifier": _E.TERR_INVALID_ATTR,
    "objectNotKnown": _E.TERR_INVALID_ATTR,
    "valueOutOfRange": _E.TERR_INVALID_ATTR,
    "invalidObjectType": _E.TERR_INVALID_ATTR,
    "invalidAccountCode": _E.TERR_INVALID_ATTR,
    "invalidAuthorisationCode": _E.TERR_INVALID_ATTR,
    "invalidFeature": _E.TERR_UNSUP_OPER,
    "requestIncompatibleWithObject": _E.TERR_UNSUP_OPER,
    "requestIncompatibleWithCallingDevice": _E.TERR_UNSUP_OPER,
    "requestIncompatibleWithCalledDevice": _E.TERR_UNSUP_OPER,
    "privilegeViolationOnSpecifiedDevice": _E.TERR_ACCESS_RESTICT,
    "privilegeViolationOnCalledDevice": _E.TERR_ACCESS_RESTICT,
    "privilegeViolationOnCallingDevice": _E.TERR_ACCESS_RESTICT,
    "securityViolation": _E.TERR_ACCESS_RESTICT,
    # stateIncompatibility
    "invalidObjectState": _E.TERR_SET_WRONG_STATE,
    "noActiveCall": _E.TERR_INV_CONNID,
    "noHeldCall": _E.TERR_INV_CONNID,
    "noCallToClear": _E.TERR_INV_CONNID,
    "noConnectionToClear": _E.TERR_INV_CONNID,
    "noCallToAnswer": _E.TERR_INV_CONNID,
    "noCallToComplete": _E.TERR_INV_CONNID,
    # systemResourceAvailability
    "resourceOutOfService": _E.TERR_OUT_OF_SERVICE,
    "serviceBusy": _E.TERR_RES_UNAVAIL,
    "resourceBusy": _E.TERR_RES_UNAVAIL,
    "networkBusy": _E.TERR_RES_UNAVAIL,
    "networkOutOfService": _E.TERR_RES_UNAVAIL,
    "overallMonitorLimitExceeded": _E.TERR_TOO_MANY_REQ,
    "maxNumberOfRequestsExceeded": _E.TERR_TOO_MANY_REQ,
    # subscribedResourceAvailability, performanceManagement
    "objectMonitorLimitExceeded": _E.TERR_TOO_MANY_REQ,
    "outstandingRequestsLimitExceeded": _E.TERR_TOO_MANY_REQ,
    "performanceLimitExceeded": _E.TERR_TOO_MANY_REQ,
}
"""CSTA error value (ECMA-269 §12.2) → T-Library code, where ``tliberr.h`` has a clear one."""

CATEGORY_ERRORS: Final[Mapping[str, TErrorCode]] = {
    "security": _E.TERR_ACCESS_RESTICT,
    "stateIncompatibility": _E.TERR_SET_WRONG_STATE,
    "systemResourceAvailability": _E.TERR_RES_UNAVAIL,
    "subscribedResourceAvailability": _E.TERR_TOO_MANY_REQ,
    "performanceManagement": _E.TERR_TOO_MANY_REQ,
}
"""An error value without a row of its own: its category's code (else ``TERR_UNKNOWN``)."""

INVOKE_TIMEOUT_ERROR: Final = TErrorCode.TERR_TIMEOUT
"""The code of a request the PBX did not answer within the invoke timeout."""


BUSY_CAUSES: Final = frozenset({"busy"})
"""Failed event causes (ECMA-269 §12.2.13 ``EventCause``) that mean the destination is busy:
EventDestinationBusy (``CallStatus Busy``), not an error."""

FAILED_CAUSES: Final[Mapping[str, TErrorCode]] = {
    "callNotAnswered": _E.TERR_DN_NO_ANSWER,
    "noAnswer": _E.TERR_DN_NO_ANSWER,
    "destNotObtainable": _E.TERR_INV_CALD_DN,
    "invalidNumberFormat": _E.TERR_INV_CALD_DN,
    "incompatibleDestination": _E.TERR_INV_CALD_DN,
    "blocked": _E.TERR_ACCESS_RESTICT,
    "doNotDisturb": _E.TERR_ACCESS_RESTICT,
    "trunksBusy": _E.TERR_RES_UNAVAIL,
    "networkCongestion": _E.TERR_RES_UNAVAIL,
    "resourcesNotAvailable": _E.TERR_RES_UNAVAIL,
    "reorderTone": _E.TERR_CONN_ATMPT_FAIL,
    "networkSignal": _E.TERR_CONN_ATMPT_FAIL,
}
"""Failed event cause (other than busy) → the T-Library code of the request's EventError (G2,
G12); a cause without a row: ``TERR_CONN_ATMPT_FAIL`` (234)."""


def failed_cause_error(cause: str | None) -> TErrorCode:
    """The code of a call a request placed that failed with ``cause`` (not busy)."""
    return FAILED_CAUSES.get(cause or "", _E.TERR_CONN_ATMPT_FAIL)


def tlib_error(error: m.NegativeResponse, *, agent: bool = False) -> TErrorCode:
    """The T-Library code for ``error``. An agent request refused for the agent's state gets
    :data:`~ivr_server.switch.errors.AGENT_WRONG_STATE`, as the virtual switch answers it."""
    if not isinstance(error, m.CSTAErrorCode):
        return TErrorCode.TERR_UNKNOWN
    if agent and error.category == "stateIncompatibility":
        return AGENT_WRONG_STATE
    code = CSTA_ERRORS.get(error.value)
    if code is None:
        code = CATEGORY_ERRORS.get(error.category, TErrorCode.TERR_UNKNOWN)
    return code


def describe(error: m.NegativeResponse) -> str:
    """The raw CSTA error, for the EventError's message and the log."""
    if isinstance(error, m.CSTAErrorCode):
        return f"CSTA error {error.category}/{error.value}"
    return f"CSTA {type(error).__name__}"
