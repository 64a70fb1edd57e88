"""Unit tests of the built-in router against the real virtual switch (docs/routing.md).

Every test builds a :class:`VirtualSwitch`, presents calls on routing points with
``TInboundCall`` + ``TRouteRequest``, and feeds every event the switch publishes to the router
until the switch is quiet — what the server does. The assertions are on the router's answers as
the call's owner sees them: ``RequestApplyTreatment`` and ``RequestRouteCall`` events.
"""

from __future__ import annotations

import itertools
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.config import (
    RoutingRule,
    TreatmentType,
    default_config,
)
from ivr_server.errors import LocalProtocolError
from ivr_server.routing import (
    BuiltinRouter,
    DialogPhase,
    DialogSnapshot,
    Router,
    build_routers,
    kv_from_table,
)
from ivr_server.switch import (
    DnType,
    EventAttachedDataChanged,
    EventEstablished,
    EventRouteRequest,
    EventTreatmentEnd,
    RequestApplyTreatment,
    RequestRouteCall,
    RouteType,
    SwitchEvent,
    SwitchRequest,
    TAgentLogin,
    TAgentSetNotReady,
    TAgentSetReady,
    TCallerHangUp,
    TInboundCall,
    TOpenLink,
    TRouteAbort,
    TRouteCall,
    TRouteFailed,
    TRouteRequest,
    TTreatmentStatus,
    WorkMode,
)
from ivr_server.switch.virtual import VirtualSwitch
from ivr_server.wire.kv import KvList, List, Node, int_node, str_node
from ivr_server.wire.messages import RouteResponse, TreatCall

SWITCH = "SW"
PORTS = ["4001", "4002", "4003", "4004"]
PORT = PORTS[0]
RP = "5000"
RP_2 = "5001"  # no router
RP_3 = "5002"
QUEUE = "6000"
QUEUE_2 = "6001"
AGENT_DNS = ["7001", "7002", "7003", "7004"]
DNS: list[tuple[str, DnType]] = [
    *[(port, DnType.VOICE_TREATMENT_PORT) for port in PORTS],
    (RP, DnType.ROUTING_POINT),
    (RP_2, DnType.ROUTING_POINT),
    (RP_3, DnType.ROUTING_POINT),
    (QUEUE, DnType.ACD_QUEUE),
    (QUEUE_2, DnType.ACD_QUEUE),
    *[(dn, DnType.EXTENSION) for dn in AGENT_DNS],
]

FALLBACK = "7999"
"""Destination of the catch-all last rule of most tests."""


def rule(name: str, **keys: Any) -> RoutingRule:
    """A rule written as in TOML (kebab-case keys allowed through ``**{"agent-group": ...}``)."""
    return RoutingRule.model_validate({"name": name, **keys})


def catch_all() -> RoutingRule:
    return rule("catch-all", dn=FALLBACK)


