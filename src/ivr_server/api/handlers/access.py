"""Access numbers over the API (docs/api.md, "Access numbers"; docs/access-numbers.md): the
pools of the Locations, and reserving, reading, releasing and claiming a number. A peer
ivr-server reserves numbers here for its calls' ``AccessNumGet`` (``api/peers.py``); any outside
system may do the same, and claim the data of a number a call arrived on."""

from __future__ import annotations

__all__ = [
    "AccessNumberBody",
    "AccessNumberPool",
    "AccessNumberReservation",
    "claim_number",
    "get_number",
    "get_pools",
    "release_number",
    "reserve_number",
]

import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr_server.api.answers import ApiError, json_response, read_body
from ivr_server.api.jsonify import kv_json
from ivr_server.api.models import KvItemIn, ReleaseBody, kv_items
from ivr_server.api.responses import KvItem
from ivr_server.calls import call_id_of
from ivr_server.sites import Reservation

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer
    from ivr_server.service.access_numbers import AccessNumberService

log = logging.getLogger("ivr_server.api")


class AccessNumberBody(BaseModel):
    """``POST /api/v1/access-numbers``: reserve a number of a Location's pool."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    location: str = Field(min_length=1)
    """The Location (``[[locations]] name``) whose pool gives the number."""
    dest: str = ""
    """The destination DN the number leads to (``AccessNumGet DestDN``; informative)."""
    user_data: list[KvItemIn] = Field(default_factory=list)
    """The data the call that arrives on the number gets."""


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class AccessNumberReservation(_Reply):
    """A reserved number and the data bound to it."""

    number: str
    location: str
    dest: str
    user_data: list[KvItem]
    call_id: str | None
    """The call of this server that asked (``null``: reserved over the API)."""
    by: str
    """``ivr`` (an ``AccessNumGet``) or ``api``."""
    reserved_at: float
    """Unix time."""
    expires_at: float
    """Unix time: free again then unless claimed."""


class AccessNumberPool(_Reply):
    """A Location: its pool's numbers now and what happened to them (a peer's: where it is)."""

    location: str
    peer: str | None
    size: int | None = None
    free: int | None = None
    reserved: int | None = None
    lifetime: float | None = None
    """Seconds a reserved number waits for its call."""
    reserved_total: int | None = None
    handed_off_total: int | None = None
    expired_total: int | None = None
    cancelled_total: int | None = None
    exhausted_total: int | None = None


def _service(api: ApiServer) -> AccessNumberService:
    return api.server.service.access_numbers


def _json(reservation: Reservation, api: ApiServer) -> dict[str, Any]:
    wall = time.time() - api.now()  # the loop's clock to Unix seconds
    return {
        "number": reservation.number,
        "location": reservation.location,
        "dest": reservation.dest,
        "user_data": kv_json(reservation.data),
        "call_id": call_id_of(reservation.call_id) if reservation.call_id else None,
        "by": reservation.by,
        "reserved_at": round(reservation.reserved_at + wall, 6),
        "expires_at": round(reservation.expires_at + wall, 6),
    }


def _found(reservation: Reservation | None, number: str) -> Reservation:
    if reservation is None:
        raise ApiError(404, f"access number {number!r} is not reserved")
    return reservation


async def get_pools(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(_service(api).snapshot(api.now()))


async def reserve_number(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, AccessNumberBody)
    service = _service(api)
    numbers = service.numbers
    if body.location not in numbers.locations:
        raise ApiError(404, f"unknown location {body.location!r}")
    got = numbers.reserve(body.location, body.dest, kv_items(body.user_data), api.now(), by="api")
    if isinstance(got, str):
        raise ApiError(409, got)
    service.changed()
    api.server.flush()  # the number's lifetime is a timer of the service
    log.info(
        "API: access number %s of location %s reserved by %s",
        got.number,
        got.location,
        request.remote or "?",
    )
    return json_response(_json(got, api), 201)


async def get_number(api: ApiServer, request: web.Request) -> web.StreamResponse:
    number = request.match_info["number"]
    return json_response(_json(_found(_service(api).numbers.peek(number), number), api))


async def release_number(api: ApiServer, request: web.Request) -> web.StreamResponse:
    await read_body(request, ReleaseBody)
    number = request.match_info["number"]
    service = _service(api)
    reservation = _found(service.numbers.release(number), number)
    service.changed()
    return json_response(_json(reservation, api))


async def claim_number(api: ApiServer, request: web.Request) -> web.StreamResponse:
    await read_body(request, ReleaseBody)
    number = request.match_info["number"]
    return json_response(_json(_found(_service(api).claim(number), number), api))
