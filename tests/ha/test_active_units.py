"""Active nodes (issue 25), the sans-IO parts without processes: the built-in router's agent
reservations (routing/rules.py, against the real virtual switch, with a recording stand-in for
``runtime/ha_active.py``), the owner's HTTP answer of a forwarded agent request as the IVR's
answer (``answer_of``), the other nodes' waits as the statistics see them
(``PeerState.waits``), and the service in memory (tests/service/memory.py): a forwarded agent
request's answer and the other nodes' agent events as this node's sessions are told them."""

from __future__ import annotations

from typing import Any

from ivr_server.routing import BuiltinRouter
from ivr_server.runtime.ha_active import answer_of
from ivr_server.service.peers_state import AgentAnswer, AgentAsk, AgentFact, NodeFacts, PeerState
from ivr_server.stats import PeerWaits
from ivr_server.switch import ReadyAgent
from ivr_server.wire import messages as m
from tests.service.memory import MemoryServer
from tests.unit.test_routing import (
    AGENT_DNS,
    QUEUE,
    RP,
    SWITCH,
    Harness,
    catch_all,
    dest_of,
    quiet,
    rule,
)

LOCAL, REMOTE, REMOTE_2 = AGENT_DNS[0], AGENT_DNS[1], AGENT_DNS[2]


class Reservations:
    """What the router asks of ``runtime/ha_active.py``, recorded; answers come from the test."""

    def __init__(self, *remote: str) -> None:
        self.remote = [
            ReadyAgent(agent_id=f"r{dn}", dn=dn, queue=QUEUE, ready_since=0) for dn in remote
        ]
        self.held: set[str] = set()
        """DNs another node's call holds."""
        self.asked: list[tuple[str, str]] = []
        self.released: list[tuple[str, str]] = []

    def elsewhere(self, switch: str) -> list[ReadyAgent]:
        assert switch == SWITCH
        return list(self.remote)

    def taken(self, switch: str) -> set[str]:
        return self.held

    def reserve(self, switch: str, dn: str, conn_id: str) -> None:
        self.asked.append((dn, conn_id))
        self.held.add(dn)  # as ActiveMode: once reserved, taken (answered False: given back)

    def release(self, switch: str, dn: str, conn_id: str) -> None:
        self.released.append((dn, conn_id))
        self.held.discard(dn)


def active_harness(*remote: str) -> tuple[Harness, Reservations]:
    h = Harness({RP: [rule("agents", queue=QUEUE), catch_all()]})
    reservations = Reservations(*remote)
    h.builtin.reservations = reservations
    return h, reservations


def answer(h: Harness, conn_id: str, dn: str, ok: bool) -> Any:
    """The runtime's answer to a reservation, then the switch drained (what the service does)."""
    reservations = h.builtin.reservations
    assert isinstance(reservations, Reservations)
    if not ok:
        reservations.held.discard(dn)  # another node's: this node does not hold it
    h.builtin.reserved(h.switch, conn_id, dn, ok)
    return h.pump()


def test_a_call_is_routed_to_an_agent_only_once_it_is_reserved_and_gives_it_back() -> None:
    h, reservations = active_harness()
    h.login(LOCAL, "a1")
    call = h.call()
    assert quiet(h.route_request(call))  # asked first, not routed yet
    assert reservations.asked == [(LOCAL, call)]
    assert dest_of(answer(h, call, LOCAL, True)) == ("Normal", LOCAL)
    assert reservations.released == []
    h.hang_up(call)
    assert reservations.released == [(LOCAL, call)]


def test_another_nodes_agent_after_this_nodes_and_the_next_when_one_is_taken() -> None:
    h, reservations = active_harness(REMOTE, REMOTE_2)
    h.login(LOCAL, "a1")
    call = h.call()
    h.route_request(call)
    assert reservations.asked == [(LOCAL, call)]  # this node's own agent first
    assert quiet(answer(h, call, LOCAL, False))  # taken by another node's call: the next
    assert reservations.asked[-1] == (REMOTE, call)
    assert quiet(answer(h, call, REMOTE, False))
    assert reservations.asked[-1] == (REMOTE_2, call)
    assert dest_of(answer(h, call, REMOTE_2, True)) == ("Normal", REMOTE_2)
    h.hang_up(call)
    assert reservations.released == [(REMOTE_2, call)]


def test_every_agent_taken_routes_default() -> None:
    h, reservations = active_harness(REMOTE)
    call = h.call()
    h.route_request(call)
    assert dest_of(answer(h, call, REMOTE, False)) == ("Default", None)
    assert reservations.released == []


def test_an_agent_another_nodes_call_holds_is_not_chosen() -> None:
    h, reservations = active_harness(REMOTE)
    h.login(LOCAL, "a1")
    reservations.held.add(LOCAL)  # routed to by another node: this switch does not know
    call = h.call()
    assert quiet(h.route_request(call))
    assert reservations.asked == [(REMOTE, call)]