class Harness:
    """A virtual switch, a router on it, and the server's event pump between them."""

    def __init__(
        self,
        points: Mapping[str, Sequence[RoutingRule]],
        *,
        agent_groups: Mapping[str, Sequence[str]] | None = None,
        router: Router | None = None,
    ) -> None:
        self.switch = VirtualSwitch(SWITCH, "TS", DNS)
        self.switch.request(TOpenLink(reference_id=0))
        self.switch.drain_events()
        self._refs = itertools.count(1)
        self.router_refs: list[int] = []
        self.router: Router = router or BuiltinRouter(
            points, self._router_ref, agent_groups=agent_groups
        )
        self.log: list[SwitchEvent] = []
        self.port_of: dict[str, str] = {}

    def _router_ref(self) -> int:
        ref = 100_000 + next(self._refs)
        self.router_refs.append(ref)
        return ref

    @property
    def builtin(self) -> BuiltinRouter:
        assert isinstance(self.router, BuiltinRouter)
        return self.router

    def pump(self) -> list[SwitchEvent]:
        """Feed every event to the router until the switch is quiet; all events, in order."""
        seen: list[SwitchEvent] = []
        for _ in range(100):
            events = self.switch.drain_events()
            if not events:
                break
            for event in events:
                self.router.on_event(self.switch, event)
            seen.extend(events)
        else:
            raise AssertionError("the router never stopped talking")
        self.log.extend(seen)
        return seen

    def send(self, request: SwitchRequest) -> list[SwitchEvent]:
        self.switch.request(request)
        return self.pump()

    def ref(self) -> int:
        return next(self._refs)

    def call(
        self,
        *,
        port: str = PORT,
        ani: str | None = "5551234",
        dnis: str | None = "8005550000",
        user_data: KvList = (),
    ) -> str:
        events = self.send(
            TInboundCall(reference_id=self.ref(), dn=port, ani=ani, dnis=dnis, user_data=user_data)
        )
        established = events[-1]
        assert isinstance(established, EventEstablished), events
        self.port_of[established.conn_id] = port
        return established.conn_id

    def route_request(
        self, conn_id: str, *, rp: str = RP, ced: str | None = None
    ) -> list[SwitchEvent]:
        port = self.port_of[conn_id]
        return self.send(
            TRouteRequest(
                reference_id=self.ref(), conn_id=conn_id, dn=port, route_dn=rp, collected_digits=ced
            )
        )

    def treatment_status(
        self,
        conn_id: str,
        status: Literal["Started", "NotStarted", "Completed"],
        *,
        rp: str = RP,
        ced: str | None = None,
    ) -> list[SwitchEvent]:
        snapshot = self.switch.view.call(conn_id)
        kind = snapshot.treatment if snapshot is not None and snapshot.treatment else "Music"
        return self.send(
            TTreatmentStatus(
                reference_id=self.ref(),
                conn_id=conn_id,
                dn=rp,
                status=status,
                treatment_type=kind,
                collected_digits=ced,
            )
        )

    def fail(self, conn_id: str, code: int = 83, *, rp: str = RP) -> list[SwitchEvent]:
        return self.send(
            TRouteFailed(reference_id=self.ref(), conn_id=conn_id, dn=rp, error_code=code)
        )

    def login(self, dn: str, agent_id: str, queue: str = QUEUE, *, ready: bool = True) -> None:
        mode = WorkMode.AUTO_IN if ready else WorkMode.UNKNOWN
        events = self.send(
            TAgentLogin(
                reference_id=self.ref(), dn=dn, queue=queue, agent_id=agent_id, work_mode=mode
            )
        )
        assert events[0].name == "EventAgentLogin", events

    def not_ready(self, dn: str) -> None:
        self.send(TAgentSetNotReady(reference_id=self.ref(), dn=dn, queue=""))

    def ready(self, dn: str) -> None:
        self.send(
            TAgentSetReady(reference_id=self.ref(), dn=dn, queue="", work_mode=WorkMode.AUTO_IN)
        )

    def hang_up(self, conn_id: str) -> list[SwitchEvent]:
        self.switch.request(TCallerHangUp(reference_id=0, conn_id=conn_id))
        return self.pump()


def routes(events: Sequence[SwitchEvent]) -> list[RequestRouteCall]:
    return [event for event in events if isinstance(event, RequestRouteCall)]


def treatments(events: Sequence[SwitchEvent]) -> list[RequestApplyTreatment]:
    return [event for event in events if isinstance(event, RequestApplyTreatment)]


def routed(events: Sequence[SwitchEvent]) -> RequestRouteCall:
    (route,) = routes(events)
    assert not treatments(events)
    return route


def treated(events: Sequence[SwitchEvent]) -> RequestApplyTreatment:
    (treatment,) = treatments(events)
    assert not routes(events)
    return treatment


def dest_of(events: Sequence[SwitchEvent]) -> tuple[RouteType, str | None]:
    route = routed(events)
    return route.route_type, route.dest


def quiet(events: Sequence[SwitchEvent]) -> bool:
    """No answer from the router among ``events``."""
    return not routes(events) and not treatments(events)


# --------------------------------------------------------------------------------------------
# Conditions: every field, every operator


def s(name: str, value: str) -> Node:
    return str_node(name, value)


