"""Tests of the ``[[routing]]`` and ``[[agent-groups]]`` configuration (docs/configuration.md).

Every check has one case that must yield exactly that one problem, at its location.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from ivr_server.config import (
    AgentGroupConfig,
    MatchCondition,
    RoutingConfig,
    RoutingRule,
    TreatmentConfig,
    default_config,
    parse_config,
)
from ivr_server.errors import ConfigError, ConfigProblem

REPO = Path(__file__).parents[2]

BASE = """
[[switches]]
name = "SW"
dns = [
    { number = "100", type = "voice-treatment-port" },
    { number = "200", type = "routing-point" },
    { number = "201", type = "routing-point" },
    { number = "300", type = "acd-queue" },
    { number = "400", type = "extension" },
]

[[tservers]]
name = "TS"
switch = "SW"

[[ivrs]]
name = "IVR"
tservers = ["TS"]
ports = [{ number = "1", dn = "100" }]

[[agent-groups]]
name = "team"
agents = ["a1", "a2"]
"""

SECOND_SWITCH = """
[[switches]]
name = "SW2"
dns = [{ number = "200", type = "routing-point" }, { number = "500", type = "routing-point" }]

[[tservers]]
name = "TS2"
switch = "SW2"
"""

FULL = """
[[routing]]
dn = "200"

[[routing.rules]]
name = "agents"
match = [
    { field = "ced", equals = 1 },
    { field = "dnis", prefix = "800" },
    { field = "ani", regex = "555.*" },
    { field = "udata.Segment", present = false },
]
queue = 300
treatments = [
    { type = "PlayApplication", parameters = { APP_ID = 1, LANGUAGE = "English(US)" } },
    { type = "Music", extensions = { Loop = true } },
]

[[routing.rules]]
name = "team"
agent-group = "team"
route-type = "RerouteConferenced"

[[routing.rules]]
name = "vip"
match = [{ field = "udata.Segment", equals = "Gold" }]
dn = "5550800"
extensions = { CUSTOMER_ID = "c1", NVQ = 3, TARGET = { DN = "7001", SWITCH = "SW" } }
attach = { RoutedBy = "vip" }

[[routing.rules]]
name = "elsewhere"
routing-point = "201"

