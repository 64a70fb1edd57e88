"""The GctiMsg codec (PROTOCOL.md §2, §4): exact output bytes, lenient input, hostile input."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.wire import (
    SPECS,
    DecodeError,
    List,
    Message,
    Node,
    NVPair,
    codec,
    decode,
    decode_document,
    encode,
    encode_document,
    forget_memos,
    memo,
    str_node,
    xmltree,
)
from ivr_server.wire import messages as m
from tests.shared import SHARED, require_shared
from tests.strategies import element, xml_text

ROOT = Path(__file__).resolve().parents[2]
PROLOG = (
    "<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'><GctiMsg>"
)

# Real server documents, byte for byte (PROTOCOL.md §2.2, W).
REAL = [
    (
        "IAdapter1_11271718110003300002",
        m.LoginResp(IServerVer="IVR Server:8.1.001.01", Result="Success", Status="OK"),
        "<LoginResp IServerVer='IVR Server:8.1.001.01' Result='Success' Status='OK'/>",
    ),
    ("IAdapter1_11271718110003300002", m.FlowControl(Status="Off"), "<FlowControl Status='Off'/>"),
    (
        "IAdapter1_11271718550003050003",
        m.CallStatus(Event="Ringing"),
        "<CallStatus Event='Ringing'/>",
    ),
    (
        "IAdapter1_11271718550003050003",
        m.CallInfoResp(
            ANI="2225",
            DNIS="3002",
            CalledNum="2",
            ConnId="0079020eaf04c019",
            TSCallId="2053",
            PortDN="3002",
            PortTrunk="0",
            OtherDN="3081",
            LastEvent="EventEstablished",
        ),
        "<CallInfoResp ANI='2225' DNIS='3002' CalledNum='2' ConnId='0079020eaf04c019' "
        "TSCallId='2053' PortDN='3002' PortTrunk='0' OtherDN='3081' LastEvent='EventEstablished'/>",
    ),
    (
        "IAdapter1_11271805130007050004",
        m.UDataResp(
            Result="Success",
            RequestId="100000002",
            UDataEx=(Node(Name="UEI", Type="Str", Val="bridgetec"),),
        ),
        "<UDataResp Result='Success'><RequestId>100000002</RequestId><UDataEx><Node Name='UEI' "
        "Type='Str' Val='bridgetec'/></UDataEx></UDataResp>",
    ),
    (
        "IAdapter1_11271803270007130003",
        m.CallError(FailedReq="OneStepXfer", TlibErrCode="1183"),
        "<CallError FailedReq='OneStepXfer' TlibErrCode='1183'/>",
    ),
    (
        "IAdapter1_11271558010005590005",
        m.EndCall(EndCause="Timeout"),
        "<EndCall EndCause='Timeout'/>",
    ),
]


@pytest.mark.parametrize(("call_id", "message", "body"), REAL)
def test_real_server_documents_are_reproduced_byte_for_byte(
    call_id: str, message: Message, body: str
) -> None:
    expected = f"{PROLOG}<CallId>{call_id}</CallId>{body}</GctiMsg>".encode("latin-1")
    assert encode_document(call_id, message) == expected
    assert decode_document(expected) == (call_id, message)


def test_fixed_prefix_and_suffix_sizes() -> None:
    doc = encode_document("", m.Cancel())
    assert doc.index(b"</CallId>") == 99  # PROTOCOL.md §2.2: 99 bytes before the CallId value
    assert doc.endswith(b"<Cancel/></GctiMsg>")


def test_dialout_has_no_call_id() -> None:
    doc = encode_document(
        None, m.DialOut(RefID="19", OrigNum="1000", DestNum="8435551023", TimeToAnswer="30")
    )
    assert (
        doc
        == (
            PROLOG + "<DialOut RefID='19' OrigNum='1000' DestNum='8435551023' "
            "TimeToAnswer='30'/></GctiMsg>"
        ).encode()
    )
    assert decode_document(doc)[0] is None


def test_escaping_of_all_five_and_of_non_latin1() -> None:
    doc = encode_document(
        "a&b",
        m.UDataResp(
            Result="Success", RequestId="<1>", UDataEx=(Node(Name="q'\"", Type="Str", Val="α & β"),)
        ),
    )
    assert b"<CallId>a&amp;b</CallId>" in doc
    assert b"<RequestId>&lt;1&gt;</RequestId>" in doc
    assert b"Name='q&apos;&quot;' Type='Str' Val='&#x3B1; &amp; &#x3B2;'" in doc
    assert decode_document(doc)[1].UDataEx[0].Val == "α & β"  # type: ignore[attr-defined]


def test_utf8_output_option() -> None:
    doc = encode_document("c", m.LogMsg(MsgType="Standard", Msg="é"), encoding="UTF-8")
    assert doc.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "Msg='é'".encode() in doc
    assert decode_document(doc)[1] == m.LogMsg(MsgType="Standard", Msg="é")


def test_tab_newline_cr_survive_attribute_normalisation() -> None:
    msg = m.LogMsg(MsgType="Standard", Msg="a\tb\nc\rd")
    assert decode_document(encode_document("c", msg))[1] == msg


# ------------------------------------------------------------------ what clients send

REAL_CLIENT_LOGIN = (
    b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n'
    b'<GctiMsg><CallId>IAdapter1_11271718110003300002</CallId><LoginReq Version="4.0" '
    b'ClientName="IAdapter1" ReportStatus="true" ServerMonitor="clear"></LoginReq></GctiMsg>\n'
)
LOGIN = m.LoginReq(
    Version="4.0", ClientName="IAdapter1", ReportStatus="true", ServerMonitor="clear"
)


@pytest.mark.parametrize(
    "doc",
    [
        REAL_CLIENT_LOGIN,
        REAL_CLIENT_LOGIN.replace(b'"', b"'"),
        REAL_CLIENT_LOGIN.replace(b"?>", b" ?>"),
        REAL_CLIENT_LOGIN.replace(b"ISO-8859-1", b"iso-8859-1"),
        REAL_CLIENT_LOGIN.replace(b"ISO-8859-1", b"utf-8"),
        REAL_CLIENT_LOGIN.replace(b"\n", b"\r\n\r\n"),
        REAL_CLIENT_LOGIN.replace(b'<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n', b""),
        REAL_CLIENT_LOGIN.replace(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n', b""),
        REAL_CLIENT_LOGIN.replace(b"IServer.dtd", b"http://example.invalid/other.dtd"),
        REAL_CLIENT_LOGIN.replace(b"<CallId>", b"\n  <CallId>").replace(
            b"<LoginReq", b"\n  <LoginReq"
        ),
        REAL_CLIENT_LOGIN.replace(b'"></LoginReq>', b'"/>'),
        REAL_CLIENT_LOGIN.replace(b'Version="4.0"', b'Version="4.0" Extra="ignored"'),
        REAL_CLIENT_LOGIN.replace(b"<?xml", b"  <?xml"),
        b"<?xml version='1.0' encoding='ISO-8859-1' standalone='yes'?>"
        + REAL_CLIENT_LOGIN.split(b"?>", 1)[1],
        # an unusual but valid prolog takes expat's slow path
        b"<?xml version='1.0'   encoding = 'ISO-8859-1'?><!-- hi --><!DOCTYPE GctiMsg PUBLIC 'x' 'y'>"
        + REAL_CLIENT_LOGIN.split(b"\n", 2)[2],
    ],
)
def test_client_variations_are_accepted(doc: bytes) -> None:
    assert decode_document(doc) == ("IAdapter1_11271718110003300002", LOGIN)


def test_latin1_bytes_decoded_per_declaration() -> None:
    doc = (
        b"<?xml version='1.0' encoding='ISO-8859-1'?><GctiMsg><CallId>\xe9</CallId>"
        b"<LogMsg MsgType='Standard' Msg='caf\xe9'/></GctiMsg>"
    )
    assert decode_document(doc) == ("é", m.LogMsg(MsgType="Standard", Msg="café"))
    utf8 = (
        "<?xml version='1.0' encoding='UTF-8'?><GctiMsg><CallId>é</CallId><LogMsg "
        "MsgType='Standard' Msg='café'/></GctiMsg>"
    )
    assert decode_document(utf8.encode()) == ("é", m.LogMsg(MsgType="Standard", Msg="café"))


def test_guide_spellings_are_accepted() -> None:
    def body(xml: str) -> bytes:
        return f"<GctiMsg><CallId>c</CallId>{xml}</GctiMsg>".encode()

    assert decode_document(body("<RouteRequest RouteDn='7900'/>"))[1] == m.RouteRequest(
        RouteDN="7900"
    )
    assert decode_document(body("<Failure FailureCause='ConnectionFailed'/>"))[1] == m.Failure(
        FailureCause="ConnectFailed"
    )
    assert decode_document(
        body("<NewCall CallControlMode='MakeCall'><CalledNum>1</CalledNum></NewCall>")
    )[1] == m.NewCall(CallControlMode="Network", CalledNum="1")
    assert decode_document(body("<AgentLogout ReqId='1' PortNum='1'/>"))[1] == m.AgentLogout(
        ReqId="1", PortNum="1"
    )
    assert decode_document(body("<LoginReq ClientName='x'/>"))[1] == m.LoginReq(ClientName="x")


def test_defaults_and_nested_lists() -> None:
    doc = (
        b"<GctiMsg><CallId>c</CallId><NewCall CallControlMode='Network'><CalledNum>1"
        b"</CalledNum><UDataEx><Node Name='AccountNo' Type='Str' Val='12345'/><Node "
        b"Name='Tries' Type='Int' Val='3'/><List Name='Order'><Node Name='Item' Type='Str' "
        b"Val='A&amp;B'/><List Name='Price'><Node Name='Amount' Type='Int' Val='100'/></List>"
        b"</List></UDataEx></NewCall></GctiMsg>"
    )
    _, msg = decode_document(doc)
    assert isinstance(msg, m.NewCall)
    assert msg.Version == "1.0"  # DTD default
    assert msg.UDataEx == (
        Node(Name="AccountNo", Type="Str", Val="12345"),
        Node(Name="Tries", Type="Int", Val="3"),
        List(
            Name="Order",
            items=(
                Node(Name="Item", Type="Str", Val="A&B"),
                List(Name="Price", items=(Node(Name="Amount", Type="Int", Val="100"),)),
            ),
        ),
    )
    assert msg.UDataEx[1].value == 3


def test_legacy_nvpairs() -> None:
    doc = (
        b"<GctiMsg><CallId>c</CallId><NewCall CallControlMode='Network' Version='1.0'>"
        b"<CalledNum>1</CalledNum><UserData><NVPair><NVName>AccountNo</NVName><NVVal>12345"
        b"</NVVal></NVPair></UserData></NewCall></GctiMsg>"
    )
    _, msg = decode_document(doc)
    assert isinstance(msg, m.NewCall)
    assert msg.UserData == (NVPair(NVName="AccountNo", NVVal="12345"),)
    assert decode_document(encode_document("c", msg)) == ("c", msg)


# ------------------------------------------------------------------ invalid and hostile input

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE GctiMsg [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;">]>'
    b"<GctiMsg><CallId>evil</CallId><LogMsg MsgType='Standard' Msg='&c;'/></GctiMsg>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE GctiMsg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<GctiMsg><CallId>evil</CallId><LogMsg MsgType='Standard' Msg='&x;'/></GctiMsg>"
)
EXTERNAL_DTD = (
    b'<?xml version="1.0"?><!DOCTYPE GctiMsg SYSTEM "file:///etc/passwd">'
    b"<GctiMsg><CallId>c</CallId><LogMsg MsgType='Standard' Msg='&x;'/></GctiMsg>"
)
PARAMETER_ENTITY = (
    b'<!DOCTYPE GctiMsg [<!ENTITY % p SYSTEM "http://example.invalid/x">%p;]>'
    b"<GctiMsg><CallId>evil</CallId></GctiMsg>"
)


@pytest.mark.parametrize(
    ("doc", "call_id"),
    [
        (BILLION_LAUGHS, "evil"),
        (XXE, "evil"),
        (EXTERNAL_DTD, "c"),  # the DTD is never read, so &x; is simply undefined
        (PARAMETER_ENTITY, "evil"),
        (b"<GctiMsg><CallId>c</CallId><LogMsg MsgType='Standard' Msg='x'></GctiMsg>", "c"),
        (b"<GctiMsg><CallId>c</CallId>" + b"<a>" * 40 + b"</a>" * 40 + b"</GctiMsg>", "c"),
        (b"<Other><CallId>c</CallId></Other>", "c"),
        (b"", None),
        (b"\x00\x01\x02", None),
        (b"<?xml version='1.0' encoding='EBCDIC-XYZ'?><GctiMsg/>", None),
    ],
)
def test_hostile_or_broken_xml_is_refused(doc: bytes, call_id: str | None) -> None:
    with pytest.raises(DecodeError) as info:
        decode_document(doc)
    assert info.value.call_id == call_id
    assert not info.value.well_formed


@pytest.mark.parametrize(
    ("body", "tag", "extra"),
    [
        ("<Bogus/>", "Bogus", {}),
        ("<LoginReq ClientName='x' Version='5.0'/>", "LoginReq", {"attribute": "Version"}),
        ("<AgentQuery ReqId='7'/>", "AgentQuery", {"req_id": "7", "attribute": "PortNum"}),
        (
            "<UDataSet Action='Add'><RequestId>9</RequestId></UDataSet>",
            "UDataSet",
            {"request_id": "9"},
        ),
        (
            "<UDataSet Action='Add'><RequestId>9</RequestId><UDataEx><Node Name='n' Type='Int' "
            "Val='x'/></UDataEx></UDataSet>",
            "UDataSet",
            {"request_id": "9"},
        ),
        (
            "<UDataSet Action='Add'><RequestId>9</RequestId><UDataEx><Node Name='n' Type='Float' "
            "Val='1'/></UDataEx></UDataSet>",
            "UDataSet",
            {"request_id": "9"},
        ),
        (
            "<UDataSet Action='Add'><RequestId>9</RequestId><UDataEx><Node Name='n' Type='Int' "
            "Val='2147483648'/></UDataEx></UDataSet>",
            "UDataSet",
            {"request_id": "9"},
        ),
        (
            "<NewCall CallControlMode='Network'><CalledNum>1</CalledNum><UserData><NVPair><NVName>a"
            "</NVName><NVVal>b</NVVal></NVPair></UserData><UDataEx><Node Name='n' Type='Str' Val='v'/>"
            "</UDataEx></NewCall>",
            "NewCall",
            {},
        ),
        (
            "<MonitorInfo><Server Name='a' Status='OK'/><Port PortNum='1' Status='OK'/></MonitorInfo>",
            "MonitorInfo",
            {},
        ),
        ("<CallInfoReq><Surprise/></CallInfoReq>", "CallInfoReq", {}),
        ("<CallStatus Event='Exploded'/>", "CallStatus", {"attribute": "Event"}),
    ],
)
def test_schema_violations_carry_what_was_readable(
    body: str, tag: str, extra: dict[str, str]
) -> None:
    with pytest.raises(DecodeError) as info:
        decode_document(f"<GctiMsg><CallId>cid</CallId>{body}</GctiMsg>".encode())
    err = info.value
    assert err.well_formed and err.call_id == "cid" and err.tag == tag
    for key, value in extra.items():
        assert getattr(err, key) == value


def test_missing_call_id_or_two_messages() -> None:
    with pytest.raises(DecodeError):
        decode_document(b"<GctiMsg><Cancel/></GctiMsg>")
    with pytest.raises(DecodeError):
        decode_document(b"<GctiMsg><CallId>c</CallId><Cancel/><Cancel/></GctiMsg>")
    with pytest.raises(DecodeError):
        decode_document(b"<GctiMsg><CallId>c</CallId></GctiMsg>")


# ------------------------------------------------------------------ properties


@pytest.mark.parametrize("tag", sorted(t for t, s in SPECS.items() if issubclass(s.cls, Message)))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_message_type_round_trips(tag: str, data: st.DataObject) -> None:
    spec = SPECS[tag]
    msg = data.draw(element(spec))
    call_id = None if spec.cls.call_id_kind == "none" else data.draw(xml_text)  # type: ignore[attr-defined]
    doc = encode_document(call_id, msg)
    assert decode_document(doc) == (call_id, msg)
    head, body = codec.encode_document_parts(call_id, msg, "ISO-8859-1", "IServer.dtd")
    assert head + body == doc and body.endswith(b"</GctiMsg>")
    assert decode_document(encode_document(call_id, msg, encoding="UTF-8")) == (call_id, msg)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda s: s.encode()))
def test_any_bytes_give_a_message_or_a_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_document(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_real_documents_never_escape_as_other_errors(data: st.DataObject) -> None:
    doc = bytearray(REAL_CLIENT_LOGIN)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(doc) - 1))
        doc[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        decode_document(bytes(doc))


# ------------------------------------------------------------------ generated code stays generated


def test_generated_messages_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/gen_messages.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_schema_copy_matches_the_shared_spec() -> None:
    shared = SHARED / "spec/messages.json"
    require_shared(shared)
    ours = ROOT / "src/ivr_server/spec/messages.json"
    assert json.loads(ours.read_text()) == json.loads(shared.read_text())


# -- the parser-free path for simple documents ---------------------------------------------------


_VALUE_CHARS = st.characters(codec="latin-1")
SIMPLE_PROLOG = (
    b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
)


@settings(max_examples=300, deadline=None)
@given(
    call_id=st.text(st.sampled_from("abcXYZ019_.:@#+-&<>' "), min_size=1, max_size=12),
    attrs=st.dictionaries(
        st.sampled_from(["ReportUUID", "EndCause", "Event", "Status", "CED", "X_y"]),
        st.text(_VALUE_CHARS, max_size=8),
        max_size=4,
    ),
    tag=st.sampled_from(["CallInfoReq", "EndCall", "TreatStatus", "Bogus"]),
    empty=st.booleans(),
    quote=st.sampled_from(["'", '"']),
)
def test_simple_documents_decode_as_expat_decodes_them(
    call_id: str, attrs: dict[str, str], tag: str, empty: bool, quote: str
) -> None:
    from xml.sax.saxutils import escape

    entities = {"'": "&apos;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
    text = "".join(
        f" {name}={quote}{escape(value, entities)}{quote}" for name, value in attrs.items()
    )
    element = f"<{tag}{text}/>" if empty else f"<{tag}{text}></{tag}>"
    body = f"<GctiMsg><CallId>{escape(call_id)}</CallId>{element}</GctiMsg>"
    payload = SIMPLE_PROLOG + body.encode("latin-1")

    def outcome() -> object:
        try:
            return decode_document(payload)
        except DecodeError as exc:
            return ("error", exc.call_id, exc.tag, exc.well_formed)

    fast = outcome()
    with mock.patch.object(xmltree, "simple_tree", return_value=None):
        slow = outcome()
    assert fast == slow


def test_the_simple_path_leaves_anything_unusual_to_expat() -> None:
    for body in (
        b"<GctiMsg><CallId>C</CallId><EndCall EndCause='Normal' EndCause='Normal'/></GctiMsg>",
        b"<GctiMsg><CallId>C</CallId><EndCall EndCause='N&amp;'/></GctiMsg>",
        b"<GctiMsg><CallId>C</CallId><EndCall EndCause='a\tb'/></GctiMsg>",
        b"<GctiMsg><CallId>C&amp;</CallId><CallInfoReq/></GctiMsg>",
        b"<GctiMsg><CallId>C</CallId><UDataGet Keys='a'><RequestId>1</RequestId></UDataGet></GctiMsg>",
    ):
        assert xmltree.simple_tree(body, "UTF-8") is None
    assert xmltree.simple_tree(
        b'<GctiMsg> <CallId>C1</CallId>\n<CallInfoReq ReportUUID = "true" /> </GctiMsg>\n',
        "UTF-8",
    ) == [
        "GctiMsg",
        {},
        [["CallId", {}, [], "C1"], ["CallInfoReq", {"ReportUUID": "true"}, [], None]],
        None,
    ]


# ------------------------------------------------------------------ repeated documents (memo)

_PLAIN_CALL_IDS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@#+-",
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize(
    "tag",
    sorted(
        t for t, s in SPECS.items() if issubclass(s.cls, Message) and s.cls.call_id_kind != "none"
    ),
)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_repeated_document_decodes_as_if_parsed_afresh(tag: str, data: st.DataObject) -> None:
    msg = data.draw(element(SPECS[tag]))
    first, second = data.draw(_PLAIN_CALL_IDS), data.draw(_PLAIN_CALL_IDS)
    for call_id in (first, second, first):
        doc = encode_document(call_id, msg)
        assert decode_document(doc) == decode._decode(doc) == (call_id, msg)


def test_the_memo_is_keyed_by_the_one_real_call_id() -> None:
    head = b"<?xml version='1.0'?><GctiMsg>"
    tail = b"<CallId>REAL</CallId><EndCall EndCause='Normal'/></GctiMsg>"
    # a CallId inside a comment is not the call's: such documents are never remembered
    for fake in (b"X1", b"X2"):
        doc = head + b"<!--<CallId>" + fake + b"</CallId>-->" + tail
        assert decode_document(doc)[0] == "REAL"
    # escaped or spaced CallIds are parsed every time, and right
    assert decode_document(head + b"<CallId>a&amp;b</CallId><CallInfoReq/></GctiMsg>")[0] == "a&b"
    assert decode_document(head + b"<CallId> c </CallId><CallInfoReq/></GctiMsg>")[0] == " c "


def test_the_memo_stays_bounded_and_skips_big_documents() -> None:
    decode.decoded_memo.clear()
    for i in range(memo.MEMO_MAX_ENTRIES + 100):
        for call_id in ("C", "D"):  # seen twice: remembered
            decode_document(encode_document(call_id, m.RouteRequest(RouteDN=str(i))))
        assert len(decode.decoded_memo.values) <= memo.MEMO_MAX_ENTRIES
        assert len(decode.decoded_memo.seen_once) <= memo.MEMO_MAX_ENTRIES
    assert len(decode.decoded_memo.values) == 100
    for i in range(memo.MEMO_MAX_ENTRIES + 100):  # seen once: never remembered
        decode_document(encode_document("C", m.RouteRequest(RouteDN=f"x{i}")))
        assert len(decode.decoded_memo.seen_once) <= memo.MEMO_MAX_ENTRIES
    assert len(decode.decoded_memo.values) == 100
    big = m.UDataSet(
        Action="Add", RequestId="1", UDataEx=tuple(str_node(f"k{i}", "v" * 40) for i in range(40))
    )
    doc = encode_document("C", big)
    assert len(doc) > memo.MEMO_MAX_PAYLOAD
    decode.decoded_memo.clear()
    assert decode_document(doc) == ("C", big)
    assert decode_document(doc) == ("C", big)
    assert not decode.decoded_memo.values


def test_a_malformed_document_is_never_remembered() -> None:
    decode.decoded_memo.clear()
    with pytest.raises(DecodeError):
        decode_document(b"<GctiMsg><CallId>C</CallId><EndCall EndCause='Nope'/></GctiMsg>")
    with pytest.raises(DecodeError):  # twice: the same answer
        decode_document(b"<GctiMsg><CallId>D</CallId><EndCall EndCause='Nope'/></GctiMsg>")
    assert not decode.decoded_memo.values
    assert not decode.decoded_memo.seen_once


@pytest.mark.parametrize("tag", sorted(t for t, s in SPECS.items() if issubclass(s.cls, Message)))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_a_repeated_message_encodes_as_if_serialised_afresh(tag: str, data: st.DataObject) -> None:
    msg = data.draw(element(SPECS[tag]))
    call_ids = [data.draw(xml_text) for _ in range(3)]
    for encoding in ("ISO-8859-1", "UTF-8"):
        remembered = [encode_document(c, msg, encoding=encoding) for c in call_ids]
        encode.encoded_memo.clear()
        fresh = [encode_document(c, msg, encoding=encoding) for c in call_ids[:1]]
        encode.encoded_memo.clear()
        fresh += [encode_document(c, msg, encoding=encoding) for c in call_ids[1:2]]
        encode.encoded_memo.clear()
        fresh += [encode_document(c, msg, encoding=encoding) for c in call_ids[2:]]
        assert remembered == fresh


def test_the_encode_memo_skips_big_and_unhashable_messages() -> None:
    encode.encoded_memo.clear()
    big = m.UDataResp(
        Result="Success",
        RequestId="1",
        UDataEx=tuple(str_node(f"k{i}", "v" * 40) for i in range(60)),
    )
    for call_id in ("A", "B", "C"):
        assert encode_document(call_id, big).count(b"<Node ") == 60
    assert not encode.encoded_memo.values
    listed = m.UDataResp(Result="Success", RequestId="1", UDataEx=[str_node("k", "v")])  # type: ignore[arg-type]
    for call_id in ("A", "B", "C"):
        assert b"<Node Name='k' Type='Str' Val='v'/>" in encode_document(call_id, listed)
    small = m.CallStatus(Event="Established")
    for call_id in ("A", "B", "C"):
        assert encode_document(call_id, small).endswith(
            f"<CallId>{call_id}</CallId><CallStatus Event='Established'/></GctiMsg>".encode()
        )
    assert len(encode.encoded_memo.values) == 1


def test_the_head_memo_is_keyed_by_call_id_encoding_and_dtd() -> None:
    encode.heads_memo.clear()
    msg = m.CallInfoReq()
    variants = [
        (call_id, encoding, dtd)
        for call_id in ("é&<'x", "A", None)
        for encoding in ("ISO-8859-1", "UTF-8")
        for dtd in ("IServer.dtd", "other 'x'.dtd")
    ]
    remembered = [
        [encode_document(c, msg, encoding=e, dtd_file=d) for c, e, d in variants] for _ in range(3)
    ]
    assert len(encode.heads_memo.values) == len(variants)
    codec.memoize(False)
    try:
        fresh = [encode_document(c, msg, encoding=e, dtd_file=d) for c, e, d in variants]
    finally:
        codec.memoize(True)
    assert remembered[0] == remembered[1] == remembered[2] == fresh
    assert len(set(fresh)) == len(variants)
    assert fresh[0].startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
    assert b"<CallId>\xe9&amp;&lt;&apos;x</CallId>" in fresh[0]
    # long CallIds are never remembered, and the table stays bounded
    for _ in range(3):
        encode_document("L" * 300, msg)
    assert not any(k[0] == "L" * 300 for k in encode.heads_memo.values)
    for i in range(memo.MEMO_MAX_ENTRIES + 100):
        for _ in range(2):
            encode_document(f"C{i}", msg)
        assert len(encode.heads_memo.values) <= memo.MEMO_MAX_ENTRIES


def test_the_memos_can_be_turned_off() -> None:
    doc = encode_document("A", m.CallInfoReq())
    codec.memoize(False)
    try:
        for _ in range(3):
            assert decode_document(doc) == ("A", m.CallInfoReq())
            assert encode_document("A", m.CallInfoReq()) == doc
        assert (
            not decode.decoded_memo.values
            and not encode.encoded_memo.values
            and not encode.heads_memo.values
        )
    finally:
        codec.memoize(True)
    for _ in range(3):
        assert decode_document(doc) == ("A", m.CallInfoReq())
        assert encode_document("A", m.CallInfoReq()) == doc
    assert decode.decoded_memo.values and encode.encoded_memo.values and encode.heads_memo.values


def test_forgetting_the_memos_empties_them_and_they_fill_again() -> None:
    request = b"<GctiMsg><CallId>C1</CallId><CallInfoReq/></GctiMsg>"
    reply = m.CallStatus(Event="Ringing")
    for _ in range(2):  # remembered the second time
        decode_document(request)
        encode_document("C1", reply)
    memos = (decode.decoded_memo, encode.encoded_memo, encode.heads_memo)
    assert all(memo.values for memo in memos)
    forget_memos()
    assert not any(memo.values or memo.seen_once for memo in memos)
    assert all(memo.enabled for memo in memos)
    assert decode_document(request) == ("C1", m.CallInfoReq())
    assert decode_document(request) == ("C1", m.CallInfoReq())
    assert decode.decoded_memo.values
