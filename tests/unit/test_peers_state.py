"""Active nodes' mirror of the other nodes (service/peers_state.py, issue 25), with no I/O: the
facts a node publishes, how the mirror answers, and the refusals it gives the service."""

from __future__ import annotations

import pytest

from ivr_server.calls.replies import Refusal
from ivr_server.config import default_config
from ivr_server.service import IvrService
from ivr_server.service.peers_state import (
    AgentFact,
    NodeFacts,
    PeerState,
    decode_facts,
    encode_facts,
    facts_of,
    ports_key,
    ports_of,
)
from ivr_server.stats.agents import AgentActivity
from ivr_server.wire import messages as m


def fact(node: str, ports: list[tuple[str, str]], agents: tuple[AgentFact, ...] = ()) -> NodeFacts:
    return NodeFacts(node, len(ports), ports, list(agents), sum(a.state == "Ready" for a in agents))


AGENT = AgentFact("SW_InFront", "4005", "77", "Ready", "ManualIn", "6000")


def test_facts_round_trip_and_garbage_is_skipped() -> None:
    facts = fact("A", [("IVR_1", "1")], (AGENT,))
    assert decode_facts(encode_facts(facts)) == facts
    assert decode_facts(b"\x01garbage") is None


def test_a_node_never_mirrors_itself_and_a_missing_node_is_forgotten() -> None:
    mirror = PeerState("B")
    mirror.update([fact("A", [("IVR_1", "1")], (AGENT,)), fact("B", [("IVR_1", "2")])])
    assert set(mirror.nodes) == {"A"}
    assert mirror.port_holder("IVR_1", "1") == "A"
    assert mirror.port_holder("IVR_1", "2") is None  # B's own port: its call manager's
    assert mirror.agent("SW_InFront", "4005") == ("A", AGENT)
    assert mirror.agent_id_in_use("77") == AGENT
    assert mirror.calls() == 1 and mirror.calls_of_ivr("IVR_1") == 1
    assert mirror.calls_of_ivr("IVR_2") == 0
    mirror.update([])  # A died (or its facts lapsed)
    assert mirror.port_holder("IVR_1", "1") is None
    assert mirror.agent("SW_InFront", "4005") is None


def test_refusals_as_the_service_gives_them() -> None:
    mirror = PeerState("B")
    mirror.update([fact("A", [("IVR_1", "1")], (AGENT,))])
    with pytest.raises(Refusal) as busy:
        mirror.check_port("C2", "IVR_1", "1", "NewCall")
    assert busy.value.reply == m.EndCall(EndCause="Resources") and busy.value.call_id == "C2"
    mirror.check_port("C3", "IVR_1", "2", "NewCall")  # free everywhere: nothing raised
    with pytest.raises(Refusal) as served_there:
        mirror.check_control("L", "SW_InFront", "4005", None, "AgentReady", "9")
    assert served_there.value.reply == m.CallError(
        FailedReq="AgentControl", TlibErrCode="166", ReqId="9"
    )
    with pytest.raises(Refusal) as in_use:
        mirror.check_control("L", "SW_InFront", "4006", "77", "AgentLogin", "10")
    assert in_use.value.reply == m.CallError(
        FailedReq="AgentControl", TlibErrCode="1704", ReqId="10"
    )
    mirror.check_control("L", "SW_InFront", "4006", "78", "AgentLogin", "11")
    assert mirror.query_answer("SW_InFront", "4005", "5", "12") == m.MonitorInfo(
        ReqId="12", Agent=m.Agent(PortNum="5", Status="Ready")
    )
    assert mirror.query_answer("SW_InFront", "4006", "6", "13") is None


def test_facts_of_a_service_list_its_port_calls_and_agents() -> None:
    service = IvrService(default_config())
    facts = facts_of("A", service)
    # IVR_2's four LegacyMode ports log their agents in by configuration
    assert facts.node == "A" and facts.calls == 0 and facts.ports == []
    assert {(a.switch, a.dn) for a in facts.agents} == {
        ("SW_InFront", dn) for dn in ("4101", "4102", "4103", "4104")
    }
    assert ports_of(service) == [] and ports_key(service) == (0, 0, 0)


def test_off_mode_has_no_mirror() -> None:
    service = IvrService(default_config())
    assert service._ctx.peers is None


def test_statistics_count_the_other_nodes_agents_once() -> None:
    service = IvrService(default_config())
    switch = service.switches["SW_InFront"]
    busy = AgentFact("SW_InFront", "4006", "78", "NotReady", "Unknown", "6000", busy=True)
    legacy = AgentFact("SW_InFront", "4101", "X", "Ready", "AutoIn", "6000")  # every node's own
    mirror = PeerState("B")
    mirror.update([fact("A", [], (AGENT, busy, legacy))])
    found = {(a.dn, activity) for a, activity in mirror.activities("SW_InFront", switch)}
    assert found == {("4005", AgentActivity.READY), ("4006", AgentActivity.BUSY)}
    assert list(mirror.activities("other", switch)) == []
    before = service.stats.overview(0.0)["queues"]
    service.stats.peers = mirror.activities
    after = {q["dn"]: q for q in service.stats.overview(0.0)["queues"]}
    was = {q["dn"]: q for q in before}
    assert after["6000"]["ready"] == was["6000"]["ready"] + 1
    assert after["6000"]["busy"] == was["6000"]["busy"] + 1
