"""How a call ends: ``EndCall``, ``EventReleased``, the Call Timeout and the orphan call timeout.

PROTOCOL.md §6.2 rows 49-52: the IVR's ``EndCall`` (Behind, the port's call is released on the
PBX only with active release: ``GCTIActiveRelease``, default ``active-release``); the port leaving the call on the switch
(``EventReleased``: ``CallStatus Released``, the call ``DETACHED`` until the IVR's ``EndCall``);
the Call Timeout and the operator's end (``EndCall EndCause='Timeout'``); the orphan call timeout
(released as abandoned, no message).

A call that ends is forgotten by :meth:`~ivr_server.calls.context.CallContext.forget` once its
row's action ran: nothing of it stays in memory.
"""

from __future__ import annotations

import logging
from typing import Any

from ivr_server.calls.call import Call
from ivr_server.calls.context import Action, CallContext
from ivr_server.calls.machine import CallInput, CallState
from ivr_server.calls.userdata import UserData, kvlist
from ivr_server.switch import EventReleased
from ivr_server.wire import KvList, Node
from ivr_server.wire import messages as m

__all__ = ["Ending"]

log = logging.getLogger("ivr_server.calls")


def _active_release(ex: KvList, default: bool) -> bool:
    """The ``GCTIActiveRelease`` extension of an ``EndCall``, or ``default`` without one."""
    for item in ex:
        if item.Name == "GCTIActiveRelease" and isinstance(item, Node):
            return item.Val.strip().lower() != "false"
    return default


class Ending:
    """The end of a call, whoever ends it."""

    def __init__(self, ctx: CallContext, user_data: UserData) -> None:
        self.ctx = ctx
        self.user_data = user_data
        """Attaches the data an ``EndCall`` carries."""

    def actions(self) -> dict[str, Action]:
        """This family's rows of the table."""
        return {
            "end_call": self.do_end_call,
            "released": self.do_released,
            "end_timeout": self.do_end_timeout,
            "abandon": self.do_abandon,
        }

    def on_end_call(self, call: Call, msg: m.EndCall, now: float) -> None:
        self.ctx.input(call, CallInput.END_CALL, now, msg)

    def on_released(self, call: Call, event: EventReleased, now: float) -> None:
        if event.dn != call.dn:
            return
        call.track(event)
        self.ctx.input(call, CallInput.RELEASED, now, event)

    # ------------------------------------------------------------------ actions (table rows)

    def do_end_call(self, call: Call, now: float, msg: m.EndCall) -> None:
        data = kvlist(msg.UDataEx, msg.UserData)
        if data and call.state is not CallState.DETACHED:
            self.user_data.attach_replace(call, data)
        active = _active_release(
            kvlist(msg.ExtnsEx, msg.Extensions), self.ctx.settings.active_release
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "call %s: EndCall %s, active release %s",
                call.call_id,
                msg.EndCause,
                active,
                extra=call.log_fields(),
            )
        if call.behind and not active:
            return  # the PBX's call is left as it is: the IVR moved the caller by itself
        # In-Front the call exists on the virtual switch only at the port: whether the IVR asks
        # for an active release or has moved the caller itself, the port's call is cleared.
        # Behind, active release clears the port's connection (the premise switch's
        # ClearConnection).
        self.ctx.release(call)

    def do_released(self, call: Call, now: float, event: EventReleased) -> None:
        self.ctx.timers.router.cancel(call.key)
        call.held_route = None
        call.last_user_data = event.user_data
        call.last_event = event.name
        if call.conn_id is not None:
            self.ctx.by_conn.pop(call.conn_id, None)  # the switch's call is gone; the ConnID stays
        self.ctx.send(call.owner, call, m.CallStatus(Event="Released"))

    def do_end_timeout(self, call: Call, now: float, arg: Any) -> None:
        self.ctx.send(call.owner, call, m.EndCall(EndCause="Timeout"))
        self.ctx.release(call)

    def do_abandon(self, call: Call, now: float, arg: Any) -> None:
        log.info(
            "call %s of %s: no session came back, released as abandoned",
            call.call_id,
            call.ivr,
            extra=call.log_fields(),
        )
        self.ctx.release(call)
