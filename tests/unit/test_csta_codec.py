"""The CSTA codec: every message round-trips; hostile or broken documents raise CstaDecodeError."""

from __future__ import annotations

import contextlib
import types
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import (
    CSTA_NAMESPACES,
    MAX_DOCUMENT,
    MESSAGE_TYPES,
    RESPONSE_TYPES,
    CstaDecodeError,
    decode,
    encode,
)

_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FF), max_size=12)
_WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FF), min_size=1, max_size=12)


def _strategy(hint: Any) -> st.SearchStrategy[Any]:
    device = False
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        device = any(isinstance(x, m.Xml) and x.device for x in extras)
    optional = get_origin(hint) in (Union, types.UnionType)
    if optional:
        hint = next(a for a in get_args(hint) if a is not type(None))
    base: st.SearchStrategy[Any]
    if device:
        base = _WORD
    elif get_origin(hint) is tuple:
        base = st.lists(_strategy(get_args(hint)[0]), max_size=3).map(tuple)
    elif isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        base = _struct(hint)
    else:
        base = {str: _TEXT, int: st.integers(0, 10**9), bool: st.booleans()}[hint]
    return st.none() | base if optional else base


def _struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: _strategy(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


def _message(cls: type[m.CstaMessage]) -> st.SearchStrategy[Any]:
    if cls is m.CSTAErrorCode:
        return st.builds(
            m.CSTAErrorCode, category=st.sampled_from(sorted(m.ERROR_CATEGORIES)), value=_TEXT
        )
    return _struct(cls)


def test_the_registry_holds_the_minimal_set() -> None:
    assert len(MESSAGE_TYPES) == 60
    assert RESPONSE_TYPES[m.MakeCall] is m.MakeCallResponse
    assert RESPONSE_TYPES[m.StartApplicationSession] is m.StartApplicationSessionPosResponse
    assert (
        RESPONSE_TYPES[m.ResetApplicationSessionTimer] is m.ResetApplicationSessionTimerPosResponse
    )


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_message_round_trips(name: str, data: st.DataObject) -> None:
    message = data.draw(_message(MESSAGE_TYPES[name]))
    namespace = data.draw(st.sampled_from(sorted(CSTA_NAMESPACES.values())))
    assert decode(encode(message, namespace=namespace)) == message


def test_encoding_writes_the_namespaces() -> None:
    start = encode(m.StartApplicationSession(application_id="ivr"))
    assert b'xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session"' in start
    stop = encode(m.MonitorStop(monitor_cross_ref_id="1"), namespace=CSTA_NAMESPACES["ed3"])
    assert stop == (
        b'<?xml version="1.0" encoding="UTF-8"?><MonitorStop xmlns="'
        + CSTA_NAMESPACES["ed3"].encode()
        + b'"><monitorCrossRefID>1</monitorCrossRefID></MonitorStop>'
    )


def test_error_code_keeps_its_category_and_value() -> None:
    doc = b"<CSTAErrorCode><stateIncompatibility>invalidConnectionState</stateIncompatibility></CSTAErrorCode>"
    assert decode(doc) == m.CSTAErrorCode(
        category="stateIncompatibility", value="invalidConnectionState"
    )
    assert decode(b"<CSTAErrorCode/>") == m.CSTAErrorCode(category="unspecified", value="")


def test_unknown_documents_are_typed_results() -> None:
    assert decode(b'<x:Foo xmlns:x="urn:a"><bar/></x:Foo>') == m.UnknownDocument(
        tag="Foo", namespace="urn:a"
    )


def test_unknown_documents_encode_as_an_empty_root() -> None:
    unknown = m.UnknownDocument(tag="Foo", namespace="urn:a")
    assert encode(unknown) == b'<?xml version="1.0" encoding="UTF-8"?><Foo xmlns="urn:a"/>'
    assert decode(encode(unknown)) == unknown


def test_devices_not_known_decode_to_none() -> None:
    doc = (
        b"<HeldEvent><monitorCrossRefID>1</monitorCrossRefID><heldConnection><callID>9</callID>"
        b"<deviceID>3001</deviceID></heldConnection><holdingDevice><notKnown/></holdingDevice>"
        b"</HeldEvent>"
    )
    held = decode(doc)
    assert held == m.HeldEvent(
        monitor_cross_ref_id="1", held_connection=m.ConnectionID(call_id="9", device_id="3001")
    )
    bare = decode(
        b"<BackInServiceEvent><monitorCrossRefID>1</monitorCrossRefID><device>3001</device></BackInServiceEvent>"
    )
    assert bare == m.BackInServiceEvent(monitor_cross_ref_id="1", device="3001")


_BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
    b"<MonitorStop><monitorCrossRefID>&lol2;</monitorCrossRefID></MonitorStop>"
)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (_BILLION_LAUGHS, "refused"),
        (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><MonitorStop/>', "refused"),
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "refused"),
        (
            b"<MonitorStop><monitorCrossRefID>&nope;</monitorCrossRefID></MonitorStop>",
            "not well-formed",
        ),
        (b"<a>" * 40 + b"</a>" * 40, "nesting"),
        (b"<MonitorStop><monitorCrossRefID>1</MonitorStop>", "not well-formed"),
        (b"", "not well-formed"),
        (b"\xff\xfe garbage", "not well-formed"),
        (b"<MonitorStop/>", "MonitorStop without monitorCrossRefID"),
        (
            b"<ResetApplicationSessionTimerPosResponse><actualSessionDuration>x</actualSessionDuration>"
            b"</ResetApplicationSessionTimerPosResponse>",
            "not an integer",
        ),
        (b"<AgentStateEntry/>", ""),
    ],
)
def test_hostile_or_broken_documents_raise(document: bytes, reason: str) -> None:
    if document == b"<AgentStateEntry/>":  # a Part is not a document: unknown, not an error
        assert decode(document) == m.UnknownDocument(tag="AgentStateEntry")
        return
    with pytest.raises(CstaDecodeError, match=reason):
        decode(document)


def test_bad_boolean_raises() -> None:
    doc = (
        b"<GetAgentStateResponse><agentStateList><agentStateEntry><loggedOnState>maybe"
        b"</loggedOnState></agentStateEntry></agentStateList></GetAgentStateResponse>"
    )
    with pytest.raises(CstaDecodeError, match="not a boolean"):
        decode(doc)


def test_oversize_documents_raise() -> None:
    with pytest.raises(CstaDecodeError, match="exceeds"):
        decode(b"<a>" + b"x" * MAX_DOCUMENT + b"</a>")


@given(st.binary(max_size=300))
def test_any_bytes_give_a_message_or_a_decode_error(data: bytes) -> None:
    with contextlib.suppress(CstaDecodeError):
        decode(data)


@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.data())
def test_mutilated_documents_never_crash(name: str, data: st.DataObject) -> None:
    document = encode(data.draw(_message(MESSAGE_TYPES[name])))
    cut = data.draw(st.integers(0, len(document)))
    with contextlib.suppress(CstaDecodeError):
        decode(document[:cut] + data.draw(st.binary(max_size=8)))