CONDITION_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # (id, condition, call attributes, matches?)
    ("dnis equals", {"field": "dnis", "equals": "800"}, {"dnis": "800"}, True),
    ("dnis equals is exact", {"field": "dnis", "equals": "800"}, {"dnis": "8001"}, False),
    ("dnis equals absent", {"field": "dnis", "equals": "800"}, {"dnis": None}, False),
    ("ani equals", {"field": "ani", "equals": "555"}, {"ani": "555"}, True),
    ("ani equals other", {"field": "ani", "equals": "555"}, {"ani": "556"}, False),
    ("ced equals", {"field": "ced", "equals": "1"}, {"ced": "1"}, True),
    ("ced equals other", {"field": "ced", "equals": "1"}, {"ced": "12"}, False),
    ("ced equals absent", {"field": "ced", "equals": "1"}, {}, False),
    ("udata equals", {"field": "udata.Seg", "equals": "Gold"}, {"ud": (s("Seg", "Gold"),)}, True),
    ("udata equals is case-sensitive", {"field": "udata.Seg", "equals": "gold"},
     {"ud": (s("Seg", "Gold"),)}, False),
    ("udata key is case-sensitive", {"field": "udata.seg", "equals": "Gold"},
     {"ud": (s("Seg", "Gold"),)}, False),
    ("udata Int node compares its text", {"field": "udata.Level", "equals": "3"},
     {"ud": (int_node("Level", 3),)}, True),
    ("udata first item wins", {"field": "udata.Seg", "equals": "Gold"},
     {"ud": (s("Seg", "Silver"), s("Seg", "Gold"))}, False),
    ("udata nested key is not top-level", {"field": "udata.Seg", "equals": "Gold"},
     {"ud": (List(Name="L", items=(s("Seg", "Gold"),)),)}, False),
    ("udata List never equals", {"field": "udata.L", "equals": ""},
     {"ud": (List(Name="L", items=(s("a", ""),)),)}, False),
    ("dnis prefix", {"field": "dnis", "prefix": "800"}, {"dnis": "8005550000"}, True),
    ("dnis prefix other", {"field": "dnis", "prefix": "900"}, {"dnis": "8005550000"}, False),
    ("ani prefix absent", {"field": "ani", "prefix": ""}, {"ani": None}, False),
    ("empty prefix matches any present value", {"field": "ani", "prefix": ""}, {"ani": "1"}, True),
    ("udata prefix", {"field": "udata.Seg", "prefix": "Go"}, {"ud": (s("Seg", "Gold"),)}, True),
    ("udata prefix on a List", {"field": "udata.L", "prefix": ""},
     {"ud": (List(Name="L", items=(s("a", "b"),)),)}, False),
    ("regex is a full match", {"field": "ced", "regex": "[0-9]{3}"}, {"ced": "123"}, True),
    ("regex partial match does not count", {"field": "ced", "regex": "[0-9]{3}"},
     {"ced": "1234"}, False),
    ("regex searching needs .*", {"field": "ced", "regex": ".*23.*"}, {"ced": "1234"}, True),
    ("regex on absent", {"field": "ced", "regex": ".*"}, {}, False),
    ("regex on udata", {"field": "udata.Seg", "regex": "G.*|S.*"}, {"ud": (s("Seg", "Silver"),)},
     True),
    ("present ced", {"field": "ced", "present": True}, {"ced": "1"}, True),
    ("present ced absent", {"field": "ced", "present": True}, {}, False),
    ("present ced empty is absent", {"field": "ced", "present": True}, {"ced": ""}, False),
    ("not present ced", {"field": "ced", "present": False}, {}, True),
    ("not present ced given", {"field": "ced", "present": False}, {"ced": "9"}, False),
    ("present dnis", {"field": "dnis", "present": True}, {"dnis": "1"}, True),
    ("present ani absent", {"field": "ani", "present": True}, {"ani": None}, False),
    ("present udata", {"field": "udata.Seg", "present": True}, {"ud": (s("Seg", ""),)}, True),
    ("present udata List counts", {"field": "udata.L", "present": True},
     {"ud": (List(Name="L", items=(s("a", "b"),)),)}, True),
    ("present udata absent", {"field": "udata.Seg", "present": True}, {"ud": (s("X", "1"),)},
     False),
    ("not present udata", {"field": "udata.Seg", "present": False}, {}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "attributes", "matches"),
    [case[1:] for case in CONDITION_CASES],
    ids=[case[0] for case in CONDITION_CASES],
)
def test_condition(condition: dict[str, Any], attributes: dict[str, Any], matches: bool) -> None:
    h = Harness({RP: [rule("tested", match=[condition], dn="7001"), catch_all()]})
    conn_id = h.call(
        ani=attributes.get("ani", "5551234"),
        dnis=attributes.get("dnis", "8005550000"),
        user_data=attributes.get("ud", ()),
    )
    events = h.route_request(conn_id, ced=attributes.get("ced"))
    assert dest_of(events) == ("Normal", "7001" if matches else FALLBACK)


def test_every_condition_of_a_rule_must_hold() -> None:
    conditions = [
        {"field": "ced", "prefix": "1"},
        {"field": "dnis", "equals": "800"},
        {"field": "udata.Seg", "present": True},
    ]
    h = Harness({RP: [rule("all", match=conditions, dn="7001"), catch_all()]})
    seg: KvList = (s("Seg", "x"),)
    for ced, dnis, user_data, expected in [
        ("12", "800", seg, "7001"),
        ("22", "800", seg, FALLBACK),
        ("12", "801", seg, FALLBACK),
        ("12", "800", (), FALLBACK),
    ]:
        conn_id = h.call(dnis=dnis, user_data=user_data)
        assert dest_of(h.route_request(conn_id, ced=ced)) == ("Normal", expected)


