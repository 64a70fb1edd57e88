"""ReferenceIDs: the numbers a T-Library client puts on its requests, 32-bit safe.

A switch echoes a request's ReferenceID on every event the request causes, so each client of the
switch inside ivr-server (the service's own requests, the call side, the routers, the API's
actions) tells its answers apart from the others' by drawing from a range of its own. A premise
link carries ReferenceIDs as signed 32-bit integers (T-Library's ``AttributeReferenceID``, CSTA
invoke ids), so every range lies in ``1 .. 2**31 - 1`` and a range that runs out starts again at
its beginning: a request is answered within seconds, long before a range of hundreds of millions
comes round again.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CALLS",
    "CONTROL",
    "REFERENCE_ID_MAX",
    "ROUTERS",
    "SERVICE",
    "ReferenceIds",
]

REFERENCE_ID_MAX: Final = 2**31 - 1
"""The largest ReferenceID a 32-bit signed field carries."""


class ReferenceIds:
    """Hands out the ReferenceIDs of one range ``first .. last`` in turn, wrapping at ``last``."""

    def __init__(self, first: int, last: int) -> None:
        if not 1 <= first <= last <= REFERENCE_ID_MAX:
            raise ValueError(
                f"ReferenceID range {first}..{last} is not within 1..{REFERENCE_ID_MAX}"
            )
        self._first = first
        self._last = last
        self._next = first

    def __call__(self) -> int:
        """The next ReferenceID of the range."""
        ref = self._next
        self._next = ref + 1 if ref < self._last else self._first
        return ref

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, int) and self._first <= ref <= self._last

    @property
    def first(self) -> int:
        """The first ReferenceID of the range."""
        return self._first

    @property
    def last(self) -> int:
        """The last ReferenceID of the range."""
        return self._last


SERVICE: Final = (1, 499_999_999)
"""The service's own requests (agent control asked by IVRs, DN registration)."""
CALLS: Final = (500_000_000, 1_499_999_999)
"""The call side's requests (inbound and outbound calls, user data, routing, release)."""
ROUTERS: Final = (1_500_000_000, 1_899_999_999)
"""The routers' requests (RouteCall, ApplyTreatment)."""
CONTROL: Final = (1_900_000_000, REFERENCE_ID_MAX)
"""The API's actions."""
