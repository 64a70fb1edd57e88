"""The configuration as typed, frozen objects, and the checks that tie its parts together.

Theory of operation. A configuration is one :class:`ServerConfig`: server-wide options
(:class:`ServerOptions`, with :class:`Timers`) and the configuration objects of PROTOCOL.md §5.5 —
switches with their DNs, T-Server applications, and IVR objects with their ports — plus the
built-in router's rules (:class:`RoutingConfig`, :class:`AgentGroupConfig`) and the named
statistics (:class:`StatisticConfig`). The models mirror
the TOML file one to one: TOML keys are the attribute names in kebab-case (``legacy-mode`` is
``legacy_mode``), unknown keys are errors, and every object is frozen once built.

Validation has two stages. Pydantic checks each value (types, ranges, syntax of addresses and
durations). Then :func:`reference_problems` checks what values say about each other (names are
unique, references resolve, a DN serves one port...). Both stages collect *every* problem; the
second (with :func:`routing_problems` for the routing rules and :func:`statistics_problems` for
the named statistics) raises
:class:`~ivr_server.errors.ConfigError` straight out of ``ServerConfig``'s
constructor, so an inconsistent ``ServerConfig`` cannot exist — built from TOML or in code.

Locations use one style everywhere: TOML keys joined by dots, list items by index, e.g.
``ivrs[0].ports[3].dn`` or ``server.timers.router-timeout``.

Numbers in ``[server.timers]`` follow the original's ``[Timers]`` section: in a TOML file a bare
number is milliseconds. The loader says so by validating with :func:`toml_context`; a model built
in Python (``Timers(router_timeout=0.5)``) takes seconds, the unit of the attributes.
"""

from __future__ import annotations

__all__ = [
    "MATCH_FIELDS",
    "MATCH_OPERATORS",
    "PORT_DN_TYPES",
    "STAT_OBJECT_TYPES",
    "STAT_TYPES",
    "TARGET_KEYS",
    "UDATA_PREFIX",
    "AgentGroupConfig",
    "AutoLogin",
    "DnConfig",
    "DnType",
    "IvrConfig",
    "KvTable",
    "KvValue",
    "ListenAddress",
    "MatchCondition",
    "MatchOperator",
    "OutputEncoding",
    "PortConfig",
    "RouteTypeName",
    "RoutingConfig",
    "RoutingRule",
    "ServerConfig",
    "ServerOptions",
    "StatObjectType",
    "StatisticConfig",
    "SwitchConfig",
    "SwitchType",
    "TServerConfig",
    "TcpKeepAlive",
    "Timers",
    "TreatmentConfig",
    "TreatmentType",
    "describe_value",
    "reference_problems",
    "routing_problems",
    "split_object_id",
    "statistics_problems",
    "toml_context",
]

import datetime
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ivr_server.errors import ConfigError, ConfigProblem

from .durations import DurationUnit, parse_duration

# --------------------------------------------------------------------------------------------
# Building blocks


def _kebab(name: str) -> str:
    """Attribute name → TOML key: ``legacy_mode`` → ``legacy-mode``."""
    return name.replace("_", "-")


_TOML_CONTEXT_KEY: Final = "ivr_server.config.notation"


def toml_context() -> dict[str, Any]:
    """The pydantic validation context meaning "these values come from a TOML file".

    With it, a bare number in ``[server.timers]`` is milliseconds (the original's notation);
    without it, seconds.
    """
    return {_TOML_CONTEXT_KEY: "toml"}


def _from_toml(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, Mapping) and context.get(_TOML_CONTEXT_KEY) == "toml"


class _Model(BaseModel):
    """Base of every configuration model: frozen, strict about keys, kebab-case in TOML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=_kebab,
        use_attribute_docstrings=True,
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` (attribute names → values) applied, validated and checked again.

        Unlike pydantic's own ``model_copy``, the result is a fully validated object: values are
        checked, lookups are rebuilt and a :class:`ServerConfig` is cross-checked (raising
        :class:`~ivr_server.errors.ConfigError`). Values are in Python units (seconds).
        """
        copy = super().model_copy(update=update, deep=deep)
        fields = {name: getattr(copy, name) for name in type(self).model_fields}
        return type(self).model_validate(fields)


def _duration(value: object, bare_unit: DurationUnit) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError(
            f"expected a duration such as '4s' or '500ms', got {describe_value(value)}"
        )
    return parse_duration(value, bare_unit=bare_unit)


def _timer_seconds(value: object, info: ValidationInfo) -> float:
    seconds = _duration(value, "ms" if _from_toml(info) else "s")
    if seconds <= 0:
        raise ValueError("a timer must be longer than zero")
    return seconds


def _positive_seconds(value: object) -> float:
    seconds = _duration(value, "s")
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _non_negative_seconds(value: object) -> float:
    seconds = _duration(value, "s")
    if seconds < 0:
        raise ValueError("must be zero or longer")
    return seconds


def _keep_alive_seconds(value: object) -> float:
    never = value in (-1, "-1") and not isinstance(value, bool)
    if never:
        return -1.0
    problem = "must be -1 (never send keep-alives) or a positive duration"
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ValueError(problem)
    seconds = _duration(value, "s")
    if seconds <= 0:
        raise ValueError(problem)
    return seconds


def _flag(value: object) -> object:
    """TOML booleans, and the original's spellings ``on``/``off``, ``true``/``false``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("on", "true"):
            return True
        if word in ("off", "false"):
            return False
    raise ValueError(f"expected true/false (or 'on'/'off'), got {describe_value(value)}")


def _number_to_str(value: object) -> object:
    """Let DN and port numbers be written as TOML integers: ``dn = 4001`` is ``"4001"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def describe_value(value: object) -> str:
    """A short description of a raw TOML value, for messages: ``'abc'``, ``12``, ``a table``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__


Flag = Annotated[bool, BeforeValidator(_flag)]
"""A boolean; TOML ``true``/``false``, or the strings ``on``/``off``/``true``/``false``."""

Name = Annotated[str, Field(min_length=1)]
"""A configuration object's name: non-empty, case-sensitive, compared byte for byte."""

Number = Annotated[str, BeforeValidator(_number_to_str), Field(min_length=1)]
"""A DN or port number: a non-empty string; a TOML integer is converted to its decimal string."""

TimerSeconds = Annotated[float, BeforeValidator(_timer_seconds)]
"""A ``[server.timers]`` duration in seconds (> 0); in TOML a bare number is milliseconds."""

PositiveSeconds = Annotated[float, BeforeValidator(_positive_seconds)]
"""A duration in seconds (> 0); a bare number is seconds, a string may carry a unit."""

OutputEncoding = Literal["ISO-8859-1", "UTF-8"]
"""Character encodings the server can write XML in."""


def _encoding(value: object) -> object:
    if isinstance(value, str) and value.upper() in ("ISO-8859-1", "UTF-8"):
        return value.upper()
    return value


Encoding = Annotated[OutputEncoding, BeforeValidator(_encoding)]
"""An output encoding; the case of the name does not matter (``utf-8`` is ``UTF-8``)."""

# --------------------------------------------------------------------------------------------
# Addresses

_HOSTNAME_RE: Final = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_LISTEN_SHAPE: Final = "expected 'host:port', '[ipv6]:port' or ':port'"
_CLIENT_SHAPE: Final = "expected 'host:port' or 'host:*' (IPv6 in brackets: '[::1]:*')"


