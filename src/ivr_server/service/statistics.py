"""Statistics requests: PeekStatReq and GetStatReq, answered by the built-in statistics engine.

Theory of operation. A statistics request is only valid inside a call of the session's IVR
(PROTOCOL.md §3.9): on any other CallId it is answered as for an unknown call. The engine
(``ivr_server.stats``) reads the switches itself; this family gives it what only the service
knows: the calls of an IVR and the calls waiting for a queue at a built-in router.
"""

from __future__ import annotations

from typing import Any

from ivr_server.calls.replies import no_such_call
from ivr_server.routing import BuiltinRouter
from ivr_server.service.context import ServiceContext
from ivr_server.service.sessions import Session
from ivr_server.stats import StatValue, result_code
from ivr_server.wire import messages as m

__all__ = ["Statistics"]


class Statistics:
    """PeekStatReq / GetStatReq, and the service's side of the statistics engine."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def on_stat(self, session: Session, call_id: str | None, msg: Any) -> None:
        """PeekStatReq / GetStatReq: only inside a call of the session's IVR (PROTOCOL.md §3.9)."""
        ctx = self.ctx
        login = ctx.require_login(session, call_id, msg)
        call = (
            ctx.calls.calls.get(ctx.calls.key(login.client_name, session, call_id))
            if call_id is not None
            else None
        )
        if call is None or call.ivr != login.client_name:
            raise no_such_call(call_id, msg)
        if isinstance(msg, m.PeekStatReq):
            result = ctx.stats.peek(msg.StatName, ctx.now)
        else:
            result = ctx.stats.get(
                msg.ServerName, msg.StatType, msg.ObjectId, msg.ObjectType, ctx.now
            )
        code = result_code(result)
        value = m.Result(Value=result.text) if isinstance(result, StatValue) else None
        ctx.send(
            session, call_id, m.StatResp(ResultCode=code, RequestId=msg.RequestId, Result=value)
        )

    def waiting_for_queue(self, switch_name: str, queue: str) -> int:
        """Calls waiting at the built-in router of ``switch_name`` for ``queue``."""
        router: Any = self.ctx.routers.get(switch_name)
        router = getattr(router, "default", router)  # a per-routing-point dispatcher's rules
        return router.waiting_for_queue(queue) if isinstance(router, BuiltinRouter) else 0

    def calls_of_ivr(self, ivr: str) -> int:
        """Calls in progress on the ports of ``ivr``."""
        here = sum(1 for call in self.ctx.calls.calls.values() if call.ivr == ivr)
        peers = self.ctx.peers  # active mode (issue 25): the other nodes' calls count too
        return here + peers.calls_of_ivr(ivr) if peers is not None else here
