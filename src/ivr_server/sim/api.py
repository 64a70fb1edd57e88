"""The CSTA simulator's HTTP API (aiohttp), JSON in and out: deliver, answer and hang up calls, set
DNs busy / no-answer / out of service, add refusal rules, drop the link, and read calls, DNs and
the application sessions. Every endpoint is in ``docs/csta-sim.md``.

The handlers decode the body into an operation of :mod:`.operations`, apply it through the
:class:`Driver` (which writes what the PBX then has to send) and answer; errors are JSON
``{"error": "..."}`` with the status :class:`~.pbx.SimError` carries (400 for a bad body).
"""

from __future__ import annotations

__all__ = ["Driver", "build_api"]

from typing import Any, Protocol, TypeVar

import msgspec
from aiohttp import web

from ivr_server.sim.model import SimError
from ivr_server.sim.operations import (
    Answer,
    Deliver,
    Drop,
    Hangup,
    Operation,
    Refuse,
    SetDn,
)
from ivr_server.sim.pbx import SimPbx


class Driver(Protocol):
    """What the API needs of the running simulator."""

    @property
    def pbx(self) -> SimPbx:
        """The simulated PBX."""
        ...

    def now(self) -> float:
        """The PBX's clock."""
        ...

    def run(self, op: Operation) -> dict[str, Any]:
        """Apply ``op`` now and send what follows; its result (raises :class:`SimError`)."""
        ...

    def run_all(self, ops: list[Operation]) -> list[dict[str, Any] | SimError]:
        """Apply ``ops`` in turn now, then send what follows; each one's result or error."""
        ...


_DRIVER: web.AppKey[Driver] = web.AppKey("driver")
_NOT_DELIVERED = ("busy", "out-of-service")


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


_T = TypeVar("_T")