def _split_host_port(text: str, shape: str) -> tuple[str, str]:
    """Split ``host:port`` / ``[v6]:port``; check the host. Raises ValueError."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid address {text!r}: {shape}")
        host, port = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid address {text!r}: {host!r} is not an IPv6 address") from None
        return host, port
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"invalid address {text!r}: {shape}")
    if ":" in host:
        try:
            suggestion = f"[{ipaddress.IPv6Address(host)}]:{port}"
        except ValueError:
            suggestion = "[::1]:3021"
        raise ValueError(
            f"invalid address {text!r}: write an IPv6 address in brackets, {suggestion!r}"
        )
    if host:
        _check_host(host, text)
    return host, port


def _check_host(host: str, text: str) -> None:
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"invalid address {text!r}: {host!r} is not an IPv4 address") from None
    elif not _HOSTNAME_RE.fullmatch(host):
        raise ValueError(f"invalid address {text!r}: {host!r} is not a valid host name")


def _port_number(port: str, text: str, *, allow_zero: bool) -> int:
    if not port.isascii() or not port.isdigit():
        raise ValueError(f"invalid address {text!r}: port {port!r} is not a number")
    number = int(port)
    if number > 65535 or (number == 0 and not allow_zero):
        low = 0 if allow_zero else 1
        raise ValueError(f"invalid address {text!r}: port must be {low}..65535")
    return number


def _client_entry(value: object) -> object:
    """Check one ``gli-client-list`` entry, ``host:port`` or ``host:*``; keep it as written."""
    if not isinstance(value, str):
        return value  # pydantic reports the type
    text = value.strip()
    host, port = _split_host_port(text, _CLIENT_SHAPE)
    if not host:
        raise ValueError(f"invalid client {text!r}: the host is missing ('host:port' or 'host:*')")
    if port != "*":
        _port_number(port, text, allow_zero=False)
    return text


ClientEntry = Annotated[str, BeforeValidator(_client_entry)]
"""An allowed client, ``host:port`` or ``host:*`` (any port)."""


class ListenAddress(_Model):
    """One address the server listens on. In TOML: ``"host:port"``, ``"[::1]:port"``, ``":port"``."""

    host: str
    """Interface address or host name, IPv6 without brackets; ``0.0.0.0`` = every IPv4 interface."""
    port: int = Field(ge=0, le=65535)
    """TCP port; 0 lets the system choose one (tests)."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if not isinstance(value, str):
            return value  # a table {host = ..., port = ...}, or an instance
        text = value.strip()
        host, port = _split_host_port(text, _LISTEN_SHAPE)
        return {"host": host or "0.0.0.0", "port": _port_number(port, text, allow_zero=True)}

    @field_validator("host")
    @classmethod
    def _check_host_field(cls, value: str) -> str:
        if ":" in value:
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv6 address") from None
        else:
            _check_host(value, value)
        return value

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# --------------------------------------------------------------------------------------------
# Server-wide options

_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Timers(_Model):
    """Call and agent timers (the original's ``[Timers]`` section), in seconds.

    In a TOML file each value is a number of milliseconds (as in the original) or a string with a
    unit: ``"4s"``, ``"500ms"``, ``"1min"``, ``"8h"``, ``"1d"``; a string without a unit is
    milliseconds too. Every timer must be longer than zero.
    """

    router_timeout: TimerSeconds = 4.0
    """How long a call waits for routing or treatment instructions before the server answers
    ``RouteResponse RouteType='Default'`` (Network mode: ``EndCall Timeout``). Original:
    ``[Timers] Router Timeout``."""
    call_timeout: TimerSeconds = 8 * 3600.0
    """Longest life of a call; then ``EndCall EndCause='Timeout'`` and release. Original:
    ``[Timers] Call Timeout``."""
    wait_for_ringing: TimerSeconds = 60.0
    """Behind mode: how long after ``NewCall`` the server waits for the switch's ringing event
    before ending the call with ``EndCall Timeout``. Original: ``[Timers] wait-for-ringing``."""
    orphan_call_timeout: TimerSeconds = 600.0
    """How long the calls of an IVR none of whose sessions is connected are kept for it to log in
    again; then they are released as abandoned. Project decision (DECISIONS.md), no original."""
    stat_timeout: TimerSeconds = 3.0
    """How long a non-cached statistic request waits for its value. Original:
    ``[Timers] Stat Timeout``."""
    registration_timeout: TimerSeconds = 5.0
    """Server-controlled agent login: delay before checking again whether the port's DN is
    registered. Original: ``[Timers] Registration Timeout``."""
    retry_timeout: TimerSeconds = 30.0
    """Delay before retrying a failed DN registration or agent login. Original:
    ``[Timers] Retry Timeout``."""


def _tcp_seconds(value: object) -> float:
    seconds = _duration(value, "s")
    if not 1 <= seconds <= 32767:
        raise ValueError("must be from 1 s to 32767 s (the system's bounds)")
    return float(int(seconds))


TcpSeconds = Annotated[float, BeforeValidator(_tcp_seconds)]
"""Whole seconds from 1 to 32767 for the system's TCP keep-alive timers; a bare number is seconds,
a string may carry a unit; a fraction of a second is dropped."""


class TcpKeepAlive(_Model):
    """TCP keep-alive on accepted IVR and API connections (TOML table
    ``[server.tcp-keep-alive]``): the system probes a connection idle for ``idle``, every
    ``interval``, and closes it after ``count`` unanswered probes, so a peer that vanished (a
    crashed host, a cut network) is found even when GLI keep-alives are off. Read at start.
    Project decision, no original."""

    enabled: bool = True
    """``false`` leaves the system's own setting (usually no keep-alive)."""
    idle: TcpSeconds = 60.0
    """Seconds of silence on a connection before the first probe (``TCP_KEEPIDLE``)."""
    interval: TcpSeconds = 10.0
    """Seconds between two probes (``TCP_KEEPINTVL``)."""
    count: int = Field(default=6, ge=1, le=127)
    """Unanswered probes after which the connection is closed (``TCP_KEEPCNT``)."""


