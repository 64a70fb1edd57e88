"""Fuzz target ``gli``: the GLI frame decoder (``wire/gli.py`` ``FrameDecoder``).

Input: byte 0 picks how the rest, a byte stream from a peer, is cut into reads (and, for a
decoder that hands frames out in bounded batches, how big the batches are); the rest is the
stream. Properties, checked against the harness's own reading of PROTOCOL.md §1:

- fed whole or in pieces (bytes, bytearray and memoryview in turn), the decoder hands out the
  stream's complete frames in order (all of them when every header is valid) and keeps the
  bytes after them pending;
- a stream with an untrusted header makes it raise ``GliFrameError`` with that header's code
  (the frames before it may come first), and a failed decoder stays failed;
- nothing else is ever raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fuzz.harness import Frame, Script, parse_frames
from ivr_server.wire import FrameDecoder, GliFrameError


def _as(piece: bytes, turn: int) -> bytes | bytearray | memoryview:
    if turn % 3 == 1:
        return bytearray(piece)
    if turn % 3 == 2:
        return memoryview(piece)
    return piece


def _run(pieces: Iterable[bytes], batch: int) -> tuple[FrameDecoder, list[Frame], str | None]:
    """Feed ``pieces``; return the decoder, the frames it handed out and the code it raised."""
    decoder = FrameDecoder()
    pull: Callable[[int, int], list[tuple[int, bytes]]] | None = getattr(decoder, "pull", None)
    push: Callable[[Any], None] | None = getattr(decoder, "push", None)
    out: list[tuple[int, bytes]] = []
    try:
        for turn, piece in enumerate(pieces):
            if batch and pull is not None and push is not None:
                push(_as(piece, turn))
                out += pull(batch, 64 * batch)
                while getattr(decoder, "more", False):
                    out += pull(batch, 64 * batch)
            else:
                out += decoder.feed(_as(piece, turn))
                while getattr(decoder, "more", False):  # frames held before a bad header
                    out += decoder.feed(b"")
    except GliFrameError as exc:
        assert decoder.failed
        return decoder, [Frame(t, p) for t, p in out], exc.code.name
    for _gli_type, payload in out:
        assert type(payload) is bytes, type(payload)
    return decoder, [Frame(t, p) for t, p in out], None


def one_input(data: bytes) -> None:
    script = Script(b"\x00" + data)
    stream = script.stream
    expected, error, leftover = parse_frames(stream)
    batch = (0, 1, 2, 5)[(script.cut >> 2) & 3]

    for decoder, got, raised in (
        _run([stream] if stream else [], 0),
        _run([piece for piece, _dt in script.reads()], batch),
    ):
        assert raised == error, f"decoder raised {raised}, the stream's first bad header: {error}"
        if error is None:
            assert got == expected
            assert decoder.pending == leftover, (decoder.pending, leftover)
        else:
            assert got == expected[: len(got)]
            try:
                decoder.feed(b"\x00\x03\x00\x02\x02\x00")
            except GliFrameError:
                pass
            else:
                raise AssertionError("a failed decoder decoded again")
