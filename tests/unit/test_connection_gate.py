"""The IVR connection gate (runtime/limits.py): the cap overall and per peer address, and the
HTTP API's share of the reserved descriptors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime.limits import (
    OTHER_DESCRIPTORS,
    ConnectionGate,
    api_connection_cap,
    connection_cap,
)


def config_with(api: dict[str, Any] | None = None, **server: Any) -> ServerConfig:
    base = default_config()
    return base.model_copy(
        update={
            "server": base.server.model_copy(update=server),
            "api": base.api.model_copy(update=api or {}),
        }
    )


def test_the_cap_per_peer_counts_each_address_apart() -> None:
    gate = ConnectionGate(cap=10, per_peer=2)
    assert [gate.admit("a", 0.0) for _ in range(3)] == [True, True, False]
    assert gate.admit("b", 0.0) and gate.admit("b", 0.0)
    assert (gate.open, gate.refused, gate.by_host) == (4, 1, {"a": 2, "b": 2})
    gate.closed("a")
    assert gate.admit("a", 0.0)
    gate.closed("b")
    gate.closed("b")
    assert gate.by_host == {"a": 2}  # an address with none open is forgotten


def test_the_overall_cap_holds_whatever_the_addresses() -> None:
    gate = ConnectionGate(cap=3, per_peer=None)
    assert [gate.admit(str(i), 0.0) for i in range(5)] == [True, True, True, False, False]
    assert gate.refused == 2


@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=60))
def test_the_counts_stay_true_through_any_opens_and_closes(
    steps: list[tuple[bool, str]],
) -> None:
    gate = ConnectionGate(cap=5, per_peer=2)
    held: dict[str, int] = {}
    for opening, host in steps:
        if opening:
            fits = sum(held.values()) < 5 and held.get(host, 0) < 2
            assert gate.admit(host, 0.0) is fits
            if fits:
                held[host] = held.get(host, 0) + 1
        elif held.get(host):
            gate.closed(host)
            held[host] -= 1
        assert gate.open == sum(held.values())
        assert gate.by_host == {h: n for h, n in held.items() if n}


def test_per_peer_refusals_say_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    gate = ConnectionGate(cap=None, per_peer=1)
    gate.admit("10.0.0.9", 0.0)
    with caplog.at_level("WARNING", logger="ivr_server.runtime"):
        assert not gate.admit("10.0.0.9", 0.0)
    assert "1 IVR connections from 10.0.0.9 are open, the most allowed from one address" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("reserve", "wanted", "limit", "cap"),
    [
        (160, 128, 1024, 128),  # the defaults: the reserve less 32
        (160, 500, 1024, 160 - OTHER_DESCRIPTORS),
        (40, 4, 1024, 4),
        (36, 8, 1024, 4),
        (20, 8, 1024, 1),  # never 0
        (20, 8, None, 8),  # no known limit: as configured
    ],
)
def test_the_api_takes_only_its_share_of_the_reserve(
    reserve: int, wanted: int, limit: int | None, cap: int
) -> None:
    config = config_with(api={"max_connections": wanted}, reserved_descriptors=reserve)
    assert api_connection_cap(config, limit) == cap


def test_the_defaults_share_1024_descriptors_between_the_two_ports() -> None:
    config = default_config()
    ivr = connection_cap(config.server, 1024)
    api = api_connection_cap(config, 1024)
    assert (ivr, api, config.server.max_connections_per_peer) == (864, 128, 256)
    assert ivr is not None and ivr + api + OTHER_DESCRIPTORS == 1024
