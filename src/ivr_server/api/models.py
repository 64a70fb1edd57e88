"""The JSON bodies (and the event stream's query) the API accepts, as strict pydantic models
(unknown fields are refused).

Every act endpoint validates its whole body with one of these before it looks anything up or
sends anything, so a malformed request changes nothing (docs/api.md, "Errors").
"""

from __future__ import annotations

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "AgentLoginBody",
    "AgentLogoutBody",
    "AgentStateBody",
    "EndCallBody",
    "EventQuery",
    "KvItemIn",
    "KvListIn",
    "KvNodeIn",
    "LinkBody",
    "LogLevelBody",
    "ReleaseBody",
    "ReloadBody",
    "RouteBody",
    "RouterBody",
    "TreatmentBody",
    "UserDataBody",
    "WebhookAnswer",
    "kv_items",
]

from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
    model_validator,
)

from ivr_server.vocabulary import (
    LogLevel,
    NodeType,
    RouterMode,
    RouteType,
    TreatmentType,
    WorkMode,
)
from ivr_server.wire import KvList, List, Node

INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class KvNodeIn(_Body):
    """One key/value pair."""

    name: str = Field(min_length=1)
    """The key (case-sensitive; keys may repeat)."""
    type: NodeType = "Str"
    """``Str`` (default), ``Int`` (32-bit signed) or ``Bin`` (opaque text)."""
    value: StrictStr | StrictInt
    """A string; for ``Int`` a number or its decimal text."""

    @model_validator(mode="after")
    def _check_value(self) -> Self:
        if self.type == "Int":
            value = self.value
            if isinstance(value, str):
                text = value.strip()
                if not text.lstrip("+-").isdigit():
                    raise ValueError(f"an Int value must be an integer, got {value!r}")
                value = int(text)
            if not INT_MIN <= value <= INT_MAX:
                raise ValueError(f"an Int value must fit in 32 bits, got {value}")
        elif not isinstance(self.value, str):
            raise ValueError(f"a {self.type} value must be a string")
        return self


class KvListIn(_Body):
    """A named nested list."""

    name: str = Field(min_length=1)
    """The key of the nested list."""
    items: list[KvItemIn] = Field(alias="list", min_length=1)
    """The nested items, in order (at least one)."""


def _kind(value: Any) -> str:
    if isinstance(value, dict) and "list" in value:
        return "list"
    if isinstance(value, KvListIn):
        return "list"
    return "node"


KvItemIn = Annotated[
    Annotated[KvNodeIn, Tag("node")] | Annotated[KvListIn, Tag("list")],
    Discriminator(_kind),
]
"""A key/value item: ``{"name", "type", "value"}`` or ``{"name", "list": [...]}``."""

KvListIn.model_rebuild()


def kv_items(items: list[KvNodeIn | KvListIn]) -> KvList:
    """Validated JSON items as a wire key/value list."""
    out: list[Node | List] = []
    for item in items:
        if isinstance(item, KvNodeIn):
            value = item.value
            text = str(int(str(value).strip())) if item.type == "Int" else str(value)
            out.append(Node(Name=item.name, Type=item.type, Val=text))
        else:
            out.append(List(Name=item.name, items=kv_items(item.items)))
    return tuple(out)


class UserDataBody(_Body):
    """``POST /api/v1/calls/{call_id}/user-data``."""

    action: Literal["add", "replace"]
    """``add`` = TAttachUserData (appended, duplicates kept); ``replace`` = TUpdateUserData
    (existing keys overwritten in place, later duplicates removed, new keys appended)."""
    data: list[KvItemIn] = Field(min_length=1)
    """The items to write."""


class DialOutBody(_Body):
    """``POST /api/v1/dial-out``: a predictive call (TMakePredictiveCall)."""

    dn: str = Field(min_length=1)
    """The routing point an IVR session registered with ``DialOutRegistry`` (AttributeThisDN)."""
    dest: str = Field(min_length=1)
    """The number to dial (AttributeOtherDN, ``DialOut/@DestNum``)."""
    timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds the IVR has to answer with DialOutInit or DialOutError; also its TimeToAnswer."""
    user_data: list[KvItemIn] = Field(default_factory=list)
    """``DialOut/UDataEx``: attached to the call."""
    extensions: list[KvItemIn] = Field(default_factory=list)
    """``DialOut/ExtnsEx``."""


class ReleaseBody(_Body):
    """``POST /api/v1/calls/{call_id}/release``: no fields (an empty body is fine)."""


class EndCallBody(_Body):
    """``POST /api/v1/ivrs/{ivr}/ports/{port}/end-call``: end the port's call."""

    call_id: str | None = None
    """The CallId the caller expects on the port: when given and the port has another call
    (the one seen has ended, a new one came), nothing is done (409). Omitted: whatever call."""


