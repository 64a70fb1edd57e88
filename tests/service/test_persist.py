"""HA snapshot and restore of the service (issue 25, ``service/persist.py``).

Each scenario drives service A through a first part, hands A's whole state (``everything()``)
to a freshly built service B (same configuration) whose IVR session logs in and takes the
restored calls, then drives A and B with the same second part: every reply must be the same
(ConnIds, user data, RouteResponses, EndCalls...), as if the call had never moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ivr_server.config import ServerConfig, default_config
from ivr_server.service.persist import COUNTER_RESERVE, StatePersistence
from ivr_server.switch.persist import decode_counters
from ivr_server.switch.requests import TAnswerCall
from ivr_server.wire import Message, Node
from ivr_server.wire import messages as m
from tests.service.memory import MemoryClient, MemoryServer

SWITCH = "SW_InFront"
NO_SUCH_CALL = m.CallError(FailedReq="NoSuchCall")

Script = Callable[[MemoryServer, MemoryClient], list[Any]]


def config_with(**timers: float) -> ServerConfig:
    base = default_config()
    server = base.server.model_copy(update={"timers": base.server.timers.model_copy(update=timers)})
    return base.model_copy(update={"server": server})


def node(name: str, value: str) -> Node:
    return Node(Name=name, Type="Str", Val=value)


def new_call(client: MemoryClient, call_id: str, port: str, *data: Node) -> list[Message]:
    return [
        doc.message
        for doc in client.send(
            call_id,
            m.NewCall(
                CallControlMode="Network",
                Version="4.0",
                CalledNum=port,
                ANI="5550100",
                DNIS="8001",
                UDataEx=data or None,
            ),
        )
    ]


def docs(client: MemoryClient, call_id: str, message: Message) -> list[tuple[str | None, Any]]:
    return [(doc.call_id, doc.message) for doc in client.send(call_id, message)]


def answer(server: MemoryServer, conn_id: str, dn: str, ref: int = 8_000_000_001) -> None:
    """The agent at ``dn`` picks up (an agent desktop's TAnswerCall)."""
    server.service.switches[SWITCH].request(TAnswerCall(reference_id=ref, conn_id=conn_id, dn=dn))
    server.service.pump()
    server.shuttle()


def handover(
    a: MemoryServer, *, later: float = 0.0, ivr: str = "IVR_1"
) -> tuple[MemoryServer, MemoryClient, int]:
    """B: a fresh service with A's configuration, ``later`` seconds of its own loop clock
    after A's (the wall clocks agree), an IVR session logged in, A's state restored and the
    orphans given to that session. Returns B, its client and the calls restored."""
    records = StatePersistence(a.service).everything()
    b = MemoryServer(a.config, now=a.now + later)
    client = b.connect()
    client.login(ivr, call_id="LB")
    restored = StatePersistence(b.service).restore(records, b.now, wall_now=a.now)
    b.service.calls.adopt(ivr, client.session)
    return b, client, restored


def twin(
    first: Script, second: Script, *, config: ServerConfig | None = None, later: float = 0.0
) -> tuple[list[Any], list[Any]]:
    """A runs ``first``; B takes A's state over; both run ``second``: their answers."""
    a = MemoryServer(config or default_config())
    client = a.connect()
    client.login(call_id="LA")
    first(a, client)
    b, client_b, _ = handover(a, later=later)
    return second(a, client), second(b, client_b)


# ---------------------------------------------------------------------------------------------
# In-Front calls


def test_in_front_call_goes_on_with_its_connid_user_data_uuid_and_route() -> None:
    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        assert new_call(client, "C", "1", node("Segment", "Gold")) == [
            m.CallStatus(Event="Ringing"),
            m.CallStatus(Event="Established"),
        ]
        docs(client, "C", m.UDataSet(Action="Add", RequestId="1", UDataEx=(node("k", "v"),)))
        docs(client, "C", m.CallInfoReq(ReportUUID="true"))
        new_call(client, "D", "2")
        docs(client, "D", m.EndCall(EndCause="Normal"))
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        got: list[Any] = []
        for call_id, message in [
            ("C", m.CallInfoReq(ReportUUID="true")),
            ("C", m.UDataGetAll(RequestId="2")),
            ("C", m.UDataSet(Action="Replace", RequestId="3", UDataEx=(node("k", "w"),))),
            ("C", m.UDataGet(RequestId="4", Keys="k:Segment")),
            ("D", m.CallInfoReq()),
            ("C", m.RouteRequest(RouteDN="5000")),
            ("C", m.Connected()),
            ("C", m.EndCall(EndCause="Normal")),
            ("C", m.CallInfoReq()),
        ]:
            got.append(docs(client, call_id, message))
        got.append(new_call(client, "E", "1"))
        got.append(docs(client, "E", m.CallInfoReq()))
        return got

    on_a, on_b = twin(first, second)
    assert on_a == on_b
    info = on_a[0][0][1]
    assert isinstance(info, m.CallInfoResp)
    assert info.ConnId == "0000000000000001" and info.UUID and info.ANI == "5550100"
    assert set(on_a[3][0][1].UDataEx) == {node("k", "w"), node("Segment", "Gold")}
    assert on_a[4] == [("D", NO_SUCH_CALL)]  # ended before the handover
    assert (
        on_a[5] == [("C", m.RouteResponse(RouteType="Default", Dest=None))]
        or on_a[5][0][1].Dest == "7001"
    )
    assert on_a[8] == [("C", NO_SUCH_CALL)]
    new_conn = on_a[10][0][1].ConnId
    assert new_conn == "0000000000000003"  # the counters went on: no ConnId reused


def test_router_timeout_due_during_the_gap_answers_default_right_after() -> None:
    """H3: a RouteRequest to a routing point without a router, 3 s before the handover; B's
    loop clock reads 500 s more than A's (deadlines travel as wall-clock times)."""

    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        new_call(client, "C", "1")
        assert docs(client, "C", m.RouteRequest(RouteDN="5001")) == []
        server.advance(3.0)
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        server.advance(0.99)
        early = client.take()
        server.advance(0.01)
        return [early, [(doc.call_id, doc.message) for doc in client.take()]]

    on_a, on_b = twin(first, second, config=config_with(router_timeout=4.0), later=500.0)
    assert on_a == on_b == [[], [("C", m.RouteResponse(RouteType="Default"))]]


def test_a_router_timeout_long_past_fires_at_the_next_timer_turn() -> None:
    a = MemoryServer(config_with(router_timeout=4.0))
    client = a.connect()
    client.login()
    new_call(client, "C", "1")
    docs(client, "C", m.RouteRequest(RouteDN="5001"))
    records = StatePersistence(a.service).everything()
    b = MemoryServer(a.config, now=a.now)
    client_b = b.connect()
    client_b.login(call_id="LB")
    StatePersistence(b.service).restore(records, b.now, wall_now=a.now + 10.0)  # 10 s later
    b.service.calls.adopt("IVR_1", client_b.session)
    assert b.service.next_deadline() == pytest.approx(b.now - 6.0)
    b.advance(0.0)
    assert client_b.messages() == [m.RouteResponse(RouteType="Default")]


def test_the_treatment_dialog_of_the_builtin_router_goes_on() -> None:
    """RouteRequest CED=1 on 5000: the rule 'agents' plays a treatment first; the handover
    comes while the IVR plays it."""

    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        new_call(client, "C", "3")
        got = docs(client, "C", m.RouteRequest(RouteDN="5000", CED="1"))
        assert [type(message).__name__ for _, message in got] == ["TreatCall"]
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        return [
            docs(client, "C", m.TreatStatus(Status="Started")),
            docs(client, "C", m.TreatStatus(Status="Completed")),
            docs(client, "C", m.CallInfoReq()),
        ]

    on_a, on_b = twin(first, second)
    assert on_a == on_b
    assert any(isinstance(message, m.RouteResponse) for _, message in on_a[1])


# ---------------------------------------------------------------------------------------------
# call control


def test_a_consultation_in_progress_completes_on_the_other_node() -> None:
    """InitXfer to 7002, answered there; CompleteXfer after the handover."""

    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        new_call(client, "C", "1", node("Segment", "Gold"))
        got = docs(client, "C", m.InitXfer(DestDN="7002"))
        assert [message.Event for _, message in got] == ["Held", "Dialing"]
        view = server.service.switches[SWITCH].view
        consult = next(c.conn_id for c in view.calls() if "7002" in c.parties)
        answer(server, consult, "7002")
        assert [doc.message.Event for doc in client.take()] == ["Established"]  # type: ignore[attr-defined]
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        view = server.service.switches[SWITCH].view
        return [
            docs(client, "C", m.CallInfoReq()),
            docs(client, "C", m.CompleteXfer()),
            sorted((c.conn_id, c.parties, c.user_data) for c in view.calls()),
            docs(client, "C", m.EndCall(EndCause="Normal")),
            docs(client, "C", m.CallInfoReq()),
        ]

    on_a, on_b = twin(first, second)
    assert on_a == on_b
    assert [message.Event for _, message in on_a[1]] == ["XferComplete"]
    assert on_a[2][0][1] == ("7002",)


def test_a_held_consultation_can_be_retrieved_on_the_other_node() -> None:
    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        new_call(client, "C", "2")
        docs(client, "C", m.InitConf(DestDN="7003"))
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        return [
            docs(client, "C", m.RetrieveCall()),
            docs(client, "C", m.CallInfoReq()),
            docs(client, "C", m.EndCall(EndCause="Normal")),
        ]

    on_a, on_b = twin(first, second)
    assert on_a == on_b
    assert [message.Event for _, message in on_a[0]] == ["Retrieved"]


# ---------------------------------------------------------------------------------------------
# dial-out


class Requester:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def __call__(self, request: Any, outcome: Any) -> None:
        self.outcomes.append(outcome.kind)


def test_a_pending_dial_out_is_answered_on_the_other_node_and_its_call_goes_on() -> None:
    a = MemoryServer()
    client = a.connect()
    client.login(call_id="LA")
    client.send("LA", m.DialOutRegistry(Command="Add", DN="5000"))
    request = a.service.dial_out(Requester(), "5000", "5551234", timeout=20.0)
    assert request is not None and request.ref_id == "1"
    a.shuttle()
    assert [doc.message.tag for doc in client.take()] == ["DialOut"]
    a.advance(5.0)
    b, client_b, _ = handover(a)
    init = m.DialOutInit(RefID="1", CalledNum="3")
    got_a = [doc.message for doc in client.send("OUT", init)]
    got_b = [doc.message for doc in client_b.send("OUT", init)]
    assert got_a == got_b == [m.CallStatus(Event="Dialing")]
    for ivr in (client, client_b):
        assert ivr.request("OUT", m.CallInfoReq()).ConnId == "0000000000000001"  # type: ignore[attr-defined]
    c, _, restored = handover(b)  # the call a DialOutInit started, with its dial-out request
    assert restored == 1
    (dialled,) = c.service.calls.find("OUT")
    assert dialled.dial_out is not None and dialled.dial_out.ref_id == "1"
    assert dialled.dial_out.dest == "5551234" and dialled.dial_out.requester is None
    again = b.service.dial_out(None, "5000", "5550000")
    assert again is None  # B's session never registered 5000 (its registrations are its own)
    b.service.outbound.register(client_b.session, "5000")
    again = b.service.dial_out(None, "5000", "5550000")
    assert again is not None and again.ref_id == "2"  # RefIDs go on


def test_a_pending_dial_out_times_out_on_the_other_node_at_its_deadline() -> None:
    a = MemoryServer()
    client = a.connect()
    client.login(call_id="LA")
    client.send("LA", m.DialOutRegistry(Command="Add", DN="5000"))
    a.service.dial_out(Requester(), "5000", "5551234", timeout=20.0)
    a.advance(5.0)
    b, client_b, _ = handover(a, later=100.0)
    assert b.service.outbound.deadline("1") == pytest.approx(b.now + 15.0)
    b.advance(15.0)
    assert b.service.outbound.get("1") is None
    late = [doc.message for doc in client_b.send("OUT", m.DialOutInit(RefID="1", CalledNum="3"))]
    assert [message.tag for message in late] == ["EndCall"]


# ---------------------------------------------------------------------------------------------
# switch view, agents


def test_agents_and_dns_of_the_switch_view_are_restored() -> None:
    a = MemoryServer()
    ivr1 = a.connect()
    ivr1.login(call_id="L1")
    view = a.service.switches[SWITCH].view
    assert view.agent_dn("9101") == "4101"  # IVR_2's auto-login
    ivr1.send("L1", "<AgentLogin ReqId='1' PortNum='2' Queue='6000' AgentId='1' Password=''/>")
    ivr1.send("L1", "<AgentReady ReqId='2' PortNum='2' Queue='6000' WorkMode='ManualIn'/>")
    records = StatePersistence(a.service).everything()
    b = MemoryServer(a.config, now=a.now)
    StatePersistence(b.service).restore(records, b.now)
    view_b = b.service.switches[SWITCH].view
    assert list(view_b.dns()) == list(view.dns())
    assert view_b.ready_agents() == view.ready_agents()
    assert view_b.agent_dn("1") == "4002"
    assert view_b.dn("4002") == view.dn("4002")


# ---------------------------------------------------------------------------------------------
# tracking


def test_tracking_is_off_by_default_and_collect_then_gives_nothing() -> None:
    server = MemoryServer()
    persistence = StatePersistence(server.service)
    assert server.service.calls.context.dirty is None
    assert server.service.switches[SWITCH].view.changed_calls is None
    assert server.service.outbound.changed is None
    client = server.connect()
    client.login()
    new_call(client, "C", "1")
    assert persistence.collect() == ({}, set())


def test_collect_gives_what_changed_and_deletes_for_what_ended() -> None:
    server = MemoryServer()
    persistence = StatePersistence(server.service)
    persistence.enable()
    client = server.connect()
    client.login()
    new_call(client, "C", "1")
    puts, deletes = persistence.collect()
    conn = "0000000000000001"
    assert set(puts) == {"call:IVR_1\x1fC", f"sw:{SWITCH}:call:{conn}", f"sw:{SWITCH}:ctr"}
    assert deletes == set()
    assert persistence.collect() == ({}, set())  # nothing changed since
    docs(client, "C", m.UDataSet(Action="Add", RequestId="1", UDataEx=(node("a", "1"),)))
    puts, deletes = persistence.collect()
    assert set(puts) == {f"sw:{SWITCH}:call:{conn}"} and deletes == set()
    docs(client, "C", m.EndCall(EndCause="Normal"))
    puts, deletes = persistence.collect()
    assert puts == {}
    assert deletes == {"call:IVR_1\x1fC", f"sw:{SWITCH}:call:{conn}"}


def test_collect_marks_the_dns_an_agent_event_changes() -> None:
    server = MemoryServer()
    persistence = StatePersistence(server.service)
    persistence.enable()
    ivr1 = server.connect()
    ivr1.login(call_id="L1")
    persistence.collect()
    ivr1.send("L1", "<AgentLogin ReqId='1' PortNum='2' Queue='6000' AgentId='1' Password=''/>")
    puts, deletes = persistence.collect()
    # (with the counters, written ahead the first time the view changes)
    assert set(puts) == {f"sw:{SWITCH}:dn:4002", f"sw:{SWITCH}:ctr"} and deletes == set()
    ivr1.send("L1", "<AgentReady ReqId='2' PortNum='2' Queue='6000' WorkMode='ManualIn'/>")
    puts, deletes = persistence.collect()
    assert set(puts) == {f"sw:{SWITCH}:dn:4002"} and deletes == set()


def test_collect_and_restore_of_the_collected_records_equal_everything() -> None:
    """The records collected turn by turn, applied in order, are the state ``everything()``
    gives at the end."""
    server = MemoryServer()
    persistence = StatePersistence(server.service)
    persistence.enable()
    store: dict[str, bytes] = dict(persistence.everything())
    client = server.connect()
    client.login()

    def turn() -> None:
        puts, deletes = persistence.collect()
        for key in deletes:
            store.pop(key, None)
        store.update(puts)

    for port in ("1", "2", "3"):
        new_call(client, f"C{port}", port, node("p", port))
        turn()
    docs(client, "C2", m.EndCall(EndCause="Normal"))
    turn()
    docs(client, "C3", m.RouteRequest(RouteDN="5001"))
    turn()
    server.advance(1.0)
    turn()
    everything = persistence.everything()
    counters = f"sw:{SWITCH}:ctr"  # collect writes them ahead (``reserve``), everything exact
    written, exact = decode_counters(store.pop(counters)), decode_counters(everything.pop(counters))
    assert written.next_conn is not None and exact.next_conn is not None
    assert written.next_conn == exact.next_conn + COUNTER_RESERVE - 2  # reserved at the 1st call
    assert store == everything


def test_a_node_taking_over_from_collected_records_never_reuses_a_connid() -> None:
    a = MemoryServer()
    persistence = StatePersistence(a.service, reserve=10)
    persistence.enable()
    store: dict[str, bytes] = persistence.everything()
    client = a.connect()
    client.login()
    conn_ids = []
    for n in range(25):
        new_call(client, f"C{n}", "1")
        conn_ids.append(client.request(f"C{n}", m.CallInfoReq()).ConnId)  # type: ignore[attr-defined]
        docs(client, f"C{n}", m.EndCall(EndCause="Normal"))
        puts, deletes = persistence.collect()
        store.update(puts)
        for key in deletes:
            store.pop(key, None)
    b = MemoryServer(a.config, now=a.now)
    client_b = b.connect()
    client_b.login(call_id="LB")
    StatePersistence(b.service).restore(store, b.now)
    new_call(client_b, "N", "1")
    conn = client_b.request("N", m.CallInfoReq()).ConnId  # type: ignore[attr-defined]
    assert conn not in conn_ids and int(conn, 16) > max(int(c, 16) for c in conn_ids)


def test_login_less_network_calls_are_not_persisted() -> None:
    """A call of a session that never logged in is that session's only (G23)."""
    server = MemoryServer()
    persistence = StatePersistence(server.service)
    persistence.enable()
    ctx = server.service.calls.context
    ctx.dirty.add("\x00abc\x1fN")  # type: ignore[union-attr]
    puts, deletes = persistence.collect()
    assert puts == {} and deletes == set()


def test_describe_is_json_able() -> None:
    import json

    server = MemoryServer()
    client = server.connect()
    client.login()
    new_call(client, "C", "1", node("Segment", "Gold"))
    records = StatePersistence(server.service).everything()
    described = StatePersistence.describe(records["call:IVR_1\x1fC"])
    assert json.loads(json.dumps(described))["conn_id"] == "0000000000000001"
    assert described["state"] == "CONNECTED" or described["state"]
    assert described["ivr"] == "IVR_1"


def test_restore_skips_calls_already_here_and_records_of_unknown_switches() -> None:
    a = MemoryServer()
    client = a.connect()
    client.login()
    new_call(client, "C", "1")
    records = StatePersistence(a.service).everything()
    b, _, restored = handover(a)
    assert restored == 1
    assert StatePersistence(b.service).restore(records, b.now) == 0  # already there
    strange = {"sw:NoSuchSwitch:call:01": records[f"sw:{SWITCH}:call:0000000000000001"]}
    assert StatePersistence(b.service).restore(strange, b.now) == 0


# ---------------------------------------------------------------------------------------------
# Network calls (examples/network.toml: routing DNs 8000-8009, the built-in router routes every
# call to 7002)


def network_config() -> ServerConfig:
    from pathlib import Path

    from ivr_server.config import load_config

    return load_config(Path(__file__).resolve().parents[2] / "examples/network.toml")


def network_twin(first: Script, second: Script) -> tuple[list[Any], list[Any]]:
    a = MemoryServer(network_config())
    client = a.connect()
    client.login("NetIVR", call_id="LA")
    first(a, client)
    b, client_b, restored = handover(a, ivr="NetIVR")
    assert restored >= 1
    return second(a, client), second(b, client_b)


def network_call(client: MemoryClient, call_id: str, dn: str, mode: str = "Network") -> list[Any]:
    return docs(
        client,
        call_id,
        m.NewCall(CallControlMode=mode, CalledNum=dn, Version="3.0", ANI="555"),  # type: ignore[arg-type]
    )


def test_a_queued_network_call_is_routed_by_the_other_node() -> None:
    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        assert network_call(client, "N", "8000") == []  # queued: nothing to the IVR
        docs(client, "N", m.UDataSet(Action="Replace", RequestId="1", UDataEx=(node("a", "1"),)))
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        return [
            docs(client, "N", m.CallInfoReq()),
            docs(client, "N", m.RouteRequest(RouteDN="8000")),
            docs(client, "N", m.Connected()),
            docs(client, "N", m.UDataGetAll(RequestId="2")),
            docs(client, "N", m.EndCall(EndCause="Normal")),
            docs(client, "N", m.CallInfoReq()),
        ]

    on_a, on_b = network_twin(first, second)
    assert on_a == on_b
    assert on_a[1] == [("N", m.RouteResponse(RouteType="Normal", Dest="7002"))]
    assert on_a[5] == [("N", NO_SUCH_CALL)]


def test_a_routed_network_call_reports_its_outcome_to_the_other_node() -> None:
    def first(server: MemoryServer, client: MemoryClient) -> list[Any]:
        got = network_call(client, "N", "8001", mode="Genesys")
        assert got == [("N", m.RouteResponse(RouteType="Normal", Dest="7002"))]
        return []

    def second(server: MemoryServer, client: MemoryClient) -> list[Any]:
        view = server.service.switches["SW_Network"].view
        return [
            docs(client, "N", m.Failure(FailureCause="Busy")),
            docs(client, "N", m.Connected()),
            [(c.conn_id, c.routed, c.connected, c.routing_point) for c in view.calls()],
            docs(client, "N", m.EndCall(EndCause="Normal")),
        ]

    on_a, on_b = network_twin(first, second)
    assert on_a == on_b
    assert [type(message) for _, message in on_a[0]] == [m.RouteResponse]  # routed again


# ---------------------------------------------------------------------------------------------
# property: whatever the requests before and after, a handover changes no answer

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CALL_IDS = ("C1", "C2")


def _requests(call_id: str) -> st.SearchStrategy[Any]:
    port = str(CALL_IDS.index(call_id) + 1)
    keys = st.sampled_from(["a", "b", "Segment"])
    values = st.sampled_from(["1", "2", "Gold"])
    return st.one_of(
        st.builds(
            lambda data: ("new", call_id, port, data),
            st.lists(st.builds(node, keys, values), max_size=2).map(tuple),
        ),
        st.builds(
            lambda action, key, value: (
                call_id,
                m.UDataSet(Action=action, RequestId="1", UDataEx=(node(key, value),)),
            ),
            st.sampled_from(["Add", "Replace"]),
            keys,
            values,
        ),
        st.builds(lambda key: (call_id, m.UDataGet(RequestId="2", Keys=key)), keys),
        st.just((call_id, m.UDataGetAll(RequestId="3"))),
        st.builds(
            lambda key: (call_id, m.UDataDel(Action="DeleteKey", Key=key, RequestId="4")), keys
        ),
        st.builds(
            lambda dn, ced: (call_id, m.RouteRequest(RouteDN=dn, CED=ced)),
            st.sampled_from(["5000", "5001"]),
            st.sampled_from([None, "1"]),
        ),
        st.builds(
            lambda status: (call_id, m.TreatStatus(Status=status)),
            st.sampled_from(["Started", "Completed", "NotStarted"]),
        ),
        st.just((call_id, m.Connected())),
        st.just((call_id, m.CallInfoReq())),
        st.just((call_id, m.EndCall(EndCause="Normal"))),
    )


steps = st.one_of(
    st.builds(lambda seconds: ("wait", seconds), st.sampled_from([1.0, 5.0])),
    st.sampled_from(CALL_IDS).flatmap(_requests),
)


def _run(server: MemoryServer, client: MemoryClient, script: list[Any]) -> list[Any]:
    transcript: list[Any] = []
    for step in script:
        if step[0] == "wait":
            server.advance(step[1])
            transcript.append([(doc.call_id, doc.message) for doc in client.take()])
        elif step[0] == "new":
            _, call_id, port, data = step
            transcript.append(new_call(client, call_id, port, *data))
        else:
            transcript.append(docs(client, *step))
    return transcript


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=12), st.lists(steps, max_size=12))
@example(
    [("new", "C1", "1", ()), ("C1", m.RouteRequest(RouteDN="5001"))], [("wait", 5.0)]
)  # H3: a router timeout due after the handover
def test_any_requests_get_the_same_answers_after_a_handover(
    before: list[Any], after: list[Any]
) -> None:
    config = config_with(router_timeout=4.0)
    a = MemoryServer(config)
    client = a.connect()
    client.login(call_id="LA")
    opening = [("new", "C1", "1", (node("a", "1"),)), ("new", "C2", "2", ())]
    _run(a, client, opening + before)  # calls in progress at the handover, mostly
    b, client_b, _ = handover(a)
    assert _run(a, client, after) == _run(b, client_b, after)


