"""User data of In-Front calls over real TCP (PROTOCOL.md §3.8, §4, §9.4.2, §9.4.4).

Every reply is compared byte for byte: the stored order, duplicates, typed values, nested lists
and escaping must come back exactly as the server's canonical form (§2.2) of what was sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr_server.runtime import IvrServer
from ivr_server.wire import KvList, Node
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, send_many, server_doc, start_call
from tests.strategies import kv_items

Connect = Callable[[], Awaitable[RawLink]]

SWITCH = "SW_InFront"


def node(name: str, value: str, kind: str = "Str") -> str:
    """A Node in the server's canonical form (single quotes, DTD attribute order)."""
    return f"<Node Name='{name}' Type='{kind}' Val='{value}'/>"


def udata(*items: str) -> str:
    return f"<UDataEx>{''.join(items)}</UDataEx>"


def resp(request_id: str, result: str = "Success", data: str = "") -> str:
    return f"<UDataResp Result='{result}'><RequestId>{request_id}</RequestId>{data}</UDataResp>"


async def ask(link: RawLink, call_id: str, request: str, answer: str) -> None:
    """Send ``request`` and check that the next document is exactly ``answer``."""
    await link.send(call_id, request)
    got_id, _, raw = await link.recv_doc()
    assert (got_id, raw) == (call_id, server_doc(call_id, answer))


async def set_data(link: RawLink, call_id: str, action: str, request_id: str, *items: str) -> None:
    await ask(
        link,
        call_id,
        f"<UDataSet Action='{action}'><RequestId>{request_id}</RequestId>{udata(*items)}</UDataSet>",
        resp(request_id),
    )


async def get_all_is(link: RawLink, call_id: str, request_id: str, *items: str) -> None:
    """UDataGetAll answers exactly ``items`` (none: NoMatch without UDataEx)."""
    answer = resp(request_id, data=udata(*items)) if items else resp(request_id, "NoMatch")
    await ask(
        link, call_id, f"<UDataGetAll><RequestId>{request_id}</RequestId></UDataGetAll>", answer
    )


async def get_is(link: RawLink, call_id: str, keys: str, request_id: str, *items: str) -> None:
    """UDataGet Keys=``keys`` answers exactly ``items`` (none: NoMatch without UDataEx)."""
    answer = resp(request_id, data=udata(*items)) if items else resp(request_id, "NoMatch")
    await ask(
        link,
        call_id,
        f"<UDataGet Keys='{keys}'><RequestId>{request_id}</RequestId></UDataGet>",
        answer,
    )


@pytest.fixture
async def call(connect: Connect) -> RawLink:
    """A logged-in link with call ``C`` established on port 1 and no user data."""
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    return link


# ---------------------------------------------------------------------------------- UDataSet


async def test_add_appends_and_keeps_duplicates(call: RawLink) -> None:
    await set_data(call, "C", "Add", "1", node("a", "1"), node("b", "2"))
    await set_data(call, "C", "Add", "2", node("a", "3"), node("a", "4", "Int"))
    await get_all_is(
        call, "C", "3", node("a", "1"), node("b", "2"), node("a", "3"), node("a", "4", "Int")
    )


async def test_replace_overwrites_first_occurrence_removes_later_ones_appends_new(
    call: RawLink,
) -> None:
    await set_data(
        call, "C", "Add", "1", node("a", "1"), node("b", "2"), node("a", "3"), node("c", "4")
    )
    await set_data(call, "C", "Replace", "2", node("a", "9", "Int"), node("d", "5"))
    await get_all_is(
        call, "C", "3", node("a", "9", "Int"), node("b", "2"), node("c", "4"), node("d", "5")
    )
    # a List replaces a Node in place, and the other way round
    listed = "<List Name='b'><Node Name='x' Type='Str' Val='y'/></List>"
    await set_data(call, "C", "Replace", "4", listed)
    await get_all_is(call, "C", "5", node("a", "9", "Int"), listed, node("c", "4"), node("d", "5"))
    await set_data(call, "C", "Replace", "6", node("b", "flat"))
    await get_all_is(
        call, "C", "7", node("a", "9", "Int"), node("b", "flat"), node("c", "4"), node("d", "5")
    )


async def test_replace_on_empty_data_keeps_the_order_sent(call: RawLink) -> None:
    await set_data(call, "C", "Replace", "1", node("z", "1"), node("a", "2"), node("m", "3"))
    await get_all_is(call, "C", "2", node("z", "1"), node("a", "2"), node("m", "3"))


async def test_keys_compare_exactly(call: RawLink) -> None:
    await set_data(call, "C", "Add", "1", node("Key", "1"))
    await set_data(call, "C", "Replace", "2", node("key", "2"), node("Key ", "3"))
    await get_all_is(call, "C", "3", node("Key", "1"), node("key", "2"), node("Key ", "3"))
    await get_is(call, "C", "KEY", "4")


