"""What every family of the service shares: the state, the send queue, the common checks.

Theory of operation. The service is split by family of messages (login.py, monitoring.py,
agents.py, admission.py, statistics.py, dialout.py), each a small class holding this one
:class:`ServiceContext`; :class:`~ivr_server.service.core.IvrService` builds them and keeps the
one dispatch table. A family queues replies with :meth:`ServiceContext.send` and raises
:class:`~ivr_server.calls.replies.Refusal` for an error answer (turned into its reply in
``IvrService.handle``, the one place where errors become answers). After a request to a switch it
calls :meth:`ServiceContext.pump`, which drains the switches through the event bus (bus.py) to
the subscribers of each event. Nothing here imports a family, so the families import this module
and the bus, never each other's (but for the few calls ``core.py`` wires in their constructors).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ivr_server.calls import CallManager
from ivr_server.calls.replies import Refusal, before_login
from ivr_server.config import IvrConfig, PortConfig, ServerConfig
from ivr_server.logs import fields
from ivr_server.metrics import Metrics
from ivr_server.outbound import DialOutManager
from ivr_server.routing import Router
from ivr_server.service.bus import Origin, SwitchEventBus
from ivr_server.service.peers_state import PeerState
from ivr_server.service.ports import PortIndex
from ivr_server.service.sessions import Login, Session
from ivr_server.stats import StatsEngine
from ivr_server.switch import Switch, SwitchEvent
from ivr_server.switch.references import ROUTERS, SERVICE, ReferenceIds
from ivr_server.wire import Message
from ivr_server.wire import messages as m
from ivr_server.wire.limits import ECHO_ALWAYS_FITS, DocumentTooLarge, fit_echo

__all__ = ["ServiceContext", "Unsent", "end", "log_ctx", "log_id"]

log = logging.getLogger("ivr_server.service")

Unsent = tuple[Session, str | None, DocumentTooLarge]
"""A document that was too long to send: to whom, on which CallId, and its size."""


class ServiceContext:
    """The service's shared state and the tools every family uses."""

    calls: CallManager
    """The calls of IVR ports (set by ``IvrService``: it needs the dial-out family)."""
    outbound: DialOutManager
    """DialOut registrations and predictive-call requests (PROTOCOL.md §3.10)."""
    stats: StatsEngine
    """The built-in statistics engine (PeekStatReq/GetStatReq, the API)."""
    bus: SwitchEventBus
    """Where switch events go (:meth:`pump`)."""

    def __init__(self, config: ServerConfig, id_seed: int) -> None:
        self.config = config
        self.id_seed = id_seed
        """Seeds the virtual switches' ConnIDs (one server of several keeps them apart)."""
        self.now = 0.0
        """The clock as of the latest input (the runtime passes it in; the service never reads
        it)."""
        self.metrics = Metrics()
        """What the server counted (exported by the API's /metrics)."""
        self.listeners: list[Callable[[str, SwitchEvent], None]] = []
        """Called with (switch name, event) for every switch event (the API's event stream);
        empty when nobody listens, which costs nothing."""
        self.call_started: list[Callable[[str, m.NewCall], None]] = []
        """Called with (the call's key, ``Call.key``, and its NewCall) after a ``NewCall`` was admitted and its call
        started (e.g. the access numbers hand the data bound to the call's DNIS to it,
        MODES-AND-HA G24); empty: nothing is done."""
        self.flow_control = config.server.flow_control
        self.stopping = False
        """The server is stopping: no new call, T-Servers reported ``Unavailable``."""
        self.switches: dict[str, Switch] = {}
        self.sessions: dict[int, Session] = {}
        self.routers: Mapping[str, Router] = {}
        """Switch name -> the router serving its routing points."""
        self.router_refs = ReferenceIds(*ROUTERS)
        """The ReferenceIDs of the routers' requests (shared by the routers of every build)."""
        self.refs = ReferenceIds(*SERVICE)
        """The ReferenceIDs of the service's own requests (agent control, auto-login)."""
        self.ports = PortIndex()
        """Where each configured port's calls go, and which DN is which port."""
        self.dirty: dict[Session, None] = {}
        """Sessions with data queued since the runtime last looked (``IvrService.take_dirty``)."""
        self.unsent: list[Unsent] = []
        """Documents too long to send since the last look (:meth:`send`)."""
        self.removed: list[str] = []
        """Calls removed again since the last look because their start failed."""
        self.muted = False
        """A hot standby (service/standby.py, issue 25): no document leaves but ``LoginResp``
        and ``FlowControl``, which both nodes of a pair send (PROTOCOL.md §8.1)."""
        self.peers: PeerState | None = None  # hook of active mode (issue 25, helper F)
        """The other live nodes' busy ports and agents (``[ha] mode = "active"``, set by
        runtime/ha_active.py; peers_state.py); ``None`` otherwise: nothing is checked."""

    # ------------------------------------------------------------------ sending

    def send(self, session: Session, call_id: str | None, message: Message) -> None:
        """Queue ``message`` on ``session``. The safety net of issue 19: a document longer than a
        link sends (a bug: the bounds on what IVRs send should make it impossible) is not sent at
        all and noted in ``unsent``; the request being handled then gets a small error answer
        instead (``IvrService.handle``), a call it was starting is removed again, and one line is
        logged. The link stays open."""
        if self.muted and not isinstance(message, (m.LoginResp, m.FlowControl)):
            return  # a hot standby answers nothing else (service/standby.py)
        try:
            session.link.send(call_id, message)
        except DocumentTooLarge as too_large:
            self.unsent.append((session, call_id, too_large))
            self.metrics.errors["oversize"] += 1
            return
        session.documents_out += 1
        self.metrics.messages_out[message.tag] += 1
        self.dirty[session] = None

    def send_to_owner(self, owner: Any, call_id: str, message: Message) -> None:
        """A call's message to the session that owns the call (none: dropped, DECISIONS.md)."""
        if isinstance(owner, Session) and owner.id in self.sessions:
            self.send(owner, call_id, message)
        else:
            log.debug(
                "CallId %s: %s dropped, no session of its IVR is connected", call_id, message.tag
            )

    def take_unsent(self) -> list[Unsent]:
        unsent = self.unsent
        self.unsent = []
        return unsent

    def log_unsent(
        self,
        unsent: list[Unsent],
        session: Session | None = None,
        tag: str | None = None,
        call_id: str | None = None,
        removed: list[str] | None = None,
    ) -> None:
        """One line for every document of one request (or one timer, one operator action) that
        was too long to send; no traceback: the cause is the size, said here."""
        shown = ", ".join(
            f"{error.tag} of {error.size} bytes to session {target.id} on CallId "
            f"{log_id(target_call_id)}"
            for target, target_call_id, error in unsent[:3]
        )
        more = f" and {len(unsent) - 3} more" if len(unsent) > 3 else ""
        cause = f"session {session.id}: {tag}: " if session is not None else ""
        undone = "; the call was removed again, its port is free" if removed else ""
        log.warning(
            "%s%d document(s) not sent, longer than a link sends (%d bytes): %s%s%s",
            cause,
            len(unsent),
            unsent[0][2].limit,
            shown,
            more,
            undone,
            extra=log_ctx(session, call_id) if session is not None else None,
        )

    def notify(self, notice: SwitchEvent) -> None:
        """A server event (not a switch's) to the event-stream listeners."""
        for listener in self.listeners:
            listener("", notice)

    def pump(self, origin: Origin | None = None) -> None:
        """Deliver every queued switch event (bus.py); ``origin``: the request of a session that
        the events may answer."""
        self.bus.pump(self.now, self.routers, origin)

    # ------------------------------------------------------------------ common checks

    def require_login(self, session: Session, call_id: str | None, message: Message) -> Login:
        """The session's login, or the refusal of a request before it."""
        login = session.login
        if login is None or not login.known_client:
            raise before_login(call_id, message)
        return login

    def v4_sessions(self, ivr_name: str) -> Iterable[Session]:
        """The 4.0 sessions of ``ivr_name`` (those told about ports and agents)."""
        return [s for s in self.sessions.values() if s.is_v4 and s.ivr_name == ivr_name]

    def tserver_up(self, name: str) -> bool:
        """Is T-Server ``name``'s link to its switch up?"""
        tserver = self.config.tserver(name)
        switch = self.switches.get(tserver.switch) if tserver is not None else None
        return switch is not None and switch.view.link_up

    def port_usable(self, ivr: IvrConfig, port: PortConfig) -> bool:
        """Can ``port`` of ``ivr`` take calls (enabled, with a registered DN)?"""
        if not (ivr.enabled and port.enabled):
            return False
        target = self.config.port_dn(ivr, port)
        if target is None:
            return False
        switch = self.switches.get(target[0].name)
        snapshot = switch.view.dn(target[1].number) if switch is not None else None
        return snapshot is not None and snapshot.registered

    def paused_reason(self) -> str:
        """Why a new call gets ``EndCall EndCause='ServerPaused'``."""
        if self.stopping:
            return "the server is stopping"
        return "flow control is on or the T-Server link is down"


def log_id(call_id: str | None) -> str:
    """A CallId for a log line: quoted, cut after 64 characters."""
    if call_id is None:
        return "none"
    return repr(call_id) if len(call_id) <= 64 else f"{call_id[:64]!r}... ({len(call_id)} chars)"


def log_ctx(session: Session, call_id: str | None = None) -> dict[str, Any]:
    """Log fields of a line about ``session`` (and a call; a CallId too long to echo is cut)."""
    if call_id is not None and len(call_id) > ECHO_ALWAYS_FITS:
        call_id = fit_echo(call_id)
    return fields(session=session.id, peer=session.peer, ivr=session.ivr_name, call_id=call_id)


def end(call_id: str | None, cause: Any, reason: str) -> Refusal:
    """``EndCall EndCause=<cause>`` on a new call's CallId (the call does not exist afterwards)."""
    return Refusal(call_id, m.EndCall(EndCause=cause), reason)
