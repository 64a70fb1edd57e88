"""Element tree → typed message: the second half of decoding a GctiMsg document (PROTOCOL.md §2.3).

Lenient in the ways real drivers need: undeclared extra attributes are ignored, children come in
any order, the guide's spellings of some values are accepted (the schema's ``value_aliases``).
Strict about the schema otherwise: a missing required attribute, an unknown value, an unexpected
child or text raises :class:`~ivr_server.wire.xmltree.DecodeError`, which carries what could
still be read (CallId, element, ReqId, RequestId) so the session can give the documented answer.
Documents that repeat with only their CallId changed are taken from a :class:`~.memo.Memo`.
"""

from __future__ import annotations

__all__ = ["Document", "PartialDocument", "decode_document", "decoded_memo"]

import re
from typing import Any, Final

from ivr_server.wire.kv import Item, KvList, List, Node, NVPair
from ivr_server.wire.memo import MEMO_MAX_CALL_ID, MEMO_MAX_ENTRIES, MEMO_MAX_PAYLOAD, Memo
from ivr_server.wire.messages import MESSAGE_TAGS, SPECS, Message, Part
from ivr_server.wire.schema import ChildSpec, ElementSpec
from ivr_server.wire.xmltree import (
    DecodeError,
    El,
    TreeBuilder,
    find_call_id,
    new_parser,
    parse,
    parse_tree,
    root_of,
    simple_tree,
    split_prolog,
)

INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1

Document = tuple[str | None, Message]
"""A decoded document: its CallId (``None`` for the DialOut/DialOutError forms) and message."""

_MEMO_CALL_ID_TEXT: Final = re.compile(rb"[A-Za-z0-9_.:@#+-]{1,256}")
decoded_memo: Final[Memo[bytes, tuple[bytes, Message]]] = Memo(MEMO_MAX_ENTRIES)
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
    if not decoded_memo.enabled or len(payload) > MEMO_MAX_PAYLOAD:
        return _decode(payload)
    start = payload.find(b"<CallId>") + 8
    end = payload.find(b"</CallId>", start) if start >= 8 else -1
    if end <= start or end - start > MEMO_MAX_CALL_ID:
        return _decode(payload)
    text = payload[start:end]
    if not text.isalnum() and _MEMO_CALL_ID_TEXT.fullmatch(text) is None:
        return _decode(payload)
    key = payload[end:]
    call_id = text.decode("ascii")
    remembered = decoded_memo.values.get(key)
    if remembered is not None:
        prefix, message = remembered
        if len(prefix) == start and payload.startswith(prefix):
            return call_id, message
    document = _decode(payload)
    if document[0] == call_id and payload.count(b"<CallId>") == 1:
        decoded_memo.offer(key, (payload[:start], document[1]))
    return document


def _decode(payload: bytes) -> Document:
    try:
        root = parse_tree(payload)
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
        self._builder: TreeBuilder | None = None

    def step(self, max_bytes: int) -> Document | None:
        payload = self._payload
        try:
            if self._pos < 0:
                body, encoding = split_prolog(payload)
                if encoding in (None, "UTF-8", "ISO-8859-1"):
                    simple = simple_tree(body, encoding or "UTF-8")
                    if simple is not None:  # (one regular expression: no pieces needed)
                        return _document(simple, payload)
                self._parser, self._builder = new_parser(encoding)
                self._body = body
                self._pos = 0
            if not self._parsed:
                body = self._body
                end = self._pos + max(1, max_bytes)
                self._parsed = end >= len(body)
                parse(self._parser, body[self._pos : end], self._parsed)
                self._pos = end
                return None
            assert self._builder is not None
            root = root_of(self._builder)
        except DecodeError as exc:
            exc.call_id = find_call_id(payload)
            raise
        return _document(root, payload)


def _document(root: El, payload: bytes) -> Document:
    """The document of a parsed tree (``payload``: its bytes, to find a CallId in)."""
    if root[0] != "GctiMsg":
        raise DecodeError(
            f"root element {root[0]!r} is not GctiMsg",
            well_formed=False,
            call_id=find_call_id(payload),
        )
    call_id: str | None = None
    message_el: El | None = None
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


def _request_id(el: El) -> str | None:
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


def _decode_element(spec: ElementSpec, el: El) -> Any:
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


def _decode_text(el: El, cs: ChildSpec) -> str:
    if el[2]:
        raise _Invalid(f"{el[0]} must hold text only")
    text: str = el[3] or ""
    return text


def _decode_kvlist(el: El, cs: ChildSpec) -> KvList | None:
    if el[3] is not None and el[3].strip():
        raise _Invalid(f"unexpected text in {el[0]}")
    if not el[2]:
        return None  # an empty list is the same as an absent one
    return _decode_items(el[2], allow_lists=cs.name != "ConfigOptions", depth=0)


def _decode_items(children: list[El], *, allow_lists: bool, depth: int) -> KvList:
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


def _decode_nvpairs(el: El, cs: ChildSpec) -> tuple[NVPair, ...] | None:
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


def _decode_part(el: El, cs: ChildSpec) -> Part:
    part: Part = _decode_element(SPECS[cs.name], el)
    return part


_CHILD_DECODERS: Final = {
    "text": _decode_text,
    "kvlist": _decode_kvlist,
    "nvpairs": _decode_nvpairs,
    "element": _decode_part,
}