def test_no_agent_anywhere_skips_the_rule() -> None:
    h, reservations = active_harness()
    call = h.call()
    assert dest_of(h.route_request(call))[1] == "7999"  # the catch-all, at once
    assert reservations.asked == []


def test_a_reservation_answered_after_the_call_left_is_given_back() -> None:
    h, reservations = active_harness(REMOTE)
    call = h.call()
    h.route_request(call)
    h.hang_up(call)
    assert quiet(answer(h, call, REMOTE, True))
    assert reservations.released == [(REMOTE, call)]


def test_an_agent_no_longer_ready_when_reserved_is_given_back_and_the_next_asked() -> None:
    h, reservations = active_harness(REMOTE)
    h.login(LOCAL, "a1")
    call = h.call()
    h.route_request(call)
    h.not_ready(LOCAL)  # meanwhile
    assert quiet(answer(h, call, LOCAL, True))
    assert reservations.released == [(LOCAL, call)]
    assert reservations.asked[-1] == (REMOTE, call)


def test_a_failed_route_gives_the_agent_back_before_the_next_rule() -> None:
    h, reservations = active_harness(REMOTE)
    call = h.call()
    h.route_request(call)
    assert dest_of(answer(h, call, REMOTE, True)) == ("Normal", REMOTE)
    assert dest_of(h.fail(call)) == ("Normal", "7999")  # the next rule: catch-all
    assert reservations.released == [(REMOTE, call)]


def test_without_reservations_the_router_routes_at_once() -> None:
    h = Harness({RP: [rule("agents", queue=QUEUE), catch_all()]})
    assert isinstance(h.router, BuiltinRouter) and h.builtin.reservations is None
    h.login(LOCAL, "a1")
    call = h.call()
    assert dest_of(h.route_request(call)) == ("Normal", LOCAL)


# --------------------------------------------------------------------------------------------
# A forwarded agent request: the owner's HTTP answer as the IVR's


def ask() -> AgentAsk:
    return AgentAsk(
        node="B",
        api="http://127.0.0.1:1",
        switch=SWITCH,
        dn="4005",
        act="ready",
        body={"queue": "6000", "work_mode": "ManualIn"},
        session=None,  # type: ignore[arg-type]  # not used by answer_of
        call_id="L",
        req_id="7",
        port="5",
        ivr="IVR_1",
        request="AgentReady",
    )


def test_the_owners_answer_as_the_ivrs() -> None:
    events = [
        {"event": "EventAgentLogin", "dn": "4005", "reference_id": 3},
        {"event": "EventAgentNotReady", "dn": "4005", "reference_id": 3},
        {"event": "EventAgentReady", "dn": "4006", "reference_id": 4},  # another DN
        {"event": "EventAgentReady", "dn": "4005", "reference_id": None},  # not the act's
        {"event": "EventAttachedDataChanged", "dn": "4005", "reference_id": 3},
    ]
    assert answer_of(ask(), 200, {"events": events}) == AgentAnswer(
        statuses=("LoggedIn", "NotReady")
    )
    assert answer_of(ask(), 409, {"error": "x", "error_code": 50}) == AgentAnswer(error=50)
    bad = answer_of(ask(), 400, {"error": "agent_id: too short"})
    assert bad.error == 53 and "HTTP 400" in bad.reason
    for status, data in ((401, {"error": "token"}), (500, None), (200, "nonsense")):
        assert answer_of(ask(), status, data).error == 57


# --------------------------------------------------------------------------------------------
# The other nodes' waits


def facts(node: str, waits: list[tuple[str, str, int, float, float, int]]) -> NodeFacts:
    return NodeFacts(node, 0, [], [], waits=waits)


def test_the_other_nodes_waits_are_summed_and_their_oldest_put_on_this_nodes_clock() -> None:
    peers = PeerState("A")
    peers.wall = 1_000_000.0  # Unix time = this node's clock + 1,000,000
    peers.update(
        [
            facts(
                "B", [(SWITCH, RP, 2, 1_000_050.0, 3.0, 2), (SWITCH, "queue:6000", 1, 0.0, 0, 0)]
            ),
            facts("C", [(SWITCH, RP, 1, 1_000_040.0, 1.0, 1)]),
            facts("A", [(SWITCH, RP, 9, 1.0, 9.0, 9)]),  # this node's own: never mirrored
        ]
    )
    assert peers.waits(SWITCH, RP) == PeerWaits(waiting=3, oldest=40.0, total=4.0, samples=3)
    assert peers.waits(SWITCH, "queue:6000") == PeerWaits(waiting=1)
    assert peers.waits(SWITCH, "5999") is None


# --------------------------------------------------------------------------------------------
# The service: forwarded agent requests and the other nodes' agent events, in memory


