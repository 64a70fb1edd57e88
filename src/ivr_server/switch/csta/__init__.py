"""The premise link's bottom half: CSTA Phase III XML (ECMA-269/323/354), sans-IO.

``framing`` (ECMA-323 Annex J.2 frames), ``messages`` (typed documents), ``codec`` (XML ↔
messages, hardened), ``dialects`` (PBX differences), ``events`` and ``session`` (the client
application session: invoke ids, heartbeat, monitors), ``server`` (the PBX's side of a session,
for the simulator: ``docs/csta-sim.md``). See ``docs/behind.md``.
"""

from __future__ import annotations

__all__ = [
    "DIALECTS",
    "CstaDecodeError",
    "CstaSession",
    "Dialect",
    "FrameDecoder",
    "FramingError",
    "SessionState",
    "decode",
    "encode",
    "encode_frame",
]

from ivr_server.switch.csta.codec import CstaDecodeError, decode, encode
from ivr_server.switch.csta.dialects import DIALECTS, Dialect
from ivr_server.switch.csta.framing import FrameDecoder, FramingError, encode_frame
from ivr_server.switch.csta.session import CstaSession, SessionState