async def test_the_real_drivers_udata_set_and_get(call: RawLink) -> None:
    """W (LOG -031): an undeclared Keys attribute on UDataSet is ignored."""
    await call.send(
        "C",
        '<UDataSet Action="Add" Keys="UEI"><RequestId>100000001</RequestId>'
        '<UDataEx><Node Name="UEI" Type="Str" Val="bridgetec"/></UDataEx></UDataSet>',
    )
    _, _, raw = await call.recv_doc()
    assert raw == server_doc("C", resp("100000001"))
    await call.send("C", '<UDataGet Keys="UEI"><RequestId>100000002</RequestId></UDataGet>')
    _, _, raw = await call.recv_doc()
    assert raw == (
        b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
        b"<GctiMsg><CallId>C</CallId><UDataResp Result='Success'><RequestId>100000002"
        b"</RequestId><UDataEx><Node Name='UEI' Type='Str' Val='bridgetec'/></UDataEx>"
        b"</UDataResp></GctiMsg>"
    )


# ---------------------------------------------------------------------------------- UDataGet


async def test_get_returns_found_keys_in_stored_order_with_duplicates(call: RawLink) -> None:
    listed = "<List Name='c'><Node Name='a' Type='Str' Val='inner'/></List>"
    await set_data(
        call,
        "C",
        "Add",
        "1",
        node("a", "1"),
        node("b", "2"),
        node("a", "3"),
        listed,
        node("d", "4"),
    )
    await get_is(call, "C", "c:a", "2", node("a", "1"), node("a", "3"), listed)
    await get_is(call, "C", "zz:d:b", "3", node("b", "2"), node("d", "4"))
    await get_is(call, "C", "::d::", "4", node("d", "4"))  # empty names are ignored
    await get_is(call, "C", "a:a", "5", node("a", "1"), node("a", "3"))
    await get_is(call, "C", "zz", "6")  # none found: NoMatch without UDataEx
    await get_is(call, "C", "inner", "7")  # only top-level keys match


@pytest.mark.parametrize("keys", [":", ":::", ""])
async def test_get_without_a_key_name_is_misc_error(call: RawLink, keys: str) -> None:
    await set_data(call, "C", "Add", "1", node("a", "1"))
    await ask(
        call,
        "C",
        f"<UDataGet Keys='{keys}'><RequestId>k</RequestId></UDataGet>",
        resp("k", "MiscError"),
    )


async def test_get_and_get_all_without_data_are_no_match(call: RawLink) -> None:
    await get_is(call, "C", "a", "1")
    await get_all_is(call, "C", "2")


async def test_a_key_with_a_colon_is_only_returned_by_get_all(call: RawLink) -> None:
    await set_data(call, "C", "Add", "1", node("a:b", "1"))
    await get_is(call, "C", "a:b", "2")
    await get_all_is(call, "C", "3", node("a:b", "1"))


# ---------------------------------------------------------------------------------- UDataDel


async def test_delete_key_removes_every_occurrence(call: RawLink) -> None:
    await set_data(call, "C", "Add", "1", node("a", "1"), node("b", "2"), node("a", "3"))
    await ask(
        call,
        "C",
        "<UDataDel Action='DeleteKey' Key='a'><RequestId>2</RequestId></UDataDel>",
        resp("2"),
    )
    await get_all_is(call, "C", "3", node("b", "2"))
    await ask(
        call,
        "C",
        "<UDataDel Action='DeleteKey' Key='a'><RequestId>4</RequestId></UDataDel>",
        resp("4", "NoMatch"),
    )
    await ask(
        call,
        "C",
        "<UDataDel Action='DeleteKey'><RequestId>5</RequestId></UDataDel>",
        resp("5", "MiscError"),
    )
    await get_all_is(call, "C", "6", node("b", "2"))


async def test_delete_all(call: RawLink) -> None:
    await set_data(call, "C", "Add", "1", node("a", "1"), node("b", "2"))
    # Key is ignored with DeleteAll
    await ask(
        call,
        "C",
        "<UDataDel Action='DeleteAll' Key='a'><RequestId>2</RequestId></UDataDel>",
        resp("2"),
    )
    await get_all_is(call, "C", "3")
    await ask(
        call, "C", "<UDataDel Action='DeleteAll'><RequestId>4</RequestId></UDataDel>", resp("4")
    )
    await set_data(call, "C", "Add", "5", node("c", "3"))
    await get_all_is(call, "C", "6", node("c", "3"))


# ---------------------------------------------------------------------------------- values