class ServerOptions(_Model):
    """Server-wide options (TOML table ``[server]``)."""

    listen: tuple[ListenAddress, ...] = (ListenAddress(host="127.0.0.1", port=3021),)
    """Addresses to accept IVR connections on, ``"host:port"``, ``"[ipv6]:port"`` or ``":port"``
    (all IPv4 interfaces). Original: the ``gli_server`` listen sockets (no vendor default; the
    real site used 3021). The command line's ``--listen`` overrides it."""
    client_list: tuple[ClientEntry, ...] = ()
    """Clients allowed to connect, ``"host:port"`` or ``"host:*"``; empty = everyone. A refused
    client gets a GLI Error frame and is disconnected. Original: ``gli-client-list``."""
    version_string: str = "IVR Server:8.5.001.00"
    """Server version reported to clients in ``LoginResp IServerVer``. The real 8.1 site said
    ``IVR Server:8.1.001.01``. No original option (it was the product's version)."""
    flow_control: Flag = False
    """When on, sessions are told ``FlowControl Status='On'`` and new calls are refused with
    ``EndCall ServerPaused`` (the server is draining). Original: ``flow-control`` (``on``/``off``)."""
    dtd_file: str = Field(default="IServer.dtd", min_length=1, max_length=200)
    """System identifier written in every document's ``<!DOCTYPE GctiMsg SYSTEM '...'>``, at most
    200 characters (the size bounds of what the server sends count on it). Original:
    ``dtd-file``."""
    keep_alive_interval: Annotated[float, BeforeValidator(_keep_alive_seconds)] = -1.0
    """Seconds of silence after which the server sends a GLI KeepAliveRequest; -1 = never (the
    server still answers the client's keep-alives). A bare number is seconds, as in the original;
    a string may carry a unit. Original: ``gli-keep-alive-interval``."""
    keep_alive_tries: int = Field(default=1, ge=1)
    """How many keep-alive intervals may pass with nothing received before the link is closed.
    Original: ``gli-keep-alive-tries``."""
    listen_backlog: int = Field(default=4096, ge=1, le=65535)
    """Connections the system queues for the server to accept, per listen address (the kernel
    caps it at ``net.core.somaxconn``). A queue too short for a burst of connections makes the
    clients that did not fit wait a second for their SYN to be sent again. Read at start only.
    Project decision, no original."""
    write_buffer_limit: int = Field(default=4 * 1024 * 1024, ge=1)
    """Bytes queued for a client that does not read, past which its connection is closed.
    Project decision (DECISIONS.md), no original."""
    max_connections: int | None = Field(default=None, ge=1)
    """Most IVR connections open at once; one more is refused (GLI Error frame code 7, then
    closed) and logged. Unset: the process's file-descriptor limit less ``reserved-descriptors``
    (a larger value is lowered to that). Re-read on reload. Project decision, no original."""
    reserved_descriptors: int = Field(default=64, ge=0)
    """File descriptors that IVR connections never take: the HTTP API's connections, the log,
    the configuration file, the webhooks' connections. Re-read on reload. Project decision, no
    original."""
    tcp_keep_alive: TcpKeepAlive = Field(default_factory=TcpKeepAlive)
    """TCP keep-alive of accepted IVR and API connections (TOML table
    ``[server.tcp-keep-alive]``)."""
    malformed_limit: int = Field(default=20, ge=0)
    """More than this many malformed XML documents within ``malformed-window`` on one connection
    close it with a GLI Error. Project decision (PROTOCOL.md §9.4.2), no original."""
    malformed_window: PositiveSeconds = 10.0
    """The sliding window for ``malformed-limit``, seconds (a string may carry a unit). Project
    decision, no original."""
    log_level: str = "INFO"
    """Least severe log level written: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).
    No single original option (the original has ``[log] verbose``)."""
    output_encoding: Encoding = "ISO-8859-1"
    """Encoding of the XML the server writes, ``ISO-8859-1`` or ``UTF-8``; characters outside it
    become numeric character references. Original: ``target-encoding``."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """Log lines as JSON objects (``json``), as text (``text``), or text on a terminal and JSON
    otherwise (``auto``)."""
    log_queue_size: int = Field(default=10_000, ge=1)
    """Log records that may wait for the thread writing the log; when the output does not keep up
    (a full disk, a pipe nobody reads) further records are dropped and counted
    (``ivr_server_log_records_dropped_total``) instead of holding up the server. Read at start
    only. Project decision, no original."""
    logmsg_max_length: int = Field(default=4096, ge=0)
    """Characters of an IVR's ``LogMsg`` text written to the log; a longer text is cut and marked
    ``... [LogMsg cut: N characters in all]``. 0 = no limit. Project decision, no original."""
    logmsg_rate: float = Field(default=100.0, ge=0)
    """``LogMsg`` documents per second a session may have logged, on average; the excess is
    dropped (never answered, as every ``LogMsg``), counted
    (``ivr_server_logmsg_dropped_total{reason="rate_limit"}``) and summed up in one log line per
    session every 10 s. 0 = no limit. Project decision, no original."""
    logmsg_burst: int = Field(default=500, ge=1)
    """``LogMsg`` documents a session may send at once above ``logmsg-rate`` (the token bucket's
    size). Project decision, no original."""
    active_release: bool = True
    """What an ``EndCall`` without the ``GCTIActiveRelease`` extension means: ``true`` = the server
    releases the port's call itself (TReleaseCall). Original: ``[IServer] active-release``."""
    timers: Timers = Field(default_factory=Timers)
    """Call and agent timers (TOML table ``[server.timers]``). Original: ``[Timers]``."""
    drain_time: Annotated[float, BeforeValidator(_non_negative_seconds)] = 10.0
    """On SIGTERM or SIGINT, how long the calls in progress are given to end (new IVR connections
    and calls refused meanwhile) before the rest are ended with ``EndCall EndCause='Timeout'`` and
    the server stops; 0 = at once. A bare number is seconds; a string may carry a unit. Project
    decision, no original."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_log_level(cls, value: object) -> object:
        if isinstance(value, str):
            level = value.strip().upper()
            if level not in _LOG_LEVELS:
                raise ValueError(
                    f"unknown log level {value!r}: use one of {', '.join(_LOG_LEVELS)}"
                )
            return level
        return value

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: tuple[ListenAddress, ...]) -> tuple[ListenAddress, ...]:
        if not value:
            raise ValueError("at least one address is needed")
        seen: set[ListenAddress] = set()
        for address in value:
            if address.port != 0 and address in seen:
                raise ValueError(f"{address} is listed twice")
            seen.add(address)
        return value


# --------------------------------------------------------------------------------------------
# Configuration objects: switches, DNs, T-Servers, IVRs, ports


class DnType(StrEnum):
    """Type of a DN (the original's DN object types that matter to an IVR Server)."""

    EXTENSION = "extension"
    """An extension; may carry an IVR port (or an agent)."""
    VOICE_TREATMENT_PORT = "voice-treatment-port"
    """Voice Treatment Port: the usual DN type of an IVR port."""
    ROUTING_POINT = "routing-point"
    """Routing Point: target of ``RouteRequest RouteDN``; a router (URS) routes calls from it."""
    ACD_QUEUE = "acd-queue"
    """ACD Queue: what agents log in to (``AgentLogin Queue``, ``[AutoLogin] Queue``)."""
    VIRTUAL_ROUTING_POINT = "virtual-routing-point"
    """Virtual Routing Point (used on premise switches in Behind mode)."""


PORT_DN_TYPES: Final[frozenset[DnType]] = frozenset({DnType.EXTENSION, DnType.VOICE_TREATMENT_PORT})
"""DN types an IVR port may be associated with."""

SwitchType = Literal["in-front"]
"""Switch types of this release. ``in-front`` is the original's "Virtual Switch for IVR In-Front";
premise switches (Behind mode) come later as another literal."""


class DnConfig(_Model):
    """A DN of a switch (original: a DN object under the switch)."""

    number: Number
    """The DN's number, unique on its switch (a TOML integer is taken as its decimal string)."""
    type: DnType
    """``extension``, ``voice-treatment-port``, ``routing-point``, ``acd-queue`` or
    ``virtual-routing-point``. Original: the DN object's type."""
    alias: Number | None = None
    """Another name the DN may be addressed by, unique on its switch. Original: the DN's alias."""


class SwitchConfig(_Model):
    """A switch (original: a Switch object, with its DNs)."""

    name: Name
    """Switch name, unique; reported as ``MonitorInfo Server/@Switch``. Original: the Switch
    object's name."""
    type: SwitchType = "in-front"
    """``in-front``: the "Virtual Switch for IVR In-Front" that the server itself presents (the
    only type in this release). Original: the switch type."""
    dns: tuple[DnConfig, ...] = ()
    """The switch's DNs: the IVR ports' DNs, routing points, ACD queues, agents' extensions."""


class TServerConfig(_Model):
    """A T-Server application (original: e.g. ``TServer_IVR``), serving one switch."""

    name: Name
    """Application name, unique; reported as ``MonitorInfo Server/@Name``."""
    switch: Name
    """Name of the switch this T-Server serves; each switch is served by exactly one T-Server.
    Original: the application's switch assignment."""


class AutoLogin(_Model):
    """The agent the server logs in on a port itself (original: the port's ``[AutoLogin]`` annex).

    Used only when the port's IVR has ``legacy-mode = true``.
    """

    agent_id: Number
    """Agent login id. Original: ``AgentId``."""
    queue: Annotated[str, BeforeValidator(_number_to_str)] = ""
    """ACD queue to log in to, an ``acd-queue`` DN on the port's switch; empty = none. Original:
    ``Queue``."""
    password: str = ""
    """Agent password. Original: ``Password``."""
    set_ready: Flag = False
    """Make the agent Ready after login (otherwise NotReady). Original: ``SetReady``."""
    set_logged_in: Flag = True
    """Log the agent in at all (false: configured but left logged out). Original:
    ``SetLoggedIn``."""


class PortConfig(_Model):
    """An IVR port of an IVR (original: an IVR Port object)."""

    number: Number
    """Port number string as the IVR sends it (``NewCall CalledNum``, agent ``PortNum``), e.g.
    ``"1"``, ``"01"``, ``"101"``; unique within the IVR, compared byte for byte (``"1"`` is not
    ``"01"``). A TOML integer is taken as its decimal string. Original: the port number."""
    dn: Number
    """Number of the port's DN on its switch; must be an ``extension`` or ``voice-treatment-port``
    and used by no other port. Original: the port's associated DN."""
    switch: Name | None = None
    """Switch of the DN. Default: the switch of the IVR's only T-Server; required when the IVR
    has several T-Servers. Original: the associated DN's switch."""
    enabled: Flag = True
    """A disabled port takes no calls. Original: the port object's State Enabled flag."""
    auto_login: AutoLogin | None = None
    """Agent logged in on this port by the server (legacy mode). Original: ``[AutoLogin]``."""


def _data_transport(value: object) -> object:
    """``[ivrs.data-transport]`` table → ordered ``(key, value)`` string pairs."""
    if isinstance(value, Mapping):
        items: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if not (isinstance(item, list | tuple) and len(item) == 2):
                raise ValueError("expected a table of options (key = value)")
            items.append((item[0], item[1]))
    else:
        raise ValueError(f"expected a table of options (key = value), got {describe_value(value)}")
    pairs: list[tuple[str, str]] = []
    for key, raw in items:
        if not isinstance(key, str) or not key:
            raise ValueError(f"option name {key!r} must be a non-empty string")
        pairs.append((key, _option_text(key, raw)))
    return tuple(pairs)


def _option_text(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"option {key!r}: {value!r} is not a usable value")
        return repr(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    raise ValueError(
        f"option {key!r}: expected a string, number or boolean, got {describe_value(value)}"
    )


class IvrConfig(_Model):
    """An IVR object: what a client names in ``LoginReq ClientName``, with its ports."""

    name: Name
    """IVR name = ``LoginReq/@ClientName`` (case-sensitive), unique. Original: the IVR object's
    name."""
    enabled: Flag = True
    """A disabled IVR (and so each of its ports) takes no calls. Original: the IVR object's State
    Enabled flag."""
    tservers: tuple[Name, ...]
    """Names of the T-Servers whose switches carry this IVR's port DNs. Original: the I-Server
    application's connections to T-Servers."""
    legacy_mode: Flag = True
    """True: the server logs in each port's ``auto-login`` agent and refuses agent control from
    clients (``CallError NotAllowed``); false: clients control agents. Original:
    ``[AgentControl] LegacyMode`` (default true)."""
    data_transport: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_data_transport)] = ()
    """Options handed to the client in ``LoginResp ConfigOptions``, in this order, each as a
    string (TOML numbers and booleans are converted). Original: the ``[DataTransport]`` annex."""
    output_encoding: Encoding | None = None
    """Encoding for this IVR's sessions, overriding ``server.output-encoding``. Project option,
    no original (the original's ``target-encoding`` is server-wide)."""
    ports: tuple[PortConfig, ...] = ()
    """The IVR's ports."""

    _ports_by_number: dict[str, PortConfig] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for port in self.ports:
            self._ports_by_number.setdefault(port.number, port)

    def port(self, number: str) -> PortConfig | None:
        """The port with exactly this number (byte comparison), or None."""
        return self._ports_by_number.get(number)


