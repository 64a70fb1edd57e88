"""Fuzz target ``csta``: the premise link's CSTA framing and codec (``switch/csta/``).

Input: byte 0 picks the size of the reads the rest, a byte stream from a PBX, is cut into.
Properties:

- the frame decoder, fed whole or in pieces, hands out the same frames, and raises
  ``FramingError`` (and nothing else) in both cases or in neither (the frames a read completed
  before a bad header come with the error);
- every frame's document decodes to a typed message or raises ``CstaDecodeError``, nothing else;
- whatever decodes re-encodes without error, and the encoded document decodes back to an equal
  message (an unknown document: the same tag, and the same namespace when it had one) (so ivr-server can always repeat what it understood, as the CSTA simulator must).
"""

from __future__ import annotations

from ivr_server.switch.csta import CstaDecodeError, FrameDecoder, FramingError, decode, encode
from ivr_server.switch.csta.messages import UnknownDocument


def _frames(stream: bytes, size: int) -> tuple[list[tuple[int, bytes]], bool]:
    """The frames of ``stream`` fed ``size`` bytes at a time (0 = whole), and whether it failed."""
    decoder = FrameDecoder()
    out: list[tuple[int, bytes]] = []
    pieces = [stream] if size == 0 else [stream[i : i + size] for i in range(0, len(stream), size)]
    try:
        for piece in pieces:
            out += [(f.invoke_id, f.body) for f in decoder.feed(piece)]
    except FramingError as bad:
        out += [(f.invoke_id, f.body) for f in bad.frames]
        return out, True
    return out, False


def one_input(data: bytes) -> None:
    if not data:
        return
    size, stream = data[0] % 17, data[1:]
    whole, whole_failed = _frames(stream, 0)
    split, split_failed = _frames(stream, size)
    assert whole_failed == split_failed, (whole_failed, split_failed)
    assert whole == split, (whole, split)
    bodies = [body for _, body in whole] or [stream]
    for body in bodies:
        try:
            message = decode(body)
        except CstaDecodeError:
            continue
        encoded = encode(message)
        if isinstance(message, UnknownDocument):
            if not (message.tag[:1].isalpha() or message.tag[:1] == "_"):
                continue  # a prefixed name whose local part is not a name on its own (x:3a)
            again = decode(encoded)
            # An unknown document without a namespace is written with the default one.
            assert isinstance(again, UnknownDocument) and again.tag == message.tag, again
            assert message.namespace is None or again.namespace == message.namespace, again
            continue
        again = decode(encoded)
        assert again == message, (message, again)