async def test_typed_values_and_nested_lists_come_back_intact(call: RawLink) -> None:
    items = (
        node("s", "text with spaces"),
        node("i", "-2147483648", "Int"),
        node("j", "2147483647", "Int"),
        node("z", "0", "Int"),
        node("bin", "DEADbeef0001", "Bin"),
        node("empty", ""),
        "<List Name='outer'>"
        + node("first", "1", "Int")
        + "<List Name='middle'><List Name='inner'>"
        + node("deep", "x")
        + node("deep", "y", "Bin")
        + "</List>"
        + node("after", "2")
        + "</List>"
        + node("last", "3")
        + "</List>",
        node("tail", "t"),
    )
    await set_data(call, "C", "Add", "1", *items)
    await get_all_is(call, "C", "2", *items)
    await get_is(call, "C", "outer:tail", "3", items[6], items[7])


async def test_special_characters_are_escaped(call: RawLink) -> None:
    await call.send(
        "C",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
        "<Node Name='&lt;k&gt;&amp;&apos;&quot;' Type='Str' Val='a&lt;b&gt;c&amp;d&apos;e&quot;f'/>"
        "<Node Name='ctl' Type='Str' Val='tab&#x9;lf&#xA;cr&#xD;end'/>"
        "<Node Name='latin' Type='Str' Val='\xe9\xff'/>"
        "<Node Name='wide' Type='Str' Val='&#x3B1;&#8364;'/>"
        "</UDataEx></UDataSet>",
    )
    _, _, raw = await call.recv_doc()
    assert raw == server_doc("C", resp("1"))
    await call.send("C", "<UDataGetAll><RequestId>2</RequestId></UDataGetAll>")
    _, message, raw = await call.recv_doc()
    assert raw == server_doc(
        "C",
        "<UDataResp Result='Success'><RequestId>2</RequestId><UDataEx>"
        "<Node Name='&lt;k&gt;&amp;&apos;&quot;' Type='Str' Val='a&lt;b&gt;c&amp;d&apos;e&quot;f'/>"
        "<Node Name='ctl' Type='Str' Val='tab&#x9;lf&#xA;cr&#xD;end'/>"
        "<Node Name='latin' Type='Str' Val='\xe9\xff'/>"
        "<Node Name='wide' Type='Str' Val='&#x3B1;&#x20AC;'/>"
        "</UDataEx></UDataResp>",
    )
    assert isinstance(message, m.UDataResp) and message.UDataEx is not None
    assert [item.Val for item in message.UDataEx if isinstance(item, Node)] == [
        "a<b>c&d'e\"f",
        "tab\tlf\ncr\rend",
        "\xe9\xff",
        "\u03b1\u20ac",
    ]


async def test_request_ids_are_echoed_escaped(call: RawLink) -> None:
    await set_data(call, "C", "Add", "a&amp;b&lt;c", node("k", "v"))
    await get_all_is(call, "C", "&apos;q&quot;", node("k", "v"))


async def test_pipelined_requests_are_answered_in_order_with_their_request_ids(
    call: RawLink,
) -> None:
    requests: list[tuple[str | None, str]] = []
    answers: list[bytes] = []
    for n in range(20):
        requests.append(
            (
                "C",
                f"<UDataSet Action='Add'><RequestId>s{n}</RequestId>{udata(node('n', str(n), 'Int'))}</UDataSet>",
            )
        )
        answers.append(server_doc("C", resp(f"s{n}")))
        requests.append(("C", f"<UDataGet Keys='n'><RequestId>g{n}</RequestId></UDataGet>"))
        found = udata(*(node("n", str(k), "Int") for k in range(n + 1)))
        answers.append(server_doc("C", resp(f"g{n}", data=found)))
    await send_many(call, requests)
    assert [(await call.recv_doc())[2] for _ in answers] == answers


# ---------------------------------------------------------------------------------- limits, errors


async def test_user_data_over_16_kb_is_refused_and_nothing_changes(
    server: IvrServer, call: RawLink
) -> None:
    ten_kb = "x" * 10_000
    await set_data(call, "C", "Add", "1", node("first", ten_kb))
    for action in ("Add", "Replace"):
        await ask(
            call,
            "C",
            f"<UDataSet Action='{action}'><RequestId>2</RequestId>"
            f"{udata(node('second', ten_kb))}</UDataSet>",
            resp("2", "MiscError"),
        )
    await get_all_is(call, "C", "3", node("first", ten_kb))
    # replacing the big value by one of the same size stays within the limit
    await set_data(call, "C", "Replace", "4", node("first", "y" * 10_000))
    await get_all_is(call, "C", "5", node("first", "y" * 10_000))
    await ask(
        call,
        "C",
        f"<UDataSet Action='Replace'><RequestId>6</RequestId>{udata(node('first', 'z' * 17_000))}"
        "</UDataSet>",
        resp("6", "MiscError"),
    )
    (snapshot,) = server.service.switches[SWITCH].view.calls()
    assert snapshot.user_data == (Node(Name="first", Type="Str", Val="y" * 10_000),)


