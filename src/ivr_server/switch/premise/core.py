"""What every part of the premise switch shares: its view and event queue (from the virtual
switch's :class:`~ivr_server.switch.virtual.core.SwitchCore`), the CSTA session of the current
connection, the premise calls and their identity, and the requests waiting for the PBX.

The premise switch keeps two tables beside its view. The view is the T-Library side (ConnIDs,
parties, user data), changed only by the events the switch publishes, as for the virtual switch.
:class:`PremiseCall` is the PBX side of one call: its premise call id, where it is at our monitored
DNs (alerting, connected, held) and which other devices are in it; a call is forgotten when it has
left every DN of ours (so the table holds only live calls). A request that needs the PBX waits in
:attr:`PremiseCore.requests` under the invoke id of its CSTA request until the answer, a timeout,
or the link's loss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Final

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.dialects import DIALECTS, Dialect
from ivr_server.switch.csta.session import CstaSession, SessionState
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import DnType
from ivr_server.switch.premise.settings import PremiseSettings
from ivr_server.switch.requests import CallRequest, SwitchRequest, TMakeCall
from ivr_server.switch.view import DnRecord
from ivr_server.switch.virtual.core import SwitchCore
from ivr_server.wire.kv import KvList

__all__ = [
    "HANDED_LIMIT",
    "LOG",
    "PBX_DN_TYPES",
    "PREMISE_ROUTING_TYPES",
    "Flow",
    "PremiseCall",
    "PremiseCore",
    "ts_call_id",
]

LOG: Final = logging.getLogger("ivr_server.switch.premise")

PBX_DN_TYPES: Final = frozenset({DnType.VOICE_TREATMENT_PORT, DnType.EXTENSION, DnType.ACD_QUEUE})
"""DN types that live on the PBX and are monitored there; routing points and Virtual Routing
Points are ivr-server's own (G1) and never reach the PBX."""

PREMISE_ROUTING_TYPES: Final = frozenset({DnType.ROUTING_POINT, DnType.VIRTUAL_ROUTING_POINT})
"""DN types a premise switch presents calls on for a router (TRouteRequest)."""

_MAX_TS_CALL_ID: Final = 2**32 - 1

HANDED_LIMIT: Final = 1024
"""Calls remembered for their arrival at another DN of ours after a transfer."""


def ts_call_id(premise_id: str) -> int | None:
    """The premise call id as a TSCallId when it is a decimal number that fits 32 bits."""
    if premise_id.isascii() and premise_id.isdigit() and len(premise_id) <= 10:
        number = int(premise_id)
        if number <= _MAX_TS_CALL_ID:
            return number
    return None


class PremiseCall:
    """One call as the PBX reports it, at the DNs of ours it is at."""

    def __init__(self, premise_id: str, conn_id: str, call_id: int) -> None:
        self.premise_id = premise_id
        """The PBX's callID (or a made-up key when the PBX gave none)."""
        self.conn_id = conn_id
        """The ConnID we gave the call (16 lower-case hex)."""
        self.call_id = call_id
        """The TSCallId (AttributeCallID)."""
        self.at: dict[str, str] = {}
        """Our DN → its local connection state there (``alerting``, ``connected``, ``held``)."""
        self.devices: set[str] = set()
        """The other devices known to be in the call (to see when only our DN is left)."""
        self.ani: str | None = None
        self.dnis: str | None = None
        self.this_queue: str | None = None
        self.other_dn: str | None = None
        self.flow: Flow | None = None
        """The call-control request this call is part of while it waits for the PBX
        (:mod:`~ivr_server.switch.premise.control`)."""
        self.added: set[str] = set()
        """Parties a conference of ours added (their leaving is EventPartyDeleted)."""
        self.dialed: str | None = None
        """The number a call placed by a request of ours dialled (its OtherDN at the port, kept
        apart from what other DNs' events teach about the call)."""
        self.carried: KvList = ()
        """User data the call brought from a transfer of ours to another DN of ours (published
        with its first event there, the view holding none for it yet)."""


