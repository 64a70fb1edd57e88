"""The switch-event bus hands a late answer to the request that expected it (a premise switch
answers an agent request in a later pump than the request's own)."""

from __future__ import annotations

from typing import Any

from ivr_server.config import default_config
from ivr_server.service.bus import Origin, SwitchEventBus
from ivr_server.service.sessions import Session
from ivr_server.session import IvrLink, Role
from ivr_server.stats import StatsEngine
from ivr_server.switch import AgentStatus, DnType, EventAddressInfo, Switch, WorkMode, build_switch


def _bus() -> tuple[SwitchEventBus, Switch, list[tuple[Any, Origin | None]]]:
    switch = build_switch("virtual", "SW", "TS", [("3001", DnType.VOICE_TREATMENT_PORT)])
    switches = {"SW": switch}
    stats = StatsEngine(default_config(), switches, lambda _ivr: 0)
    bus = SwitchEventBus(switches, [], stats)
    seen: list[tuple[Any, Origin | None]] = []

    def subscriber(_switch: Switch, event: Any, origin: Origin | None) -> bool:
        seen.append((event, origin))
        return True

    bus.subscribe(EventAddressInfo, subscriber)
    return bus, switch, seen


def _session(n: int) -> Session:
    return Session(n, f"127.0.0.1:{n}", IvrLink(Role.SERVER, now=0.0))


def _info(ref: int) -> EventAddressInfo:
    return EventAddressInfo(
        switch="SW",
        reference_id=ref,
        dn="3001",
        dn_type=DnType.VOICE_TREATMENT_PORT,
        agent_status=AgentStatus.UNKNOWN,
        agent_id=None,
        queue=None,
        work_mode=WorkMode.UNKNOWN,
    )


def test_a_late_answer_finds_its_origin_once() -> None:
    bus, switch, seen = _bus()
    origin = Origin(7, _session(1), "C1", "R1", "1")
    bus.expect(origin)
    bus.pump(0.0, {}, None)  # the request's own pump: nothing answered yet
    assert bus.expected == 1
    switch.events.append(_info(7))  # type: ignore[attr-defined]
    bus.pump(1.0, {}, None)  # a later pump (the PBX's answer)
    assert seen == [(_info(7), origin)]
    assert bus.expected == 0
    switch.events.append(_info(7))  # type: ignore[attr-defined]
    bus.pump(2.0, {}, None)
    assert seen[-1] == (_info(7), None)


def test_a_gone_session_expects_nothing() -> None:
    bus, _switch, _seen = _bus()
    session = _session(1)
    bus.expect(Origin(8, session, "C1", "R1", "1"))
    bus.expect(Origin(9, _session(2), "C2", "R2", "2"))
    bus.forget(session)
    assert bus.expected == 1
