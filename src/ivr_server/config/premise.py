"""The link of a T-Server to a premise PBX (Behind mode): ``[tservers.premise]``.

A switch of type ``premise-csta`` is a PBX the server watches over its CTI link (CSTA Phase III,
XML encoding: ECMA-269/323/354) rather than a switch of its own; the T-Server serving it carries
that link: where the PBX listens, how the application session is opened and kept, how long a
request may wait for its answer, how to reconnect, and how the PBX's events that come before the
IVR's ``NewCall`` are kept (MODES-AND-HA §1.6; its ``wait-for-ringing`` is ``[server.timers]``'s,
shared by every switch). :func:`premise_problems` checks how premise switches, their T-Servers and
the IVR ports on them fit together.
"""

from __future__ import annotations

__all__ = [
    "PREMISE_SWITCH_TYPES",
    "CstaDialect",
    "EmulateSingleStep",
    "PremiseConfig",
    "premise_problems",
]

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal, Self

from pydantic import Field, SecretStr, model_validator

from ivr_server.errors import ConfigProblem
from ivr_server.vocabulary import DnType

from .addresses import PeerAddress
from .base import ConfigModel
from .fields import Flag, PositiveSeconds

if TYPE_CHECKING:
    from .ivrs import IvrConfig
    from .switches import SwitchConfig, TServerConfig

CstaDialect = Literal["generic", "openscape", "avaya-dmcc", "mx-one"]
"""The PBX's flavour of CSTA XML: ``generic`` (ECMA-323 as written), ``openscape`` (Unify
OpenScape Voice), ``avaya-dmcc`` (Avaya AES DMCC XML), ``mx-one`` (Mitel MX-ONE)."""

EmulateSingleStep = Literal["off", "on-answer", "on-alerting"]
"""How ``OneStepXfer`` is done on the PBX (G4): ``off`` (SingleStepTransferCall), or emulated
with ConsultationCall + TransferCall, completed when the destination answers (``on-answer``) or
as soon as it rings (``on-alerting``)."""

PREMISE_SWITCH_TYPES: Final[frozenset[str]] = frozenset({"premise-csta"})
"""The switch types whose T-Server links to a premise PBX (and has a ``premise`` table)."""


