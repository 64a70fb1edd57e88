"""What an operator can make the simulated PBX do, as typed operations shared by the HTTP API (the
request bodies) and the scenario file (its steps), and the one function that applies them.

Each operation is a frozen msgspec struct whose fields are the JSON / TOML keys; unknown keys are
refused. In a scenario the ``op`` key names the operation; the API knows it from the endpoint.
"""

from __future__ import annotations

__all__ = [
    "Answer",
    "Deliver",
    "Drop",
    "Hangup",
    "Operation",
    "Refuse",
    "SetDn",
    "apply",
    "refusal_of",
]

from typing import Any, Final

import msgspec

from ivr_server.sim.model import SimError
from ivr_server.sim.pbx import SimPbx
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import MESSAGE_TYPES
from ivr_server.switch.csta.server import Refusal, csta_error

REQUEST_KINDS: Final = frozenset(
    name for name, cls in MESSAGE_TYPES.items() if issubclass(cls, m.CstaRequest)
)
"""The request kinds a refusal rule may name (the documents' root element names)."""


class _Op(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="op"):
    """Base of the operations."""


class Deliver(_Op, frozen=True, kw_only=True, tag="deliver"):
    """An inbound call from ``from`` to DN ``to``."""

    from_: str = msgspec.field(name="from")
    to: str
    dnis: str | None = None
    """The number the caller dialled (default: ``to``)."""
    queue: str | None = None
    """The ACD queue DN the call came through (Delivered's lastRedirectionDevice)."""
    answer_after: float | None = None
    """Seconds before the DN answers (default: the DN's answer delay)."""
    call: str | None = None
    """Scenario only: a name later steps use for this call."""


class Answer(_Op, frozen=True, kw_only=True, tag="answer"):
    """The called DN answers a ringing call."""

    call: str


class Hangup(_Op, frozen=True, kw_only=True, tag="hangup"):
    """A party hangs up: the caller when ``party`` is absent, else that device (the called DN, a
    conference party, the consulted DN)."""

    call: str
    party: str | None = None


class SetDn(_Op, frozen=True, kw_only=True, tag="dn"):
    """Change a DN: busy, no answer, its answer delay, in or out of service."""

    dn: str
    busy: bool | None = None
    no_answer: bool | None = None
    answer_delay: float | None = None
    in_service: bool | None = None


class Refuse(_Op, frozen=True, kw_only=True, tag="refuse"):
    """Refuse the next ``count`` requests of kind ``request`` with ``error`` after ``delay``."""

    request: str
    error: str
    """A CSTA error value (``invalidDestination``) or ``category/value``."""
    delay: float = 0.0
    count: int = 1


class Drop(_Op, frozen=True, kw_only=True, tag="drop"):
    """Close every CSTA connection now; refuse new ones for ``down_for`` seconds."""

    down_for: float = 0.0


Operation = Deliver | Answer | Hangup | SetDn | Refuse | Drop


def refusal_of(op: Refuse) -> Refusal:
    """The refusal rule ``op`` asks for; :class:`SimError` 400 when it names nothing known."""
    if op.request not in REQUEST_KINDS:
        raise SimError(400, f"unknown CSTA request {op.request!r}")
    if op.delay < 0 or op.count < 1:
        raise SimError(400, "delay must not be negative and count must be at least 1")
    try:
        error = csta_error(op.error)
    except ValueError as bad:
        raise SimError(400, str(bad)) from None
    return Refusal(request=op.request, error=error, delay=op.delay, count=op.count)


def apply(pbx: SimPbx, op: Operation, now: float, names: dict[str, str]) -> dict[str, Any]:
    """Do ``op`` on ``pbx``; what it did, as the API answers it. ``names`` maps the scenario's
    call names to call ids (an unknown name is taken as a call id)."""
    if isinstance(op, Deliver):
        call = pbx.deliver(
            op.from_, op.to, now, dnis=op.dnis, queue=op.queue, answer_after=op.answer_after
        )
        if op.call is not None:
            names[op.call] = call.id
        return call.as_json()
    if isinstance(op, Answer):
        return pbx.answer(names.get(op.call, op.call), now).as_json()
    if isinstance(op, Hangup):
        return pbx.hangup(names.get(op.call, op.call), now, party=op.party).as_json()
    if isinstance(op, SetDn):
        return pbx.set_dn(
            op.dn,
            busy=op.busy,
            no_answer=op.no_answer,
            answer_delay=op.answer_delay,
            in_service=op.in_service,
        )
    if isinstance(op, Refuse):
        rule = refusal_of(op)
        pbx.add_refusal(rule)
        error = f"{rule.error.category}/{rule.error.value}"
        return {"request": rule.request, "error": error, "delay": rule.delay, "count": rule.count}
    dropped = pbx.drop_link(now, op.down_for)
    return {"dropped": dropped, "down_for": op.down_for}