def b_facts(state: str | None, node: str = "B") -> list[NodeFacts]:
    """Node B's facts with its agent 77 on DN 4005 (IVR_1's port 5) in ``state`` (``None``:
    no agent)."""
    agents = [AgentFact("SW_InFront", "4005", "77", state, "ManualIn", "6000")] if state else []
    return [NodeFacts(node, 0, [], agents, api=f"http://{node}:8021")]


def test_the_other_nodes_agent_events_and_a_forwarded_request_told_once() -> None:
    server = MemoryServer()
    service = server.service
    peers = PeerState("A")
    asks: list[AgentAsk] = []
    service._ctx.peers, peers.forward = peers, asks.append
    link, other = server.connect(), server.connect()
    link.login()
    other.login(call_id="O")

    def mirror(state: str | None) -> tuple[list[Any], list[Any]]:
        peers.update(b_facts(state))
        service.peers_changed(server.now)
        server.shuttle()
        return [(d.call_id, d.message) for d in link.take()], [
            (d.call_id, d.message) for d in other.take()
        ]

    assert mirror(None) == ([], [])  # the first mirror is taken as it is
    login = [agent_info("5", "LoggedIn"), agent_info("5", "NotReady")]
    assert mirror("NotReady") == ([("L", x) for x in login], [("O", x) for x in login])
    assert mirror("NotReady") == ([], [])

    # AgentReady on B's agent: forwarded (nothing answered yet), then B's answer
    assert (
        link.send("L", "<AgentReady ReqId='3' PortNum='5' Queue='6000' WorkMode='ManualIn'/>") == []
    )
    ask = asks[-1]
    assert (ask.node, ask.api, ask.act, ask.dn, dict(ask.body)) == (
        "B",
        "http://B:8021",
        "ready",
        "4005",
        {"queue": "6000", "work_mode": "ManualIn"},
    )
    service.agent_answered(ask, AgentAnswer(statuses=("Ready",)), server.now)
    server.shuttle()
    assert [(d.call_id, d.message) for d in link.take()] == [("L", agent_info("5", "Ready", "3"))]
    assert [(d.call_id, d.message) for d in other.take()] == [("O", agent_info("5", "Ready"))]
    # B's facts older than its answer are not told; once they agree, nothing either
    assert mirror("NotReady") == ([], [])
    assert mirror("Ready") == ([], [])

    # a refusal, and an owner that did not answer
    link.send("L", "<AgentNotReady ReqId='4' PortNum='5' Queue='6000'/>")
    service.agent_answered(asks[-1], AgentAnswer(error=57, reason="timed out"), server.now)
    server.shuttle()
    assert link.messages() == [m.CallError(FailedReq="AgentControl", TlibErrCode="57", ReqId="4")]
    assert other.take() == []

    # facts that disagree with a forwarded answer for longer than the window are told
    link.send("L", "<AgentNotReady ReqId='5' PortNum='5' Queue='6000'/>")
    service.agent_answered(asks[-1], AgentAnswer(statuses=("NotReady",)), server.now)
    server.shuttle()
    assert link.messages() == [agent_info("5", "NotReady", "5")]
    other.take()
    assert mirror("Ready") == ([], [])  # older than the answer
    server.advance(2.0)
    assert mirror("Ready") == ([("L", agent_info("5", "Ready"))], [("O", agent_info("5", "Ready"))])

    # B's agent gone
    out = [agent_info("5", "LoggedOut")]
    assert mirror(None) == ([("L", x) for x in out], [("O", x) for x in out])

    # B dies with its agent Ready: C adopts the agent, nothing is told; C dies and nobody
    # adopts it: LoggedOut once the window (a lease and 4 polls, at least 1 s, more) is over
    told_twice = [agent_info("5", "LoggedIn"), agent_info("5", "Ready")]
    assert mirror("Ready") == ([("L", x) for x in told_twice], [("O", x) for x in told_twice])

    def nodes(facts: list[NodeFacts]) -> tuple[list[Any], list[Any]]:
        peers.update(facts)
        service.peers_changed(server.now)
        server.shuttle()
        return [(d.call_id, d.message) for d in link.take()], [
            (d.call_id, d.message) for d in other.take()
        ]

    assert nodes([]) == ([], [])  # B gone
    assert nodes(b_facts("Ready", "C")) == ([], [])  # back at C, as it was
    assert nodes([]) == ([], [])  # C gone
    server.advance(1.0)
    assert nodes([]) == ([], [])
    server.advance(5.0)
    assert nodes([]) == ([("L", x) for x in out], [("O", x) for x in out])


def agent_info(port: str, status: str, req_id: str | None = None) -> m.MonitorInfo:
    return m.MonitorInfo(ReqId=req_id, Agent=m.Agent(PortNum=port, Status=status))  # type: ignore[arg-type]
