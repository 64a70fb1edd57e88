"""Properties of the premise switch under any sequence of PBX events, link drops and releases:
it never raises, and its view and its premise call table always agree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.switch.csta import messages as m
from ivr_server.switch.events import CallEvent, EventEstablished, EventReleased, EventRinging
from ivr_server.switch.premise import PremiseSwitch
from ivr_server.switch.requests import TReleaseCall
from tests.unit.premise_pbx import CALLER, MONITORED, PORT, bring_up, new_switch, xref

CALL_IDS = st.sampled_from(["1", "2", "3", "FF01"])
DNS = st.sampled_from([*MONITORED, "9999"])
DEVICES = st.sampled_from([*MONITORED, CALLER, "3999", None])


def _conn(call: str | None, dn: str | None) -> m.ConnectionID:
    return m.ConnectionID(call_id=call, device_id=dn)


def _event(kind: str, call: str | None, dn: str, device: str | None) -> m.CstaMessage:
    x = xref(dn)
    table: dict[str, m.CstaMessage] = {
        "delivered": m.DeliveredEvent(
            monitor_cross_ref_id=x,
            connection=_conn(call, dn),
            alerting_device=dn,
            calling_device=device,
        ),
        "established": m.EstablishedEvent(
            monitor_cross_ref_id=x,
            established_connection=_conn(call, dn),
            answering_device=device,
            calling_device=CALLER,
        ),
        "cleared": m.ConnectionClearedEvent(
            monitor_cross_ref_id=x, dropped_connection=_conn(call, device)
        ),
        "call_cleared": m.CallClearedEvent(monitor_cross_ref_id=x, cleared_call=_conn(call, None)),
        "diverted": m.DivertedEvent(
            monitor_cross_ref_id=x, connection=_conn(call, dn), diverting_device=device
        ),
        "transfered": m.TransferedEvent(
            monitor_cross_ref_id=x,
            primary_old_call=_conn(call, dn),
            transferring_device=device,
            transferred_connections=(
                m.ConnectionListItem(new_connection=_conn("2", dn), endpoint=device),
            ),
        ),
        "conferenced": m.ConferencedEvent(
            monitor_cross_ref_id=x, primary_old_call=_conn(call, dn), added_party=device
        ),
        "held": m.HeldEvent(monitor_cross_ref_id=x, held_connection=_conn(call, device)),
        "out": m.OutOfServiceEvent(monitor_cross_ref_id=x, device=dn),
        "back": m.BackInServiceEvent(monitor_cross_ref_id=x, device=dn),
    }
    return table[kind]


EVENTS = st.tuples(
    st.sampled_from(
        [
            "delivered",
            "established",
            "cleared",
            "call_cleared",
            "diverted",
            "transfered",
            "conferenced",
            "held",
            "out",
            "back",
        ]
    ),
    st.one_of(CALL_IDS, st.none()),
    DNS,
    DEVICES,
)
STEPS = st.one_of(
    EVENTS,
    st.tuples(
        st.just("drop"),
        st.lists(st.tuples(CALL_IDS, st.sampled_from(["alerting", "connected"])), max_size=3),
    ),
    st.tuples(st.just("release"), st.booleans()),
)


def _agree(
    switch: PremiseSwitch, alive: dict[tuple[str, str], int], events: list[object] | None = None
) -> None:
    """The view's calls are the premise table's, at the same DNs; every call event at a DN
    follows that call's EventRinging there, and EventReleased ends it."""
    for event in [*(events or ()), *switch.drain_events()]:
        if not isinstance(event, CallEvent):
            continue
        key = (event.conn_id, event.dn)
        if isinstance(event, EventRinging):
            assert key not in alive, event
            alive[key] = event.call_id
        elif isinstance(event, EventEstablished):
            assert alive.get(key) == event.call_id, event
        elif isinstance(event, EventReleased):
            assert alive.pop(key) == event.call_id, event
    view = {(c.conn_id, dn) for c in switch.view.calls() for dn in c.parties}
    table = {(c.conn_id, dn) for c in switch.calls.values() for dn in c.at}
    assert view == table == set(alive), (view, table, alive)
    assert set(switch.by_conn) == {c.conn_id for c in switch.calls.values()}


@settings(max_examples=100, deadline=None)
@given(st.lists(STEPS, max_size=25))
def test_any_sequence_keeps_the_view_and_the_table_in_step(steps: list[tuple[object, ...]]) -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    alive: dict[tuple[str, str], int] = {}
    for step in steps:
        pbx.now += 1.0
        if step[0] == "drop":
            switch.connection_lost("dropped", pbx.now)
            shown = {PORT: step[1]}
            _agree(switch, alive)
            events = bring_up(switch, pbx, open_link=False, snapshots=shown)  # type: ignore[arg-type]
            _agree(switch, alive, list(events))
        elif step[0] == "release":
            calls = list(switch.view.calls())
            if calls:
                switch.request(
                    TReleaseCall(reference_id=1, conn_id=calls[0].conn_id, dn=calls[0].parties[0])
                )
                for invoke_id, _ in pbx.sent():
                    ok = (
                        m.ClearConnectionResponse()
                        if step[1]
                        else m.CSTAErrorCode(category="operation", value="generic")
                    )
                    pbx.send(ok, invoke_id)
        else:
            kind, call, dn, device = step
            pbx.send(_event(kind, call, dn, device))  # type: ignore[arg-type]
        switch.handle_timer(pbx.now)
        pbx.sent()
        _agree(switch, alive)
