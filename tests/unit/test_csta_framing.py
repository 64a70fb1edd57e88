"""ECMA-323 Annex J.2 framing: frames out of bytes in any pieces, bad headers refused."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr_server.switch.csta.framing import (
    HEADER_SIZE,
    MAX_FRAME,
    Frame,
    FrameDecoder,
    FramingError,
    encode_frame,
)

_frames = st.lists(st.tuples(st.integers(0, 9999), st.binary(max_size=300)), min_size=1, max_size=6)


def test_encode_frame_counts_the_header_in_the_length() -> None:
    assert encode_frame(7, b"<a/>") == b"\x00\x00\x00\x0c0007<a/>"


def test_encode_frame_refuses_bad_invoke_ids_and_oversize_bodies() -> None:
    with pytest.raises(ValueError, match="four digits"):
        encode_frame(10000, b"")
    with pytest.raises(ValueError, match="at most"):
        encode_frame(1, b"x" * (MAX_FRAME - HEADER_SIZE + 1))
    assert len(encode_frame(1, b"x" * (MAX_FRAME - HEADER_SIZE))) == MAX_FRAME


@given(_frames, st.data())
def test_frames_decode_from_any_pieces(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(i, body) for i, body in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    out: list[Frame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    assert out == [Frame(i, body) for i, body in frames]
    assert decoder.buffered == 0


def test_byte_by_byte() -> None:
    stream = encode_frame(9999, b"<x/>") + encode_frame(1, b"")
    decoder = FrameDecoder()
    out = [f for b in stream for f in decoder.feed(bytes([b]))]
    assert out == [Frame(9999, b"<x/>"), Frame(1, b"")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x00\x00\x0c0001<a/>", "two zero bytes"),
        (b"\x00\x00\x00\x070001", "shorter than its header"),
        (b"\x00\x00\x00\x0c00a1<a/>", "four ASCII digits"),
        (b"<?xml version='1.0'?>", "two zero bytes"),
    ],
)
def test_bad_headers_raise(data: bytes, reason: str) -> None:
    with pytest.raises(FramingError, match=reason):
        FrameDecoder().feed(data)


def test_frames_before_a_bad_header_come_with_the_error() -> None:
    decoder = FrameDecoder()
    data = encode_frame(1, b"<a/>") + encode_frame(2, b"<b/>") + b"\x01\x00\x00\x0c0003<c/>"
    with pytest.raises(FramingError, match="two zero bytes") as raised:
        decoder.feed(data)
    assert raised.value.frames == [Frame(1, b"<a/>"), Frame(2, b"<b/>")]
    assert decoder.buffered == 0


def test_frame_size_is_bounded() -> None:
    decoder = FrameDecoder(max_frame=100)
    with pytest.raises(FramingError, match="exceeds 100"):
        decoder.feed(encode_frame(1, b"x" * 200)[:HEADER_SIZE])


@given(st.binary(max_size=200))
def test_garbage_gives_frames_or_framing_error(data: bytes) -> None:
    decoder = FrameDecoder()
    with contextlib.suppress(FramingError):
        decoder.feed(data)
    assert decoder.buffered <= MAX_FRAME