def test_a_rule_without_conditions_always_matches_and_rules_are_tried_in_order() -> None:
    h = Harness({RP: [rule("first", dn="7001"), rule("second", dn="7002")]})
    assert dest_of(h.route_request(h.call(), ced="1")) == ("Normal", "7001")


cases = st.text(alphabet="0123456789*#ab", max_size=6)


@settings(max_examples=60, deadline=None)
@given(value=cases, prefix=cases)
def test_prefix_is_startswith_of_a_present_value(value: str, prefix: str) -> None:
    h = Harness(
        {RP: [rule("p", match=[{"field": "ced", "prefix": prefix}], dn="7001"), catch_all()]}
    )
    expected = "7001" if value and value.startswith(prefix) else FALLBACK
    assert dest_of(h.route_request(h.call(), ced=value or None)) == ("Normal", expected)


@settings(max_examples=60, deadline=None)
@given(value=cases, pattern=st.sampled_from(["[0-9]+", "1.*", ".*#", "(ab)*", "[0-9]{2}", "a|b"]))
def test_regex_is_a_full_match(value: str, pattern: str) -> None:
    h = Harness(
        {RP: [rule("r", match=[{"field": "ced", "regex": pattern}], dn="7001"), catch_all()]}
    )
    expected = "7001" if value and re.fullmatch(pattern, value) else FALLBACK
    assert dest_of(h.route_request(h.call(), ced=value or None)) == ("Normal", expected)


# --------------------------------------------------------------------------------------------
# Targets


def test_dn_target_with_route_type_and_extensions() -> None:
    h = Harness(
        {
            RP: [
                rule(
                    "x",
                    dn="5550800",
                    **{"route-type": "RerouteAttended"},
                    extensions={"CUSTOMER_ID": "c1", "NVQ": 3, "LOC": {"SWITCH": "SW"}},
                )
            ]
        }
    )
    route = routed(h.route_request(h.call()))
    assert (route.route_type, route.dest, route.dn) == ("RerouteAttended", "5550800", RP)
    assert route.route_extensions == (
        s("CUSTOMER_ID", "c1"),
        int_node("NVQ", 3),
        List(Name="LOC", items=(s("SWITCH", "SW"),)),
    )
    assert route.reference_id in h.router_refs


def test_routing_point_target() -> None:
    h = Harness({RP: [rule("rp", **{"routing-point": RP_3})]})
    assert dest_of(h.route_request(h.call())) == ("Normal", RP_3)


def test_default_target() -> None:
    h = Harness({RP: [rule("d", default=True), catch_all()]})
    route = routed(h.route_request(h.call()))
    assert (route.route_type, route.dest, route.route_extensions) == ("Default", None, ())


def test_default_route_type_with_a_destination() -> None:
    h = Harness({RP: [rule("d", dn="7001", **{"route-type": "Default"})]})
    assert dest_of(h.route_request(h.call())) == ("Default", "7001")


def test_queue_target_takes_the_longest_idle_ready_agent() -> None:
    h = Harness({RP: [rule("q", queue=QUEUE), catch_all()]})
    h.login("7003", "a3")
    h.login("7001", "a1")
    h.login("7002", "a2")
    assert dest_of(h.route_request(h.call(port=PORTS[0]))) == ("Normal", "7003")
    h.not_ready("7003")
    assert dest_of(h.route_request(h.call(port=PORTS[1]))) == ("Normal", "7001")
    h.ready("7003")  # ready again: now idle for the shortest time
    h.not_ready("7001")
    assert dest_of(h.route_request(h.call(port=PORTS[2]))) == ("Normal", "7002")
    h.not_ready("7002")
    assert dest_of(h.route_request(h.call(port=PORTS[3]))) == ("Normal", "7003")


def test_queue_target_ignores_agents_of_other_queues() -> None:
    h = Harness({RP: [rule("q", queue=QUEUE), catch_all()]})
    h.login("7001", "a1", QUEUE_2)
    h.login("7002", "a2", QUEUE)
    assert dest_of(h.route_request(h.call())) == ("Normal", "7002")


