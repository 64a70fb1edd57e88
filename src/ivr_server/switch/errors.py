"""T-Library error codes (AttributeErrorCode of EventError) used by our switches.

The numbers are Genesys' own: PROTOCOL.md fixes 50, 83, 232 and 234 (XMLG p.133, p.162); the rest
come from the Genesys T-Library header ``tliberr.h`` ($Id /main/56, 2004), found in the public code
index. No code here is an invention of ours; when one is needed, it goes in the 9000+ range and
says so in its docstring and in docs/switch.md.

The IVR XML answer carries the code in decimal as ``CallError/@TlibErrCode`` (PROTOCOL.md §3.3.8).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = ["AGENT_WRONG_STATE", "TErrorCode"]


class TErrorCode(IntEnum):
    """AttributeErrorCode values, named exactly as in Genesys' ``tliberr.h``."""

    TERR_NOT_REGISTERED = 41
    """The client has not registered the DN (request on an unregistered DN)."""
    TERR_IN_SAME_STATE = 43
    """The object is already in the requested state (not used: see :data:`AGENT_WRONG_STATE`)."""
    TERR_UNKNOWN_ERROR = 50
    """Unrecognised error; also what the switch answers for a request in the wrong agent state."""
    TERR_UNSUP_OPER = 51
    """Unsupported operation (e.g. agent control on a DN type that cannot hold an agent)."""
    TERR_INVALID_ATTR = 53
    """An attribute of the request has an invalid value (empty agent id, unknown queue, …)."""
    TERR_NO_SWITCH = 54
    """No connection to the switch: the T-Server's link is down (also a premise switch's requests
    while its CSTA link is down)."""
    TERR_INV_CONNID = 56
    """Invalid ConnectionID (the PBX does not know the call or the connection)."""
    TERR_TIMEOUT = 57
    """Timeout expired (the PBX did not answer a request in time)."""
    TERR_OUT_OF_SERVICE = 58
    """The DN is out of service."""
    TERR_NOT_CONFIGURED = 59
    """The DN is not configured (unknown DN)."""
    TERR_INV_CALL_DN = 61
    """Invalid calling DN."""
    TERR_INV_CALD_DN = 71
    """Invalid called DN (an invalid destination)."""
    TERR_ORIG_DN_BUSY = 83
    """Origination DN busy (IVR ``Failure FailureCause``, PROTOCOL.md §10.3)."""
    TERR_UNKNOWN = 100
    """Unknown cause (DialOutError ``MiscError``, PROTOCOL.md §10.2)."""
    TERR_TOO_MANY_REQ = 111
    """Too many outstanding requests (a PBX's limit reached)."""
    TERR_ACCESS_RESTICT = 165
    """Access restricted (spelled so in ``tliberr.h``): a privilege or security refusal."""
    TERR_RES_UNAVAIL = 166
    """Resource unavailable (the PBX or its network is busy or out of service)."""
    TERR_SET_WRONG_STATE = 185
    """Set is in wrong state for invocation (the call or connection is not in a state that allows
    the request)."""
    TERR_DN_NO_ANSWER = 232
    """No answer at the DN (IVR ``Failure FailureCause``, PROTOCOL.md §10.3)."""
    TERR_CONN_ATMPT_FAIL = 234
    """Call connection attempt failed (IVR ``Failure FailureCause``, PROTOCOL.md §10.3)."""
    TERR_SOFT_AGENT_ID_IN_USE = 1704
    """The agent id is already logged in on another DN (T-Server agent emulation family)."""


AGENT_WRONG_STATE: Final = TErrorCode.TERR_UNKNOWN_ERROR
"""Code for an agent request the agent's state does not allow (login while logged in, ready while
logged out, …). The guide's only sample answers an AgentLogin of a logged-in agent with
``TlibErrCode='50'`` (XMLG p.133, PROTOCOL.md §3.2.3), so the switch uses 50 for every such case
rather than ``TERR_IN_SAME_STATE`` (43)."""
