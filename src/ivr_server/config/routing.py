"""The built-in router's rules (TOML ``[[routing]]``) and the agent groups they target
(``[[agent-groups]]``): the rule language of ``docs/routing.md``.

:mod:`ivr_server.routing` compiles these rules; their cross-references (routing points, queues,
groups) are checked in :mod:`.checks`.
"""

from __future__ import annotations

__all__ = [
    "MATCH_FIELDS",
    "MATCH_OPERATORS",
    "TARGET_KEYS",
    "UDATA_PREFIX",
    "AgentGroupConfig",
    "MatchCondition",
    "MatchOperator",
    "RoutingConfig",
    "RoutingRule",
    "TreatmentConfig",
]

import re
from typing import Annotated, Final, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ivr_server.vocabulary import RouteType, TreatmentType

from .base import ConfigModel
from .fields import Flag, Name, Number, NumberText
from .kv import KvTable

MatchOperator = Literal["equals", "prefix", "regex", "present"]
"""How a match condition tests its field."""

MATCH_OPERATORS: Final[tuple[MatchOperator, ...]] = ("equals", "prefix", "regex", "present")
"""The operators of a match condition; a condition uses exactly one."""

MATCH_FIELDS: Final[tuple[str, ...]] = ("dnis", "ani", "ced")
"""Route-request attributes a condition may test, besides ``udata.<Key>``."""

UDATA_PREFIX: Final = "udata."
"""Prefix of a condition field naming a user-data key: ``udata.Segment``."""

TARGET_KEYS: Final[tuple[str, ...]] = ("dn", "queue", "agent-group", "routing-point", "default")
"""The target keys of a routing rule; a rule has exactly one."""


class MatchCondition(ConfigModel):
    """One condition of a routing rule: ``{ field = "ced", equals = "1" }``.

    Exactly one operator is given. A field is *absent* when the route request does not carry it:
    ``dnis``, ``ani`` and ``ced`` are absent when missing or empty; ``udata.<Key>`` is absent when
    the call's user data has no top-level item named ``Key``. An absent field, or a ``List`` item
    of user data, never satisfies ``equals``, ``prefix`` or ``regex``.
    """

    field: str
    """What is tested: ``dnis``, ``ani``, ``ced`` (the RouteRequest's collected digits) or
    ``udata.<Key>`` (the value of the first top-level user-data item named ``Key``)."""
    equals: NumberText | None = None
    """The field's value is exactly this string (a TOML integer is its decimal string)."""
    prefix: NumberText | None = None
    """The field's value starts with this string."""
    regex: str | None = None
    """The whole value matches this Python regular expression (``re.fullmatch``: write
    ``.*abc.*`` to find ``abc`` anywhere)."""
    present: Flag | None = None
    """``true``: the field is present; ``false``: it is absent."""

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if value in MATCH_FIELDS:
            return value
        if value.startswith(UDATA_PREFIX) and len(value) > len(UDATA_PREFIX):
            return value
        raise ValueError(f"unknown field {value!r}: use dnis, ani, ced or udata.<Key>")

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression {value!r}: {error}") from None
        return value

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        given = [name for name in MATCH_OPERATORS if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"a condition needs exactly one operator: equals, prefix, regex or present"
                f" (found: {found})"
            )
        return self

    @property
    def operator(self) -> MatchOperator:
        """The condition's operator."""
        return next(name for name in MATCH_OPERATORS if getattr(self, name) is not None)


class TreatmentConfig(ConfigModel):
    """A treatment a rule applies before routing: ``{ type = "PlayApplication", ... }``."""

    type: TreatmentType
    """``TreatCall/@Type``: one of the 18 treatment types of PROTOCOL.md §3.4.1."""
    parameters: KvTable = ()
    """``TreatCall/Parameters``, e.g. ``{ APP_ID = 1, LANGUAGE = "English(US)" }``."""
    extensions: KvTable = ()
    """``TreatCall/ExtnsEx``."""


class RoutingRule(ConfigModel):
    """One rule of a routing point: conditions, optional treatments, and where the call goes."""

    name: Name
    """The rule's name, unique within its routing point (logs, the dialog view)."""
    match: tuple[MatchCondition, ...] = ()
    """Conditions that must *all* hold; none = the rule always matches."""
    dn: Number | None = None
    """Target: route to this destination number (any string; need not be a configured DN)."""
    queue: Number | None = None
    """Target: the longest-idle ready agent logged in to this ``acd-queue`` DN (Dest = the
    agent's DN). The rule is skipped while that queue has no ready agent."""
    agent_group: Name | None = None
    """Target: the longest-idle ready agent of this ``[[agent-groups]]`` group. The rule is
    skipped while none of the group's agents is ready."""
    routing_point: Number | None = None
    """Target: route to this ``routing-point`` DN of the same switch (Dest = its number)."""
    default: Flag = False
    """Target: ``true`` = ``RouteResponse RouteType='Default'`` without ``Dest`` (the IVR's own
    default handling)."""
    route_type: RouteType | None = None
    """``RouteResponse/@RouteType``; default ``Normal`` (``Default`` for a ``default`` target,
    which allows no other)."""
    extensions: KvTable = ()
    """``RouteResponse/ExtnsEx`` of the routing."""
    attach: KvTable = ()
    """User data attached to the call (Replace semantics) just before it is routed."""
    treatments: tuple[TreatmentConfig, ...] = ()
    """Treatments applied one after the other before routing (the next when the previous ended
    or could not start)."""

    @field_validator("route_type")
    @classmethod
    def _check_route_type(cls, value: RouteType | None, info: ValidationInfo) -> RouteType | None:
        if value not in (None, "Default") and info.data.get("default") is True:
            raise ValueError(f"a 'default' target routes with RouteType Default, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = self.targets()
        if len(targets) != 1:
            found = ", ".join(targets) if targets else "none"
            raise ValueError(
                "a rule needs exactly one target: dn, queue, agent-group, routing-point"
                f" or default = true (found: {found})"
            )
        return self

    def targets(self) -> list[str]:
        """The TOML keys of the targets given (exactly one in a valid rule)."""
        values = (self.dn, self.queue, self.agent_group, self.routing_point)
        found = [key for key, value in zip(TARGET_KEYS, values, strict=False) if value is not None]
        if self.default:
            found.append("default")
        return found

    @property
    def effective_route_type(self) -> RouteType:
        """The RouteType the rule routes with: ``route-type``, else Default/Normal."""
        if self.route_type is not None:
            return self.route_type
        return "Default" if self.default else "Normal"


class RoutingConfig(ConfigModel):
    """The built-in router's rules for one routing point (TOML ``[[routing]]``)."""

    dn: Number
    """The routing point: a ``routing-point`` DN (the ``RouteRequest RouteDN``)."""
    switch: Name | None = None
    """The switch of ``dn``; needed only when several switches have a DN with that number."""
    rules: tuple[RoutingRule, ...] = ()
    """The rules, tried in order; a call no rule takes gets ``RouteType Default``."""


class AgentGroupConfig(ConfigModel):
    """A named set of agents a rule can target (TOML ``[[agent-groups]]``)."""

    name: Name
    """The group's name, unique; what ``agent-group`` in a rule names."""
    agents: Annotated[tuple[Number, ...], Field(min_length=1)]
    """Agent login ids (``AgentLogin AgentId``), each once; at least one."""