class PremiseConfig(ConfigModel):
    """A T-Server's link to a premise PBX over CSTA XML (TOML ``[tservers.premise]``)."""

    address: PeerAddress
    """Where the PBX's CSTA XML service listens: ``"host:port"``, IPv6 in brackets
    (``"[fd00::5]:3022"``)."""
    application_id: str = Field(default="ivr-server", min_length=1)
    """The ``applicationID`` this server gives in StartApplicationSession (ECMA-354)."""
    user: str | None = Field(default=None, min_length=1)
    """User name for the PBX's authentication, if it asks for one."""
    password: SecretStr | None = None
    """Password for ``user``; never logged nor shown (the API and the log print ``**********``).
    Needs ``user``."""
    dialect: CstaDialect = "generic"
    """``generic``, ``openscape``, ``avaya-dmcc`` or ``mx-one``: the PBX's differences from
    ECMA-323 as written (namespace, session parameters, event invoke ids)."""
    tls: Flag = False
    """``true``: the link is TLS (the PBX's certificate checked against the system's CAs)."""
    session_duration: PositiveSeconds = 180.0
    """The application session's duration asked for in StartApplicationSession; the PBX ends a
    session not kept alive within it."""
    heartbeat: PositiveSeconds = 60.0
    """How often the session is kept alive (ResetApplicationSessionTimer); shorter than
    ``session-duration``."""
    invoke_timeout: PositiveSeconds = 10.0
    """How long a request to the PBX waits for its response before it counts as failed. The
    one real site's PBX took up to 4.8 s to refuse a transfer, so keep it well above 5 s."""
    reconnect_initial: PositiveSeconds = 1.0
    """The first wait before reconnecting after the link is lost or refused; doubled at each
    failure up to ``reconnect-max``."""
    reconnect_max: PositiveSeconds = 30.0
    """The longest wait between two reconnection attempts; at least ``reconnect-initial``."""
    defer_tlib_events: Flag = True
    """``true``: the PBX's events on a port DN that come before the IVR's ``NewCall`` are kept
    for it (the latest call per DN) for ``waiting-for-newcall-timeout``; ``false``: dropped.
    Original: ``defer-tlib-events``."""
    waiting_for_newcall_timeout: PositiveSeconds = 30.0
    """How long events kept for a ``NewCall`` (``defer-tlib-events``) wait before they are
    dropped. Original: ``waiting-for-newcall-timeout``."""
    emulate_single_step: EmulateSingleStep = "off"
    """``off``: ``OneStepXfer`` is the PBX's SingleStepTransferCall; ``on-answer`` /
    ``on-alerting``: a PBX without it gets ConsultationCall + TransferCall, completed when the
    destination answers / rings (the IVR sees Held, Dialing, Established, XferComplete; G4)."""
    mirror_keys: tuple[str, ...] = ()
    """User-data keys whose values are copied into CSTA ``correlatorData`` (``key=value`` pairs
    joined by ``;``, at most 32 octets) on SingleStepTransferCall and ConsultationCall, for PBX
    applications that cannot read ivr-server's API (G17)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        wrong: list[str] = []
        if self.password is not None and self.user is None:
            wrong.append("a password needs a user: set user too, or remove password")
        if self.heartbeat >= self.session_duration:
            wrong.append(
                f"heartbeat ({self.heartbeat:g} s) must be shorter than session-duration"
                f" ({self.session_duration:g} s), or the PBX may end the session between two heartbeats"
            )
        if self.reconnect_initial > self.reconnect_max:
            wrong.append(
                f"reconnect-initial ({self.reconnect_initial:g} s) is longer than"
                f" reconnect-max ({self.reconnect_max:g} s)"
            )
        if wrong:
            raise ValueError("; ".join(wrong))
        return self


def premise_problems(
    switches: Sequence[SwitchConfig | None],
    tservers: Sequence[TServerConfig | None],
    ivrs: Sequence[IvrConfig | None],
) -> list[ConfigProblem]:
    """Every problem in how premise switches, their T-Servers and IVR ports fit together.

    A premise switch is served by a T-Server with a ``premise`` table (the link to the PBX), and
    only such a switch's T-Server has one; an IVR port whose DN is on a premise switch is a
    ``voice-treatment-port`` DN (the PBX delivers calls to the IVR's channel there), and each
    such DN of a premise switch is some IVR's port (it is monitored for that port). Items that
    are ``None`` (invalid on their own) are skipped; unknown names are reported elsewhere.
    """
    problems: list[ConfigProblem] = []
    premise: dict[str, int] = {}  # premise switch name -> index
    for i, switch in enumerate(switches):
        if switch is not None and switch.type in PREMISE_SWITCH_TYPES:
            premise.setdefault(switch.name, i)
    served: set[str] = set()
    for i, tserver in enumerate(tservers):
        if tserver is None:
            continue
        if tserver.switch in premise:
            served.add(tserver.switch)
            if tserver.premise is None:
                problems.append(
                    ConfigProblem(
                        f"tservers[{i}]",
                        f"T-Server {tserver.name!r} serves premise switch {tserver.switch!r}:"
                        " give it a [tservers.premise] table with the PBX's address",
                    )
                )
        elif tserver.premise is not None:
            problems.append(
                ConfigProblem(
                    f"tservers[{i}].premise",
                    f"only the T-Server of a premise switch links to a PBX; switch"
                    f' {tserver.switch!r} is not one (type = "premise-csta")',
                )
            )
    for name, i in premise.items():
        if name not in served and all(t is not None for t in tservers):
            problems.append(
                ConfigProblem(
                    f"switches[{i}]",
                    f"premise switch {name!r} has no T-Server: add a [[tservers]] entry with"
                    f" switch = {name!r} and its [tservers.premise] link",
                )
            )
    problems += _port_problems(switches, tservers, ivrs, premise)
    return problems


def _port_problems(
    switches: Sequence[SwitchConfig | None],
    tservers: Sequence[TServerConfig | None],
    ivrs: Sequence[IvrConfig | None],
    premise: dict[str, int],
) -> list[ConfigProblem]:
    """Ports on premise switches are voice-treatment-port DNs, and such DNs are IVR ports."""
    problems: list[ConfigProblem] = []
    switch_of_tserver = {t.name: t.switch for t in tservers if t is not None}
    used: set[tuple[str, str]] = set()
    for i, ivr in enumerate(ivrs):
        if ivr is None:
            continue
        reached = {switch_of_tserver[t] for t in ivr.tservers if t in switch_of_tserver}
        for k, port in enumerate(ivr.ports):
            name = port.switch if port.switch is not None else next(iter(reached), None)
            if port.switch is None and len(reached) != 1:
                continue  # which switch is undecided: reported by the reference checks
            if name is None or name not in premise:
                continue
            used.add((name, port.dn))
            switch = switches[premise[name]]
            dn = next((d for d in switch.dns if d.number == port.dn), None) if switch else None
            if dn is not None and dn.type is not DnType.VOICE_TREATMENT_PORT:
                problems.append(
                    ConfigProblem(
                        f"ivrs[{i}].ports[{k}].dn",
                        f"DN {port.dn!r} of premise switch {name!r} is {dn.type.value}; an IVR"
                        " port on a premise switch is a voice-treatment-port DN",
                    )
                )
    if any(ivr is None for ivr in ivrs) or any(t is None for t in tservers):
        return problems  # some ports are unknown: an unused DN cannot be told apart
    for name, i in premise.items():
        switch = switches[i]
        for k, dn in enumerate(switch.dns if switch is not None else ()):
            if dn.type is DnType.VOICE_TREATMENT_PORT and (name, dn.number) not in used:
                problems.append(
                    ConfigProblem(
                        f"switches[{i}].dns[{k}]",
                        f"voice-treatment-port DN {dn.number!r} of premise switch {name!r} is"
                        " no IVR's port: list it in an IVR's ports, or remove it",
                    )
                )
    return problems