async def _body(request: web.Request, kind: type[_T], **fields: str) -> _T:
    """The request body as ``kind`` (``fields`` added from the path); 400 when it is not."""
    raw = await request.read()
    try:
        data = msgspec.json.decode(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise msgspec.ValidationError("the body must be a JSON object")
        data.update(fields)
        return msgspec.convert(data, kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as bad:
        raise web.HTTPBadRequest(
            text=msgspec.json.encode({"error": str(bad)}).decode(), content_type="application/json"
        ) from None


def _run(request: web.Request, op: Operation, status: int = 200) -> web.Response:
    try:
        result = request.app[_DRIVER].run(op)
    except SimError as bad:
        return _error(bad.status, bad.message)
    return _json(result, status)


async def deliver(request: web.Request) -> web.Response:
    """POST /api/v1/calls: 201 with the call; 409 (the call, its ``error``) when busy."""
    op = await _body(request, Deliver)
    try:
        call = request.app[_DRIVER].run(op)
    except SimError as bad:
        return _error(bad.status, bad.message)
    if call["state"] in _NOT_DELIVERED:
        return _json({**call, "error": f"DN {op.to} is {call['state']}"}, 409)
    return _json(call, 201)


class _Batch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    calls: list[Deliver]


async def deliver_batch(request: web.Request) -> web.Response:
    """POST /api/v1/calls/batch: several deliveries in one request (load generators); 200 with
    each one's call, or its ``error`` and ``status`` (the status a single delivery would get)."""
    batch = await _body(request, _Batch)
    results: list[dict[str, Any]] = []
    for result in request.app[_DRIVER].run_all(list(batch.calls)):
        if isinstance(result, SimError):
            results.append({"error": result.message, "status": result.status})
        elif result["state"] in _NOT_DELIVERED:
            results.append({**result, "error": f"DN {result['to']} is {result['state']}"})
            results[-1]["status"] = 409
        else:
            results.append({**result, "status": 201})
    return _json({"calls": results})


async def answer(request: web.Request) -> web.Response:
    """POST /api/v1/calls/{id}/answer."""
    return _run(request, Answer(call=request.match_info["id"]))


async def hangup(request: web.Request) -> web.Response:
    """POST /api/v1/calls/{id}/hangup: the caller hangs up, or the body's ``party``."""
    return _run(request, await _body(request, Hangup, call=request.match_info["id"]))


async def list_calls(request: web.Request) -> web.Response:
    """GET /api/v1/calls: every call kept, oldest first."""
    pbx = request.app[_DRIVER].pbx
    return _json({"calls": [call.as_json() for call in pbx.calls.values()]})


async def get_call(request: web.Request) -> web.Response:
    """GET /api/v1/calls/{id}."""
    try:
        return _json(request.app[_DRIVER].pbx.call(request.match_info["id"]).as_json())
    except SimError as bad:
        return _error(bad.status, bad.message)


async def set_dn(request: web.Request) -> web.Response:
    """PUT /api/v1/dns/{dn}."""
    return _run(request, await _body(request, SetDn, dn=request.match_info["dn"]))


async def list_dns(request: web.Request) -> web.Response:
    """GET /api/v1/dns."""
    pbx = request.app[_DRIVER].pbx
    return _json({"dns": [pbx.dn_json(dn) for dn in pbx.settings]})


async def add_refusal(request: web.Request) -> web.Response:
    """POST /api/v1/refusals: 201 with the rule."""
    return _run(request, await _body(request, Refuse), 201)


async def list_refusals(request: web.Request) -> web.Response:
    """GET /api/v1/refusals: the rules still waiting."""
    rules = request.app[_DRIVER].pbx.refusals.rules
    return _json(
        {
            "refusals": [
                {
                    "request": r.request,
                    "error": f"{r.error.category}/{r.error.value}",
                    "delay": r.delay,
                    "count": r.count,
                }
                for r in rules
            ]
        }
    )


async def drop_link(request: web.Request) -> web.Response:
    """POST /api/v1/link/drop."""
    return _run(request, await _body(request, Drop))


async def sessions(request: web.Request) -> web.Response:
    """GET /api/v1/sessions: the connected applications and their monitors."""
    pbx = request.app[_DRIVER].pbx
    return _json(
        {
            "sessions": [
                {
                    "link": link_id,
                    "peer": link.peer,
                    "session_id": link.session.session_id,
                    "application": link.session.application,
                    "state": link.session.state.value,
                    "duration_s": link.session.duration_s,
                    "monitors": dict(link.session.monitors),
                }
                for link_id, link in pbx.links.items()
            ]
        }
    )


async def health(request: web.Request) -> web.Response:
    """GET /api/v1/health."""
    driver = request.app[_DRIVER]
    pbx = driver.pbx
    live = sum(1 for c in pbx.calls.values() if c.state in ("alerting", "connected"))
    return _json(
        {
            "status": "ok",
            "name": pbx.name,
            "uptime_s": round(driver.now() - pbx.started, 3),
            "sessions": len(pbx.links),
            "calls": live,
            "link_refused": pbx.refuse_links_until > driver.now(),
        }
    )


def build_api(driver: Driver) -> web.Application:
    """The API application for ``driver``."""
    app = web.Application(client_max_size=64 * 1024)
    app[_DRIVER] = driver
    app.router.add_post("/api/v1/calls", deliver)
    app.router.add_post("/api/v1/calls/batch", deliver_batch)
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/calls/{id}", get_call)
    app.router.add_post("/api/v1/calls/{id}/answer", answer)
    app.router.add_post("/api/v1/calls/{id}/hangup", hangup)
    app.router.add_get("/api/v1/dns", list_dns)
    app.router.add_put("/api/v1/dns/{dn}", set_dn)
    app.router.add_post("/api/v1/refusals", add_refusal)
    app.router.add_get("/api/v1/refusals", list_refusals)
    app.router.add_post("/api/v1/link/drop", drop_link)
    app.router.add_get("/api/v1/sessions", sessions)
    app.router.add_get("/api/v1/health", health)
    return app
