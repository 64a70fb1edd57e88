"""The JSON documents the API answers, as pydantic models: the OpenAPI document's response
schemas are generated from them (:mod:`ivr_server.api.openapi`).

The handlers build plain JSON values (:mod:`ivr_server.api.views` and the handlers); these
models describe them, and the API tests validate real answers against them, so the description
and the server cannot drift apart. A field that some answers leave out is optional here
(``None`` by default); every other field is always present. Unknown fields are refused, except
in :class:`Event` (each event has its own attributes) and :class:`Stats`.
"""

from __future__ import annotations

__all__ = [
    "ActResult",
    "Agent",
    "Call",
    "CallRef",
    "CallTimeline",
    "DialOutResult",
    "DialOutStep",
    "Dn",
    "EndCallResult",
    "Error",
    "Event",
    "Ivr",
    "KvItem",
    "KvNestedList",
    "KvNode",
    "LinkResult",
    "LogLevel",
    "NetworkCall",
    "OpenApiDocument",
    "Party",
    "Port",
    "Problem",
    "Rates",
    "ReloadReport",
    "ReloadResult",
    "RouterChoice",
    "RoutingPoint",
    "ServerInfo",
    "Session",
    "State",
    "Stats",
    "StrandedCall",
    "Switch",
    "TimelineEntry",
    "TimelineError",
    "WaitingCall",
]

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ivr_server.vocabulary import DnType, NodeType, RouterMode


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)


# ------------------------------------------------------------------ key/value lists and events


class KvNode(_Reply):
    """One key/value pair."""

    name: str
    type: NodeType
    value: str | int
    """A number for ``Int``, a string otherwise."""


class KvNestedList(_Reply):
    """A named nested list."""

    name: str
    items: list[KvItem] = Field(alias="list")


class KvItem(RootModel[KvNode | KvNestedList]):
    """A user-data / extensions item: a node or a nested list (docs/api.md, "Key/value
    lists")."""


KvNestedList.model_rebuild()


class Event(_Open):
    """A switch event: its T-Library name, the switch, the Unix time, then every attribute of
    the event (docs/api.md, "Event JSON"). The event stream also sends ``{"event":
    "overflow"}`` before it drops a client that does not read."""

    event: str
    time: float
    switch: str | None = None
    reference_id: int | None = None
    """The request's ReferenceID; ``null`` for unsolicited events."""
    dn: str | None = None
    conn_id: str | None = None
    user_data: list[KvItem] | None = None
    extensions: list[KvItem] | None = None


# ------------------------------------------------------------------ errors and acts


class Problem(_Reply):
    """One problem of an invalid request body."""

    location: str
    message: str


class Error(_Reply):
    """Every 4xx/5xx answer. 400 adds ``problems``; 409 from the switch adds ``error_code``,
    ``error_name``, ``request`` and ``events``."""

    error: str
    problems: list[Problem] | None = None
    error_code: int | None = None
    error_name: str | None = None
    request: str | None = None
    events: list[Event] | None = None


class ActResult(_Reply):
    """What the act caused: every switch event published while it ran, in order."""

    events: list[Event]


class EndCallResult(_Reply):
    """The call ended (its IVR got ``EndCall EndCause='Timeout'``, its port is free) and every
    switch event that caused."""

    call_id: str
    ivr: str
    port: str
    events: list[Event]


class LinkResult(_Reply):
    """The link's state after the act, and the events it caused."""

    switch: str
    link_up: bool
    events: list[Event]


class RouterChoice(_Reply):
    """Who serves a routing point now."""

    switch: str
    dn: str
    router: RouterMode
    url: str | None


class LogLevel(_Reply):
    """The level of the server's logs."""

    level: str


class DialOutStep(_Reply):
    """One outcome of a predictive call."""

    kind: str
    """``dialing``, ``established``, ``refused``, ``timeout``, ``lost``, ``failed``,
    ``abandoned``, ``ended``..."""
    call_id: str | None
    error_code: int | None
    cause: str | None
    time: float