async def test_new_call_with_user_data_over_16_kb_is_refused(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await link.send(
        "N",
        '<NewCall CallControlMode="Network" Version="4.0"><CalledNum>2</CalledNum>'
        f"{udata(node('big', 'x' * 17_000))}</NewCall>",
    )
    _, _, raw = await link.recv_doc()
    assert raw == server_doc("N", "<EndCall EndCause='FeatureNotSupported'/>")
    await ask(link, "N", "<CallInfoReq/>", "<CallError FailedReq='NoSuchCall'/>")
    assert server.service.calls.calls == {}
    assert list(server.service.switches[SWITCH].view.calls()) == []


async def test_route_request_with_user_data_over_16_kb_is_refused(call: RawLink) -> None:
    await ask(
        call,
        "C",
        f"<RouteRequest RouteDN='5001'>{udata(node('big', 'x' * 17_000))}</RouteRequest>",
        "<CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'/>",
    )
    await get_all_is(call, "C", "1")


@pytest.mark.parametrize(
    "request_body",
    [
        "<UDataSet Action='Add'><RequestId>e</RequestId></UDataSet>",  # UDataEx missing
        "<UDataSet Action='Merge'><RequestId>e</RequestId>" + udata(node("k", "v")) + "</UDataSet>",
        "<UDataSet Action='Add'><RequestId>e</RequestId>"
        + udata(node("k", "1.5", "Int"))
        + "</UDataSet>",
        "<UDataSet Action='Add'><RequestId>e</RequestId>"
        + udata(node("k", "2147483648", "Int"))
        + "</UDataSet>",
        "<UDataSet Action='Add'><RequestId>e</RequestId>"
        + udata(node("k", "v", "Float"))
        + "</UDataSet>",
        "<UDataGet><RequestId>e</RequestId></UDataGet>",  # Keys missing
        "<UDataDel Action='DeleteSome'><RequestId>e</RequestId></UDataDel>",
    ],
)
async def test_malformed_user_data_requests_are_misc_error(
    call: RawLink, request_body: str
) -> None:
    await set_data(call, "C", "Add", "1", node("k", "v"))
    await ask(call, "C", request_body, resp("e", "MiscError"))
    await get_all_is(call, "C", "2", node("k", "v"))


# ---------------------------------------------------------------------------------- property


def _xml_attr(text: str) -> str:
    """Escape ``text`` for a single-quoted attribute of an ISO-8859-1 document, independently
    of the server's codec: the five entities, character references for TAB/LF/CR (a literal one
    would be normalised to a space) and for everything outside Latin-1."""
    out = []
    for char in text:
        code = ord(char)
        if char in "&<>'\"":
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"}[char])
        elif code in (9, 10, 13) or code > 0xFF:
            out.append(f"&#x{code:X};")
        else:
            out.append(char)
    return "".join(out)


def _kv_xml(items: KvList) -> str:
    parts = []
    for item in items:
        if isinstance(item, Node):
            parts.append(
                f"<Node Name='{_xml_attr(item.Name)}' Type='{item.Type}' Val='{_xml_attr(item.Val)}'/>"
            )
        else:
            parts.append(f"<List Name='{_xml_attr(item.Name)}'>{_kv_xml(item.items)}</List>")
    return "".join(parts)


# top-level names unique: Replace would (rightly) merge repeated keys of one request
unique_kv_lists: st.SearchStrategy[Any] = st.lists(
    kv_items, min_size=1, max_size=6, unique_by=lambda item: item.Name
).map(tuple)
_numbers = itertools.count(1)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=unique_kv_lists)
async def test_random_kv_lists_round_trip_through_replace_and_get_all(
    connect: Connect, items: KvList
) -> None:
    n = next(_numbers)
    link = await connect()
    await link.login(f"L{n}")
    await start_call(link, f"P{n}", "1")
    await ask(
        link,
        f"P{n}",
        f"<UDataSet Action='Replace'><RequestId>{n}</RequestId><UDataEx>{_kv_xml(items)}</UDataEx></UDataSet>",
        resp(str(n)),
    )
    await link.send(f"P{n}", f"<UDataGetAll><RequestId>{n}</RequestId></UDataGetAll>")
    call_id, message, _ = await link.recv_doc()
    assert call_id == f"P{n}"
    assert message == m.UDataResp(Result="Success", RequestId=str(n), UDataEx=items)
    await link.send(f"P{n}", "<EndCall EndCause='Normal'/>")
    await ask(link, f"P{n}", "<CallInfoReq/>", "<CallError FailedReq='NoSuchCall'/>")
    await link.close()
