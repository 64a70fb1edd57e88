"""What a reply echoes must fit: requests whose CallId, ReqId, RequestId, ANI... are too long to
write back are refused before they are carried out (issue 19)."""

from __future__ import annotations

from typing import Final

from ivr_server.calls.replies import too_long
from ivr_server.wire import Message
from ivr_server.wire import messages as m
from ivr_server.wire.limits import ECHO_ALWAYS_FITS, MAX_ECHOED, text_size

__all__ = ["ECHOED", "check_echoed"]

ECHOED: Final[dict[str, tuple[str, ...]]] = {
    tag: names
    for tag, spec in m.SPECS.items()
    if (
        names := tuple(a.name for a in spec.attrs if a.name == "ReqId")
        + tuple(c.name for c in spec.children if c.name == "RequestId" and c.kind == "text")
        + {"NewCall": ("ANI", "DNIS", "CalledNum"), "DialOutInit": ("CalledNum",)}.get(spec.tag, ())
    )
}
"""Per message, the fields (other than the CallId) that a reply or a later
``CallInfoResp`` writes back: ``ReqId``, ``RequestId``, a new call's ``ANI``, ``DNIS`` and
``CalledNum``. Each must fit ``MAX_ECHOED`` bytes written (issue 19)."""

_NEVER_ANSWERED: Final = frozenset({"LogMsg", "Reset"})
"""Messages never answered, whatever their CallId (PROTOCOL.md §9.4.3): nothing to echo."""


def check_echoed(call_id: str | None, message: Message, echoed: tuple[str, ...] | None) -> None:
    """Refuse (:func:`too_long`) a request carrying a CallId, ReqId, RequestId, ANI... that a reply
    could not echo within ``MAX_ECHOED`` bytes. The caller only calls for messages that have such
    fields or a CallId longer than ``ECHO_ALWAYS_FITS`` characters; fields as short as that are
    not measured."""
    if (
        call_id is not None
        and len(call_id) > ECHO_ALWAYS_FITS
        and message.tag not in _NEVER_ANSWERED
    ):
        size = text_size(call_id)
        if size > MAX_ECHOED:
            raise too_long(call_id, message, "CallId", size)
    if echoed is not None:
        for name in echoed:
            value = getattr(message, name)
            if value is not None and len(value) > ECHO_ALWAYS_FITS:
                size = text_size(value)
                if size > MAX_ECHOED:
                    raise too_long(call_id, message, name, size)