def test_agent_group_target_takes_the_longest_idle_agent_of_the_group() -> None:
    h = Harness(
        {RP: [rule("g", **{"agent-group": "team"}), catch_all()]},
        agent_groups={"team": ["a2", "a4"]},
    )
    h.login("7001", "a1")
    h.login("7004", "a4", QUEUE_2)
    h.login("7002", "a2")
    assert dest_of(h.route_request(h.call(port=PORTS[0]))) == ("Normal", "7004")
    h.not_ready("7004")
    assert dest_of(h.route_request(h.call(port=PORTS[1]))) == ("Normal", "7002")
    h.not_ready("7002")
    assert dest_of(h.route_request(h.call(port=PORTS[2]))) == ("Normal", FALLBACK)


def test_rules_with_unavailable_agent_targets_are_skipped() -> None:
    h = Harness(
        {
            RP: [
                rule("queue", queue=QUEUE),
                rule("group", **{"agent-group": "team"}),
                rule("other queue", queue=QUEUE_2),
                catch_all(),
            ]
        },
        agent_groups={"team": ["a1"]},
    )
    assert dest_of(h.route_request(h.call(port=PORTS[0]))) == ("Normal", FALLBACK)
    h.login("7001", "a1", QUEUE_2, ready=False)  # logged in, not ready: still unavailable
    assert dest_of(h.route_request(h.call(port=PORTS[1]))) == ("Normal", FALLBACK)
    h.ready("7001")  # ready, in QUEUE_2 and in the group: the group rule comes first
    assert dest_of(h.route_request(h.call(port=PORTS[2]))) == ("Normal", "7001")


def test_an_agent_in_a_call_is_not_available() -> None:
    h = Harness({RP: [rule("q", queue=QUEUE), catch_all()]})
    h.login("7001", "a1")
    h.call(port="7001")  # the agent's DN is now in a call
    assert dest_of(h.route_request(h.call())) == ("Normal", FALLBACK)


def test_no_matching_rule_routes_default() -> None:
    h = Harness({RP: [rule("never", match=[{"field": "ced", "equals": "x"}], dn="7001")]})
    route = routed(h.route_request(h.call()))
    assert (route.route_type, route.dest, route.route_extensions) == ("Default", None, ())


def test_a_routing_point_with_no_rules_routes_default() -> None:
    h = Harness({RP: []})
    assert dest_of(h.route_request(h.call())) == ("Default", None)


def test_a_routing_point_without_router_is_left_alone() -> None:
    h = Harness({RP: [catch_all()]})
    conn_id = h.call()
    assert quiet(h.route_request(conn_id, rp=RP_2))
    assert [c.conn_id for c in h.switch.view.waiting_calls(RP_2)] == [conn_id]
    assert h.builtin.dialogs() == []


# --------------------------------------------------------------------------------------------
# Attach, treatments


def test_attach_replaces_user_data_just_before_routing() -> None:
    h = Harness({RP: [rule("vip", dn="7001", attach={"RoutedBy": "vip", "Score": 5, "Ok": True})]})
    conn_id = h.call(user_data=(s("RoutedBy", "ivr"), s("Keep", "1"), s("RoutedBy", "dup")))
    events = h.route_request(conn_id)
    changed = [i for i, e in enumerate(events) if isinstance(e, EventAttachedDataChanged)]
    route_at = next(i for i, e in enumerate(events) if isinstance(e, RequestRouteCall))
    assert len(changed) == 1 and changed[0] < route_at
    expected = (s("RoutedBy", "vip"), s("Keep", "1"), int_node("Score", 5), s("Ok", "true"))
    assert events[changed[0]].dn == PORT  # type: ignore[attr-defined]
    assert h.switch.view.user_data(conn_id) == expected
    assert routed(events).user_data == expected


def test_treatments_run_in_order_then_the_call_is_routed() -> None:
    treats = [
        {"type": "PlayAnnounce", "parameters": {"MSG": "hello", "N": 2}},
        {"type": "CollectDigits", "extensions": {"X": "y"}},
        {"type": "Music"},
    ]
    h = Harness({RP: [rule("t", dn="7001", treatments=treats)]})
    conn_id = h.call()
    first = treated(h.route_request(conn_id, ced="5"))
    assert (first.dn, first.treatment_type) == (RP, "PlayAnnounce")
    assert first.parameters == (s("MSG", "hello"), int_node("N", 2))
    assert first.treatment_extensions == ()
    assert h.builtin.dialog(conn_id) == DialogSnapshot(
        conn_id=conn_id, routing_point=RP, rule="t", phase=DialogPhase.TREATING, treatment=0
    )
    assert quiet(h.treatment_status(conn_id, "Started"))
    second = treated(h.treatment_status(conn_id, "Completed", ced="42"))
    assert (second.treatment_type, second.parameters) == ("CollectDigits", ())
    assert second.treatment_extensions == (s("X", "y"),)
    third = treated(h.treatment_status(conn_id, "NotStarted"))  # next one anyway
    assert third.treatment_type == "Music"
    assert quiet(h.treatment_status(conn_id, "Started"))
    events = h.treatment_status(conn_id, "Completed")
    assert any(isinstance(e, EventTreatmentEnd) for e in events)
    assert dest_of(events) == ("Normal", "7001")
    snapshot = h.builtin.dialog(conn_id)
    assert snapshot is not None and snapshot.phase is DialogPhase.ROUTED
    assert snapshot.treatment is None