class Flow:
    """A call-control request in progress on the PBX: the request, the port's DN, the calls it
    concerns (``orig``: the port's call; ``new``: the call it places, a consultation or a
    MakeCall) and what it still waits for. Both calls point to it while it lasts."""

    def __init__(
        self, req: CallRequest | TMakeCall, dn: str, dest: str, orig: PremiseCall | None
    ) -> None:
        self.req = req
        self.dn = dn
        self.dest = dest
        self.orig = orig
        self.new: PremiseCall | None = None
        self.dialed = False
        """EventDialing was published (the PBX's answer came)."""
        self.busy = False
        """The destination was reported busy before the answer came."""
        self.failure: tuple[TErrorCode, str] | None = None
        """The error to report once the original call is back (a refused consultation)."""
        self.emulate: str | None = None
        """``on-answer`` / ``on-alerting``: an emulated single-step transfer (G4)."""


class PremiseCore(SwitchCore):
    """The premise switch's state; :class:`~ivr_server.switch.premise.switch.PremiseSwitch`
    adds the doors."""

    def __init__(
        self,
        name: str,
        tserver: str,
        dns: Iterable[tuple[str, DnType]],
        settings: PremiseSettings,
        *,
        first_conn_id: int = 1,
        first_call_id: int = 1,
    ) -> None:
        super().__init__(
            name, tserver, dns, first_conn_id=first_conn_id, first_call_id=first_call_id
        )
        self.routing_point_types = PREMISE_ROUTING_TYPES
        self.settings = settings
        dialect = DIALECTS.get(settings.dialect)
        if dialect is None:
            LOG.warning("switch %s: unknown CSTA dialect %r, using generic", name, settings.dialect)
            dialect = DIALECTS["generic"]
        self.dialect: Dialect = dialect
        self.session: CstaSession | None = None
        """The application session of the current connection, if any."""
        self.calls: dict[str, PremiseCall] = {}
        """Premise call id → call, for the calls at our DNs."""
        self.by_conn: dict[str, str] = {}
        """ConnID → premise call id."""
        self.requests: dict[int, SwitchRequest] = {}
        """Invoke id → the T-Library request waiting for that CSTA answer."""
        self.clearing: dict[tuple[str, str], int] = {}
        """(premise call id, DN) → ReferenceID of the TReleaseCall clearing that connection."""
        self.transfers: dict[tuple[str, str], int] = {}
        """(premise call id, DN) → ReferenceID of the transfer taking the call from the DN: its
        EventReleased when the PBX's Transfered (or the DN's own ConnectionCleared) comes first;
        the caller leaving meanwhile is no transfer."""
        self.anonymous = 0
        """Counter for the keys of calls the PBX reported without a callID."""
        self.unmonitored: set[str] = set()
        """DNs reported out of service because the PBX would not monitor them."""
        self.now = 0.0
        """The time the adapter last gave (any door that takes ``now``)."""
        self.outbound: dict[str, Flow] = {}
        """Port DN → the MakeCall or consultation whose new call the PBX has not named yet."""
        self.services: dict[int, type[m.CstaRequest]] = {}
        """Invoke id → the CSTA service sent for the T-Library request waiting under it."""
        self.handed: dict[str, tuple[str, int, KvList]] = {}
        """Premise call id → (ConnID, TSCallId, user data) of a call a single-step transfer of
        ours sends to another DN of ours: it arrives there with them (at most
        :data:`HANDED_LIMIT`, the oldest dropped)."""
        self.restoring: dict[int, Flow] = {}
        """Invoke id of a RetrieveCall/ReconnectCall getting the original call back after its
        request failed → that request's flow (its EventError follows EventRetrieved)."""
        self.deadlines: dict[int, float | None] = {}
        """Invoke id → when the T-Library request sent under it times out; ``None`` until the
        next door that brings the time (a request comes without it)."""
        self.unlinked: dict[str, Flow] = {}
        """HA restore (issue 25, ``persist.py``): ConnID of a consultation's original call not
        restored yet → the consultation's flow, linked when it is."""
        self.parked: list[SwitchRequest] | None = None
        """HA takeover (issue 25, G27: resync, then answer): once calls were restored and until
        the link is up and resynced, the requests that need the PBX wait here instead of being
        refused ``TERR_NO_SWITCH`` (a replayed or new EndCall then clears the call on the PBX);
        ``None``: nothing restored, or the link has been up since (the switch's own rule)."""
        self.reclear: list[tuple[str, str, int]] = []
        """HA restore (issue 25): (premise call id, DN, ReferenceID) of the TReleaseCalls the old
        node had not seen confirmed, cleared again after the link's resync if still there."""
        self.parked_until: float | None = None
        """When the parked requests are refused after all (the link did not come up): the
        invoke timeout after the first door following the restore."""

    def send_for(
        self, req: SwitchRequest, session: CstaSession, request: m.CstaRequest, dn: str | None
    ) -> int:
        """Send ``request`` for the T-Library request ``req``, which waits for its answer.

        :meth:`request` is given no time, so the invoke's timeout is kept here and starts at the
        next door that brings one (:meth:`next_deadline` asks for it at once); the session is
        told no deadline of its own, so a slow but timely answer is never lost to a stale clock.
        """
        invoke_id = session.send_request(request, math.inf, dn=dn)
        self.requests[invoke_id] = req
        self.services[invoke_id] = type(request)
        self.deadlines[invoke_id] = None
        return invoke_id

    # -- checks ----------------------------------------------------------------------------------

    def address(self, req: SwitchRequest, number: str) -> DnRecord | None:
        """The DN must be configured (``TERR_NOT_CONFIGURED``). Unlike the virtual switch, the
        link is not checked here: user data and routing points are ivr-server's own and keep
        working while the PBX link is down (G1, G17); what needs the PBX checks
        :meth:`linked` first."""
        record = self.view.record(number)
        if record is None:
            self.fail(
                req,
                number,
                TErrorCode.TERR_NOT_CONFIGURED,
                f"DN {number} is not configured on switch {self.name}",
            )
        return record

    def linked(self, req: SwitchRequest, number: str | None) -> CstaSession | None:
        """The active session for a request that needs the PBX; else EventError
        ``TERR_NO_SWITCH`` (the link is down)."""
        session = self.session
        if not self.view.link_up or session is None or session.state is not SessionState.ACTIVE:
            parked = self.parked
            if parked is not None:  # HA: restored calls wait for the link's resync (G27)
                parked.append(req)
                return None
            self.fail(
                req,
                number,
                TErrorCode.TERR_NO_SWITCH,
                f"T-Server {self.tserver} has no link to premise switch {self.name}",
            )
            return None
        return session

    def hand_over(self, call: PremiseCall, dest: str, user_data: KvList) -> None:
        """``call`` is being transferred to ``dest``: when that is a DN of ours, the call keeps
        its ConnID, TSCallId and user data there (an agent desktop reads them by ConnID)."""
        record = self.view.record(dest)
        if record is None or record.type not in PBX_DN_TYPES:
            return
        self.handed[call.premise_id] = (call.conn_id, call.call_id, user_data)
        if len(self.handed) > HANDED_LIMIT:
            del self.handed[next(iter(self.handed))]

    def new_call(self, premise_id: str) -> PremiseCall:
        """A call the PBX just told us of, with a new ConnID and its TSCallId (or those it had
        before a transfer of ours brought it here)."""
        handed = self.handed.pop(premise_id, None) if self.handed else None
        if handed is not None:
            conn_id, call_id, carried = handed
        else:
            conn_id, carried = f"{self.next_conn:016x}", ()
            self.next_conn += 1
            found = ts_call_id(premise_id)
            if found is None:
                found = self.next_call_id
                self.next_call_id += 1
            call_id = found
        call = PremiseCall(premise_id, conn_id, call_id)
        call.carried = carried
        self.calls[premise_id] = call
        self.by_conn[conn_id] = premise_id
        return call

    def forget(self, call: PremiseCall) -> None:
        """The call has left every DN of ours (and any call-control request it was part of)."""
        flow, call.flow = call.flow, None
        if flow is not None:
            if flow.orig is call:
                flow.orig = None
            if flow.new is call:
                flow.new = None
                orig = flow.orig
                if orig is not None and flow.emulate is None and flow.failure is None:
                    orig.flow = None  # a consultation that ended: the original is free
        self.calls.pop(call.premise_id, None)
        self.by_conn.pop(call.conn_id, None)
        for key in [k for k in self.clearing if k[0] == call.premise_id]:
            del self.clearing[key]
        if self.transfers:
            for key in [k for k in self.transfers if k[0] == call.premise_id]:
                del self.transfers[key]

    def touch(self, call: PremiseCall) -> None:
        """HA (issue 25): the PBX side of ``call`` changed without an event about it (held,
        retrieved, a device left, a new callID): its record is written with the turn's batch
        (``switch/premise/persist.py``). One test while HA is off."""
        changed = self.view.changed_calls
        if changed is not None:
            changed.add(call.conn_id)

    def call_of(self, conn_id: str) -> PremiseCall | None:
        """The premise call of a ConnID."""
        premise_id = self.by_conn.get(conn_id)
        return self.calls.get(premise_id) if premise_id is not None else None
