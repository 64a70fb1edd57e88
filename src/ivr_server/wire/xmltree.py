"""Bytes → a small element tree: the first half of decoding a GctiMsg document (PROTOCOL.md §2.3).

The declaration and DOCTYPE are matched by one regular expression and only the body goes to a
fresh expat parser (its C code does the well-formedness work); the most frequent documents (a
CallId and one element of attributes) need no parser at all (:func:`simple_tree`). Anything
hostile is refused: no DOCTYPE internal subset, no entity declaration (so no entity is ever
expanded), no external DTD or entity ever read, nesting bounded by :data:`MAX_DEPTH`. Whatever is
wrong raises :class:`DecodeError`.

A tree node is a list ``[tag, attrs, children, text or None]`` (:data:`El`): cheaper to build
from expat's callbacks than objects.
"""

from __future__ import annotations

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "El",
    "TreeBuilder",
    "find_call_id",
    "new_parser",
    "parse",
    "parse_tree",
    "root_of",
    "simple_tree",
    "split_prolog",
]

import re
from typing import Any, Final
from xml.parsers import expat

from ivr_server.errors import RemoteProtocolError

MAX_DEPTH: Final = 32
"""Deepest element nesting accepted (PROTOCOL.md §2.3 parsing safety)."""


class DecodeError(RemoteProtocolError):
    """A Data frame that is not a valid GctiMsg document.

    ``well_formed`` is false when the XML itself is broken (or hostile); then only ``call_id`` may be
    known, found by a plain text search. When it is true the document parsed but breaks the schema,
    and ``tag``, ``req_id`` and ``request_id`` say what it was trying to be.
    """

    def __init__(
        self,
        reason: str,
        *,
        well_formed: bool,
        call_id: str | None = None,
        tag: str | None = None,
        req_id: str | None = None,
        request_id: str | None = None,
        attribute: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.attribute = attribute
        """The attribute whose absence or value made the message invalid, if that was it."""
        self.reason = reason
        self.well_formed = well_formed
        self.call_id = call_id
        self.tag = tag
        self.req_id = req_id
        self.request_id = request_id


_PROLOG: Final = re.compile(
    rb"""\s*(?:<\?xml\s+version\s*=\s*(["'])1\.[0-9]+\1"""
    rb"""(?:\s+encoding\s*=\s*(["'])([A-Za-z][A-Za-z0-9._-]*)\2)?"""
    rb"""(?:\s+standalone\s*=\s*(["'])(?:yes|no)\4)?\s*\?>)?"""
    rb"""\s*(?:<!DOCTYPE\s+GctiMsg(?:\s+SYSTEM\s+(?:"[^"<>\[\]]*"|'[^'<>\[\]]*'))?\s*>)?\s*"""
)
_ENCODINGS: Final = {
    "iso-8859-1": "ISO-8859-1",
    "iso8859-1": "ISO-8859-1",
    "latin-1": "ISO-8859-1",
    "latin1": "ISO-8859-1",
    "utf-8": "UTF-8",
    "utf8": "UTF-8",
    "us-ascii": "US-ASCII",
    "ascii": "US-ASCII",
}
_CALL_ID: Final = re.compile(rb"<CallId>([^<&]{1,512})</CallId>")

El = list[Any]
"""A tree node built by the expat handlers: ``[tag, attrs, children, text or None]``."""


class TreeBuilder:
    """expat handlers that build a small list-based tree, refusing anything hostile."""

    __slots__ = ("root", "stack")

    def __init__(self) -> None:
        self.stack: list[El] = []
        self.root: El | None = None

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        el: El = [tag, attrs, [], None]
        stack = self.stack
        if stack:
            stack[-1][2].append(el)
            if len(stack) >= MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH}")
        else:
            self.root = el
        stack.append(el)

    def end(self, tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        stack = self.stack
        if stack:
            top = stack[-1]
            top[3] = text if top[3] is None else top[3] + text

    @staticmethod
    def doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: int) -> None:
        if has_internal_subset:
            raise _Refused("DOCTYPE with an internal subset")

    @staticmethod
    def entity_decl(*args: object) -> None:
        raise _Refused("entity declaration")

    @staticmethod
    def external_entity(*args: object) -> int:
        raise _Refused("external entity reference")


class _Refused(Exception):
    """Raised inside expat handlers for hostile input."""