def test_the_agent_is_chosen_again_when_the_treatments_are_over() -> None:
    h = Harness({RP: [rule("q", queue=QUEUE, treatments=[{"type": "Music"}]), catch_all()]})
    h.login("7001", "a1")
    h.login("7002", "a2", ready=False)
    conn_id = h.call()
    treated(h.route_request(conn_id))  # a1 is ready: the rule is chosen
    h.not_ready("7001")
    h.ready("7002")
    assert dest_of(h.treatment_status(conn_id, "NotStarted")) == ("Normal", "7002")


def test_no_agent_left_after_the_treatments_routes_default() -> None:
    h = Harness({RP: [rule("q", queue=QUEUE, treatments=[{"type": "Music"}]), catch_all()]})
    h.login("7001", "a1")
    conn_id = h.call()
    treated(h.route_request(conn_id))
    h.not_ready("7001")
    h.treatment_status(conn_id, "Started")
    assert dest_of(h.treatment_status(conn_id, "Completed")) == ("Default", None)


# --------------------------------------------------------------------------------------------
# Failures


def test_a_failed_route_goes_to_the_next_matching_rule_without_treatments() -> None:
    h = Harness(
        {
            RP: [
                rule("one", match=[{"field": "ced", "equals": "1"}], dn="7001"),
                rule("not me", match=[{"field": "ced", "equals": "2"}], dn="7002"),
                rule("no agents", queue=QUEUE),
                rule("treated", dn="7003", treatments=[{"type": "Music"}], attach={"Try": 3}),
                rule("last", dn="7004"),
            ]
        }
    )
    conn_id = h.call()
    assert dest_of(h.route_request(conn_id, ced="1")) == ("Normal", "7001")
    events = h.fail(conn_id, 83)
    assert dest_of(events) == ("Normal", "7003")  # no treatment on a re-route
    assert routed(events).user_data == (int_node("Try", 3),)  # but its attach
    assert dest_of(h.fail(conn_id, 232)) == ("Normal", "7004")
    assert dest_of(h.fail(conn_id, 234)) == ("Default", None)
    assert dest_of(h.fail(conn_id, 83)) == ("Default", None)


def test_a_failed_route_uses_an_agent_that_became_ready() -> None:
    h = Harness({RP: [rule("first", dn="7001"), rule("q", queue=QUEUE)]})
    conn_id = h.call()
    assert dest_of(h.route_request(conn_id)) == ("Normal", "7001")
    h.login("7002", "a2")
    assert dest_of(h.fail(conn_id)) == ("Normal", "7002")


def test_a_failure_of_a_call_the_router_does_not_know_routes_default() -> None:
    h = Harness({RP: [catch_all()]})
    conn_id = h.call()
    # routed by someone else, behind the router's back (its events are not fed to it)
    h.switch.request(TRouteRequest(reference_id=1, conn_id=conn_id, dn=PORT, route_dn=RP))
    h.switch.request(TRouteCall(reference_id=2, conn_id=conn_id, dn=RP, dest="7001"))
    h.switch.drain_events()
    assert dest_of(h.fail(conn_id)) == ("Default", None)


def test_other_errors_are_ignored() -> None:
    h = Harness({RP: [catch_all()]})
    conn_id = h.call()
    # a TRouteCall for a call that does not wait: EventError without ConnID
    events = h.send(TRouteCall(reference_id=h.ref(), conn_id=conn_id, dn=RP, dest="1"))
    assert [e.name for e in events] == ["EventError"]
    # a failure code that is not a routing failure on a routing point: nothing either
    h.route_request(conn_id)
    assert quiet(h.fail(conn_id, 53))


# --------------------------------------------------------------------------------------------
# Dialogs: lifetime and cleanup