class DialOutResult(_Reply):
    """A predictive call: the last outcome (``pending`` if none yet) and every step."""

    ref_id: str
    dn: str
    dest: str
    result: str
    call_id: str | None
    outcomes: list[DialOutStep]


class StrandedCall(_Reply):
    """A call whose IVR, port, switch or DN a configuration takes away."""

    call_id: str
    ivr: str
    port: str
    reason: str


class ReloadReport(_Reply):
    """What an applied reload changed."""

    ports_unavailable: int
    ports_available: int
    switches_added: list[str]
    switches_removed: list[str]
    flow_control_changed: bool
    calls_ended: int


class ReloadResult(_Reply):
    """What a reload came to. ``result``: ``applied`` (200, with ``report``), ``refused`` (409:
    the file would take away the IVR, port, switch or DN of the ``stranded_calls``; nothing
    changed), ``invalid`` (409: the file does not load, ``problems``), ``no-file`` (409: the
    server runs on its built-in default). A forced reload lists in ``stranded_calls`` the calls
    it ended first. 409 answers also carry ``error``."""

    result: Literal["applied", "refused", "invalid", "no-file"]
    force: bool
    message: str
    error: str | None = None
    stranded_calls: list[StrandedCall]
    stranded_total: int
    problems: list[str]
    report: ReloadReport | None = None


# ------------------------------------------------------------------ reads


class Agent(_Reply):
    """The agent logged in on a DN."""

    agent_id: str
    state: Literal["Ready", "NotReady"]
    queue: str
    work_mode: str


class Dn(_Reply):
    """A DN of a switch."""

    number: str
    type: DnType
    registered: bool
    in_service: bool
    agent: Agent | None


class Switch(_Reply):
    """A switch: its T-Server, link state and DNs."""

    name: str
    tserver: str
    link_up: bool
    calls: int
    """The calls the switch holds now (every DN's, routing points' and extensions' included)."""
    dns: list[Dn]


class CallRef(_Reply):
    """The call of a port."""

    call_id: str
    conn_id: str | None
    state: str


class Port(_Reply):
    """A port of an IVR."""

    number: str
    dn: str
    switch: str | None
    enabled: bool
    available: bool
    agent: Agent | None
    call: CallRef | None


class Ivr(_Reply):
    """An IVR of the configuration with its ports."""

    name: str
    enabled: bool
    legacy_mode: bool
    tservers: list[str]
    sessions: list[int]
    """The ids of its connected sessions."""
    ports: list[Port]


class Session(_Reply):
    """A connected IVR session."""

    id: int
    peer: str
    client_name: str | None
    known_client: bool
    version: str | None
    monitor: bool
    documents_in: int
    documents_out: int
    opened_at: float


class Party(_Reply):
    """A DN of a call on the switch."""

    dn: str
    role: Literal["port", "party", "routing-point"]


class Call(_Reply):
    """A call of an IVR port. ``ani``, ``dnis``, ``parties`` and ``user_data`` are ``null`` in
    the ``state`` of a request without the token (``redacted``)."""

    call_id: str
    mode: Literal["In-Front", "Behind", "Network"]
    """The call's mode (docs/network.md, docs/behind.md)."""
    ivr: str
    port: str
    """The IVR port (Network: the ``CalledNum`` as the IVR sent it)."""
    dn: str
    """The port's DN (Network: the routing DN the call is at)."""
    routing_dn: str | None
    """Network: the routing DN the call is at; ``null`` for a port's call."""
    switch: str
    conn_id: str | None
    tscall_id: int | None
    state: str
    """In-Front/Behind: PROTOCOL.md §6.1; Network: §6.3 (``STARTED`` queued, ``WAITING`` for the
    router, ``TREAT_STARTING``, ``TREATING``, ``CANCELLING``, ``ROUTED``, ``CONNECTED``)."""
    ani: str | None
    dnis: str | None
    called_num: str | None
    last_event: str | None
    route_dn: str | None
    treatment: str | None
    connected: bool
    """A session of the IVR owns the call."""
    parties: list[Party] | None
    user_data: list[KvItem] | None