class RouteBody(_Body):
    """``POST .../route``: TRouteCall."""

    route_type: RouteType = "Normal"
    """AttributeRouteType: the ``RouteResponse/@RouteType`` the IVR gets."""
    dest: str | None = Field(default=None, min_length=1)
    """The destination (``RouteResponse/Dest``); none for ``Default``."""
    extensions: list[KvItemIn] = Field(default_factory=list)
    """``RouteResponse/ExtnsEx``."""


class TreatmentBody(_Body):
    """``POST .../treatment``: TApplyTreatment."""

    type: TreatmentType
    """The ``TreatCall/@Type``."""
    parameters: list[KvItemIn] = Field(default_factory=list)
    """``TreatCall/Parameters``."""
    extensions: list[KvItemIn] = Field(default_factory=list)
    """``TreatCall/ExtnsEx``."""


class RouterBody(_Body):
    """``PUT /api/v1/routing-points/{switch}/{dn}/router``."""

    router: RouterMode
    """``builtin`` (the configuration's rules), ``external`` (API clients route), ``webhook``
    (the server asks ``url``) or ``none`` (only the router timeout answers)."""
    url: str | None = None
    """The webhook's ``http://`` or ``https://`` URL (``webhook`` only)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _url_iff_webhook(self) -> Self:
        if self.router == "webhook" and self.url is None:
            raise ValueError("a webhook router needs a url")
        if self.router != "webhook" and self.url is not None:
            raise ValueError("url is for the webhook router only")
        return self


class AgentLoginBody(_Body):
    """``POST /api/v1/agents/{switch}/{dn}/login``: TAgentLogin."""

    agent_id: str = Field(min_length=1)
    """AttributeAgentID."""
    queue: str = ""
    """ACD queue DN to log into (empty: none)."""
    password: str = ""
    """AttributePassword (not checked by the virtual switch)."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """``AutoIn``/``ManualIn`` end the login Ready, anything else NotReady."""


class AgentLogoutBody(_Body):
    """``POST /api/v1/agents/{switch}/{dn}/logout``: TAgentLogout."""

    queue: str | None = None
    """The queue to log out of (default: the login's)."""


class AgentStateBody(_Body):
    """``POST .../ready`` (TAgentSetReady) and ``.../not-ready`` (TAgentSetNotReady)."""

    queue: str = ""
    """The agent's queue (empty: the login's)."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode."""


class LinkBody(_Body):
    """``PUT /api/v1/switches/{switch}/link``."""

    up: StrictBool
    """``true`` brings the T-Server link up, ``false`` takes it down."""


class LogLevelBody(_Body):
    """``PUT /api/v1/log-level``."""

    level: LogLevel
    """The new level of the server's logs."""

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ReloadBody(_Body):
    """``POST /api/v1/reload``: re-read the configuration file."""

    force: bool = False
    """Apply a file that would take away the IVR, port, switch or DN of live calls (those calls
    are ended first); without it such a file is refused (409) and nothing changes."""


class EventQuery(_Body):
    """``GET /api/v1/events``: the event stream's filters, query parameters, each repeatable or
    comma-separated; different filters combine with AND."""

    dn: list[str] = Field(default_factory=list)
    """Only events whose ``dn`` is one of these DNs."""
    ivr: list[str] = Field(default_factory=list)
    """Only events on the port DNs of these IVRs (``dn`` or ``other_dn``)."""
    type: list[str] = Field(default_factory=list)
    """Only these event names (e.g. ``EventRouteRequest``)."""


class _WebhookTreatment(_Body):
    type: TreatmentType
    parameters: list[KvItemIn] = Field(default_factory=list)
    extensions: list[KvItemIn] = Field(default_factory=list)


class WebhookAnswer(BaseModel):
    """A webhook's answer: a route (``route_type``, ``dest``, ``extensions``), a treatment
    (``{"treatment": {"type", "parameters", "extensions"}}``) or nothing (``{}``: stay silent,
    the router timeout answers). Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    route_type: RouteType | None = None
    dest: str | None = None
    extensions: list[KvItemIn] = Field(default_factory=list)
    treatment: _WebhookTreatment | None = None

    @model_validator(mode="after")
    def _one_answer(self) -> Self:
        if self.treatment is not None and (self.route_type is not None or self.dest is not None):
            raise ValueError("answer either a route or a treatment, not both")
        return self
