"""GLI framing: the 6-byte link header that carries every IVR XML document (PROTOCOL.md §1).

Header (network byte order): MessageType (uint16), MessageLength (uint16: payload + 2),
VersionNumber (uint8, always 2), ApplicationID (uint8, always 0). A frame is ``4 + MessageLength``
bytes long. :class:`FrameDecoder` cuts frames out of a byte stream incrementally: several frames in
one read, or one frame split over many reads, cost O(n) in the bytes received and never rescan.
A header it cannot trust raises :class:`GliFrameError`, whose ``code`` is the GLI Error frame the
peer gets before the link is closed (PROTOCOL.md §9.4.1).
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

    ``feed(data)`` appends bytes and returns every complete ``(type, payload)`` frame, in order.
    After a :class:`GliFrameError` the decoder is broken for good (``failed`` is true): the caller
    sends the error frame and closes the link.
    """

    __slots__ = ("_buffer", "failed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.failed = False

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        if self.failed:
            raise GliFrameError(GliErrorCode.BAD_LENGTH, "decoder already failed")
        buf = self._buffer
        # Cut frames out of an immutable bytes object: one copy per payload. Usually nothing is
        # pending and that object is ``data`` itself; otherwise the pending bytes and ``data``.
        if buf:
            buf += data
            src = bytes(buf)
            buf.clear()
        else:
            src = data if type(data) is bytes else bytes(data)  # (a bytearray's slices are not)
        frames: list[tuple[int, bytes]] = []
        size = len(src)
        pos = 0
        unpack = HEADER.unpack_from
        while size - pos >= HEADER_SIZE:
            gli_type, length, version, app = unpack(src, pos)
            if version != GLI_VERSION or app != GLI_APPLICATION or gli_type > 3 or length < 2:
                self.failed = True
                raise _header_error(gli_type, length, version, app)
            end = pos + 4 + length
            if end > size:
                break
            frames.append((gli_type, src[pos + HEADER_SIZE : end]))
            pos = end
        if pos < size:
            buf += src[pos:] if pos else src
        return frames


def _header_error(gli_type: int, length: int, version: int, app: int) -> GliFrameError:
    if version != GLI_VERSION:
        return GliFrameError(GliErrorCode.BAD_VERSION, f"version {version}")
    if app != GLI_APPLICATION:
        return GliFrameError(GliErrorCode.BAD_APPLICATION, f"application id {app}")
    if gli_type > 3:
        return GliFrameError(GliErrorCode.UNKNOWN_TYPE, f"message type {gli_type}")
    return GliFrameError(GliErrorCode.BAD_LENGTH, f"message length {length}")