def test_deadlines_travel_as_wall_clock_times_between_two_loop_clocks() -> None:
    """A's loop clock reads 1000 when the wall clock reads 1.7e9; B's reads 20 then. The
    runtime gives each its two clocks (``time.time``, ``loop.time``)."""
    a = MemoryServer(config_with(router_timeout=4.0))
    client = a.connect()
    client.login()
    new_call(client, "C", "1")
    docs(client, "C", m.RouteRequest(RouteDN="5001"))  # router timeout at A's 1004.0
    wall = 1.7e9
    offset_a = wall - a.now
    records = StatePersistence(a.service, wall=lambda: a.now + offset_a, loop=lambda: a.now)
    stored = records.everything()
    assert StatePersistence.describe(stored["call:IVR_1\x1fC"])["router_deadline"] == wall + 4.0
    b = MemoryServer(a.config, now=20.0)
    client_b = b.connect()
    client_b.login(call_id="LB")
    a.advance(1.0)  # a second passes before B restores: B's loop reads 20 at wall + 1
    persistence = StatePersistence(b.service, wall=lambda: b.now + wall + 1.0 - 20.0)
    persistence.restore(stored, b.now)
    b.service.calls.adopt("IVR_1", client_b.session)
    assert b.service.calls.context.timers.router.get("IVR_1\x1fC") == pytest.approx(23.0)
    b.advance(3.0)
    assert client_b.messages() == [m.RouteResponse(RouteType="Default")]


def test_a_call_restored_onto_a_port_busy_here_goes_on_and_the_port_stays_this_nodes() -> None:
    """Active mode: two nodes may each have had a call on one IVR port."""
    a = MemoryServer()
    client = a.connect()
    client.login()
    new_call(client, "C", "1")
    records = StatePersistence(a.service).everything()
    b = MemoryServer(a.config, now=a.now + 100.0)  # its own ConnIds start after A's
    b.service.switches[SWITCH].next_conn = 100  # type: ignore[attr-defined]
    client_b = b.connect()
    client_b.login(call_id="LB")
    new_call(client_b, "D", "1")
    assert StatePersistence(b.service).restore(records, b.now) == 1
    b.service.calls.adopt("IVR_1", client_b.session)
    assert b.service.calls.call_on_port("IVR_1", "1") is b.service.calls.find("D")[0]
    assert client_b.request("C", m.CallInfoReq()).ConnId == "0000000000000001"  # type: ignore[attr-defined]
    assert client_b.request("D", m.CallInfoReq()).ConnId == "0000000000000064"  # type: ignore[attr-defined]
    docs(client_b, "C", m.EndCall(EndCause="Normal"))
    assert b.service.calls.call_on_port("IVR_1", "1") is b.service.calls.find("D")[0]