[[routing.rules]]
name = "last"
default = true
"""


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


def where(problems: list[ConfigProblem]) -> list[str]:
    return [problem.location for problem in problems]


# --------------------------------------------------------------------------------------------
# Valid configurations


def test_full_example() -> None:
    config = parse_config(BASE + FULL)
    (entry,) = config.routing
    assert (entry.dn, entry.switch) == ("200", None)
    assert config.routing_switch_name(entry) == "SW"
    assert config.routing_for("SW") == (entry,)
    assert config.routing_for("nope") == ()
    assert config.agent_group("team") == AgentGroupConfig(name="team", agents=("a1", "a2"))
    assert config.agent_group("nope") is None

    agents, team, vip, elsewhere, last = entry.rules
    assert [c.operator for c in agents.match] == ["equals", "prefix", "regex", "present"]
    assert agents.match[0] == MatchCondition(field="ced", equals="1")
    assert agents.match[3].present is False
    assert (agents.queue, agents.targets(), agents.effective_route_type) == (
        "300",
        ["queue"],
        "Normal",
    )
    assert agents.treatments == (
        TreatmentConfig(
            type="PlayApplication", parameters=(("APP_ID", 1), ("LANGUAGE", "English(US)"))
        ),
        TreatmentConfig(type="Music", extensions=(("Loop", "true"),)),
    )
    assert (team.agent_group, team.effective_route_type) == ("team", "RerouteConferenced")
    assert vip.extensions == (
        ("CUSTOMER_ID", "c1"),
        ("NVQ", 3),
        ("TARGET", (("DN", "7001"), ("SWITCH", "SW"))),
    )
    assert vip.attach == (("RoutedBy", "vip"),)
    assert (elsewhere.routing_point, elsewhere.targets()) == ("201", ["routing-point"])
    assert (last.default, last.targets(), last.effective_route_type) == (
        True,
        ["default"],
        "Default",
    )


def test_models_stay_frozen_hashable_and_copyable() -> None:
    config = parse_config(BASE + FULL)
    again = parse_config(BASE + FULL)
    assert config == again and hash(config) == hash(again)
    with pytest.raises(ValidationError):
        config.routing[0].dn = "201"  # type: ignore[misc]
    copy = config.model_copy(update={"routing": config.routing})
    assert copy == config and copy.routing_for("SW") == config.routing
    rule = config.routing[0].rules[2]
    assert rule.model_copy(update={"attach": {"X": 1}}).attach == (("X", 1),)


def test_switch_is_needed_only_when_the_dn_is_on_several_switches() -> None:
    text = BASE + SECOND_SWITCH + '[[routing]]\ndn = "200"\nswitch = "SW2"\n'
    text += '[[routing]]\ndn = "200"\nswitch = "SW"\n[[routing]]\ndn = "500"\n'
    config = parse_config(text)
    assert [config.routing_switch_name(entry) for entry in config.routing] == ["SW2", "SW", "SW2"]
    assert [entry.dn for entry in config.routing_for("SW2")] == ["200", "500"]


def test_a_routing_point_with_no_rules_is_valid() -> None:
    config = parse_config(BASE + '[[routing]]\ndn = "201"\n')
    assert config.routing[0].rules == ()


def test_default_configuration_routes_5000_only() -> None:
    config = default_config()
    (entry,) = config.routing_for("SW_InFront")
    assert entry.dn == "5000"
    assert [rule.name for rule in entry.rules] == ["agents", "vip", "everyone-else"]
    agents, vip, rest = entry.rules
    assert agents.match == (MatchCondition(field="ced", equals="1"),)
    assert agents.queue == "6000"
    assert agents.treatments == (
        TreatmentConfig(type="PlayApplication", parameters=(("APP_ID", 1),)),
    )
    assert vip.match == (MatchCondition(field="udata.Segment", equals="Gold"),)
    assert (vip.dn, vip.attach) == ("7001", (("RoutedBy", "vip"),))
    assert (rest.match, rest.dn, rest.treatments) == ((), "7002", ())


def test_rules_can_be_built_in_python() -> None:
    rule = RoutingRule(
        name="r",
        match=(MatchCondition(field="ani", prefix="33"),),
        dn="1",
        extensions={"A": 1, "B": {"C": False}},
    )
    assert rule.extensions == (("A", 1), ("B", (("C", "false"),)))
    entry = RoutingConfig(dn="200", rules=(rule,))
    assert entry.rules[0] is rule


# --------------------------------------------------------------------------------------------
# One problem per check

RULE = '[[routing]]\ndn = "200"\n[[routing.rules]]\nname = "r"\n'
"""A routing entry whose first rule the cases complete (TOML keys of ``routing[0].rules[0]``)."""

CASES: list[tuple[str, str, str, str]] = [
    # (case id, TOML appended to BASE, expected location, expected words in the message)
    (
        "routing point on no switch",
        '[[routing]]\ndn = "999"\n',
        "routing[0].dn",
        "DN '999' is not a DN of any switch",
    ),
    (
        "routing point not a DN of the named switch",
        '[[routing]]\ndn = "999"\nswitch = "SW"\n',
        "routing[0].dn",
        "DN '999' is not a DN of switch 'SW'",
    ),
    (
        "routing point is an extension",
        '[[routing]]\ndn = "400"\n',
        "routing[0].dn",
        "is an extension; the built-in router serves routing-point and virtual-routing-point DNs",
    ),
    (
        "routing point is an ACD queue",
        '[[routing]]\ndn = "300"\n',
        "routing[0].dn",
        "is an acd-queue",
    ),
    (
        "unknown switch",
        '[[routing]]\ndn = "200"\nswitch = "Nowhere"\n',
        "routing[0].switch",
        "unknown switch 'Nowhere'",
    ),
    (
        "switch required when the DN is on several switches",
        SECOND_SWITCH + '[[routing]]\ndn = "200"\n',
        "routing[0].switch",
        "required: DN '200' exists on several switches ('SW', 'SW2')",
    ),
    (
        "two entries for one routing point",
        '[[routing]]\ndn = "200"\n[[routing]]\ndn = "200"\nswitch = "SW"\n',
        "routing[1].dn",
        "routing point '200' on switch 'SW' already has rules at routing[0]",
    ),
    (
        "rule name missing",
        '[[routing]]\ndn = "200"\n[[routing.rules]]\ndn = "1"\n',
        "routing[0].rules[0].name",
        "required key is missing",
    ),
    (
        "duplicate rule name",
        RULE + 'dn = "1"\n[[routing.rules]]\nname = "r"\ndn = "2"\n',
        "routing[0].rules[1].name",
        "duplicate rule name 'r' (first at routing[0].rules[0])",
    ),
    (
        "condition without operator",
        RULE + 'dn = "1"\nmatch = [{ field = "ced" }]\n',
        "routing[0].rules[0].match[0]",
        "exactly one operator: equals, prefix, regex or present (found: none)",
    ),
    (
        "condition with two operators",
        RULE + 'dn = "1"\nmatch = [{ field = "ced", equals = "1", prefix = "1" }]\n',
        "routing[0].rules[0].match[0]",
        "(found: equals, prefix)",
    ),
    (
        "condition with an unknown operator",
        RULE + 'dn = "1"\nmatch = [{ field = "ced", contains = "1" }]\n',
        "routing[0].rules[0].match[0].contains",
        "unknown key 'contains'",
    ),
    (
        "condition on an unknown field",
        RULE
        + 'dn = "1"\nmatch = [{ field = "dnis", equals = "1" }, { field = "CED", present = true }]\n',
        "routing[0].rules[0].match[1].field",
        "unknown field 'CED': use dnis, ani, ced or udata.<Key>",
    ),
    (
        "condition on user data without a key",
        RULE + 'dn = "1"\nmatch = [{ field = "udata.", present = true }]\n',
        "routing[0].rules[0].match[0].field",
        "unknown field 'udata.'",
    ),
    (
        "condition field missing",
        RULE + 'dn = "1"\nmatch = [{ equals = "1" }]\n',
        "routing[0].rules[0].match[0].field",
        "required key is missing",
    ),
    (
        "regular expression does not compile",
        RULE + 'dn = "1"\nmatch = [{ field = "ani", regex = "(12" }]\n',
        "routing[0].rules[0].match[0].regex",
        "invalid regular expression '(12': missing ), unterminated subpattern",
    ),
    (
        "present is not a boolean",
        RULE + 'dn = "1"\nmatch = [{ field = "ani", present = "maybe" }]\n',
        "routing[0].rules[0].match[0].present",
        "expected true/false",
    ),
    (
        "rule without target",
        RULE + 'match = [{ field = "ced", equals = "1" }]\n',
        "routing[0].rules[0]",
        "exactly one target: dn, queue, agent-group, routing-point or default = true (found: none)",
    ),
    (
        "rule with two targets",
        RULE + 'dn = "1"\nqueue = "300"\ndefault = true\n',
        "routing[0].rules[0]",
        "(found: dn, queue, default)",
    ),
    (
        "default = false is no target",
        RULE + "default = false\n",
        "routing[0].rules[0]",
        "(found: none)",
    ),
    (
        "queue is not a DN",
        RULE + 'queue = "301"\n',
        "routing[0].rules[0].queue",
        "queue '301' is not a DN of switch 'SW'",
    ),
    (
        "queue is not an ACD queue",
        RULE + 'queue = "400"\n',
        "routing[0].rules[0].queue",
        "queue '400' on switch 'SW' is an extension, not an acd-queue",
    ),
    (
        "routing-point target is not a routing point",
        RULE + 'routing-point = "300"\n',
        "routing[0].rules[0].routing-point",
        "routing-point '300' on switch 'SW' is an acd-queue, not a routing-point",
    ),
    (
        "routing-point target is on another switch",
        SECOND_SWITCH
        + RULE.replace('dn = "200"', 'dn = "200"\nswitch = "SW"')
        + 'routing-point = "500"\n',
        "routing[0].rules[0].routing-point",
        "routing-point '500' is not a DN of switch 'SW'",
    ),
    (
        "unknown agent group",
        RULE + 'agent-group = "nobody"\n',
        "routing[0].rules[0].agent-group",
        "unknown agent group 'nobody' (agent groups: 'team')",
    ),
    (
        "unknown treatment type",
        RULE + 'dn = "1"\ntreatments = [{ type = "Music" }, { type = "Jingle" }]\n',
        "routing[0].rules[0].treatments[1].type",
        "'PlayAnnounce'",
    ),
    (
        "treatment without type",
        RULE + 'dn = "1"\ntreatments = [{ parameters = { A = 1 } }]\n',
        "routing[0].rules[0].treatments[0].type",
        "required key is missing",
    ),
    (
        "unknown route type",
        RULE + 'dn = "1"\nroute-type = "normal"\n',
        "routing[0].rules[0].route-type",
        "'Normal'",
    ),
    (
        "default target with another route type",
        RULE + 'default = true\nroute-type = "Normal"\n',
        "routing[0].rules[0].route-type",
        "a 'default' target routes with RouteType Default, not 'Normal'",
    ),
    (
        "a float in extensions",
        RULE + 'dn = "1"\nextensions = { A = "x", B = 1.5 }\n',
        "routing[0].rules[0].extensions",
        "'B': expected a string, integer, boolean or table, got 1.5",
    ),
    (
        "an array in attach",
        RULE + 'dn = "1"\nattach = { L = { M = [1, 2] } }\n',
        "routing[0].rules[0].attach",
        "'L.M': expected a string, integer, boolean or table, got an array",
    ),
    (
        "an integer too large for an Int node",
        RULE + 'dn = "1"\ntreatments = [{ type = "RAN", parameters = { N = 2147483648 } }]\n',
        "routing[0].rules[0].treatments[0].parameters",
        "'N': 2147483648 does not fit an Int node (32-bit signed)",
    ),
    (
        "an empty nested table",
        RULE + 'dn = "1"\nextensions = { E = {} }\n',
        "routing[0].rules[0].extensions",
        "'E': a nested table must not be empty",
    ),
    (
        "extensions not a table",
        RULE + 'dn = "1"\nextensions = "x"\n',
        "routing[0].rules[0].extensions",
        "expected a table (key = value), got 'x'",
    ),
    (
        "unknown key in a rule",
        RULE + 'dn = "1"\nqueues = "300"\n',
        "routing[0].rules[0].queues",
        "unknown key 'queues'; did you mean 'queue'?",
    ),
    (
        "duplicate agent group",
        '[[agent-groups]]\nname = "team"\nagents = ["x"]\n',
        "agent-groups[1].name",
        "duplicate agent group name 'team' (first at agent-groups[0])",
    ),
    (
        "agent listed twice in a group",
        '[[agent-groups]]\nname = "g"\nagents = ["x", "y", "x"]\n',
        "agent-groups[1].agents[2]",
        "agent 'x' is listed twice (first at agent-groups[1].agents[0])",
    ),
    (
        "agent group without agents",
        '[[agent-groups]]\nname = "g"\nagents = []\n',
        "agent-groups[1].agents",
        "at least 1 item",
    ),
]


@pytest.mark.parametrize(
    ("extra", "location", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_check(extra: str, location: str, words: str) -> None:
    problems = problems_of(BASE + extra)
    assert where(problems) == [location], problems
    assert words in problems[0].message, problems[0].message


def test_value_and_reference_problems_are_reported_together() -> None:
    text = BASE + (
        '[[agent-groups]]\nname = "broken"\nagents = []\n'
        '[[routing]]\ndn = "200"\n[[routing.rules]]\nname = "a"\ndn = "1"\n'
        'match = [{ field = "ced", regex = "[" }]\n'
        '[[routing]]\ndn = "400"\n[[routing.rules]]\nname = "b"\nagent-group = "broken"\n'
    )
    assert where(problems_of(text)) == [
        "routing[0].rules[0].match[0].regex",
        "agent-groups[1].agents",
        "routing[1].dn",  # the failed group's name is not reported as unknown
    ]


def test_a_routing_point_on_a_broken_switch_is_not_reported_unknown() -> None:
    text = BASE + '[[switches]]\nname = "SW3"\ndns = [{ number = "9", type = "bogus" }]\n'
    text += '[[routing]]\ndn = "9"\n[[routing]]\ndn = "7"\nswitch = "SW3"\n'
    assert where(problems_of(text)) == ["switches[1].dns[0].type"]


def test_routing_problems_raise_from_the_python_api_too() -> None:
    config = parse_config(BASE)
    with pytest.raises(ConfigError) as caught:
        config.model_copy(update={"routing": (RoutingConfig(dn="400"),)})
    assert where(caught.value.problems) == ["routing[0].dn"]


# --------------------------------------------------------------------------------------------
# Key/value tables

_keys = st.text(alphabet="abcXYZ_019", min_size=1, max_size=6)
_scalars = st.one_of(st.integers(-(2**31), 2**31 - 1), st.text(max_size=8), st.booleans())
_tables: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.dictionaries(_keys, _scalars, min_size=1, max_size=4),
    lambda inner: st.dictionaries(_keys, st.one_of(_scalars, inner), min_size=1, max_size=4),
    max_leaves=10,
)


def _expected(table: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The documented conversion, written independently of the validator."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, dict):
            out.append((key, _expected(value)))
        else:
            out.append((key, value))
    return tuple(out)


@settings(max_examples=100, deadline=None)
@given(table=_tables)
def test_tables_keep_order_and_convert_as_documented(table: dict[str, Any]) -> None:
    rule = RoutingRule.model_validate({"name": "r", "dn": "1", "attach": table})
    assert rule.attach == _expected(table)
    assert rule.model_copy(update={"attach": rule.attach}) == rule  # the pairs form validates too


@settings(max_examples=100, deadline=None)
@given(field=st.text(max_size=10))
def test_condition_fields(field: str) -> None:
    valid = field in ("dnis", "ani", "ced") or (field.startswith("udata.") and len(field) > 6)
    try:
        MatchCondition(field=field, present=True)
    except ValidationError:
        assert not valid
    else:
        assert valid


# --------------------------------------------------------------------------------------------
# Documentation stays complete

MODELS: list[type[BaseModel]] = [
    RoutingConfig,
    RoutingRule,
    MatchCondition,
    TreatmentConfig,
    AgentGroupConfig,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_docstring(model: type[BaseModel]) -> None:
    assert [name for name, field in model.model_fields.items() if not field.description] == []


def test_docs_name_every_key() -> None:
    docs = (REPO / "docs/configuration.md").read_text(encoding="utf-8")
    keys = {field.alias or name for model in MODELS for name, field in model.model_fields.items()}
    keys |= {"routing", "agent-groups"}
    missing = sorted(key for key in keys if not re.search(rf"`{re.escape(key)}`", docs))
    assert missing == []
    routing_doc = (REPO / "docs/routing.md").read_text(encoding="utf-8")
    assert "URS" in docs and "[[routing]]" in routing_doc
