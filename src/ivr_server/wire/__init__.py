"""Bytes <-> typed messages: GLI framing, the GctiMsg XML codec and the generated messages.

No asyncio, no clock: everything here is a pure function of its input.
"""

from ivr_server.wire.codec import (
    MAX_DEPTH,
    DecodeError,
    Document,
    PartialDocument,
    decode_document,
    encode_document,
    encode_document_parts,
    find_call_id,
    forget_memos,
)
from ivr_server.wire.gli import (
    MAX_PAYLOAD,
    FrameDecoder,
    GliErrorCode,
    GliFrameError,
    GliType,
    encode_error_frame,
    encode_frame,
)
from ivr_server.wire.kv import Item, KvList, List, Node, NVPair, int_node, str_node
from ivr_server.wire.messages import MESSAGE_TAGS, SPECS, Message, Part

__all__ = [
    "MAX_DEPTH",
    "MAX_PAYLOAD",
    "MESSAGE_TAGS",
    "SPECS",
    "DecodeError",
    "Document",
    "FrameDecoder",
    "GliErrorCode",
    "GliFrameError",
    "GliType",
    "Item",
    "KvList",
    "List",
    "Message",
    "NVPair",
    "Node",
    "Part",
    "PartialDocument",
    "decode_document",
    "encode_document",
    "encode_document_parts",
    "encode_error_frame",
    "encode_frame",
    "find_call_id",
    "forget_memos",
    "int_node",
    "str_node",
]
