"""Acts on the calls of IVR ports (docs/api.md, "Calls" and "Outbound"): user data, the caller
hanging up, ending a call to free its port, and predictive calls; and a call's timeline."""

from __future__ import annotations

__all__ = [
    "delete_all_user_data",
    "delete_key",
    "dial_out",
    "end_call",
    "end_port_call",
    "get_timeline",
    "release",
    "set_user_data",
]

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ivr_server.api.answers import json_response, read_body
from ivr_server.api.models import DialOutBody, EndCallBody, ReleaseBody, UserDataBody, kv_items
from ivr_server.calls.timeline_view import view
from ivr_server.outbound import DialOutOutcome, DialOutRequest

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer


def who(request: web.Request) -> str:
    """Who asked, for the log of an operator action."""
    return f"API client {request.remote or '?'}"


async def get_timeline(api: ApiServer, request: web.Request) -> web.StreamResponse:
    """A call's timeline, while it runs and for ``timeline-retention`` after it ended."""
    call_id = request.match_info["call_id"]
    now = api.now()
    entries, ended_at = api.control.timeline(call_id, now, request.query.get("ivr"))
    wall = time.time() - now  # the loop's clock to Unix seconds
    return json_response(
        {
            "call_id": call_id,
            "ended": ended_at is not None,
            "ended_at": round(ended_at + wall, 6) if ended_at is not None else None,
            "entries": view(entries, wall),
        }
    )


async def set_user_data(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, UserDataBody)
    result = api.control.set_user_data(
        request.match_info["call_id"],
        kv_items(body.data),
        replace=body.action == "replace",
        now=api.now(),
        ivr=request.query.get("ivr"),
    )
    return api.acted(result)


async def delete_all_user_data(api: ApiServer, request: web.Request) -> web.StreamResponse:
    await read_body(request, ReleaseBody)
    call_id = request.match_info["call_id"]
    return api.acted(
        api.control.delete_user_data(call_id, None, now=api.now(), ivr=request.query.get("ivr"))
    )


async def delete_key(api: ApiServer, request: web.Request) -> web.StreamResponse:
    await read_body(request, ReleaseBody)
    info = request.match_info
    return api.acted(
        api.control.delete_user_data(
            info["call_id"], info["key"], now=api.now(), ivr=request.query.get("ivr")
        )
    )


async def release(api: ApiServer, request: web.Request) -> web.StreamResponse:
    await read_body(request, ReleaseBody)
    return api.acted(
        api.control.release(
            request.match_info["call_id"], now=api.now(), ivr=request.query.get("ivr")
        )
    )


async def end_call(api: ApiServer, request: web.Request) -> web.StreamResponse:
    """End a call on the server's side, as its Call Timeout does: the port is free."""
    await read_body(request, ReleaseBody)
    call = api.control.call(request.match_info["call_id"], request.query.get("ivr"))
    result = api.control.end_call(call.call_id, by=who(request), now=api.now(), ivr=call.ivr)
    return api.acted(result, call_id=call.call_id, ivr=call.ivr, port=call.port)


async def end_port_call(api: ApiServer, request: web.Request) -> web.StreamResponse:
    """The same by IVR and port: any port can be freed, whatever its call's CallId."""
    body = await read_body(request, EndCallBody)
    info = request.match_info
    call = api.control.port_call(info["ivr"], info["port"])
    result = api.control.end_port_call(
        info["ivr"], info["port"], call_id=body.call_id, by=who(request), now=api.now()
    )
    return api.acted(result, call_id=call.call_id, ivr=call.ivr, port=call.port)


async def dial_out(api: ApiServer, request: web.Request) -> web.StreamResponse:
    """A predictive call: answered once the call is established or has failed for good (or,
    202, when neither happened in time)."""
    body = await read_body(request, DialOutBody)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    outcomes: list[dict[str, Any]] = []

    def on_outcome(request: DialOutRequest, outcome: DialOutOutcome) -> None:
        outcomes.append(
            {
                "kind": outcome.kind,
                "call_id": outcome.call_id,
                "error_code": outcome.error_code,
                "cause": outcome.cause,
                "time": round(time.time(), 6),
            }
        )
        if (outcome.final or outcome.kind == "established") and not done.done():
            done.set_result(None)

    try:
        dialled = api.control.dial_out(
            on_outcome,
            body.dn,
            body.dest,
            timeout=body.timeout,
            user_data=kv_items(body.user_data),
            extensions=kv_items(body.extensions),
            now=api.now(),
        )
    finally:
        api.server.flush()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(done), body.timeout + dialled.time_to_answer + 5)
    last = outcomes[-1] if outcomes else None
    if last is None:
        status = 202
    elif last["kind"] in ("established", "ended"):
        status = 200
    else:
        status = 409
    return json_response(
        {
            "ref_id": dialled.ref_id,
            "dn": body.dn,
            "dest": body.dest,
            "result": last["kind"] if last else "pending",
            "call_id": next((o["call_id"] for o in outcomes if o["call_id"]), None),
            "outcomes": outcomes,
        },
        status,
    )
