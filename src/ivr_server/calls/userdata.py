"""A call's user data: ``UDataSet``, ``UDataGet``, ``UDataGetAll``, ``UDataDel``, size checks.

The requests are answered with ``UDataResp`` (PROTOCOL.md §3.4); every writer of user data
(these requests, ``NewCall``, ``RouteRequest``, ``TreatStatus``, ``EndCall``) goes through the
size checks here.

User data lives on the switch's call: reads ask the switch (or, once the port left the call, the
data its ``EventReleased`` carried), writes are switch requests answered by
``EventAttachedDataChanged`` or ``EventError``. Data that could not be read back in one reply is
refused before the switch stores anything (:func:`data_problem`).
"""

from __future__ import annotations

import logging
from typing import Any

from ivr_server.calls.call import Call, Owner
from ivr_server.calls.context import CallContext, Pending
from ivr_server.calls.machine import CallState
from ivr_server.switch import (
    USER_DATA_LIMIT,
    EventAttachedDataChanged,
    EventError,
    SwitchEvent,
    SwitchRequest,
    TAttachUserData,
    TDeleteAllUserData,
    TDeleteUserData,
    TUpdateUserData,
    kv_size,
    kv_update,
)
from ivr_server.wire import KvList, Node, NVPair
from ivr_server.wire import messages as m
from ivr_server.wire.limits import USER_DATA_WIRE_LIMIT, kv_wire_size

__all__ = ["UserData", "data_problem", "kvlist", "nvpairs", "too_big", "user_data"]

log = logging.getLogger("ivr_server.calls")


def kvlist(ex: KvList | None, legacy: tuple[NVPair, ...] | None) -> KvList:
    """A kvlist from the ``…Ex`` form or the call-version-1.0 NVPair form."""
    if ex:
        return ex
    if legacy:
        return tuple(Node(Name=p.NVName, Type="Str", Val=p.NVVal) for p in legacy)
    return ()


def nvpairs(items: KvList) -> tuple[NVPair, ...] | None:
    """Call version 1.0 form of a kvlist (nested lists cannot be expressed and are left out)."""
    pairs = tuple(NVPair(NVName=i.Name, NVVal=i.Val) for i in items if isinstance(i, Node))
    return pairs or None


def data_problem(data: KvList, encoding: str) -> str | None:
    """Why ``data`` cannot be a call's user data, or ``None``: over the original's 16 KB
    (``switch.kv_size``), or too long as written in ``encoding`` for the ``UDataResp`` that
    reads it all back to fit one document (``wire.limits.USER_DATA_WIRE_LIMIT``)."""
    size = kv_size(data)
    if size > USER_DATA_LIMIT:
        return f"user data of {size} bytes, over 16 KB ({USER_DATA_LIMIT})"
    written = kv_wire_size(data, encoding)
    if written > USER_DATA_WIRE_LIMIT:
        return (
            f"user data taking {written} bytes written ({encoding}), over "
            f"{USER_DATA_WIRE_LIMIT}: it could not be read back in one reply"
        )
    return None


def user_data(call: Call) -> KvList:
    """The call's user data: the switch's, or the last known once the port left the call."""
    if call.conn_id is None or call.state is CallState.DETACHED:
        return call.last_user_data
    data = call.switch.view.user_data(call.conn_id)
    return data if data is not None else call.last_user_data


def too_big(call: Call, new: KvList, replace: bool = True) -> str | None:
    """Why the call's data with ``new`` added (``replace``: TUpdateUserData semantics) would be
    too large (:func:`data_problem`), or ``None``. Written size is never below the 16 KB
    count, and merging never makes data longer than both lists together: the sum of the two
    written sizes, within 16 KB, settles the usual case without a merge."""
    current = user_data(call)
    encoding = call.encoding
    if kv_wire_size(current, encoding) + kv_wire_size(new, encoding) <= USER_DATA_LIMIT:
        return None
    return data_problem(kv_update(current, new) if replace else current + new, encoding)