_SIMPLE: Final = re.compile(
    rb"<GctiMsg>\s*<CallId>([A-Za-z0-9_.:@#+-]{1,256})</CallId>\s*"
    rb"<([A-Za-z]{1,40})((?:\s+[A-Za-z_][A-Za-z0-9_]{0,40}\s*=\s*"
    rb"(?:'[^'\"<>&\x00-\x1f]*'|\"[^'\"<>&\x00-\x1f]*\"))*)\s*(?:/>|>\s*</\2>)"
    rb"\s*</GctiMsg>\s*\Z"
)
"""The most frequent documents (a CallId and one element with attributes and no content), which
need no XML parser: no entity, no character reference, no markup or control character in any
value. Anything else, however slightly different, goes to expat."""

_SIMPLE_ATTR: Final = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")")


def simple_tree(body: bytes, encoding: str) -> El | None:
    """The tree of a :data:`_SIMPLE` document, or ``None`` to let expat parse it."""
    if body.count(b"<") > 6:  # more markup than a simple document has: skip the longer match
        return None
    m = _SIMPLE.match(body)
    if m is None:
        return None
    codec = "latin-1" if encoding == "ISO-8859-1" else "utf-8"
    try:
        attrs: dict[str, str] = {}
        pairs = _SIMPLE_ATTR.findall(m.group(3))
        for name, single, double in pairs:
            attrs[name.decode("ascii")] = (single or double).decode(codec)
        if len(attrs) != len(pairs):
            return None  # a repeated attribute: expat reports the error
        call_id = m.group(1).decode("ascii")
    except UnicodeDecodeError:
        return None
    message: El = [m.group(2).decode("ascii"), attrs, [], None]
    return ["GctiMsg", {}, [["CallId", {}, [], call_id], message], None]


def split_prolog(payload: bytes) -> tuple[bytes, str | None]:
    """The body after the declaration and DOCTYPE, and the declared encoding (``None``: none
    declared)."""
    m = _PROLOG.match(payload)
    if m is None:
        return payload, None
    encoding: str | None = None
    if m.group(1) is not None:  # a declaration was matched: its encoding, else UTF-8
        declared = m.group(3)
        encoding = "UTF-8"
        if declared is not None:
            encoding = _ENCODINGS.get(declared.decode("ascii").lower(), "")
            if not encoding:
                raise DecodeError(f"unsupported encoding {declared!r}", well_formed=False)
    return payload[m.end() :], encoding


def new_parser(encoding: str | None) -> tuple[Any, TreeBuilder]:
    """A fresh expat parser for a body in ``encoding`` (``None``: as declared, else UTF-8), wired
    to a :class:`TreeBuilder` that refuses anything hostile."""
    builder = TreeBuilder()
    parser = expat.ParserCreate(encoding)
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = builder.doctype
    parser.EntityDeclHandler = builder.entity_decl
    parser.UnparsedEntityDeclHandler = builder.entity_decl
    parser.ExternalEntityRefHandler = builder.external_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser, builder


def parse(parser: Any, data: bytes, final: bool) -> None:
    """Feed ``data`` to ``parser`` (``final``: the last piece); any error is a :class:`DecodeError`."""
    try:
        parser.Parse(data, final)
    # One name per exception type: a mypyc-compiled build gives a variable a single type.
    except _Refused as refused:
        raise DecodeError(f"refused: {refused}", well_formed=False) from None
    except expat.ExpatError as bad_xml:
        raise DecodeError(f"not well-formed XML: {bad_xml}", well_formed=False) from None
    except (ValueError, LookupError) as undecodable:  # e.g. an encoding expat cannot handle
        raise DecodeError(f"undecodable document: {undecodable}", well_formed=False) from None


def root_of(builder: TreeBuilder) -> El:
    """The root element the parse built; a :class:`DecodeError` when there is none."""
    if builder.root is None:
        raise DecodeError("no root element", well_formed=False)
    return builder.root


def parse_tree(payload: bytes) -> El:
    """The element tree of a whole document; raises :class:`DecodeError`."""
    body, encoding = split_prolog(payload)
    if encoding in (None, "UTF-8", "ISO-8859-1"):
        simple = simple_tree(body, encoding or "UTF-8")
        if simple is not None:
            return simple
    parser, builder = new_parser(encoding)
    parse(parser, body, True)
    return root_of(builder)


def find_call_id(payload: bytes) -> str | None:
    """The CallId of a document that could not be parsed, found by a plain text search."""
    m = _CALL_ID.search(payload)
    if m is None:
        return None
    try:
        return m.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return m.group(1).decode("latin-1")