def test_dialogs_are_forgotten_when_calls_end() -> None:
    h = Harness(
        {
            RP: [
                rule("treated", match=[{"field": "ced", "equals": "t"}], dn="7001",
                     treatments=[{"type": "Music"}]),
                catch_all(),
            ],
            RP_3: [catch_all()],
        }
    )  # fmt: skip
    routed_call = h.call(port=PORTS[0])
    h.route_request(routed_call)
    snapshot = h.builtin.dialog(routed_call)  # kept after EventRouteUsed: a Failure may follow
    assert snapshot is not None and snapshot.phase is DialogPhase.ROUTED

    aborted = h.call(port=PORTS[1])
    h.route_request(aborted, ced="t")
    h.send(TRouteAbort(reference_id=h.ref(), conn_id=aborted, dn=RP))  # Connected / timeout
    assert h.builtin.dialog(aborted) is None

    hung_up = h.call(port=PORTS[2])
    h.route_request(hung_up, ced="t")
    h.treatment_status(hung_up, "Started")
    failed = h.call(port=PORTS[3])
    h.route_request(failed, rp=RP_3)
    h.fail(failed, rp=RP_3)
    assert {d.conn_id for d in h.builtin.dialogs()} == {routed_call, hung_up, failed}

    for conn_id in (routed_call, aborted, hung_up, failed):
        h.hang_up(conn_id)
    assert h.builtin.dialogs() == []


def test_a_second_route_request_opens_a_new_dialog() -> None:
    h = Harness({RP: [rule("one", dn="7001"), rule("two", dn="7002")], RP_3: [catch_all()]})
    conn_id = h.call()
    h.route_request(conn_id)
    h.route_request(conn_id, rp=RP_3)
    snapshot = h.builtin.dialog(conn_id)
    assert snapshot is not None and (snapshot.routing_point, snapshot.rule) == (RP_3, "catch-all")
    assert len(h.builtin.dialogs()) == 1


def test_events_of_another_switch_are_ignored() -> None:
    h = Harness({RP: [catch_all()]})
    conn_id = h.call()
    h.switch.request(TRouteRequest(reference_id=1, conn_id=conn_id, dn=PORT, route_dn=RP))
    (event,) = h.switch.drain_events()
    assert isinstance(event, EventRouteRequest)
    other = VirtualSwitch("OTHER", "TS2", DNS)
    h.router.on_event(other, event)  # an event of SW given with switch OTHER
    assert other.drain_events() == [] and h.builtin.dialogs() == []


def test_unrelated_and_unknown_events_are_ignored() -> None:
    h = Harness({RP: [catch_all()]})
    h.login("7001", "a1")
    conn_id = h.call()
    stray = EventTreatmentEnd(
        switch=SWITCH, dn=RP, conn_id="00000000000000ff", call_id=9, treatment_type="Music"
    )
    h.router.on_event(h.switch, stray)
    assert h.switch.drain_events() == [] and h.builtin.dialogs() == []
    h.hang_up(conn_id)
    assert h.builtin.dialogs() == []


