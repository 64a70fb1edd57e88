"""Server-wide options (TOML table ``[server]``), with its ``[server.timers]`` and
``[server.tcp-keep-alive]`` tables.

Each option says which option of the original it stands for, or that it is a project decision.
"""

from __future__ import annotations

__all__ = ["ServerOptions", "TcpKeepAlive", "Timers"]

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from ivr_server.vocabulary import LOG_LEVELS, LogFormat

from .addresses import ClientEntry, ListenAddress
from .base import ConfigModel
from .fields import Encoding, Flag, PositiveSeconds, TimerSeconds, duration


def _non_negative_seconds(value: object) -> float:
    seconds = duration(value, "s")
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
    seconds = duration(value, "s")
    if seconds <= 0:
        raise ValueError(problem)
    return seconds


class Timers(ConfigModel):
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
    make_call_timeout: TimerSeconds = 60.0
    """How long a ``MakeCall`` waits for its destination to answer; then the call is released
    and the IVR gets ``CallError FailedReq='MakeCall' TlibErrCode='232'`` (TERR_DN_NO_ANSWER).
    Project decision (MODES-AND-HA G10), no original."""
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
    seconds = duration(value, "s")
    if not 1 <= seconds <= 32767:
        raise ValueError("must be from 1 s to 32767 s (the system's bounds)")
    return float(int(seconds))


TcpSeconds = Annotated[float, BeforeValidator(_tcp_seconds)]
"""Whole seconds from 1 to 32767 for the system's TCP keep-alive timers; a bare number is seconds,
a string may carry a unit; a fraction of a second is dropped."""


class TcpKeepAlive(ConfigModel):
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


class ServerOptions(ConfigModel):
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
    reserved_descriptors: int = Field(default=160, ge=0)
    """File descriptors that IVR connections never take: the HTTP API's connections (up to
    ``api.max-connections``, at most this less 32), the log, the configuration file, the
    webhooks' connections. Re-read on reload. Project decision, no original."""
    max_connections_per_peer: int = Field(default=256, ge=0)
    """Most IVR connections open at once from one peer address; one more is refused as over
    ``max-connections`` (GLI Error frame code 7, then closed). 0 = no cap per address.
    Re-read on reload. Project decision, no original."""
    login_timeout: Annotated[float, BeforeValidator(_non_negative_seconds)] = 30.0
    """Seconds an IVR connection may stay open without sending a document the server can read
    (a ``LoginReq``, or in Network mode any request); then it gets a GLI Error frame (code 5)
    and is closed. 0 = never. A bare number is seconds; a string may carry a unit. Re-read on
    reload (for connections accepted afterwards). Project decision, no original."""
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
    log_format: LogFormat = "auto"
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
    called_num_subset: int = Field(default=0, ge=0, le=64)
    """Network mode: only the rightmost this many digits of a ``NewCall``'s ``CalledNum`` are
    looked up as a routing DN (and become the call's ThisDN); 0 = the whole number. Original:
    ``[IServer] called-num-subset``."""
    timeline_entries: int = Field(default=200, ge=0, le=100_000)
    """Entries each call's timeline keeps (IVR requests and replies, switch events, router
    instructions, errors; the oldest go first), served at ``GET /api/v1/calls/{id}/timeline``;
    0 = no timelines. Re-read on reload (for calls that start afterwards). Project decision, no
    original."""
    timeline_retention: Annotated[float, BeforeValidator(_non_negative_seconds)] = 600.0
    """How long the timeline of an ended call is kept. A bare number is seconds; a string may
    carry a unit. Re-read on reload. Project decision, no original."""
    timeline_calls: int = Field(default=10_000, ge=0)
    """Ended calls whose timelines are kept at most (the oldest go first). Re-read on reload.
    Project decision, no original."""
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
            if level not in LOG_LEVELS:
                raise ValueError(f"unknown log level {value!r}: use one of {', '.join(LOG_LEVELS)}")
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