class TimelineError(_Reply):
    """What an error entry of a call's timeline says about the error."""

    code: str | None
    """The code as given: a T-Library decimal (``"56"``), an IVR-side symbol (``"BLOCKED_REQ"``,
    ``"NoSuchCall"``...), or ``null`` when the answer carried none."""
    name: str | None
    """The T-Library name of the code (``TERR_INV_CONNID``) or the symbol."""
    explanation: str
    """What the code means, in plain words."""
    request: str | None
    """The request that failed (``FailedReq``, or the switch request's T-Library name)."""
    switch_text: str | None = None
    """The switch's own error text (for a premise switch, the PBX's raw CSTA error)."""


class TimelineEntry(_Reply):
    """One step of a call's timeline."""

    time: float
    """When, in Unix seconds."""
    offset: float
    """Seconds since the first entry kept."""
    kind: Literal["ivr-in", "ivr-out", "switch-event", "router", "error"]
    name: str
    """The IVR XML element or the T-Library event."""
    summary: str
    """The name and the attributes; user data and extensions as their keys only."""
    reason: str | None = None
    """Why the server refused the IVR's request (refusals only)."""
    error: TimelineError | None = None
    """For ``error`` entries: the code, its name and what it means."""


class CallTimeline(_Reply):
    """A call's timeline: its last ``timeline-entries`` steps, oldest first."""

    call_id: str
    ended: bool
    """The call is over (its timeline is kept for ``timeline-retention``)."""
    ended_at: float | None
    """When it ended, in Unix seconds (``null`` while it runs)."""
    entries: list[TimelineEntry]


class WaitingCall(_Reply):
    """A call waiting at a routing point."""

    conn_id: str
    call_id: str | None
    ivr: str | None
    port: str | None
    ani: str | None
    dnis: str | None
    treatment: str | None
    since: float | None


class NetworkCall(_Reply):
    """A Network-mode call at its routing DN (docs/network.md), in any state."""

    call_id: str
    conn_id: str | None
    ivr: str
    state: str
    """PROTOCOL.md §6.3: ``STARTED``, ``WAITING``, ``TREAT_STARTING``, ``TREATING``,
    ``CANCELLING``, ``ROUTED``, ``CONNECTED``."""
    ani: str | None
    treatment: str | None
    since: float | None
    """When it started waiting for the router (its RouteRequest), Unix seconds."""


class RoutingPoint(_Reply):
    """A routing point: who routes its calls, and the calls waiting there."""

    switch: str
    dn: str
    router: RouterMode
    router_live: bool
    """Whether its router can be expected to answer (MODES-AND-HA G19): a Network call is taken
    only then. Built-in rules: always; an external router: heard of recently; a webhook: not
    failing; none: never."""
    url: str | None
    waiting: list[WaitingCall]
    network_calls: list[NetworkCall]
    """The Network-mode calls at this routing DN, waiting or not."""


class Stats(_Open):
    """The statistics engine's figures (docs/statistics.md)."""


class Rates(_Reply):
    """Per-second rates of cumulative counters between samples taken every ``interval``
    seconds, over the last ``window`` seconds, oldest first."""

    interval: float
    window: float
    series: list[str]
    samples: list[dict[str, float]]
    """``{"time", <series>: per second}``; ``time`` is the end of each interval."""


class ServerInfo(_Reply):
    """The server itself."""

    version: str
    version_string: str
    started_at: float
    time: float
    flow_control: bool
    listen: list[str]
    api_listen: list[str]
    log_level: str


class State(_Reply):
    """Everything, in one document. ``redacted``: the request had no token (``[api]
    public-read``): the calls' ``ani``, ``dnis``, ``parties`` and ``user_data``, the waiting
    calls' ``ani`` and ``dnis`` and the webhooks' ``url`` are ``null``."""

    server: ServerInfo
    switches: list[Switch]
    ivrs: list[Ivr]
    sessions: list[Session]
    calls: list[Call]
    routing_points: list[RoutingPoint]
    stats: Stats
    redacted: bool


class OpenApiDocument(_Open):
    """An OpenAPI 3.1 document."""

    openapi: str
