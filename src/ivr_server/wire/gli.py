"""GLI framing: the 6-byte link header that carries every IVR XML document (PROTOCOL.md §1).

Header (network byte order): MessageType (uint16), MessageLength (uint16: payload + 2),
VersionNumber (uint8, always 2), ApplicationID (uint8, always 0). A frame is ``4 + MessageLength``
bytes long. :class:`FrameDecoder` cuts frames out of a byte stream incrementally: several frames in
one read, or one frame split over many reads, cost O(n) in the bytes received and never rescan.
It hands frames out in bounded batches when asked (``pull``), keeping the rest, so that the server
can do a bounded amount of work per connection per turn of its event loop (docs/design.md). A
header it cannot trust raises :class:`GliFrameError`, whose ``code`` is the GLI Error frame the
peer gets before the link is closed (PROTOCOL.md §9.4.1); the frames before it are handed out
first.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

from ivr_server.errors import RemoteProtocolError

__all__ = [
    "GLI_APPLICATION",
    "GLI_VERSION",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "FrameDecoder",
    "GliErrorCode",
    "GliFrameError",
    "GliType",
    "encode_error_frame",
    "encode_frame",
]

HEADER: Final = struct.Struct(">HHBB")
HEADER_SIZE: Final = 6
GLI_VERSION: Final = 2
"""The only VersionNumber the protocol knows (XMLG p.21)."""
GLI_APPLICATION: Final = 0
"""The only ApplicationID the protocol knows (XMLG p.21)."""
MAX_PAYLOAD: Final = 0xFFFF - 2
"""65 533 bytes: the 16-bit MessageLength counts two header bytes (PROTOCOL.md §1.8)."""


class GliType(IntEnum):
    """GLI MessageType values (PROTOCOL.md §1.3)."""

    KEEP_ALIVE_REQUEST = 0
    KEEP_ALIVE_RESPONSE = 1
    ERROR = 2
    DATA = 3


class GliErrorCode(IntEnum):
    """Payload of the GLI Error frames this server sends (project decision, PROTOCOL.md §9.4.1)."""

    BAD_VERSION = 1
    BAD_APPLICATION = 2
    UNKNOWN_TYPE = 3
    BAD_LENGTH = 4
    NOT_AUTHORISED = 5
    TOO_MANY_MALFORMED = 6
    TOO_MANY_CONNECTIONS = 7


class GliFrameError(RemoteProtocolError):
    """The byte stream cannot be trusted any more: answer with a GLI Error frame and close."""

    def __init__(self, code: GliErrorCode, detail: str) -> None:
        super().__init__(f"GLI {code.name.lower()}: {detail}")
        self.code = code


_KEEP_ALIVE_REQUEST: Final = HEADER.pack(GliType.KEEP_ALIVE_REQUEST, 2, GLI_VERSION, 0)
_KEEP_ALIVE_RESPONSE: Final = HEADER.pack(GliType.KEEP_ALIVE_RESPONSE, 2, GLI_VERSION, 0)


def encode_frame(gli_type: GliType, payload: bytes = b"") -> bytes:
    """Frame ``payload``; raises ``ValueError`` for a payload the 16-bit length cannot express."""
    if gli_type == GliType.KEEP_ALIVE_REQUEST and not payload:
        return _KEEP_ALIVE_REQUEST
    if gli_type == GliType.KEEP_ALIVE_RESPONSE and not payload:
        return _KEEP_ALIVE_RESPONSE
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"GLI payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(gli_type, len(payload) + 2, GLI_VERSION, GLI_APPLICATION) + payload


def encode_error_frame(code: GliErrorCode) -> bytes:
    """A GLI Error frame with a 2-byte big-endian error code (MessageLength = 4)."""
    return encode_frame(GliType.ERROR, code.to_bytes(2, "big"))


class FrameDecoder:
    """Incremental GLI frame decoder.

    ``push(data)`` appends bytes; ``pull(max_frames, max_bytes)`` cuts complete ``(type,
    payload)`` frames, in order, as long as they number at most ``max_frames`` and their lengths
    (payload + 2) add up to at most ``max_bytes`` (always at least one frame when one is complete:
    a frame larger than ``max_bytes`` comes alone); ``more`` then says whether
    complete frames (or a bad header) are left for the next ``pull``. ``feed(data)`` is both
    without bounds. Bytes not yet cut are kept as received, in one immutable object and an offset:
    a batch costs what its frames cost, never a copy of what is left.

    A header that cannot be trusted raises :class:`GliFrameError` from the ``pull`` that reaches
    it first; when frames were cut before it in the same call they are returned, ``more`` is true,
    and the next ``pull`` raises. After that the decoder is broken for good (``failed`` is true):
    the caller sends the error frame and closes the link.
    """

    __slots__ = ("_data", "_pos", "failed", "more")

    def __init__(self) -> None:
        self._data = b""
        self._pos = 0
        self.failed = False
        self.more = False
        """Whether the last ``pull`` stopped at its bounds (or before a bad header) with complete
        frames (or that header) left: another ``pull`` has work without new bytes."""

    @property
    def pending(self) -> int:
        """Bytes received and not yet handed out as frames."""
        return len(self._data) - self._pos

    def push(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes read from the peer (cut nothing yet)."""
        pos = self._pos
        if pos < len(self._data):  # bytes left from before: one copy of them and ``data``
            self._data = b"".join((memoryview(self._data)[pos:], data))
        else:
            self._data = data if type(data) is bytes else bytes(data)  # (a bytearray's slices
            # are not bytes)
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """``push(data)``, then every complete frame."""
        self.push(data)
        return self.pull(0x7FFFFFFF, 0x7FFFFFFF)

    def pull(self, max_frames: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Cut up to ``max_frames`` frames whose lengths add up to at most ``max_bytes`` (at least
        one frame when one is complete); set ``more``."""
        if self.failed:
            raise GliFrameError(GliErrorCode.BAD_LENGTH, "decoder already failed")
        src = self._data
        pos = self._pos
        size = len(src)
        frames: list[tuple[int, bytes]] = []
        count = 0
        taken = 0
        more = False
        unpack = HEADER.unpack_from
        while size - pos >= HEADER_SIZE:
            gli_type, length, version, app = unpack(src, pos)
            if version != GLI_VERSION or app != GLI_APPLICATION or gli_type > 3 or length < 2:
                if count:  # hand out the frames before it; the next pull raises
                    more = True
                    break
                self.failed = True
                self._data = b""
                self._pos = 0
                raise _header_error(gli_type, length, version, app)
            end = pos + 4 + length
            if end > size:
                break
            if count and (count >= max_frames or taken + length > max_bytes):
                more = True  # (so a frame larger than max_bytes is always handed out alone)
                break
            frames.append((gli_type, src[pos + HEADER_SIZE : end]))
            count += 1
            taken += length
            pos = end
        self.more = more
        if pos < size:
            self._pos = pos
        else:
            self._data = b""
            self._pos = 0
        return frames


def _header_error(gli_type: int, length: int, version: int, app: int) -> GliFrameError:
    if version != GLI_VERSION:
        return GliFrameError(GliErrorCode.BAD_VERSION, f"version {version}")
    if app != GLI_APPLICATION:
        return GliFrameError(GliErrorCode.BAD_APPLICATION, f"application id {app}")
    if gli_type > 3:
        return GliFrameError(GliErrorCode.UNKNOWN_TYPE, f"message type {gli_type}")
    return GliFrameError(GliErrorCode.BAD_LENGTH, f"message length {length}")
