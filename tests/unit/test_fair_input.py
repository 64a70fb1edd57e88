"""Input is handled in bounded batches, and what a batch costs is linear in its size.

The frame decoder hands frames out ``max_frames``/``max_bytes`` at a time (a larger frame alone);
the link handles one batch per call and decodes a document larger than ``turn_bytes`` a piece per
call, with the same result as decoding it whole; valid frames before a bad GLI header are handled
before the link fails; replacing user data is linear (it was quadratic in the number of keys).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.session import DocumentReceived, DocumentRejected, IvrLink, LinkClosed, Role
from ivr_server.switch import kv_update
from ivr_server.wire import (
    SPECS,
    DecodeError,
    FrameDecoder,
    GliErrorCode,
    GliFrameError,
    GliType,
    KvList,
    List,
    Message,
    Node,
    PartialDocument,
    decode_document,
    encode_document,
    encode_frame,
)
from ivr_server.wire import messages as m
from tests.strategies import element, xml_text

KA = encode_frame(GliType.KEEP_ALIVE_REQUEST)
BAD_VERSION = bytes.fromhex("000300040100") + b"zz"


def data(text: bytes) -> bytes:
    return encode_frame(GliType.DATA, text)


# ------------------------------------------------------------------ FrameDecoder.pull


def test_pull_hands_out_at_most_max_frames_and_keeps_the_rest() -> None:
    decoder = FrameDecoder()
    decoder.push(b"".join(data(b"<%d/>" % i) for i in range(10)))
    batches = []
    while True:
        batch = decoder.pull(4, 1_000_000)
        batches.append([payload for _, payload in batch])
        if not decoder.more:
            break
    assert batches == [
        [b"<0/>", b"<1/>", b"<2/>", b"<3/>"],
        [b"<4/>", b"<5/>", b"<6/>", b"<7/>"],
        [b"<8/>", b"<9/>"],
    ]
    assert decoder.pending == 0 and decoder.pull(4, 100) == []


def test_pull_bounds_bytes_and_hands_a_larger_frame_out_alone() -> None:
    small, large = data(b"s" * 8), data(b"L" * 100)
    decoder = FrameDecoder()
    decoder.push(small * 3 + large + small)
    assert [len(p) for _, p in decoder.pull(100, 25)] == [8, 8]  # 10 + 10 bytes; 30 > 25
    assert decoder.more
    assert [len(p) for _, p in decoder.pull(100, 25)] == [8]  # the large one does not fit
    assert [len(p) for _, p in decoder.pull(100, 25)] == [100]  # alone, although over
    assert [len(p) for _, p in decoder.pull(100, 25)] == [8]
    assert not decoder.more


def test_more_is_false_when_only_a_partial_frame_is_left() -> None:
    decoder = FrameDecoder()
    frame = data(b"<x/>")
    decoder.push(frame * 2 + frame[:5])
    assert len(decoder.pull(1, 100)) == 1 and decoder.more
    assert len(decoder.pull(1, 100)) == 1 and not decoder.more
    assert decoder.pending == 5
    decoder.push(frame[5:] + frame)  # what was left, completed, then more
    assert [p for _, p in decoder.pull(5, 100)] == [b"<x/>", b"<x/>"]


@settings(deadline=None)
@given(
    st.lists(st.binary(max_size=60), max_size=12),
    st.integers(1, 5),
    st.integers(1, 80),
    st.data(),
)
def test_batches_give_the_same_frames_however_the_stream_is_cut(
    payloads: list[bytes], max_frames: int, max_bytes: int, draw: st.DataObject
) -> None:
    stream = b"".join(data(p) for p in payloads)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    got: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        decoder.push(stream[prev:cut])
        prev = cut
        while True:
            batch = decoder.pull(max_frames, max_bytes)
            assert len(batch) <= max_frames
            assert len(batch) <= 1 or sum(len(p) + 2 for _, p in batch) <= max_bytes
            got += [p for _, p in batch]
            if not decoder.more:
                break
    assert got == payloads


def test_frames_before_a_bad_header_come_first_then_the_error() -> None:
    decoder = FrameDecoder()
    decoder.push(data(b"<a/>") + KA + BAD_VERSION)
    assert decoder.pull(100, 100_000) == [(3, b"<a/>"), (0, b"")]
    assert decoder.more and not decoder.failed
    with pytest.raises(GliFrameError) as info:
        decoder.pull(100, 100_000)
    assert info.value.code is GliErrorCode.BAD_VERSION and decoder.failed


# ------------------------------------------------------------------ the link's batches


def doc(i: int) -> bytes:
    return data(encode_document(f"C{i}", m.CallInfoReq()))


def test_the_link_handles_one_batch_per_call_in_order() -> None:
    link = IvrLink(Role.SERVER, now=0.0, turn_frames=3, turn_bytes=1_000_000)
    events = link.receive_data(b"".join(doc(i) for i in range(7)), 0.0)
    assert [e.call_id for e in events if isinstance(e, DocumentReceived)] == ["C0", "C1", "C2"]
    assert link.backlogged
    more = link.receive_more(0.0)
    assert [e.call_id for e in more if isinstance(e, DocumentReceived)] == ["C3", "C4", "C5"]
    last = link.receive_more(0.0)
    assert [e.call_id for e in last if isinstance(e, DocumentReceived)] == ["C6"]
    assert not link.backlogged and link.buffered == 0


def test_keep_alive_requests_count_in_the_batch() -> None:
    link = IvrLink(Role.SERVER, now=0.0, turn_frames=4, turn_bytes=1_000_000)
    assert link.receive_data(KA * 10, 0.0) == []
    assert link.data_to_send() == encode_frame(GliType.KEEP_ALIVE_RESPONSE) * 4
    link.receive_more(0.0)
    link.receive_more(0.0)
    assert link.data_to_send() == encode_frame(GliType.KEEP_ALIVE_RESPONSE) * 6
    assert not link.backlogged


def big_udata_set(keys: int) -> tuple[str, Message]:
    items = tuple(Node(Name=f"key{i}", Type="Str", Val=f"v'{i}&") for i in range(keys))
    return "BIG", m.UDataSet(Action="Replace", RequestId="1", UDataEx=items)


def test_a_large_document_is_decoded_a_piece_per_call() -> None:
    call_id, message = big_udata_set(400)
    payload = encode_document(call_id, message)
    link = IvrLink(Role.SERVER, now=0.0, turn_frames=64, turn_bytes=4096)
    events = link.receive_data(data(payload) + doc(1), 0.0)
    calls = 1
    while not events:
        assert link.backlogged
        events = link.receive_more(0.0)
        calls += 1
    assert events == [DocumentReceived(call_id, message)]
    # a piece per call, then the message built, then handed out
    assert calls == -(-len(payload) // 4096) + 2
    assert [e.call_id for e in link.receive_more(0.0) if isinstance(e, DocumentReceived)] == ["C1"]


def test_a_bad_large_document_is_rejected_as_a_whole_one_would_be() -> None:
    payload = encode_document("BAD", big_udata_set(300)[1])[:-12] + b"<oops></GctiMsg>"
    with pytest.raises(DecodeError) as whole:
        decode_document(payload)
    link = IvrLink(Role.SERVER, now=0.0, turn_bytes=2048)
    events = link.receive_data(data(payload), 0.0)
    while not events:
        events = link.receive_more(0.0)
    (rejected,) = events
    assert isinstance(rejected, DocumentRejected)
    assert str(rejected.error) == str(whole.value)
    assert rejected.error.call_id == whole.value.call_id == "BAD"


def test_documents_before_a_bad_header_are_handled_then_the_link_fails() -> None:
    link = IvrLink(Role.SERVER, now=0.0)
    events = link.receive_data(doc(1) + doc(2) + BAD_VERSION, 0.0)
    assert [e.call_id for e in events if isinstance(e, DocumentReceived)] == ["C1", "C2"]
    assert link.backlogged  # the link is still open: replies to C1 and C2 can be queued
    link.send("C1", m.CallError(FailedReq="NoSuchCall", TlibErrCode="INVALID_CALL_ID"))
    (closed,) = link.receive_more(0.0)
    assert isinstance(closed, LinkClosed) and closed.error_code is GliErrorCode.BAD_VERSION
    out = link.data_to_send()
    assert b"<CallError" in out and out.endswith(bytes.fromhex("0002000402000001"))


# ------------------------------------------------------------------ PartialDocument


def decode_in_pieces(payload: bytes, size: int) -> tuple[str | None, Message]:
    partial = PartialDocument(payload)
    for _ in range(len(payload) + 3):
        document = partial.step(size)
        if document is not None:
            return document
    raise AssertionError("never finished")


@pytest.mark.parametrize("tag", ["UDataSet", "NewCall", "RouteResponse", "LogMsg", "CallStatus"])
@settings(max_examples=30, deadline=None)
@given(draw=st.data(), size=st.integers(1, 300))
def test_pieces_decode_as_a_whole_document_does(tag: str, draw: st.DataObject, size: int) -> None:
    spec = SPECS[tag]
    msg = draw.draw(element(spec))
    call_id = draw.draw(xml_text)
    for encoding in ("ISO-8859-1", "UTF-8"):
        payload = encode_document(call_id, msg, encoding=encoding)
        assert decode_in_pieces(payload, size) == decode_document(payload) == (call_id, msg)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda s: s.encode()), st.data())
def test_pieces_of_any_bytes_fail_as_the_whole_does(payload: bytes, draw: st.DataObject) -> None:
    size = draw.draw(st.integers(1, 64))
    whole: tuple[str | None, Message] | DecodeError
    try:
        whole = decode_document(payload)
    except DecodeError as exc:
        whole = exc
    try:
        pieces = decode_in_pieces(payload, size)
    except DecodeError as exc:
        assert isinstance(whole, DecodeError)
        assert (exc.call_id, exc.well_formed) == (whole.call_id, whole.well_formed)
        return
    assert pieces == whole


def test_the_hostile_documents_are_refused_in_pieces_too() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE GctiMsg [<!ENTITY a "aaaaaaaaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<GctiMsg><CallId>evil</CallId><LogMsg MsgType='Standard' Msg='&b;'/></GctiMsg>"
    )
    deep = b"<GctiMsg><CallId>c</CallId>" + b"<a>" * 40 + b"</a>" * 40 + b"</GctiMsg>"
    for payload in (bomb, deep):
        with pytest.raises(DecodeError) as info:
            decode_in_pieces(payload, 7)
        assert not info.value.well_formed and info.value.call_id in ("evil", "c")


# ------------------------------------------------------------------ kv_update is linear


def kv_update_by_definition(current: KvList, new: KvList) -> KvList:
    """PROTOCOL.md §4.3 as first written (quadratic): each new key overwrites the first
    occurrence of its key and removes the later ones, or is appended."""
    result = list(current)
    for item in new:
        first = next((i for i, old in enumerate(result) if old.Name == item.Name), None)
        if first is None:
            result.append(item)
        else:
            result[first] = item
            result[first + 1 :] = [old for old in result[first + 1 :] if old.Name != item.Name]
    return tuple(result)


_node = st.builds(
    lambda n, v: Node(Name=n, Type="Str", Val=v),
    st.sampled_from("abcde"),
    st.text("xy", max_size=2),
)
_items = st.lists(
    st.one_of(
        _node, st.builds(lambda n, v: List(Name=n, items=(v,)), st.sampled_from("abc"), _node)
    ),
    max_size=8,
).map(tuple)


@settings(max_examples=500)
@given(_items, _items)
def test_kv_update_keeps_its_definition(current: KvList, new: KvList) -> None:
    assert kv_update(current, new) == kv_update_by_definition(current, new)


def test_kv_update_of_thousands_of_keys_is_quick() -> None:
    """Not a timing: 20,000 distinct keys would take minutes if the update were quadratic."""
    new = tuple(Node(Name=f"k{i}", Type="Str", Val="v") for i in range(20_000))
    assert kv_update(new[:10_000], new) == new
