"""Remote sites for access numbers (TOML ``[[locations]]``): the ``Location`` an
``AccessNumGet`` names, served by a DNIS pool of this server or by a peer ivr-server over its
HTTP API (MODES-AND-HA §1.4, G24; ``docs/access-numbers.md``). The original's ISCC options
``timeout`` and ``request-tout`` are ``lifetime`` and ``request-timeout`` here.
"""

from __future__ import annotations

__all__ = ["MAX_POOL_NUMBERS", "LocationConfig", "expand_numbers", "location_problems"]

from collections.abc import Sequence
from typing import Annotated, Final, Self

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from ivr_server.errors import ConfigProblem

from .base import ConfigModel
from .fields import Name, PositiveSeconds
from .statistics import StatisticConfig

MAX_POOL_NUMBERS: Final = 100_000
"""The most numbers one Location's pool may hold (a typo in a range must not eat the memory)."""


def _entry_to_str(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


NumberEntry = Annotated[str, BeforeValidator(_entry_to_str), Field(min_length=1)]
"""A pool entry: a number (``"88005501"``, or a TOML integer) or a range ``"first-last"``."""


def expand_numbers(entries: Sequence[str]) -> tuple[str, ...]:
    """The numbers ``entries`` name, in order, each once: a number stands for itself, a range
    ``first-last`` (digits of equal length, ``first <= last``) for every number between, with the
    same width (``"0100-0102"`` → ``0100 0101 0102``). Raises ``ValueError`` with the words the
    loader reports."""
    out: dict[str, None] = {}
    for entry in entries:
        text = entry.strip()
        first, dash, last = text.partition("-")
        if not dash:
            if not text or any(c.isspace() for c in text):
                raise ValueError(f"{entry!r} is not a number")
            numbers: Sequence[str] = (text,)
        else:
            first, last = first.strip(), last.strip()
            if not (first.isdigit() and last.isdigit() and len(first) == len(last)):
                raise ValueError(
                    f"range {entry!r}: write first-last with digits of the same length, "
                    "e.g. '88005500-88005599'"
                )
            low, high = int(first), int(last)
            if low > high:
                raise ValueError(f"range {entry!r}: the first number is above the last")
            if high - low + 1 > MAX_POOL_NUMBERS:
                raise ValueError(f"range {entry!r} holds more than {MAX_POOL_NUMBERS} numbers")
            numbers = [str(n).zfill(len(first)) for n in range(low, high + 1)]
        for number in numbers:
            if number in out:
                raise ValueError(f"number {number!r} is listed twice")
            out[number] = None
            if len(out) > MAX_POOL_NUMBERS:
                raise ValueError(f"a pool holds at most {MAX_POOL_NUMBERS} numbers")
    return tuple(out)


class LocationConfig(ConfigModel):
    """A remote site an ``AccessNumGet Location`` may name (TOML ``[[locations]]``): either a
    DNIS pool of this server (``numbers``) or a peer ivr-server (``peer``), never both."""

    name: Name
    """The ``Location`` value IVRs send (case-sensitive), unique."""
    numbers: tuple[NumberEntry, ...] = ()
    """The pool's access numbers: numbers and ranges ``"first-last"``; unique across every
    Location. The inbound call whose ``DNIS`` is a reserved number gets its data."""
    lifetime: PositiveSeconds = 60.0
    """How long a reserved number waits for its call before it is free again (ISCC
    ``timeout``). A bare number is seconds; a string may carry a unit (``"90s"``, ``"2min"``)."""
    peer: str | None = None
    """Base URL of the peer ivr-server's HTTP API (``"http://host:8021"``) that owns the pool:
    numbers are reserved there (``POST /api/v1/access-numbers``)."""
    peer_location: Name | None = None
    """The Location's name on the peer (default: ``name``)."""
    token: str | None = None
    """The peer's API bearer token (its ``[api] token``)."""
    request_timeout: PositiveSeconds = 20.0
    """How long an ``AccessNumGet`` waits for the peer before it is answered ``Failure`` (ISCC
    ``request-tout``)."""

    _numbers: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("peer")
    @classmethod
    def _check_peer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        scheme, sep, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not sep or not rest or "?" in rest:
            raise ValueError(f"{value!r} is not an HTTP base URL: write http://host:port")
        return url

    @model_validator(mode="after")
    def _pool_or_peer(self) -> Self:
        if self.peer is None and not self.numbers:
            raise ValueError("a location needs numbers (a DNIS pool here) or peer (a peer server)")
        if self.peer is not None and self.numbers:
            raise ValueError("a location has numbers or a peer, not both")
        if self.peer is None and (self.token is not None or self.peer_location is not None):
            raise ValueError("token and peer-location go with peer")
        self._numbers = expand_numbers(self.numbers)
        return self

    @property
    def pool(self) -> tuple[str, ...]:
        """Every number of the pool, expanded, in order (empty for a peer)."""
        return self._numbers

    @property
    def remote_name(self) -> str:
        """The Location's name on the peer."""
        return self.peer_location or self.name


def location_problems(
    locations: Sequence[LocationConfig | None], statistics: Sequence[StatisticConfig | None]
) -> list[ConfigProblem]:
    """Names unique, numbers unique across pools, and every ``Location`` statistic naming a
    configured Location (``None`` items failed validation on their own and are skipped)."""
    problems: list[ConfigProblem] = []
    name_at: dict[str, int] = {}
    number_at: dict[str, str] = {}
    for i, location in enumerate(locations):
        if location is None:
            continue
        if location.name in name_at:
            problems.append(
                ConfigProblem(
                    f"locations[{i}].name",
                    f"duplicate location {location.name!r} (first at locations"
                    f"[{name_at[location.name]}])",
                )
            )
            continue
        name_at[location.name] = i
        for number in location.pool:
            other = number_at.setdefault(number, location.name)
            if other != location.name:
                problems.append(
                    ConfigProblem(
                        f"locations[{i}].numbers",
                        f"number {number!r} is also in the pool of location {other!r}",
                    )
                )
                break
    complete = all(location is not None for location in locations)
    for i, stat in enumerate(statistics):
        if stat is None or stat.object_type != "Location":
            continue
        if stat.object_id not in name_at and complete:
            problems.append(
                ConfigProblem(
                    f"statistics[{i}].object-id",
                    f"unknown location {stat.object_id!r} (locations: "
                    f"{', '.join(repr(n) for n in sorted(name_at)) or 'none'})",
                )
            )
        elif stat.object_id in name_at:
            location = locations[name_at[stat.object_id]]
            if location is not None and location.peer is not None:
                problems.append(
                    ConfigProblem(
                        f"statistics[{i}].object-id",
                        f"location {stat.object_id!r} is a peer's: its pool is counted there",
                    )
                )
    return problems
