"""GLI framing (PROTOCOL.md §1): exact header bytes, incremental cutting, bad headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr_server.wire import (
    FrameDecoder,
    GliErrorCode,
    GliFrameError,
    GliType,
    encode_error_frame,
    encode_frame,
)

# The spec's byte examples (PROTOCOL.md §1.4).
KEEP_ALIVE_REQUEST = bytes.fromhex("000000020200")
KEEP_ALIVE_RESPONSE = bytes.fromhex("000100020200")
ERROR_BAD_VERSION = bytes.fromhex("0002000402000001")


def test_keep_alive_frames_are_byte_exact() -> None:
    assert encode_frame(GliType.KEEP_ALIVE_REQUEST) == KEEP_ALIVE_REQUEST
    assert encode_frame(GliType.KEEP_ALIVE_RESPONSE) == KEEP_ALIVE_RESPONSE


def test_error_frame_is_byte_exact() -> None:
    assert encode_error_frame(GliErrorCode.BAD_VERSION) == ERROR_BAD_VERSION


@pytest.mark.parametrize(
    ("xml_bytes", "header"),
    [
        (224, "000300E20200"),  # LoginResp, LOG -027
        (175, "000300B10200"),  # FlowControl
        (177, "000300B30200"),  # CallStatus Ringing
        (251, "000300FD0200"),  # client LoginReq
    ],
)
def test_data_header_arithmetic(xml_bytes: int, header: str) -> None:
    frame = encode_frame(GliType.DATA, b"x" * xml_bytes)
    assert frame[:6] == bytes.fromhex(header)
    assert len(frame) == xml_bytes + 6


def test_payload_too_large_is_refused() -> None:
    encode_frame(GliType.DATA, b"x" * 65533)
    with pytest.raises(ValueError):
        encode_frame(GliType.DATA, b"x" * 65534)


def test_several_frames_in_one_read() -> None:
    data = (
        encode_frame(GliType.DATA, b"<a/>")
        + KEEP_ALIVE_REQUEST
        + encode_frame(GliType.DATA, b"<b/>")
    )
    assert FrameDecoder().feed(data) == [(3, b"<a/>"), (0, b""), (3, b"<b/>")]


def test_frame_split_byte_by_byte() -> None:
    data = encode_frame(GliType.DATA, b"<GctiMsg/>") * 3
    decoder = FrameDecoder()
    frames = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    assert frames == [(3, b"<GctiMsg/>")] * 3
    assert decoder.pending == 0


@given(st.lists(st.binary(max_size=300), max_size=6), st.data())
def test_any_split_gives_the_same_frames(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(GliType.DATA, p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    frames = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        frames += decoder.feed(stream[prev:cut])
        prev = cut
    assert frames == [(3, p) for p in payloads]
    assert all(type(payload) is bytes for _, payload in frames)
    assert decoder.pending == 0


def test_payloads_are_bytes_whatever_the_input_and_survive_later_reads() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(GliType.DATA, b"<GctiMsg/>")
    (first,) = decoder.feed(bytearray(frame))  # nothing pending: cut from the input itself
    assert first == (3, b"<GctiMsg/>") and type(first[1]) is bytes
    assert decoder.feed(bytearray(frame[:5])) == []  # pending, then completed
    (second,) = decoder.feed(memoryview(frame[5:] + frame[:3]))
    assert second == (3, b"<GctiMsg/>") and type(second[1]) is bytes
    assert decoder.pending == 3


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("000300040100", GliErrorCode.BAD_VERSION),
        ("000300040201", GliErrorCode.BAD_APPLICATION),
        ("000400020200", GliErrorCode.UNKNOWN_TYPE),
        ("000300010200", GliErrorCode.BAD_LENGTH),
        ("000300000200", GliErrorCode.BAD_LENGTH),
    ],
)
def test_bad_headers_raise_with_their_code(header: str, code: GliErrorCode) -> None:
    decoder = FrameDecoder()
    with pytest.raises(GliFrameError) as info:
        decoder.feed(bytes.fromhex(header) + b"zz")
    assert info.value.code is code
    assert decoder.failed


@given(st.binary(max_size=400))
def test_garbage_gives_frames_or_a_frame_error_only(data: bytes) -> None:
    decoder = FrameDecoder()
    try:
        for i in range(0, len(data), 7):
            decoder.feed(data[i : i + 7])
    except GliFrameError:
        pass
