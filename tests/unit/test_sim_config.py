"""The CSTA simulator's configuration, scenario file and operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_server.errors import ConfigError
from ivr_server.sim.config import default_sim_config, load_sim_config, parse_sim_config
from ivr_server.sim.model import SimError
from ivr_server.sim.operations import Deliver, Drop, Hangup, Refuse, SetDn, apply
from ivr_server.sim.pbx import SimPbx
from ivr_server.sim.scenario import Step, load_scenario, parse_scenario
from ivr_server.vocabulary import DnType

EXAMPLES = Path(__file__).parents[2] / "examples"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_sim_config(text)
    return [str(p) for p in error.value.problems]


def test_the_example_matches_the_behind_example() -> None:
    config = load_sim_config(EXAMPLES / "pbx.toml")
    assert (config.simulator.listen.host, config.simulator.listen.port) == ("127.0.0.1", 3022)
    assert config.simulator.api_listen.port == 3023
    assert config.simulator.application_id == "ivr-server"
    assert 'application-id = "ivr-server"' in (EXAMPLES / "behind.toml").read_text()
    types = {d.number: d.type for d in config.dns}
    assert [n for n, t in types.items() if t is DnType.VOICE_TREATMENT_PORT] == [
        "3001",
        "3002",
        "3003",
    ]
    assert types["3085"] is DnType.ACD_QUEUE
    assert {"3081", "3082", "3083", "3084", "3006", "8000"} <= set(types)


def test_the_default_configuration() -> None:
    config = default_sim_config()
    assert [d.number for d in config.dns][:8] == [str(n) for n in range(3001, 3009)]
    assert config.simulator.listen.port == 3022


def test_problems_are_reported_with_their_key() -> None:
    assert problems('[simulator]\nlisten = "x"\nbogus = 1\n') == [
        "simulator.listen: invalid address 'x': expected 'host:port', '[ipv6]:port' or ':port'",
        "simulator.bogus: unknown key 'bogus'",
    ]
    assert problems('[simulator]\ndialect = "nec"\n')[0].startswith(
        "simulator: unknown dialect 'nec'"
    )
    assert problems('[[dns]]\nnumber = "1"\n[[dns]]\nnumber = "1"\n') == [
        "DN numbers appear twice: 1"
    ]
    assert problems('[[dns]]\nnumber = "1"\ntype = "virtual-routing-point"\n')[0].startswith(
        "dns[0]: DN type 'virtual-routing-point' is not simulated"
    )
    assert problems('[[dns]]\nnumber = "1"\nanswer-delay = -1\n')[0].startswith(
        "dns[0].answer-delay: "
    )
    assert problems('[[agents]]\ndn = "9"\nagent-id = "A"\n')[0].startswith("agent A: DN 9")
    assert problems("[simulator\n")[0].startswith("TOML syntax error")


def test_a_scenario_path_is_relative_to_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "pbx.toml").write_text('[simulator]\nscenario = "steps.toml"\n')
    config = load_sim_config(tmp_path / "pbx.toml")
    assert config.simulator.scenario == str(tmp_path / "steps.toml")
    with pytest.raises(ConfigError):
        load_sim_config(tmp_path / "missing.toml")


SCENARIO = """
[[step]]
at = 2
op = "hangup"
call = "first"

[[step]]
at = 0.5
op = "deliver"
from = "5551234"
to = "3001"
call = "first"

[[step]]
op = "refuse"
request = "SingleStepTransferCall"
error = "invalidDestination"
delay = 4.5

[[step]]
at = 3
op = "drop"
down-for = 1
"""


def test_a_scenario_is_read_in_time_order() -> None:
    steps = parse_scenario(SCENARIO.replace("down-for", "down_for"))
    assert [s.at for s in steps] == [0.0, 0.5, 2.0, 3.0]
    assert steps[1] == Step(0.5, Deliver(from_="5551234", to="3001", call="first"))
    assert steps[3] == Step(3.0, Drop(down_for=1.0))


def test_bad_scenario_steps_are_all_reported(tmp_path: Path) -> None:
    text = '[[step]]\nop = "fly"\n[[step]]\nat = -1\nop = "drop"\n[[step]]\nop = "hangup"\n'
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_scenario(tmp_path / "s.toml")
    assert [p.location for p in error.value.problems] == ["step[0]", "step[1].at", "step[2]"]
    with pytest.raises(ConfigError):
        parse_scenario("other = 1\n")


def test_operations_apply_to_the_pbx_with_call_names() -> None:
    pbx = SimPbx(default_sim_config(), 0.0)
    names: dict[str, str] = {}
    delivered = apply(pbx, Deliver(from_="1", to="3001", call="c"), 0.0, names)
    assert delivered["state"] == "connected" and names == {"c": delivered["id"]}
    assert apply(pbx, Hangup(call="c"), 1.0, names)["state"] == "cleared"
    assert apply(pbx, SetDn(dn="3002", busy=True), 1.0, names)["busy"] is True
    rule = apply(pbx, Refuse(request="MakeCall", error="resourceBusy", delay=1), 1.0, names)
    assert rule == {
        "request": "MakeCall",
        "error": "systemResourceAvailability/resourceBusy",
        "delay": 1.0,
        "count": 1,
    }
    assert apply(pbx, Drop(down_for=2), 1.0, names) == {"dropped": 0, "down_for": 2.0}
    for bad in (
        Refuse(request="Fly", error="generic"),
        Refuse(request="MakeCall", error="nonsense"),
        Refuse(request="MakeCall", error="generic", count=0),
    ):
        with pytest.raises(SimError) as error:
            apply(pbx, bad, 1.0, names)
        assert error.value.status == 400