Action = tuple[str, int]
actions = st.lists(
    st.tuples(
        st.sampled_from(
            ["request", "request-rp3", "started", "completed", "not-started", "fail", "abort",
             "hang-up", "ready", "not-ready"]
        ),
        st.integers(0, 3),
    ),
    max_size=30,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(steps=actions)
def test_any_sequence_keeps_only_dialogs_of_live_calls(steps: list[Action]) -> None:
    h = Harness(
        {
            RP: [
                rule("treated", match=[{"field": "ced", "equals": "2"}], queue=QUEUE,
                     treatments=[{"type": "Music"}, {"type": "RAN"}]),
                rule("queue", queue=QUEUE),
                catch_all(),
            ],
            RP_3: [rule("fails", dn="7001"), rule("t", default=True)],
        }
    )  # fmt: skip
    h.login("7003", "a3")
    h.login("7004", "a4")
    calls = [h.call(port=port, user_data=(s("n", str(n)),)) for n, port in enumerate(PORTS)]
    for action, n in steps:
        conn_id = calls[n]
        if action == "hang-up":
            h.switch.request(TCallerHangUp(reference_id=0, conn_id=conn_id))
            h.pump()
            calls[n] = h.call(port=PORTS[n])
        elif action in ("request", "request-rp3"):
            rp = RP if action == "request" else RP_3
            h.route_request(conn_id, rp=rp, ced=str(n))
        elif action == "fail":
            h.fail(conn_id, rp=RP if n % 2 else RP_3)
        elif action == "abort":
            h.send(TRouteAbort(reference_id=h.ref(), conn_id=conn_id, dn=RP))
        elif action in ("ready", "not-ready"):
            dn = AGENT_DNS[2 + n % 2]
            (h.ready if action == "ready" else h.not_ready)(dn)
        else:
            status: dict[str, Literal["Started", "NotStarted", "Completed"]] = {
                "started": "Started",
                "completed": "Completed",
                "not-started": "NotStarted",
            }
            h.treatment_status(conn_id, status[action])
        for dialog in h.builtin.dialogs():
            assert h.switch.view.call(dialog.conn_id) is not None
        # a call waiting at a routing point with a router always has its dialog
        for point in (RP, RP_3):
            for waiting in h.switch.view.waiting_calls(point):
                snapshot = h.builtin.dialog(waiting.conn_id)
                assert snapshot is not None and snapshot.phase is DialogPhase.TREATING
    for conn_id in calls:
        h.hang_up(conn_id)
    assert h.builtin.dialogs() == []


# --------------------------------------------------------------------------------------------
# Construction, configuration, the interface


def test_the_built_in_default_configuration_routes_as_documented() -> None:
    refs = itertools.count(1)
    routers = build_routers(default_config(), lambda: next(refs))
    assert list(routers) == ["SW_InFront"]
    router = routers["SW_InFront"]
    assert router.routing_points() == frozenset({"5000"})
    config = default_config()
    dns = [(dn.number, DnType(dn.type.value)) for dn in config.switches[0].dns]
    h = Harness({}, router=router)
    h.switch = VirtualSwitch("SW_InFront", "TServer_IVR", dns)
    h.switch.request(TOpenLink(reference_id=0))
    h.switch.drain_events()

    plain = h.call(port="4001")
    assert dest_of(h.route_request(plain, rp="5000")) == ("Normal", "7002")
    # CED 1 but nobody ready in queue 6000: "agents" is skipped
    no_agent = h.call(port="4002")
    assert dest_of(h.route_request(no_agent, rp="5000", ced="1")) == (
        "Normal",
        "7002",
    )
    gold = h.call(port="4003", user_data=(s("Segment", "Gold"),))
    events = h.route_request(gold, rp="5000")
    assert dest_of(events) == ("Normal", "7001")
    assert routed(events).user_data == (s("Segment", "Gold"), s("RoutedBy", "vip"))

    h.login("7004", "9201", "6000")
    agents = h.call(port="4004")
    treatment = treated(h.route_request(agents, rp="5000", ced="1"))
    assert (treatment.treatment_type, treatment.parameters) == (
        "PlayApplication",
        (int_node("APP_ID", 1),),
    )
    h.treatment_status(agents, "Started", rp="5000")
    assert dest_of(h.treatment_status(agents, "Completed", rp="5000")) == ("Normal", "7004")

    # 5001 has no router: the call waits for the server's router timeout
    other = h.call(port="4005")
    assert quiet(h.route_request(other, rp="5001"))
    for conn_id in (plain, no_agent, gold, agents, other):
        h.hang_up(conn_id)
    assert router.dialogs() == []


def test_build_routers_gives_no_router_to_switches_without_rules() -> None:
    config = default_config().model_copy(update={"routing": ()})
    assert build_routers(config, lambda: 1) == {}


def test_an_unknown_agent_group_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="unknown agent group 'nope'"):
        BuiltinRouter({RP: [rule("g", **{"agent-group": "nope"})]}, lambda: 1)


def test_the_builtin_router_is_a_router() -> None:
    router: Router = BuiltinRouter({RP: [catch_all()], RP_3: []}, lambda: 1)
    assert router.routing_points() == frozenset({RP, RP_3})


def test_configuration_literals_are_the_wire_literals() -> None:
    wire_types = typing.get_args(typing.get_type_hints(TreatCall)["Type"])
    assert typing.get_args(TreatmentType) == wire_types
    assert len(wire_types) == 18
    route_types = typing.get_args(typing.get_type_hints(RouteResponse)["RouteType"])
    assert route_types == typing.get_args(RouteType)


def test_kv_from_table() -> None:
    table: tuple[tuple[str, Any], ...] = (
        ("s", "x"),
        ("i", -5),
        ("b", True),
        ("l", (("inner", 1), ("deeper", (("z", ""),)))),
    )
    assert kv_from_table(table) == (
        s("s", "x"),
        int_node("i", -5),
        s("b", "true"),
        List(Name="l", items=(int_node("inner", 1), List(Name="deeper", items=(s("z", ""),)))),
    )
    assert rule("r", dn="1", extensions={"b": False}).extensions == (("b", "false"),)