# --------------------------------------------------------------------------------------------
# The built-in router: routing rules per routing point, agent groups

TreatmentType = Literal[
    "PlayAnnounce",
    "PlayAnnounceAndDigits",
    "Music",
    "RAN",
    "Busy",
    "CollectDigits",
    "CancelCall",
    "SetDefaultRoute",
    "PlayApplication",
    "IVR",
    "RingBack",
    "Silence",
    "VerifyDigits",
    "RecordAnnounce",
    "DeleteAnnounce",
    "TextToSpeech",
    "FastBusy",
    "TextToSpeechAndDigits",
]
"""``TreatCall/@Type`` values (PROTOCOL.md §3.4.1), the same 18 as the wire schema's."""

RouteTypeName = Literal["Default", "Normal", "Reroute", "RerouteAttended", "RerouteConferenced"]
"""``RouteResponse/@RouteType`` values (PROTOCOL.md §3.3.3)."""

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

_INT_NODE_MIN: Final = -(2**31)
_INT_NODE_MAX: Final = 2**31 - 1

KvValue: TypeAlias = int | str | tuple[tuple[str, Any], ...]
"""A value of a :data:`KvTable`: ``int`` (an ``Int`` node), ``str`` (a ``Str`` node) or a nested
table (a ``List``), itself a tuple of ``(key, value)`` pairs."""


def _kv_table(value: object) -> object:
    """A TOML table of key/value items → ordered ``(key, value)`` pairs (see :data:`KvTable`)."""
    return _kv_pairs(value, "")


def _kv_pairs(value: object, path: str) -> tuple[tuple[str, KvValue], ...]:
    if isinstance(value, Mapping):
        items: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, tuple):  # the pairs form, as built by this validator (model_copy)
        items = []
        for item in value:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ValueError(_where(path, "expected a table (key = value)"))
            items.append((item[0], item[1]))
    else:
        raise ValueError(
            _where(path, f"expected a table (key = value), got {describe_value(value)}")
        )
    pairs: list[tuple[str, KvValue]] = []
    for key, raw in items:
        if not isinstance(key, str) or not key:
            raise ValueError(_where(path, f"key {key!r} must be a non-empty string"))
        pairs.append((key, _kv_value(raw, f"{path}.{key}" if path else key)))
    return tuple(pairs)


def _kv_value(value: object, path: str) -> KvValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT_NODE_MIN <= value <= _INT_NODE_MAX:
            raise ValueError(_where(path, f"{value} does not fit an Int node (32-bit signed)"))
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | tuple):
        nested = _kv_pairs(value, path)
        if not nested:
            raise ValueError(_where(path, "a nested table must not be empty"))
        return nested
    raise ValueError(
        _where(path, f"expected a string, integer, boolean or table, got {describe_value(value)}")
    )


def _where(path: str, message: str) -> str:
    return f"{path!r}: {message}" if path else message


KvTable = Annotated[tuple[tuple[str, KvValue], ...], BeforeValidator(_kv_table)]
"""Key/value items for the wire (extensions, treatment parameters, attached data), in the order
written. In TOML a table: an integer becomes an ``Int`` node (32-bit signed), a string a ``Str``
node, a boolean the ``Str`` node ``"true"``/``"false"``, a nested table a ``List``."""


class MatchCondition(_Model):
    """One condition of a routing rule: ``{ field = "ced", equals = "1" }``.

    Exactly one operator is given. A field is *absent* when the route request does not carry it:
    ``dnis``, ``ani`` and ``ced`` are absent when missing or empty; ``udata.<Key>`` is absent when
    the call's user data has no top-level item named ``Key``. An absent field, or a ``List`` item
    of user data, never satisfies ``equals``, ``prefix`` or ``regex``.
    """

    field: str
    """What is tested: ``dnis``, ``ani``, ``ced`` (the RouteRequest's collected digits) or
    ``udata.<Key>`` (the value of the first top-level user-data item named ``Key``)."""
    equals: Annotated[str, BeforeValidator(_number_to_str)] | None = None
    """The field's value is exactly this string (a TOML integer is its decimal string)."""
    prefix: Annotated[str, BeforeValidator(_number_to_str)] | None = None
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


