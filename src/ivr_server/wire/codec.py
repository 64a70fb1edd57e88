"""GctiMsg XML documents <-> typed messages (PROTOCOL.md §2, §4).

Decoding is hardened and lenient in the ways real drivers need (§2.3): either quote style, any
whitespace between declaration, DOCTYPE and root, no DOCTYPE or no declaration at all, lower-case
encoding names, empty elements written with an end tag, undeclared extra attributes (ignored) and
children in any order. It is strict about what could hurt: no DOCTYPE internal subset, no entity
declaration (so no entity is ever expanded), no external DTD or entity ever read, nesting bounded by
:data:`MAX_DEPTH`. Anything else wrong raises :class:`DecodeError`, which carries what could still
be read (CallId, element, ReqId, RequestId) so the session can give the documented answer.

Encoding writes exactly what the real server writes (§2.2): ``<?xml version='1.0'
encoding='ISO-8859-1'?>`` then ``<!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>``, single-quoted attributes
in DTD order, children in DTD order, no whitespace, empty elements self-closed, all five special
characters escaped, and characters outside the output encoding as hexadecimal character references.

Speed: the declaration and DOCTYPE are matched by one regular expression and only the body goes to
a fresh expat parser (its C code does the well-formedness work); documents with an unusual prolog
take the slower path where expat parses everything. See ``bench/bench_codec.py``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Hashable, Sequence
from typing import Any, Final, Generic, TypeVar
from xml.parsers import expat

from msgspec.structs import astuple

from ivr_server.errors import RemoteProtocolError
from ivr_server.wire.kv import Item, KvList, List, Node, NVPair
from ivr_server.wire.messages import MESSAGE_TAGS, SPECS, Message, Part
from ivr_server.wire.schema import ChildSpec, ElementSpec

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "Document",
    "PartialDocument",
    "decode_document",
    "encode_document",
    "encode_document_parts",
    "find_call_id",
    "forget_memos",
]

MAX_DEPTH: Final = 32
"""Deepest element nesting accepted (PROTOCOL.md §2.3 parsing safety)."""
INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1

Document = tuple[str | None, Message]
"""A decoded document: its CallId (``None`` for the DialOut/DialOutError forms) and message."""


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


# --------------------------------------------------------------------------- decoding

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

# A tree node built by the expat handlers: [tag, attrs, children, text or None]
_El = list[Any]


class _TreeBuilder:
    """expat handlers that build a small list-based tree, refusing anything hostile."""

    __slots__ = ("root", "stack")

    def __init__(self) -> None:
        self.stack: list[_El] = []
        self.root: _El | None = None

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        el: _El = [tag, attrs, [], None]
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


def _simple_tree(body: bytes, encoding: str) -> _El | None:
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
    message: _El = [m.group(2).decode("ascii"), attrs, [], None]
    return ["GctiMsg", {}, [["CallId", {}, [], call_id], message], None]


def _split_prolog(payload: bytes) -> tuple[bytes, str | None]:
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


def _new_parser(encoding: str | None) -> tuple[Any, _TreeBuilder]:
    builder = _TreeBuilder()
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


def _parse(parser: Any, data: bytes, final: bool) -> None:
    try:
        parser.Parse(data, final)
    # One name per exception type: a mypyc-compiled build gives a variable a single type.
    except _Refused as refused:
        raise DecodeError(f"refused: {refused}", well_formed=False) from None
    except expat.ExpatError as bad_xml:
        raise DecodeError(f"not well-formed XML: {bad_xml}", well_formed=False) from None
    except (ValueError, LookupError) as undecodable:  # e.g. an encoding expat cannot handle
        raise DecodeError(f"undecodable document: {undecodable}", well_formed=False) from None


def _root(builder: _TreeBuilder) -> _El:
    if builder.root is None:
        raise DecodeError("no root element", well_formed=False)
    return builder.root


def _parse_tree(payload: bytes) -> _El:
    body, encoding = _split_prolog(payload)
    if encoding in (None, "UTF-8", "ISO-8859-1"):
        simple = _simple_tree(body, encoding or "UTF-8")
        if simple is not None:
            return simple
    parser, builder = _new_parser(encoding)
    _parse(parser, body, True)
    return _root(builder)


def find_call_id(payload: bytes) -> str | None:
    """The CallId of a document that could not be parsed, found by a plain text search."""
    m = _CALL_ID.search(payload)
    if m is None:
        return None
    try:
        return m.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return m.group(1).decode("latin-1")


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Memo(Generic[K, V]):
    """Results remembered by key: a key is admitted the second time it is offered (one-off keys
    never push out repeated ones; only their hashes are kept meanwhile), and each table is
    emptied when it reaches ``size``. Callers offer only small results."""

    __slots__ = ("enabled", "seen_once", "size", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.enabled = True
        self.values: dict[K, V] = {}
        self.seen_once: set[int] = set()

    def offer(self, key: K, value: V) -> None:
        if not self.enabled:
            return
        seen = self.seen_once
        digest = hash(key)
        if digest in seen:
            seen.discard(digest)
            if len(self.values) >= self.size:
                self.values.clear()
            self.values[key] = value
        else:
            if len(seen) >= self.size:
                seen.clear()
            seen.add(digest)

    def clear(self) -> None:
        self.values.clear()
        self.seen_once.clear()


_MEMO_CALL_ID_TEXT: Final = re.compile(rb"[A-Za-z0-9_.:@#+-]{1,256}")
_MEMO_MAX_ENTRIES: Final = 4096
_MEMO_MAX_PAYLOAD: Final = 2048
_MEMO_MAX_CALL_ID: Final = 256
_decoded: Final[_Memo[bytes, tuple[bytes, Message]]] = _Memo(_MEMO_MAX_ENTRIES)
"""Decoded messages by what follows their document's CallId text (from ``</CallId>`` on), with
what precedes it (to ``<CallId>``): see decode_document."""


def decode_document(payload: bytes) -> Document:
    """Decode one Data frame's payload into ``(CallId, message)``; raises :class:`DecodeError`.

    IVR drivers send the same documents again and again with only the CallId changed
    (``CallInfoReq``, ``EndCall EndCause='Normal'``, ``RouteRequest`` to the same routing point,
    ``UDataGet`` of the same keys...). Messages are immutable, so a document whose bytes, apart
    from a plain CallId (letters, digits, ``_.:@#+-``), equal those of one decoded before gets that
    message again without parsing: the memo is keyed by the bytes after the CallId's text and
    checks those before it. A document is remembered the second time it is seen (a ``NewCall``
    with the caller's number or a ``UDataSet`` of the caller's data rarely repeats and would only
    push out those that do). Only documents of up to 2 KB with exactly one ``<CallId>`` are
    remembered, 4,096 at most (each table is emptied when full): unusual or hostile input costs
    two byte searches more and is parsed as always.
    """
    if not _decoded.enabled or len(payload) > _MEMO_MAX_PAYLOAD:
        return _decode(payload)
    start = payload.find(b"<CallId>") + 8
    end = payload.find(b"</CallId>", start) if start >= 8 else -1
    if end <= start or end - start > _MEMO_MAX_CALL_ID:
        return _decode(payload)
    text = payload[start:end]
    if not text.isalnum() and _MEMO_CALL_ID_TEXT.fullmatch(text) is None:
        return _decode(payload)
    key = payload[end:]
    call_id = text.decode("ascii")
    remembered = _decoded.values.get(key)
    if remembered is not None:
        prefix, message = remembered
        if len(prefix) == start and payload.startswith(prefix):
            return call_id, message
    document = _decode(payload)
    if document[0] == call_id and payload.count(b"<CallId>") == 1:
        _decoded.offer(key, (payload[:start], document[1]))
    return document


def _decode(payload: bytes) -> Document:
    try:
        root = _parse_tree(payload)
    except DecodeError as exc:
        exc.call_id = find_call_id(payload)
        raise
    return _document(root, payload)


class PartialDocument:
    """One document decoded a piece at a time. Each :meth:`step` parses up to ``max_bytes`` more
    of it and returns ``None``; the step after the last piece builds the message and returns the
    document. :class:`DecodeError` is raised as soon as the document is known to be bad. The
    result is what :func:`decode_document` gives for the same bytes. The link uses this for
    documents too large to decode in one turn of the server's event loop, so that none holds up
    the other connections for longer than a piece takes (docs/design.md, "Fairness")."""

    __slots__ = ("_body", "_builder", "_parsed", "_parser", "_payload", "_pos")

    def __init__(self, payload: bytes) -> None:
        self._payload = payload
        self._body = b""
        self._pos = -1  # the prolog is not read yet
        self._parsed = False
        self._parser: Any = None
        self._builder: _TreeBuilder | None = None

    def step(self, max_bytes: int) -> Document | None:
        payload = self._payload
        try:
            if self._pos < 0:
                body, encoding = _split_prolog(payload)
                if encoding in (None, "UTF-8", "ISO-8859-1"):
                    simple = _simple_tree(body, encoding or "UTF-8")
                    if simple is not None:  # (one regular expression: no pieces needed)
                        return _document(simple, payload)
                self._parser, self._builder = _new_parser(encoding)
                self._body = body
                self._pos = 0
            if not self._parsed:
                body = self._body
                end = self._pos + max(1, max_bytes)
                self._parsed = end >= len(body)
                _parse(self._parser, body[self._pos : end], self._parsed)
                self._pos = end
                return None
            assert self._builder is not None
            root = _root(self._builder)
        except DecodeError as exc:
            exc.call_id = find_call_id(payload)
            raise
        return _document(root, payload)


def _document(root: _El, payload: bytes) -> Document:
    """The document of a parsed tree (``payload``: its bytes, to find a CallId in)."""
    if root[0] != "GctiMsg":
        raise DecodeError(
            f"root element {root[0]!r} is not GctiMsg",
            well_formed=False,
            call_id=find_call_id(payload),
        )
    call_id: str | None = None
    message_el: _El | None = None
    seen_call_id = False
    for child in root[2]:
        tag = child[0]
        if tag == "CallId":
            if seen_call_id or child[2]:
                raise DecodeError("bad CallId element", well_formed=True, call_id=call_id)
            seen_call_id = True
            call_id = child[3] or ""
        elif message_el is None:
            message_el = child
        else:
            raise DecodeError("more than one message in GctiMsg", well_formed=True, call_id=call_id)
    if root[3] is not None and root[3].strip():
        raise DecodeError("text inside GctiMsg", well_formed=True, call_id=call_id)
    if message_el is None:
        raise DecodeError("GctiMsg holds no message", well_formed=True, call_id=call_id)
    tag = message_el[0]
    attrs = message_el[1]
    if tag not in MESSAGE_TAGS:
        raise DecodeError(
            f"unknown message {tag!r}",
            well_formed=True,
            call_id=call_id,
            tag=tag,
            req_id=attrs.get("ReqId"),
        )
    spec = SPECS[tag]
    try:
        message = _decode_element(spec, message_el)
    except _Invalid as invalid:  # not ``exc``: mypyc gives a name one type per function
        raise DecodeError(
            f"{tag}: {invalid}",
            well_formed=True,
            call_id=call_id,
            tag=tag,
            req_id=attrs.get("ReqId"),
            request_id=_request_id(message_el),
            attribute=invalid.attribute,
        ) from None
    if spec.cls.call_id_kind == "none":  # type: ignore[attr-defined]
        if seen_call_id:
            raise DecodeError(
                f"{tag} carries no CallId", well_formed=True, call_id=call_id, tag=tag
            )
    elif not seen_call_id:
        raise DecodeError(
            f"{tag} without CallId",
            well_formed=True,
            tag=tag,
            req_id=attrs.get("ReqId"),
            request_id=_request_id(message_el),
        )
    assert isinstance(message, Message)
    return call_id, message


def _request_id(el: _El) -> str | None:
    for child in el[2]:
        if child[0] == "RequestId" and not child[2]:
            text: str = child[3] or ""
            return text
    return None


class _Invalid(Exception):
    """Schema violation inside a message (internal; becomes DecodeError)."""

    def __init__(self, reason: str, attribute: str | None = None) -> None:
        super().__init__(reason)
        self.attribute = attribute


def _decode_element(spec: ElementSpec, el: _El) -> Any:
    attrs: dict[str, str] = el[1]
    if spec.attr_aliases:
        for alias, real in spec.attr_aliases.items():
            if alias in attrs and real not in attrs:
                attrs[real] = attrs[alias]
    kw: dict[str, Any] = {}
    for a in spec.attrs:
        v = attrs.get(a.name)
        if v is None:
            if a.required:
                raise _Invalid(f"missing attribute {a.name}", a.name)
            continue  # the class default (DTD default or None) applies
        if a.values is not None and v not in a.values:
            if v not in a.value_aliases:
                raise _Invalid(f"{a.name}={v!r} is not one of {sorted(a.values)}", a.name)
            v = a.value_aliases[v]
        kw[a.name] = v
    children = el[2]
    if children:
        by_name = spec.child_by_name
        for child in children:
            cs = by_name.get(child[0])
            if cs is None:
                if child[0] in spec.child_attrs and child[0] not in kw:
                    kw[child[0]] = _decode_text(child, _TEXT_CHILD)
                    continue
                raise _Invalid(f"unexpected child element {child[0]}")
            if cs.name in kw:
                raise _Invalid(f"repeated child element {cs.name}")
            kw[cs.name] = _CHILD_DECODERS[cs.kind](child, cs)
    text = el[3]
    if text is not None and text.strip():
        raise _Invalid(f"unexpected text in {el[0]}")
    for cs in spec.children:
        if cs.required and kw.get(cs.name) is None:
            raise _Invalid(f"missing child element {cs.name}")
    _check_choices(spec, kw)
    return spec.cls(**kw)


_TEXT_CHILD: Final = ChildSpec("text", "text", False)


def _check_choices(spec: ElementSpec, kw: dict[str, Any]) -> None:
    if spec.exactly_one_of:
        present = [n for n in spec.exactly_one_of if kw.get(n) is not None]
        if len(present) != 1:
            raise _Invalid(f"needs exactly one of {', '.join(spec.exactly_one_of)}")
        return
    chosen: dict[str, str] = {}
    for cs in spec.children:
        if cs.group is None or kw.get(cs.name) is None:
            continue
        assert cs.alt is not None
        prior = chosen.setdefault(cs.group, cs.alt)
        if prior != cs.alt:
            raise _Invalid("legacy NVPair lists and typed lists cannot be mixed")


def _decode_text(el: _El, cs: ChildSpec) -> str:
    if el[2]:
        raise _Invalid(f"{el[0]} must hold text only")
    text: str = el[3] or ""
    return text


def _decode_kvlist(el: _El, cs: ChildSpec) -> KvList | None:
    if el[3] is not None and el[3].strip():
        raise _Invalid(f"unexpected text in {el[0]}")
    if not el[2]:
        return None  # an empty list is the same as an absent one
    return _decode_items(el[2], allow_lists=cs.name != "ConfigOptions", depth=0)


def _decode_items(children: list[_El], *, allow_lists: bool, depth: int) -> KvList:
    items: list[Item] = []
    for child in children:
        tag = child[0]
        attrs = child[1]
        if tag == "Node":
            name = attrs.get("Name")
            typ = attrs.get("Type")
            val = attrs.get("Val")
            if name is None or typ is None or val is None:
                raise _Invalid("Node needs Name, Type and Val")
            if child[2]:
                raise _Invalid("Node must be empty")
            if typ == "Int":
                try:
                    iv = int(val, 10)
                except ValueError:
                    raise _Invalid(f"Node {name!r}: Int value {val!r} is not an integer") from None
                if not INT_MIN <= iv <= INT_MAX:
                    raise _Invalid(f"Node {name!r}: Int value {val!r} is out of range")
            elif typ != "Str" and typ != "Bin":
                raise _Invalid(f"Node {name!r}: unknown Type {typ!r}")
            items.append(Node(Name=name, Type=typ, Val=val))
        elif tag == "List" and allow_lists:
            name = attrs.get("Name")
            if name is None:
                raise _Invalid("List needs a Name")
            if not child[2]:
                raise _Invalid(f"List {name!r} is empty")
            if child[3] is not None and child[3].strip():
                raise _Invalid(f"unexpected text in List {name!r}")
            items.append(
                List(Name=name, items=_decode_items(child[2], allow_lists=True, depth=depth + 1))
            )
        else:
            raise _Invalid(f"unexpected element {tag} in a key/value list")
    return tuple(items)


def _decode_nvpairs(el: _El, cs: ChildSpec) -> tuple[NVPair, ...] | None:
    pairs: list[NVPair] = []
    for child in el[2]:
        if child[0] != "NVPair":
            raise _Invalid(f"unexpected element {child[0]} in {el[0]}")
        name = val = None
        for part in child[2]:
            if part[2]:
                raise _Invalid(f"{part[0]} must hold text only")
            if part[0] == "NVName" and name is None:
                name = part[3] or ""
            elif part[0] == "NVVal" and val is None:
                val = part[3] or ""
            else:
                raise _Invalid(f"unexpected element {part[0]} in NVPair")
        if name is None or val is None:
            raise _Invalid("NVPair needs NVName and NVVal")
        pairs.append(NVPair(NVName=name, NVVal=val))
    return tuple(pairs) if pairs else None


def _decode_part(el: _El, cs: ChildSpec) -> Part:
    part: Part = _decode_element(SPECS[cs.name], el)
    return part


_CHILD_DECODERS: Final = {
    "text": _decode_text,
    "kvlist": _decode_kvlist,
    "nvpairs": _decode_nvpairs,
    "element": _decode_part,
}


# --------------------------------------------------------------------------- encoding

_SPECIAL: Final = re.compile(r"[&<>'\"\x00-\x1f]")
_ESCAPES: Final = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "'": "&apos;",
    '"': "&quot;",
    "\t": "&#x9;",
    "\n": "&#xA;",
    "\r": "&#xD;",
}


# C0 controls other than TAB/LF/CR cannot appear in XML 1.0 at all: write U+FFFD instead.
_ESCAPE_TABLE: Final = {i: _ESCAPES.get(chr(i), "\ufffd") for i in range(32)} | {
    ord(c): text for c, text in _ESCAPES.items()
}


def _esc(value: str) -> str:
    # One search; then one pass in C (a callback per special character cost 0.2 us each).
    if _SPECIAL.search(value) is None:
        return value
    return value.translate(_ESCAPE_TABLE)


def _hex_charref(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(f"&#x{ord(c):X};" for c in bad), exc.end


codecs.register_error("ivr_server.hexcharref", _hex_charref)

_PROLOGS: Final[dict[tuple[str, str], str]] = {}


def _prolog(encoding: str, dtd_file: str) -> str:
    key = (encoding, dtd_file)
    text = _PROLOGS.get(key)
    if text is None:
        text = (
            f"<?xml version='1.0' encoding='{encoding}'?>"
            f"<!DOCTYPE GctiMsg SYSTEM '{_esc(dtd_file)}'><GctiMsg>"
        )
        _PROLOGS[key] = text
    return text


_encoded: Final[_Memo[tuple[Message, str], bytes]] = _Memo(_MEMO_MAX_ENTRIES)
"""Encoded message elements (with ``</GctiMsg>``) by (message, encoding)."""
_heads: Final[_Memo[tuple[str | None, str, str], bytes]] = _Memo(_MEMO_MAX_ENTRIES)
"""Encoded document heads (prolog, ``<GctiMsg>``, the CallId element) by (CallId, encoding, DTD):
every document sent about a call starts with the same bytes."""


def memoize(enabled: bool) -> None:
    """Turn the decode and encode memos on (the default) or off (emptied): benchmarks measure
    the parser and the serialiser themselves that way."""
    for memo in (_decoded, _encoded, _heads):
        memo.enabled = enabled
    forget_memos()


def forget_memos() -> None:
    """Empty the decode and encode memos (they fill again with the traffic that repeats): after
    a crowd of calls has gone, their documents' heads and replies are of no more use."""
    for memo in (_decoded, _encoded, _heads):
        memo.clear()


def _encode_head(call_id: str | None, encoding: str, dtd_file: str) -> bytes:
    head = _prolog(encoding, dtd_file)
    if call_id is not None:
        head = f"{head}<CallId>{_esc(call_id)}</CallId>"
    return head.encode(encoding, "ivr_server.hexcharref")


def encode_document(
    call_id: str | None,
    message: Message,
    *,
    encoding: str = "ISO-8859-1",
    dtd_file: str = "IServer.dtd",
) -> bytes:
    """Serialise a message exactly as the real server does (PROTOCOL.md §2.2).

    Messages are immutable and hashable: the encoded element of one sent again (``CallStatus
    Event='Established'``, the ``UDataResp`` of a request id, the ``RouteResponse`` to the same
    destination...) is taken from a memo like the decoder's, and the head of the document (prolog
    and CallId, the same for every document about a call) from another, and the two are joined."""
    head, body = encode_document_parts(call_id, message, encoding, dtd_file)
    return head + body


def encode_document_parts(
    call_id: str | None, message: Message, encoding: str, dtd_file: str
) -> tuple[bytes, bytes]:
    """:func:`encode_document` as its two parts, head and body: the link copies each into its
    output buffer without joining them first."""
    head_key = (call_id, encoding, dtd_file)
    head = _heads.values.get(head_key)
    if head is None:
        head = _encode_head(call_id, encoding, dtd_file)
        if call_id is None or len(call_id) <= _MEMO_MAX_CALL_ID:
            _heads.offer(head_key, head)
    key: tuple[Message, str] | None = (message, encoding) if _encoded.enabled else None
    try:
        body = _encoded.values.get(key) if key is not None else None
    except TypeError:  # a message built with a list where a tuple belongs: not hashable
        body, key = None, None
    if body is None:
        parts: list[str] = []
        _encode_element(message, SPECS[message.tag], parts)
        parts.append("</GctiMsg>")
        body = "".join(parts).encode(encoding, "ivr_server.hexcharref")
        if key is not None and len(body) <= _MEMO_MAX_PAYLOAD:
            _encoded.offer(key, body)
    return head, body


_ATTR_PLANS: Final[dict[str, tuple[str, tuple[tuple[int, str], ...], tuple[int, ...]]]] = {}


def _attr_plan(
    obj: Any, spec: ElementSpec
) -> tuple[str, tuple[tuple[int, str], ...], tuple[int, ...]]:
    """For a message class: its ``<Tag`` opening, (field index, `` Name='``) per attribute and the
    field index of each child, in emission order (built once per class)."""
    fields: tuple[str, ...] = type(obj).__struct_fields__
    plan = (
        "<" + spec.tag,
        tuple((fields.index(a.name), f" {a.name}='") for a in spec.attrs),
        tuple(fields.index(c.name) for c in spec.children),
    )
    _ATTR_PLANS[spec.tag] = plan
    return plan


def _encode_element(obj: Any, spec: ElementSpec, parts: list[str]) -> None:
    tag = spec.tag
    plan = _ATTR_PLANS.get(tag)
    if plan is None:
        plan = _attr_plan(obj, spec)
    opening, attr_plan, child_indexes = plan
    values = astuple(obj)
    parts.append(opening)
    parts += [
        f"{prefix}{v if v.isalnum() else _esc(v)}'"
        for index, prefix in attr_plan
        if (v := values[index]) is not None
    ]
    opened = False
    for cs, index in zip(spec.children, child_indexes, strict=True):
        v = values[index]
        if v is None or (cs.kind != "text" and cs.kind != "element" and not v):
            continue
        if not opened:
            parts.append(">")
            opened = True
        kind = cs.kind
        if kind == "text":
            if v:
                parts.append(f"<{cs.name}>{_esc(v)}</{cs.name}>")
            else:
                parts.append(f"<{cs.name}/>")
        elif kind == "kvlist":
            parts.append(f"<{cs.name}>")
            _encode_items(v, parts)
            parts.append(f"</{cs.name}>")
        elif kind == "nvpairs":
            parts.append(f"<{cs.name}>")
            for p in v:
                parts.append(
                    f"<NVPair>{_nv_text('NVName', p.NVName)}{_nv_text('NVVal', p.NVVal)}</NVPair>"
                )
            parts.append(f"</{cs.name}>")
        else:
            _encode_element(v, SPECS[cs.name], parts)
    parts.append(f"</{tag}>" if opened else "/>")


def _nv_text(tag: str, value: str) -> str:
    return f"<{tag}>{_esc(value)}</{tag}>" if value else f"<{tag}/>"


def _encode_items(items: Sequence[Item], parts: list[str]) -> None:
    # Sequence, not KvList: a message built with a list still encodes (compiled or not)
    for item in items:
        if type(item) is Node:
            parts.append(
                f"<Node Name='{_esc(item.Name)}' Type='{item.Type}' Val='{_esc(item.Val)}'/>"
            )
        else:
            assert isinstance(item, List)
            parts.append(f"<List Name='{_esc(item.Name)}'>")
            _encode_items(item.items, parts)
            parts.append("</List>")