class UserData:
    """The user-data requests of the IVR and the switch's answers to them."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx

    def udata_resp(
        self,
        call: Call,
        request_id: str,
        result: Any,
        data: KvList | None = None,
        to: Owner | None = None,
    ) -> None:
        """A ``UDataResp`` to ``to``, or else to the session whose request is being handled."""
        self.ctx.send(
            to if to is not None else self.ctx.requester,
            call,
            m.UDataResp(Result=result, RequestId=request_id, UDataEx=data or None),
        )

    def on_udata_get(self, call: Call, msg: m.UDataGet, now: float) -> None:
        keys = {key for key in msg.Keys.split(":") if key}
        if not keys:
            self.udata_resp(call, msg.RequestId, "MiscError")
            return
        found = tuple(item for item in user_data(call) if item.Name in keys)
        self.udata_resp(call, msg.RequestId, "Success" if found else "NoMatch", found)

    def on_udata_get_all(self, call: Call, msg: m.UDataGetAll, now: float) -> None:
        data = user_data(call)
        self.udata_resp(call, msg.RequestId, "Success" if data else "NoMatch", data)

    def on_udata_set(self, call: Call, msg: m.UDataSet, now: float) -> None:
        if call.network and msg.Action == "Add":  # Network: Replace-style updates only (N-m)
            self.udata_resp(call, msg.RequestId, "FeatureNotSupported")
            return
        conn_id = _writable(call)
        if conn_id is None:
            self.udata_resp(call, msg.RequestId, "MiscError")
            return
        data = msg.UDataEx or ()
        problem = too_big(call, data, replace=msg.Action != "Add")
        if problem is not None:  # refused before the switch stores anything
            log.info(
                "call %s: UDataSet refused: %s", call.call_id, problem, extra=call.log_fields()
            )
            self.udata_resp(call, msg.RequestId, "MiscError")
            return
        ref = self.ctx.pend(call, "udata", msg.RequestId)
        cls = TAttachUserData if msg.Action == "Add" else TUpdateUserData
        call.switch.request(cls(reference_id=ref, conn_id=conn_id, dn=call.dn, user_data=data))

    def on_udata_del(self, call: Call, msg: m.UDataDel, now: float) -> None:
        if call.network:  # Network: no user-data deletion (N-m)
            self.udata_resp(call, msg.RequestId, "FeatureNotSupported")
            return
        conn_id = _writable(call)
        if conn_id is None:
            self.udata_resp(call, msg.RequestId, "MiscError")
            return
        req: SwitchRequest
        if msg.Action == "DeleteAll":
            req = TDeleteAllUserData(
                reference_id=self.ctx.pend(call, "udata", msg.RequestId),
                conn_id=conn_id,
                dn=call.dn,
            )
        elif not msg.Key:
            self.udata_resp(call, msg.RequestId, "MiscError")
            return
        elif not any(item.Name == msg.Key for item in user_data(call)):
            self.udata_resp(call, msg.RequestId, "NoMatch")
            return
        else:
            req = TDeleteUserData(
                reference_id=self.ctx.pend(call, "udata", msg.RequestId),
                conn_id=conn_id,
                dn=call.dn,
                key=msg.Key,
            )
        call.switch.request(req)

    def answer(self, pending: Pending, event: SwitchEvent, now: float) -> None:
        """The switch's answer to a write: ``Success`` or ``MiscError`` to whoever asked."""
        call = pending.call
        if isinstance(event, EventAttachedDataChanged):
            self.udata_resp(call, pending.request_id, "Success", to=pending.owner)
        elif isinstance(event, EventError):
            log.info("call %s: user data refused: %s", call.call_id, event.error_message)
            self.udata_resp(call, pending.request_id, "MiscError", to=pending.owner)

    def attach_replace(self, call: Call, data: KvList) -> None:
        """Merge ``data`` into the call's user data as TUpdateUserData does (the data a
        ``TreatStatus`` or an ``EndCall`` carries); logged and left out if too large."""
        if not data or call.conn_id is None:
            return
        problem = too_big(call, data)
        if problem is not None:
            log.warning(
                "call %s: data not attached: %s", call.call_id, problem, extra=call.log_fields()
            )
            return
        call.switch.request(
            TUpdateUserData(
                reference_id=self.ctx.ref(), conn_id=call.conn_id, dn=call.dn, user_data=data
            )
        )


def _writable(call: Call) -> str | None:
    """The ConnID user data can be written to, or ``None`` (no call on the switch)."""
    return call.conn_id if call.state is not CallState.DETACHED else None
