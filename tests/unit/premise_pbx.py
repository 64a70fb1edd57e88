"""A scripted PBX for the premise switch's unit tests: it reads the CSTA frames the switch writes
and answers with frames the CSTA codec makes, as a real PBX would send them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import CSTA_NAMESPACES, encode
from ivr_server.switch.csta.framing import FrameDecoder, encode_frame
from ivr_server.switch.events import DnType, EventLinkConnected, SwitchEvent
from ivr_server.switch.premise import PremiseSettings, PremiseSwitch
from ivr_server.switch.requests import TOpenLink

SWITCH = "SW_Site"
TSERVER = "TServer_IVR"
PORT, PORT2, AGENT_DN, QUEUE, VRP, RP = "3001", "3002", "3081", "3085", "4200", "5000"
CALLER = "5551234"
DNS: tuple[tuple[str, DnType], ...] = (
    (PORT, DnType.VOICE_TREATMENT_PORT),
    (PORT2, DnType.VOICE_TREATMENT_PORT),
    (AGENT_DN, DnType.EXTENSION),
    (QUEUE, DnType.ACD_QUEUE),
    (VRP, DnType.VIRTUAL_ROUTING_POINT),
    (RP, DnType.ROUTING_POINT),
)
MONITORED = (PORT, PORT2, AGENT_DN, QUEUE)
SETTINGS = PremiseSettings(
    host="127.0.0.1",
    port=3022,
    user="ivr",
    password="s3cret",
    invoke_timeout_s=10.0,
    heartbeat_s=60.0,
)
Snap = Mapping[str, Iterable[tuple[str, str]]]
"""DN → (call id, local connection state) of each call the PBX shows there."""


def xref(dn: str) -> str:
    """The monitor cross-reference id the scripted PBX gives ``dn``."""
    return f"x{dn}"


class Pbx:
    """The far end: decodes what the switch wrote, sends what a PBX sends."""

    def __init__(self, switch: PremiseSwitch, namespace: str = CSTA_NAMESPACES["ed3"]) -> None:
        self.switch = switch
        self.decoder = FrameDecoder()
        self.namespace = namespace
        self.now = 0.0

    def sent(self) -> list[tuple[int, m.CstaMessage]]:
        from ivr_server.switch.csta.codec import decode

        data = self.switch.data_to_send()
        return [(f.invoke_id, decode(f.body)) for f in self.decoder.feed(data)]

    def send(self, message: m.CstaMessage, invoke_id: int = 9999) -> None:
        self.raw(encode_frame(invoke_id, encode(message, namespace=self.namespace)))

    def raw(self, data: bytes) -> None:
        self.switch.data_received(data, self.now)

    def answer_all(
        self, answers: Mapping[type[m.CstaRequest], object], sent: list[tuple[int, m.CstaMessage]]
    ) -> None:
        """Answer each sent request by its type (a message, or a callable of the request)."""
        for invoke_id, request in sent:
            reply = answers[type(request)]  # type: ignore[index]
            self.send(reply(request) if callable(reply) else reply, invoke_id)  # type: ignore[arg-type]

    # -- events ----------------------------------------------------------------------------------

    def delivered(
        self,
        call: str,
        dn: str = PORT,
        caller: str = CALLER,
        called: str | None = None,
        **kw: object,
    ) -> None:
        self.send(
            m.DeliveredEvent(
                monitor_cross_ref_id=xref(dn),
                connection=m.ConnectionID(call_id=call, device_id=dn),
                alerting_device=dn,
                calling_device=caller,
                called_device=called or dn,
                local_connection_info="alerting",
                **kw,  # type: ignore[arg-type]
            )
        )

    def established(self, call: str, dn: str = PORT, caller: str = CALLER, **kw: object) -> None:
        self.send(
            m.EstablishedEvent(
                monitor_cross_ref_id=xref(dn),
                established_connection=m.ConnectionID(call_id=call, device_id=dn),
                answering_device=dn,
                calling_device=caller,
                called_device=kw.pop("called_device", dn),  # type: ignore[arg-type]
                local_connection_info="connected",
                **kw,  # type: ignore[arg-type]
            )
        )

    def cleared(self, call: str, device: str, dn: str = PORT) -> None:
        self.send(
            m.ConnectionClearedEvent(
                monitor_cross_ref_id=xref(dn),
                dropped_connection=m.ConnectionID(call_id=call, device_id=device),
                releasing_device=device,
                cause="normalClearing",
            )
        )

    def call_cleared(self, call: str, dn: str = PORT) -> None:
        self.send(
            m.CallClearedEvent(
                monitor_cross_ref_id=xref(dn), cleared_call=m.ConnectionID(call_id=call)
            )
        )


def snapshot_of(calls: Iterable[tuple[str, str]], dn: str) -> m.SnapshotDeviceResponse:
    return m.SnapshotDeviceResponse(
        calls=tuple(
            m.SnapshotDeviceInfo(
                connection=m.ConnectionID(call_id=call, device_id=dn), local_connection_state=state
            )
            for call, state in calls
        )
    )


def bring_up(
    switch: PremiseSwitch,
    pbx: Pbx,
    *,
    snapshots: Snap | None = None,
    refuse_monitor: frozenset[str] = frozenset(),
    open_link: bool = True,
) -> list[SwitchEvent]:
    """TOpenLink (when asked), a connection, the session, monitors and snapshots answered; the
    events the switch published on the way (the last one EventLinkConnected)."""
    if open_link:
        switch.request(TOpenLink(reference_id=0))
    switch.connection_made(pbx.now)
    [(invoke_id, start)] = pbx.sent()
    assert isinstance(start, m.StartApplicationSession)
    pbx.send(
        m.StartApplicationSessionPosResponse(session_id="S1", actual_session_duration=180),
        invoke_id,
    )
    for invoke_id, request in pbx.sent():
        assert isinstance(request, m.MonitorStart)
        if request.device in refuse_monitor:
            pbx.send(
                m.CSTAErrorCode(category="operation", value="invalidCstaDeviceIdentifier"),
                invoke_id,
            )
        else:
            pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)
    shown = snapshots or {}
    for invoke_id, request in pbx.sent():
        assert isinstance(request, m.SnapshotDevice)
        dn = request.snapshot_object
        pbx.send(snapshot_of(shown.get(dn, ()), dn), invoke_id)
    events = switch.drain_events()
    assert isinstance(events[-1], EventLinkConnected)
    return events


def new_switch() -> tuple[PremiseSwitch, Pbx]:
    switch = PremiseSwitch(SWITCH, TSERVER, DNS, SETTINGS, first_conn_id=0x10, first_call_id=7)
    return switch, Pbx(switch)


# -- call control: the events of a PBX that transfers, conferences and places calls ---------------


class ControlPbx(Pbx):
    """A :class:`Pbx` that also sends the events of the calls call control places and changes
    (all on the port's monitor, as a PBX reports every connection of a monitored device's call)."""

    def answered(self, call: str, dn: str = PORT) -> str:
        """An inbound call rung and answered at ``dn``; its ConnID."""
        self.delivered(call, dn)
        self.established(call, dn)
        events = self.switch.drain_events()
        return events[0].conn_id  # type: ignore[attr-defined, no-any-return]

    def initiated(self, call: str, dn: str = PORT) -> None:
        self.send(
            m.ServiceInitiatedEvent(
                monitor_cross_ref_id=xref(dn),
                initiated_connection=m.ConnectionID(call_id=call, device_id=dn),
                initiating_device=dn,
                local_connection_info="initiated",
            )
        )

    def originated(self, call: str, dest: str, dn: str = PORT) -> None:
        self.send(
            m.OriginatedEvent(
                monitor_cross_ref_id=xref(dn),
                originated_connection=m.ConnectionID(call_id=call, device_id=dn),
                calling_device=dn,
                called_device=dest,
                local_connection_info="connected",
            )
        )

    def far_alerting(self, call: str, dest: str, dn: str = PORT) -> None:
        self.send(
            m.DeliveredEvent(
                monitor_cross_ref_id=xref(dn),
                connection=m.ConnectionID(call_id=call, device_id=dest),
                alerting_device=dest,
                calling_device=dn,
                called_device=dest,
                local_connection_info="connected",
            )
        )

    def far_answered(self, call: str, dest: str, dn: str = PORT) -> None:
        self.send(
            m.EstablishedEvent(
                monitor_cross_ref_id=xref(dn),
                established_connection=m.ConnectionID(call_id=call, device_id=dest),
                answering_device=dest,
                calling_device=dn,
                called_device=dest,
                local_connection_info="connected",
            )
        )

    def failed(self, call: str, dest: str, cause: str, dn: str = PORT) -> None:
        self.send(
            m.FailedEvent(
                monitor_cross_ref_id=xref(dn),
                failed_connection=m.ConnectionID(call_id=call, device_id=dest),
                failing_device=dest,
                called_device=dest,
                cause=cause,
            )
        )

    def held(self, call: str, dn: str = PORT) -> None:
        self.send(
            m.HeldEvent(
                monitor_cross_ref_id=xref(dn),
                held_connection=m.ConnectionID(call_id=call, device_id=dn),
                holding_device=dn,
                local_connection_info="hold",
            )
        )

    def retrieved(self, call: str, dn: str = PORT) -> None:
        self.send(
            m.RetrievedEvent(
                monitor_cross_ref_id=xref(dn),
                retrieved_connection=m.ConnectionID(call_id=call, device_id=dn),
                retrieving_device=dn,
                local_connection_info="connected",
            )
        )

    def transfered(self, primary: str, secondary: str | None, dest: str, dn: str = PORT) -> None:
        self.send(
            m.TransferedEvent(
                monitor_cross_ref_id=xref(dn),
                primary_old_call=m.ConnectionID(call_id=primary, device_id=dn),
                secondary_old_call=(
                    m.ConnectionID(call_id=secondary, device_id=dn) if secondary else None
                ),
                transferring_device=dn,
                transferred_to_device=dest,
                cause="transfer",
            )
        )

    def conferenced(self, primary: str, secondary: str | None, added: str, dn: str = PORT) -> None:
        self.send(
            m.ConferencedEvent(
                monitor_cross_ref_id=xref(dn),
                primary_old_call=m.ConnectionID(call_id=primary, device_id=dn),
                secondary_old_call=(
                    m.ConnectionID(call_id=secondary, device_id=dn) if secondary else None
                ),
                conferencing_device=dn,
                added_party=added,
                cause="conference",
            )
        )

    def request(self) -> tuple[int, m.CstaMessage]:
        """The one request the switch sent since the last look."""
        [sent] = self.sent()
        return sent


def control_switch(
    *, emulate_single_step: str = "off", mirror_keys: tuple[str, ...] = ()
) -> tuple[PremiseSwitch, ControlPbx]:
    """A premise switch with its link up, call control configured as given."""
    from dataclasses import replace

    settings = replace(SETTINGS, emulate_single_step=emulate_single_step, mirror_keys=mirror_keys)
    switch = PremiseSwitch(SWITCH, TSERVER, DNS, settings, first_conn_id=0x10, first_call_id=7)
    pbx = ControlPbx(switch)
    bring_up(switch, pbx)
    return switch, pbx