class TreatmentConfig(_Model):
    """A treatment a rule applies before routing: ``{ type = "PlayApplication", ... }``."""

    type: TreatmentType
    """``TreatCall/@Type``: one of the 18 treatment types of PROTOCOL.md §3.4.1."""
    parameters: KvTable = ()
    """``TreatCall/Parameters``, e.g. ``{ APP_ID = 1, LANGUAGE = "English(US)" }``."""
    extensions: KvTable = ()
    """``TreatCall/ExtnsEx``."""


class RoutingRule(_Model):
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
    route_type: RouteTypeName | None = None
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
    def _check_route_type(
        cls, value: RouteTypeName | None, info: ValidationInfo
    ) -> RouteTypeName | None:
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
    def effective_route_type(self) -> RouteTypeName:
        """The RouteType the rule routes with: ``route-type``, else Default/Normal."""
        if self.route_type is not None:
            return self.route_type
        return "Default" if self.default else "Normal"


class RoutingConfig(_Model):
    """The built-in router's rules for one routing point (TOML ``[[routing]]``)."""

    dn: Number
    """The routing point: a ``routing-point`` DN (the ``RouteRequest RouteDN``)."""
    switch: Name | None = None
    """The switch of ``dn``; needed only when several switches have a DN with that number."""
    rules: tuple[RoutingRule, ...] = ()
    """The rules, tried in order; a call no rule takes gets ``RouteType Default``."""


class AgentGroupConfig(_Model):
    """A named set of agents a rule can target (TOML ``[[agent-groups]]``)."""

    name: Name
    """The group's name, unique; what ``agent-group`` in a rule names."""
    agents: Annotated[tuple[Number, ...], Field(min_length=1)]
    """Agent login ids (``AgentLogin AgentId``), each once; at least one."""


