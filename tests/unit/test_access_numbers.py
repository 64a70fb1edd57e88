"""Access numbers, sans-IO (ivr_server.sites): DNIS pools, reservations, claims, expiry, peer
requests, reloads; and the ``[[locations]]`` configuration (MODES-AND-HA §1.4, G24)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ivr_server.config import LocationConfig, ServerConfig, StatisticConfig, default_config
from ivr_server.config.sites import expand_numbers
from ivr_server.errors import ConfigError
from ivr_server.service.reload import describe_changes
from ivr_server.sites import AccessNumbers, Asking, Refused, Reserved
from ivr_server.wire import Node

DATA = (Node(Name="Account", Type="Str", Val="42"),)


def pool(
    name: str = "Remote", numbers: tuple[str, ...] = ("100-102",), **kw: object
) -> LocationConfig:
    return LocationConfig(name=name, numbers=numbers, **kw)


def peer(name: str = "Far", **kw: object) -> LocationConfig:
    return LocationConfig(name=name, peer="http://127.0.0.1:9/", **kw)


def leftovers(numbers: AccessNumbers) -> None:
    """Every pool's numbers are free or reserved, each once, and the reservations are the
    reserved numbers."""
    seen: set[str] = set()
    for name, p in numbers.pools.items():
        free = {n for n in p.numbers if p.is_free(n)}
        held = {n for n in p.numbers if n in numbers.reserved}
        assert not free & held, name
        assert free | held == p.numbers, name
        assert p.free + p.in_use == p.size
        assert p.in_use == len(held)
        assert not seen & p.numbers
        seen |= p.numbers


# ---------------------------------------------------------------------------------- configuration


def test_ranges_and_lists_expand_in_order() -> None:
    assert expand_numbers(("0098-0101", "555", "7")) == ("0098", "0099", "0100", "0101", "555", "7")
    assert pool(numbers=("100-102", "200")).pool == ("100", "101", "102", "200")


@pytest.mark.parametrize(
    ("numbers", "words"),
    [
        (("20-19",), "above the last"),
        (("10-100",), "same length"),
        (("a-b",), "same length"),
        (("1", "1"), "listed twice"),
        (("100-105", "103"), "listed twice"),
        (("00000000-99999999",), "more than"),
        (("1 2",), "not a number"),
    ],
)
def test_bad_numbers_are_refused(numbers: tuple[str, ...], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        pool(numbers=numbers)


def test_a_location_is_a_pool_or_a_peer() -> None:
    with pytest.raises(ValidationError, match=r"numbers .* or peer"):
        LocationConfig(name="X")
    with pytest.raises(ValidationError, match="not both"):
        LocationConfig(name="X", numbers=("1",), peer="http://h:1")
    with pytest.raises(ValidationError, match="HTTP base URL"):
        LocationConfig(name="X", peer="ftp://h")
    with pytest.raises(ValidationError, match="go with peer"):
        LocationConfig(name="X", numbers=("1",), token="t")
    far = peer(peer_location="Here", request_timeout="5s")
    assert (far.peer, far.remote_name, far.request_timeout, far.lifetime) == (
        "http://127.0.0.1:9",
        "Here",
        5.0,
        60.0,
    )


def test_names_numbers_and_statistics_are_cross_checked() -> None:
    base = default_config()
    with pytest.raises(ConfigError, match="duplicate location"):
        base.model_copy(update={"locations": (pool(), pool(numbers=("5",)))})
    with pytest.raises(ConfigError, match="also in the pool of location 'Remote'"):
        base.model_copy(update={"locations": (pool(), pool("Other", ("102-103",)))})
    stat = StatisticConfig(
        name="Free",
        stat_type="CurrNumberFreeAccessNumbers",
        object_id="Nowhere",
        object_type="Location",
    )
    with pytest.raises(ConfigError, match="unknown location 'Nowhere'"):
        base.model_copy(update={"locations": (pool(),), "statistics": (stat,)})
    with pytest.raises(ConfigError, match="a peer's"):
        base.model_copy(update={"locations": (peer("Nowhere"),), "statistics": (stat,)})
    ok = base.model_copy(update={"locations": (pool("Nowhere"),), "statistics": (stat,)})
    assert isinstance(ok, ServerConfig)


# ---------------------------------------------------------------------------------- the pool


def test_get_reserves_the_number_free_the_longest_and_binds_the_data() -> None:
    numbers = AccessNumbers((pool(lifetime=30),))
    got = numbers.get("C1", "Remote", "7001", "Default", DATA, 10.0)
    assert got == Reserved("100")
    reservation = numbers.peek("100")
    assert reservation is not None
    assert (reservation.data, reservation.dest, reservation.call_id) == (DATA, "7001", "C1")
    assert reservation.expires_at == 40.0
    assert numbers.get("C2", "Remote", "7001", "DnisPool", (), 10.0) == Reserved("101")
    assert numbers.counts("Remote") == (1, 2)
    leftovers(numbers)


def test_a_second_get_replaces_the_first() -> None:
    numbers = AccessNumbers((pool(),))
    numbers.get("C1", "Remote", "7001", "Default", DATA, 0.0)
    assert numbers.get("C1", "Remote", "7002", "Default", DATA, 1.0) == Reserved("101")
    assert numbers.peek("100") is None
    assert numbers.counts("Remote") == (2, 1)
    # the first number went to the end of the line: a late dial of it meets a free number
    assert numbers.get("C2", "Remote", "7001", "Default", (), 1.0) == Reserved("102")
    assert numbers.get("C3", "Remote", "7001", "Default", (), 1.0) == Reserved("100")
    assert numbers.pools["Remote"].counts.cancelled == 1
    leftovers(numbers)


@pytest.mark.parametrize(
    ("location", "route_type", "reason"),
    [
        ("Nowhere", "Default", "unknown Location 'Nowhere'"),
        ("Remote", "Route", "XRouteType 'Route' is not supported"),
        ("Remote", "Bogus", "XRouteType 'Bogus'"),
    ],
)
def test_refusals(location: str, route_type: str, reason: str) -> None:
    numbers = AccessNumbers((pool(),))
    got = numbers.get("C1", location, "7001", route_type, (), 0.0)
    assert isinstance(got, Refused)
    assert got.reason.startswith(reason)
    assert not numbers.reserved
    assert numbers.cancel("C1") == (False, None)


def test_exhaustion_is_refused_and_counted() -> None:
    numbers = AccessNumbers((pool(numbers=("1",)),))
    assert numbers.get("C1", "Remote", "7", "Default", (), 0.0) == Reserved("1")
    got = numbers.get("C2", "Remote", "7", "Default", (), 0.0)
    assert isinstance(got, Refused)
    assert "exhausted" in got.reason
    assert numbers.pools["Remote"].counts.exhausted == 1
    leftovers(numbers)


def test_cancel_frees_the_number() -> None:
    numbers = AccessNumbers((pool(),))
    numbers.get("C1", "Remote", "7001", "Default", DATA, 0.0)
    assert numbers.cancel("C1") == (True, None)
    assert numbers.cancel("C1") == (False, None)
    assert not numbers.reserved
    assert numbers.next_deadline() is None
    leftovers(numbers)


def test_claim_hands_off_once() -> None:
    numbers = AccessNumbers((pool(),))
    numbers.get("C1", "Remote", "7001", "Default", DATA, 0.0)
    claimed = numbers.claim("100")
    assert claimed is not None
    assert claimed.data == DATA
    assert numbers.claim("100") is None
    assert numbers.cancel("C1") == (False, None)  # the call's number was handed off
    assert numbers.pools["Remote"].counts.handed_off == 1
    leftovers(numbers)


def test_expiry_frees_the_number_at_its_lifetime() -> None:
    numbers = AccessNumbers((pool(lifetime=5), pool("Slow", ("9",), lifetime=50)))
    numbers.get("C1", "Remote", "7001", "Default", DATA, 0.0)
    numbers.get("C2", "Slow", "7001", "Default", DATA, 1.0)
    assert numbers.next_deadline() == 5.0
    assert numbers.expire(4.9).numbers == []
    ended = numbers.expire(5.0)
    assert [r.number for r in ended.numbers] == ["100"]
    assert numbers.next_deadline() == 51.0
    assert [r.number for r in numbers.expire(60.0).numbers] == ["9"]
    assert numbers.next_deadline() is None
    assert not numbers.reserved
    assert numbers.pools["Remote"].counts.expired == 1
    leftovers(numbers)


def test_reserve_over_the_api_and_release() -> None:
    numbers = AccessNumbers((pool(), peer()))
    reservation = numbers.reserve("Remote", "7001", DATA, 0.0, by="api")
    assert not isinstance(reservation, str)
    assert reservation.call_id is None
    assert numbers.reserve("Far", "7001", (), 0.0) == "a peer's Location, no pool here 'Far'"
    assert numbers.release(reservation.number) == reservation
    assert numbers.release(reservation.number) is None
    leftovers(numbers)


def test_reload_keeps_reservations_until_their_end() -> None:
    numbers = AccessNumbers((pool(lifetime=5), pool("Gone", ("9",))))
    numbers.get("C1", "Remote", "7001", "Default", DATA, 0.0)
    numbers.get("C2", "Gone", "7001", "Default", DATA, 0.0)
    numbers.configure((pool(numbers=("100", "200"), lifetime=5),))
    assert numbers.counts("Remote") == (1, 1)  # 100 still reserved, 101-102 gone, 200 new
    assert numbers.counts("Gone") is None
    assert numbers.peek("9") is not None  # its data stays until its call comes or it expires
    assert numbers.claim("9") is not None
    assert numbers.expire(100.0).numbers[0].number == "100"
    assert not numbers.reserved
    assert numbers.counts("Remote") == (2, 0)
    assert not numbers.pools["Remote"].is_free("101")
    leftovers(numbers)
    numbers.configure(())
    assert not numbers.active


# ---------------------------------------------------------------------------------- peers


def test_a_peer_location_asks_and_holds_the_answer() -> None:
    numbers = AccessNumbers((peer(lifetime=30, request_timeout=2, token="T"),))
    got = numbers.get("C1", "Far", "7001", "Default", DATA, 0.0)
    assert isinstance(got, Asking)
    ask = got.ask
    assert (ask.peer, ask.remote_location, ask.token, ask.data, ask.timeout) == (
        "http://127.0.0.1:9",
        "Far",
        "T",
        DATA,
        2.0,
    )
    assert numbers.asking() == 1
    assert numbers.peer_answered(ask, "555", 1.0) == (True, None)
    assert numbers.held_on_peers() == 1
    # a second Get releases the number held on the peer
    again = numbers.get("C1", "Far", "7001", "Default", DATA, 2.0)
    assert isinstance(again, Asking)
    assert again.released is not None
    assert again.released.number == "555"
    had, release = numbers.cancel("C1")
    assert had
    assert release is None  # the second ask was still waiting
    # its late answer is stale: the number goes back to the peer
    waiting, stale = numbers.peer_answered(again.ask, "556", 3.0)
    assert not waiting
    assert stale is not None
    assert stale.number == "556"
    assert numbers.asking() == numbers.held_on_peers() == 0
    assert numbers.next_deadline() is None


def test_a_silent_peer_times_out() -> None:
    numbers = AccessNumbers((peer(request_timeout=2),))
    got = numbers.get("C1", "Far", "7001", "Default", (), 0.0)
    assert isinstance(got, Asking)
    assert numbers.next_deadline() == 2.0
    assert numbers.expire(2.0).asks == [got.ask]
    assert numbers.peer_answered(got.ask, None, 3.0) == (False, None)


def test_a_held_peer_number_is_forgotten_after_its_lifetime() -> None:
    numbers = AccessNumbers((peer(lifetime=10),))
    got = numbers.get("C1", "Far", "7001", "Default", (), 0.0)
    assert isinstance(got, Asking)
    numbers.peer_answered(got.ask, "1", 1.0)
    numbers.expire(11.0)
    assert numbers.held_on_peers() == 0
    assert numbers.cancel("C1") == (False, None)


# ---------------------------------------------------------------------------------- properties

ops = st.lists(
    st.tuples(
        st.sampled_from(["get", "cancel", "claim", "release", "reserve", "expire", "reload"]),
        st.integers(0, 5),
        st.floats(0, 3),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_any_sequence_leaves_every_number_free_or_reserved_once(
    steps: list[tuple[str, int, float]],
) -> None:
    configs = [
        (pool(numbers=("10-13",), lifetime=2), pool("B", ("20-21",), lifetime=1), peer()),
        (pool(numbers=("11-15",), lifetime=3),),
    ]
    numbers = AccessNumbers(configs[0])
    now = 0.0
    flip = 0
    for op, n, dt in steps:
        now += dt
        call = f"C{n}"
        location = ("Remote", "B", "Far")[n % 3]
        if op == "get":
            got = numbers.get(call, location, "7", "Default", (), now)
            if isinstance(got, Asking) and n % 2:
                numbers.peer_answered(got.ask, str(n), now)
        elif op == "cancel":
            numbers.cancel(call)
        elif op == "claim":
            numbers.claim(f"1{n}")
        elif op == "release":
            numbers.release(f"2{n % 2}")
        elif op == "reserve":
            numbers.reserve(location, "7", (), now, by="api")
        elif op == "expire":
            numbers.expire(now)
        else:
            flip ^= 1
            numbers.configure(configs[flip])
        leftovers(numbers)
        for number, reservation in numbers.reserved.items():
            assert reservation.number == number
    numbers.expire(now + 100)
    assert not numbers.reserved
    assert numbers.asking() == numbers.held_on_peers() == 0
    assert numbers.next_deadline() is None
    leftovers(numbers)


def test_a_reload_names_the_locations_it_changes() -> None:
    base = default_config()
    before = base.model_copy(update={"locations": (pool(), peer())})
    after = base.model_copy(update={"locations": (pool(lifetime=5), pool("New", ("9",)))})
    assert describe_changes(before, after) == (
        "location New added",
        "location Far removed",
        "location Remote changed",
    )
