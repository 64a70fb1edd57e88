"""What the client hands back (:class:`Received`, :class:`LoginResult`) and how an inbound
document is matched to the request it answers (:func:`answer_filter`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from ivr_server.wire import Message
from ivr_server.wire.messages import CallError, FlowControl, LoginResp, MonitorInfo

__all__ = [
    "LoginResult",
    "MessageTypes",
    "Received",
    "answer_filter",
    "as_tuple",
    "compatible",
    "is_flow_control",
    "str_attr",
]

MessageTypes: TypeAlias = type[Message] | tuple[type[Message], ...]
"""One message class or a tuple of them, as ``isinstance`` takes them."""


@dataclass(frozen=True, slots=True)
class Received:
    """One inbound document."""

    call_id: str | None
    """Its CallId (``None`` for the DialOut form, which has none)."""
    message: Message
    """The decoded message."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a :meth:`IvrClient.login` got back."""

    response: LoginResp
    """The LoginResp (``Result`` says whether the version was accepted)."""
    flow_control: FlowControl | None
    """The FlowControl that follows a successful 4.0 login; ``None`` for other versions."""
    call_id: str
    """The session CallId the LoginReq carried."""


def as_tuple(types: MessageTypes | None) -> tuple[type[Message], ...]:
    """``types`` as a tuple (empty: any type)."""
    if types is None:
        return ()
    return types if isinstance(types, tuple) else (types,)


def str_attr(message: Message, name: str) -> str | None:
    """The string attribute ``name`` of ``message`` (``ReqId``, ``RequestId``), or ``None``."""
    value = getattr(message, name, None)
    return value if isinstance(value, str) else None


def answer_filter(
    types: tuple[type[Message], ...], req_id: str | None, request_id: str | None
) -> Callable[[Received], bool]:
    """Does a document answer a request with these ReqId/RequestId and expected types?

    ReqId and RequestId must be equal on both sides (absent = ``None``), so an answer echoing an
    id never answers a request without one, and vice versa. A CallError always answers (its type
    need not be expected); a MonitorInfo without ReqId never does (it is unsolicited by definition,
    PROTOCOL.md §3.2.1).
    """

    def accepts(received: Received) -> bool:
        message = received.message
        if getattr(message, "ReqId", None) != req_id:
            return False
        if type(message) is CallError:
            return True
        if types and not isinstance(message, types):
            return False
        if getattr(message, "RequestId", None) != request_id:
            return False
        return not (type(message) is MonitorInfo and req_id is None)

    return accepts


def compatible(waited: str | None, seen: str | None) -> bool:
    """Can an id a request waits for and one a bad document carried be the same (either absent
    counts as yes)?"""
    return waited is None or seen is None or waited == seen


def is_flow_control(received: Received) -> bool:
    """Is it the FlowControl that follows a 4.0 login?"""
    return type(received.message) is FlowControl