class ApiConfig(_Model):
    """The HTTP API, metrics and web view listener (TOML ``[api]``). No original equivalent: the
    original offers T-Library, a closed protocol, instead."""

    listen: tuple[ListenAddress, ...] = ()
    """Where the HTTP API listens (``"host:port"``); empty = no API. ``--api-listen`` overrides."""
    token: str | None = None
    """Bearer token required by every request that changes state. The environment variable
    ``IVR_SERVER_API_TOKEN`` overrides it. No token at all: state-changing requests are refused."""
    public_read: bool = True
    """``true``: the harmless reads need no token: the topology (switches, IVRs and ports,
    sessions), statistics, rates, the log level, ``/metrics`` and ``/api/v1/state`` without the
    calls' user data, caller numbers and parties. Whatever carries user data or caller numbers
    (``/api/v1/calls``, ``/api/v1/routing-points``, the event stream) needs the token always."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins (``"https://ops.example.com"``, ``"http://ivr-host:8021"``) allowed to open the
    event stream and to change state besides the API's own (same-origin requests to a ``Host``
    that is an IP address, ``localhost``, a listen address or this machine's name); their host
    names are also accepted in ``Host``. ``"*"`` turns the ``Origin``/``Host`` checks off."""
    tls_cert: str | None = None
    """PEM certificate (chain) of the API's HTTPS listener; with ``tls-key``. Unset: plain HTTP.
    A relative path is taken from the server's working directory."""
    tls_key: str | None = None
    """PEM private key of ``tls-cert``."""
    tls_client_ca: str | None = None
    """PEM CA certificate(s): every client must present a certificate they signed (mutual TLS).
    Needs ``tls-cert``. The bearer token rules apply on top of it."""

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for text in value:
            origin = text.strip().lower().rstrip("/")
            if origin != "*":
                scheme, sep, rest = origin.partition("://")
                host = rest.rsplit("]", 1)[-1] if rest.startswith("[") else rest
                port = host.partition(":")[2] if ":" in host else ""
                if (
                    scheme not in ("http", "https")
                    or not sep
                    or not rest
                    or any(c in rest for c in "/?#@ ")
                    or (port and not (port.isdigit() and 0 < int(port) < 65536))
                ):
                    raise ValueError(
                        f"{text!r} is not a web origin: write scheme://host[:port] "
                        '(e.g. "https://ops.example.com:8443"), or "*"'
                    )
            out.append(origin)
        return tuple(out)

    @model_validator(mode="after")
    def _tls_complete(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls-cert and tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls-client-ca needs tls-cert and tls-key (HTTPS)")
        return self


StatObjectType = Literal["RoutePoint", "Queue", "AgentGroup", "IVR"]
"""Object types the built-in statistics engine computes statistics for."""

STAT_OBJECT_TYPES: Final[tuple[StatObjectType, ...]] = ("RoutePoint", "Queue", "AgentGroup", "IVR")
"""Every :data:`StatObjectType`, in documentation order."""

STAT_TYPES: Final[Mapping[str, tuple[StatObjectType, ...]]] = {
    "CurrNumberWaitingCalls": ("RoutePoint", "Queue"),
    "ExpectedWaitTime": ("RoutePoint", "Queue"),
    "CurrMaxCallWaitingTime": ("RoutePoint",),
    "CurrentReadyAgents": ("Queue", "AgentGroup"),
    "CurrentNotReadyAgents": ("Queue", "AgentGroup"),
    "CurrentBusyAgents": ("Queue", "AgentGroup"),
    "CurrentLoggedInAgents": ("Queue", "AgentGroup"),
    "CurrNumberCallsInProgress": ("IVR",),
}
"""The statistic types the built-in statistics engine computes (docs/statistics.md), each with
the object types it applies to. :mod:`ivr_server.stats` computes exactly these pairs (a test
keeps the two in step)."""


def _stat_seconds(value: object) -> float:
    """``update-frequency``: a duration ≥ 0; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ValueError(
            f"must be 0 (computed on every request) or a positive duration, got {value!r}"
        )
    return _duration(value, "s")


StatSeconds = Annotated[float, BeforeValidator(_stat_seconds)]
"""A duration in seconds, zero allowed; a bare number is seconds, a string may carry a unit."""


class StatisticConfig(_Model):
    """A named statistic (the original's ``[Stat:<name>]`` sections of the I-Server application):
    what ``PeekStatReq StatName`` names and what ``GetStatReq`` must match."""

    name: Name
    """The statistic's name (``PeekStatReq StatName``), unique."""
    server_name: Name = "StatServer"
    """The Stat Server name ``GetStatReq ServerName`` must give. Original: ``server_name``."""
    stat_type: Name
    """The statistic type, one of :data:`STAT_TYPES`, e.g. ``CurrNumberWaitingCalls``.
    Original: ``stat_type``."""
    object_id: Name
    """The object: a routing point or queue DN (``"5000"``, or ``"5000@SW"`` to name its
    switch), an agent group's name, an IVR's name. Original: ``obj_id``."""
    object_type: StatObjectType
    """``RoutePoint``, ``Queue``, ``AgentGroup`` or ``IVR``; one ``stat-type`` applies to.
    Original: ``obj_type`` (``SObjectRoutePoint``, ``SObjectQueue``...)."""
    update_frequency: StatSeconds = 0.0
    """Longest age, in seconds, of a value handed out (the value is cached that long); 0 = computed
    on every request. A bare number is seconds; a string may carry a unit. Original:
    ``update_frequency`` (where ≤ 0 meant no cache)."""

    @field_validator("stat_type")
    @classmethod
    def _check_stat_type(cls, value: str) -> str:
        if value not in STAT_TYPES:
            raise ValueError(
                f"unknown statistic type {value!r}: use one of {', '.join(STAT_TYPES)}"
            )
        return value

    @field_validator("object_type")
    @classmethod
    def _check_object_type(cls, value: StatObjectType, info: ValidationInfo) -> StatObjectType:
        stat_type = info.data.get("stat_type")
        allowed = STAT_TYPES.get(stat_type) if isinstance(stat_type, str) else None
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"{stat_type} applies to object type {' or '.join(allowed)}, not {value}"
            )
        return value


# --------------------------------------------------------------------------------------------
# The whole configuration


class ServerConfig(_Model):
    """A complete, consistent configuration.

    Building one (from TOML or in code) raises :class:`~ivr_server.errors.ConfigError` listing
    every cross-reference problem (see :func:`reference_problems`); pydantic's
    ``ValidationError`` reports problems within single values.
    """

    server: ServerOptions = Field(default_factory=ServerOptions)
    """Server-wide options (TOML table ``[server]``)."""
    switches: tuple[SwitchConfig, ...] = ()
    """Switches and their DNs (TOML ``[[switches]]``)."""
    tservers: tuple[TServerConfig, ...] = ()
    """T-Server applications (TOML ``[[tservers]]``)."""
    ivrs: tuple[IvrConfig, ...] = ()
    """IVR objects and their ports (TOML ``[[ivrs]]``)."""
    routing: tuple[RoutingConfig, ...] = ()
    """The built-in router's rules, one entry per routing point (TOML ``[[routing]]``)."""
    agent_groups: tuple[AgentGroupConfig, ...] = ()
    """Named sets of agents that routing rules target (TOML ``[[agent-groups]]``)."""
    statistics: tuple[StatisticConfig, ...] = ()
    """Named statistics for PeekStatReq/GetStatReq (TOML ``[[statistics]]``)."""
    api: ApiConfig = Field(default_factory=ApiConfig)
    """The HTTP API (TOML ``[api]``)."""

    _ivrs: dict[str, IvrConfig] = PrivateAttr(default_factory=dict)
    _switches: dict[str, SwitchConfig] = PrivateAttr(default_factory=dict)
    _tservers: dict[str, TServerConfig] = PrivateAttr(default_factory=dict)
    _tserver_of_switch: dict[str, TServerConfig] = PrivateAttr(default_factory=dict)
    _dns: dict[tuple[str, str], DnConfig] = PrivateAttr(default_factory=dict)
    _routing: dict[str, list[RoutingConfig]] = PrivateAttr(default_factory=dict)
    _agent_groups: dict[str, AgentGroupConfig] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for ivr in self.ivrs:
            self._ivrs.setdefault(ivr.name, ivr)
        for switch in self.switches:
            self._switches.setdefault(switch.name, switch)
            for dn in switch.dns:
                self._dns.setdefault((switch.name, dn.number), dn)
        for tserver in self.tservers:
            self._tservers.setdefault(tserver.name, tserver)
            self._tserver_of_switch.setdefault(tserver.switch, tserver)
        for group in self.agent_groups:
            self._agent_groups.setdefault(group.name, group)
        for entry in self.routing:
            switch_name = self.routing_switch_name(entry)
            if switch_name is not None:
                self._routing.setdefault(switch_name, []).append(entry)

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        problems = reference_problems(self.switches, self.tservers, self.ivrs)
        problems += routing_problems(self.switches, self.routing, self.agent_groups)
        problems += statistics_problems(
            self.switches, self.ivrs, self.agent_groups, self.statistics
        )
        if problems:
            raise ConfigError(problems)
        return self

    def ivr(self, name: str) -> IvrConfig | None:
        """The IVR object named ``name`` (case-sensitive), or None."""
        return self._ivrs.get(name)

    def switch(self, name: str) -> SwitchConfig | None:
        """The switch named ``name``, or None."""
        return self._switches.get(name)

    def tserver(self, name: str) -> TServerConfig | None:
        """The T-Server application named ``name``, or None."""
        return self._tservers.get(name)

    def find_dn(self, switch_name: str, number: str) -> tuple[SwitchConfig, DnConfig] | None:
        """The DN numbered ``number`` on switch ``switch_name`` (numbers, not aliases), or None."""
        switch = self._switches.get(switch_name)
        dn = self._dns.get((switch_name, number))
        return None if switch is None or dn is None else (switch, dn)

    def tserver_for_switch(self, switch_name: str) -> TServerConfig | None:
        """The T-Server serving switch ``switch_name``, or None."""
        return self._tserver_of_switch.get(switch_name)

    def port_switch_name(self, ivr: IvrConfig, port: PortConfig) -> str | None:
        """The name of the switch of ``port``'s DN: its ``switch``, else that of the IVR's only
        T-Server (None if that cannot be decided)."""
        if port.switch is not None:
            return port.switch
        if len(ivr.tservers) != 1:
            return None
        tserver = self._tservers.get(ivr.tservers[0])
        return None if tserver is None else tserver.switch

    def port_dn(self, ivr: IvrConfig, port: PortConfig) -> tuple[SwitchConfig, DnConfig] | None:
        """The switch and DN a port of ``ivr`` is associated with."""
        switch_name = self.port_switch_name(ivr, port)
        return None if switch_name is None else self.find_dn(switch_name, port.dn)

    def routing_switch_name(self, entry: RoutingConfig) -> str | None:
        """The name of the switch of a ``[[routing]]`` entry's routing point: its ``switch``,
        else the only switch with a DN numbered ``entry.dn`` (None if that cannot be decided)."""
        if entry.switch is not None:
            return entry.switch
        found = [s.name for s in self.switches if (s.name, entry.dn) in self._dns]
        return found[0] if len(found) == 1 else None

    def routing_for(self, switch_name: str) -> tuple[RoutingConfig, ...]:
        """The ``[[routing]]`` entries of the routing points of switch ``switch_name``, in file
        order (empty when the built-in router serves none of its routing points)."""
        return tuple(self._routing.get(switch_name, ()))

    def agent_group(self, name: str) -> AgentGroupConfig | None:
        """The agent group named ``name``, or None."""
        return self._agent_groups.get(name)


# --------------------------------------------------------------------------------------------
# Cross-reference checks


def _a(dn_type: DnType) -> str:
    """``an extension``, ``a routing-point``."""
    return f"{'an' if dn_type.value[0] in 'aeiou' else 'a'} {dn_type.value}"


def _names(names: Sequence[str] | set[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def reference_problems(
    switches: Sequence[SwitchConfig | None],
    tservers: Sequence[TServerConfig | None],
    ivrs: Sequence[IvrConfig | None],
    *,
    unverified_switches: frozenset[str] = frozenset(),
    unverified_tservers: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Every problem in how switches, DNs, T-Servers, IVRs and ports refer to each other.

    An item may be ``None``: it failed validation on its own, keeps its index for locations, and
    is skipped. A reference to a name in ``unverified_*`` (the names of such items) is not
    reported as unknown. This lets the loader report cross-reference problems together with
    pydantic's, in one pass.
    """
    problems: list[ConfigProblem] = []

    def add(location: str, message: str) -> None:
        problems.append(ConfigProblem(location, message))

    # Switches and their DNs.
    switch_at: dict[str, int] = {}
    dns_of: dict[str, dict[str, DnConfig]] = {}
    for i, switch in enumerate(switches):
        if switch is None:
            continue
        if switch.name in switch_at:
            add(
                f"switches[{i}].name",
                f"duplicate switch name {switch.name!r}"
                f" (first at switches[{switch_at[switch.name]}])",
            )
            continue
        switch_at[switch.name] = i
        numbers: dict[str, int] = {}
        for k, dn in enumerate(switch.dns):
            if dn.number in numbers:
                add(
                    f"switches[{i}].dns[{k}].number",
                    f"duplicate DN {dn.number!r} on switch"
                    f" {switch.name!r} (first at switches[{i}].dns[{numbers[dn.number]}])",
                )
            else:
                numbers[dn.number] = k
        aliases: dict[str, int] = {}
        for k, dn in enumerate(switch.dns):
            if dn.alias is None:
                continue
            if numbers.get(dn.alias, k) != k:
                add(
                    f"switches[{i}].dns[{k}].alias",
                    f"alias {dn.alias!r} is the number of"
                    f" another DN (switches[{i}].dns[{numbers[dn.alias]}])",
                )
            elif dn.alias in aliases:
                add(
                    f"switches[{i}].dns[{k}].alias",
                    f"duplicate alias {dn.alias!r} on switch"
                    f" {switch.name!r} (first at switches[{i}].dns[{aliases[dn.alias]}])",
                )
            else:
                aliases[dn.alias] = k
        dns_of[switch.name] = {dn.number: dn for dn in reversed(switch.dns)}

    # T-Servers.
    tserver_at: dict[str, int] = {}
    tserver_switch: dict[str, str] = {}  # T-Server name -> switch name, known switches only
    served_by: dict[str, int] = {}  # switch name -> index of its T-Server
    for i, tserver in enumerate(tservers):
        if tserver is None:
            continue
        if tserver.name in tserver_at:
            add(
                f"tservers[{i}].name",
                f"duplicate T-Server name {tserver.name!r}"
                f" (first at tservers[{tserver_at[tserver.name]}])",
            )
            continue
        tserver_at[tserver.name] = i
        if tserver.switch not in switch_at:
            if tserver.switch not in unverified_switches:
                add(
                    f"tservers[{i}].switch",
                    f"unknown switch {tserver.switch!r}"
                    f" (switches: {_names(switch_at.keys() | unverified_switches)})",
                )
            continue
        tserver_switch[tserver.name] = tserver.switch
        if tserver.switch in served_by:
            j = served_by[tserver.switch]
            add(
                f"tservers[{i}].switch",
                f"switch {tserver.switch!r} is already served by"
                f" T-Server at tservers[{j}]; a switch has exactly one T-Server",
            )
        else:
            served_by[tserver.switch] = i

    # IVRs and their ports.
    ivr_at: dict[str, int] = {}
    port_of_dn: dict[tuple[str, str], str] = {}  # (switch, DN) -> location of the port using it
    port_of_agent: dict[tuple[str, str], str] = {}  # (switch, agent id) -> location
    for i, ivr in enumerate(ivrs):
        if ivr is None:
            continue
        if ivr.name in ivr_at:
            add(
                f"ivrs[{i}].name",
                f"duplicate IVR name {ivr.name!r} (first at ivrs[{ivr_at[ivr.name]}])",
            )
        else:
            ivr_at[ivr.name] = i

        # The switches this IVR reaches; `complete` is False when some T-Server is unusable.
        ivr_switches: dict[str, str] = {}
        complete = True
        listed: set[str] = set()
        for k, name in enumerate(ivr.tservers):
            if name in listed:
                add(f"ivrs[{i}].tservers[{k}]", f"T-Server {name!r} is listed twice")
                continue
            listed.add(name)
            if name in tserver_switch:
                ivr_switches[tserver_switch[name]] = name
                continue
            complete = False
            if name not in tserver_at and name not in unverified_tservers:
                add(
                    f"ivrs[{i}].tservers[{k}]",
                    f"unknown T-Server {name!r}"
                    f" (T-Servers: {_names(tserver_at.keys() | unverified_tservers)})",
                )
        if ivr.ports and not ivr.tservers:
            add(
                f"ivrs[{i}].tservers",
                f"IVR {ivr.name!r} has ports but no T-Server;"
                " name the T-Server of the ports' switch",
            )

        port_numbers: dict[str, int] = {}
        for k, port in enumerate(ivr.ports):
            where = f"ivrs[{i}].ports[{k}]"
            if port.number in port_numbers:
                first = port_numbers[port.number]
                add(
                    f"{where}.number",
                    f"duplicate port number {port.number!r} in IVR"
                    f" {ivr.name!r} (first at ivrs[{i}].ports[{first}])",
                )
            else:
                port_numbers[port.number] = k

            # Which switch the port's DN is on.
            if port.switch is None:
                if len(listed) > 1:
                    add(
                        f"{where}.switch",
                        f"required: IVR {ivr.name!r} has several T-Servers"
                        f" ({_names(listed)}), so say which switch the port's DN is on",
                    )
                    continue
                if len(listed) == 0 or not complete:
                    continue  # reported at ivrs[i].tservers
                switch_name = next(iter(ivr_switches))
            else:
                switch_name = port.switch
                if switch_name not in switch_at:
                    if switch_name not in unverified_switches:
                        add(
                            f"{where}.switch",
                            f"unknown switch {switch_name!r}"
                            f" (switches: {_names(switch_at.keys() | unverified_switches)})",
                        )
                    continue
                if switch_name not in ivr_switches and complete:
                    add(
                        f"{where}.switch",
                        f"switch {switch_name!r} is not served by any of"
                        f" IVR {ivr.name!r}'s T-Servers ({_names(listed)})",
                    )

            # The DN itself.
            target = dns_of[switch_name].get(port.dn)
            if target is None:
                add(f"{where}.dn", f"DN {port.dn!r} is not a DN of switch {switch_name!r}")
            elif target.type not in PORT_DN_TYPES:
                add(
                    f"{where}.dn",
                    f"DN {port.dn!r} on switch {switch_name!r} is {_a(target.type)};"
                    " a port's DN must be an extension or a voice-treatment-port",
                )
            key = (switch_name, port.dn)
            if key in port_of_dn:
                add(
                    f"{where}.dn",
                    f"DN {port.dn!r} on switch {switch_name!r} is already the DN"
                    f" of the port at {port_of_dn[key]}",
                )
            else:
                port_of_dn[key] = where

            # Its auto-login agent.
            login = port.auto_login
            if login is None:
                continue
            if login.queue:
                queue = dns_of[switch_name].get(login.queue)
                if queue is None or queue.type is not DnType.ACD_QUEUE:
                    what = "not a DN" if queue is None else f"{_a(queue.type)}, not an acd-queue"
                    add(
                        f"{where}.auto-login.queue",
                        f"queue {login.queue!r} is {what} on switch {switch_name!r}",
                    )
            agent = (switch_name, login.agent_id)
            if agent in port_of_agent:
                add(
                    f"{where}.auto-login.agent-id",
                    f"agent {login.agent_id!r} is already"
                    f" auto-logged-in on switch {switch_name!r} by the port at"
                    f" {port_of_agent[agent]}",
                )
            else:
                port_of_agent[agent] = where

    return problems


def routing_problems(
    switches: Sequence[SwitchConfig | None],
    routing: Sequence[RoutingConfig | None],
    agent_groups: Sequence[AgentGroupConfig | None],
    *,
    unverified_switches: frozenset[str] = frozenset(),
    unverified_groups: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Every problem in how ``[[routing]]`` and ``[[agent-groups]]`` refer to the switches' DNs
    and to each other.

    ``None`` items and ``unverified_*`` names work as in :func:`reference_problems`. When a switch
    failed validation, a routing point that names no switch and is found on none of the others
    is not reported (it may be on the failed one).
    """
    problems: list[ConfigProblem] = []

    def add(location: str, message: str) -> None:
        problems.append(ConfigProblem(location, message))

    switches_complete = all(switch is not None for switch in switches)
    dns_of: dict[str, dict[str, DnConfig]] = {}
    for switch in switches:
        if switch is not None and switch.name not in dns_of:
            dns_of[switch.name] = {dn.number: dn for dn in reversed(switch.dns)}

    # Agent groups.
    group_at: dict[str, int] = {}
    for i, group in enumerate(agent_groups):
        if group is None:
            continue
        if group.name in group_at:
            add(
                f"agent-groups[{i}].name",
                f"duplicate agent group name {group.name!r}"
                f" (first at agent-groups[{group_at[group.name]}])",
            )
        else:
            group_at[group.name] = i
        seen: dict[str, int] = {}
        for k, agent in enumerate(group.agents):
            if agent in seen:
                add(
                    f"agent-groups[{i}].agents[{k}]",
                    f"agent {agent!r} is listed twice (first at agent-groups[{i}].agents"
                    f"[{seen[agent]}])",
                )
            else:
                seen[agent] = k

    # Routing points.
    routing_at: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(routing):
        if entry is None:
            continue
        where = f"routing[{i}]"
        rule_at: dict[str, int] = {}
        for k, rule in enumerate(entry.rules):
            if rule.name in rule_at:
                add(
                    f"{where}.rules[{k}].name",
                    f"duplicate rule name {rule.name!r} (first at {where}.rules"
                    f"[{rule_at[rule.name]}])",
                )
            else:
                rule_at[rule.name] = k
            group_name = rule.agent_group
            if (
                group_name is not None
                and group_name not in group_at
                and group_name not in unverified_groups
            ):
                add(
                    f"{where}.rules[{k}].agent-group",
                    f"unknown agent group {group_name!r}"
                    f" (agent groups: {_names(group_at.keys() | unverified_groups)})",
                )

        # The routing point's switch and DN.
        if entry.switch is not None:
            switch_name = entry.switch
            if switch_name not in dns_of:
                if switch_name not in unverified_switches:
                    add(
                        f"{where}.switch",
                        f"unknown switch {switch_name!r}"
                        f" (switches: {_names(dns_of.keys() | unverified_switches)})",
                    )
                continue
        else:
            found = [name for name, dns in dns_of.items() if entry.dn in dns]
            if len(found) > 1:
                add(
                    f"{where}.switch",
                    f"required: DN {entry.dn!r} exists on several switches ({_names(found)}),"
                    " so say which one the routing point is on",
                )
                continue
            if not found:
                if switches_complete:
                    add(
                        f"{where}.dn",
                        f"DN {entry.dn!r} is not a DN of any switch"
                        f" (switches: {_names(set(dns_of))})",
                    )
                continue
            switch_name = found[0]
        dns = dns_of[switch_name]
        point = dns.get(entry.dn)
        if point is None:
            add(f"{where}.dn", f"DN {entry.dn!r} is not a DN of switch {switch_name!r}")
        elif point.type is not DnType.ROUTING_POINT:
            add(
                f"{where}.dn",
                f"DN {entry.dn!r} on switch {switch_name!r} is {_a(point.type)};"
                " the built-in router serves routing-point DNs",
            )
        key = (switch_name, entry.dn)
        if key in routing_at:
            add(
                f"{where}.dn",
                f"routing point {entry.dn!r} on switch {switch_name!r} already has rules"
                f" at routing[{routing_at[key]}]",
            )
        else:
            routing_at[key] = i

        # Targets that must be DNs of the same switch.
        for k, rule in enumerate(entry.rules):
            for key_name, number, wanted in (
                ("queue", rule.queue, DnType.ACD_QUEUE),
                ("routing-point", rule.routing_point, DnType.ROUTING_POINT),
            ):
                if number is None:
                    continue
                target = dns.get(number)
                if target is None:
                    add(
                        f"{where}.rules[{k}].{key_name}",
                        f"{key_name} {number!r} is not a DN of switch {switch_name!r}",
                    )
                elif target.type is not wanted:
                    add(
                        f"{where}.rules[{k}].{key_name}",
                        f"{key_name} {number!r} on switch {switch_name!r} is"
                        f" {_a(target.type)}, not {_a(wanted)}",
                    )
    return problems


def split_object_id(object_id: str) -> tuple[str, str | None]:
    """A statistic's DN object id → (DN number, switch name or None): ``"5000@SW"`` →
    ``("5000", "SW")``, ``"5000"`` → ``("5000", None)``. The last ``@`` separates them."""
    number, at, switch_name = object_id.rpartition("@")
    return (number, switch_name) if at else (object_id, None)


_STAT_DN_TYPES: Final[Mapping[str, DnType]] = {
    "RoutePoint": DnType.ROUTING_POINT,
    "Queue": DnType.ACD_QUEUE,
}
"""Statistic object types whose object id is a DN, and the DN type it must have."""


def statistics_problems(
    switches: Sequence[SwitchConfig | None],
    ivrs: Sequence[IvrConfig | None],
    agent_groups: Sequence[AgentGroupConfig | None],
    statistics: Sequence[StatisticConfig | None],
    *,
    unverified_switches: frozenset[str] = frozenset(),
    unverified_ivrs: frozenset[str] = frozenset(),
    unverified_groups: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Every problem in how ``[[statistics]]`` entries name each other and their objects.

    ``None`` items and ``unverified_*`` names work as in :func:`reference_problems`. A DN object
    id that names no switch and is found on none is not reported when a switch failed validation
    (it may be on the failed one).
    """
    problems: list[ConfigProblem] = []

    def add(location: str, message: str) -> None:
        problems.append(ConfigProblem(location, message))

    switches_complete = all(switch is not None for switch in switches)
    dns_of: dict[str, dict[str, DnConfig]] = {}
    for switch in switches:
        if switch is not None and switch.name not in dns_of:
            dns_of[switch.name] = {dn.number: dn for dn in reversed(switch.dns)}
    ivr_names = {ivr.name for ivr in ivrs if ivr is not None}
    group_names = {group.name for group in agent_groups if group is not None}

    name_at: dict[str, int] = {}
    for i, stat in enumerate(statistics):
        if stat is None:
            continue
        where = f"statistics[{i}]"
        if stat.name in name_at:
            add(
                f"{where}.name",
                f"duplicate statistic name {stat.name!r} (first at statistics[{name_at[stat.name]}])",
            )
        else:
            name_at[stat.name] = i

        object_id, object_type = stat.object_id, stat.object_type
        wanted = _STAT_DN_TYPES.get(object_type)
        if wanted is not None:
            number, switch_name = split_object_id(object_id)
            if switch_name is None:
                found = [name for name, dns in dns_of.items() if number in dns]
                if len(found) > 1:
                    add(
                        f"{where}.object-id",
                        f"DN {number!r} exists on several switches ({_names(found)}),"
                        f" so name its switch: '{number}@<switch>'",
                    )
                    continue
                if not found:
                    if switches_complete:
                        add(
                            f"{where}.object-id",
                            f"DN {number!r} is not a DN of any switch"
                            f" (switches: {_names(set(dns_of))})",
                        )
                    continue
                switch_name = found[0]
            elif switch_name not in dns_of:
                if switch_name not in unverified_switches:
                    add(
                        f"{where}.object-id",
                        f"unknown switch {switch_name!r} in {object_id!r}"
                        f" (switches: {_names(dns_of.keys() | unverified_switches)})",
                    )
                continue
            dn = dns_of[switch_name].get(number)
            if dn is None:
                add(f"{where}.object-id", f"DN {number!r} is not a DN of switch {switch_name!r}")
            elif dn.type is not wanted:
                add(
                    f"{where}.object-id",
                    f"DN {number!r} on switch {switch_name!r} is {_a(dn.type)};"
                    f" a {object_type} statistic needs {_a(wanted)}",
                )
        elif object_type == "AgentGroup":
            if object_id not in group_names and object_id not in unverified_groups:
                add(
                    f"{where}.object-id",
                    f"unknown agent group {object_id!r}"
                    f" (agent groups: {_names(group_names | unverified_groups)})",
                )
        elif object_id not in ivr_names and object_id not in unverified_ivrs:
            add(
                f"{where}.object-id",
                f"unknown IVR {object_id!r} (IVRs: {_names(ivr_names | unverified_ivrs)})",
            )
    return problems
