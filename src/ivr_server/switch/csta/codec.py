"""CSTA XML documents ↔ the typed structs of ``messages.py``, both directions, sans-IO.

Decoding parses with expat hardened as the IVR side is (``wire/xmltree.py``): no DOCTYPE at all,
no entity declaration or external entity, nesting bounded by ``MAX_DEPTH``, size bounded by
:data:`MAX_DOCUMENT`. Namespaces are not checked: element prefixes are dropped, so the ECMA-323
editions 2-6 (``ecma.ch`` and ``ecma-international.org``), ECMA-354 and vendors' prefixed
documents all read the same; elements a struct does not declare (``extensions``, OpenScape's
``scx:`` private data) are skipped. A well-formed document of an unknown type decodes to
:class:`UnknownDocument`; anything broken or hostile raises :class:`CstaDecodeError`.

Reading and writing are driven by the structs' declarations (:class:`~.messages.Xml`), through one
plan per class built at import: a document type costs a class, never code here.
"""

from __future__ import annotations

__all__ = [
    "CSTA_NAMESPACES",
    "MAX_DOCUMENT",
    "MESSAGE_TYPES",
    "RESPONSE_TYPES",
    "SESSION_NAMESPACE",
    "CstaDecodeError",
    "decode",
    "encode",
]

import types
from typing import (
    Annotated,
    Any,
    Final,
    NamedTuple,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import msgspec

from ivr_server.errors import RemoteProtocolError
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.framing import HEADER_SIZE, MAX_FRAME
from ivr_server.wire import xmltree

CSTA_NAMESPACES: Final = {
    "ed2": "http://www.ecma.ch/standards/ecma-323/csta/ed2",
    "ed3": "http://www.ecma-international.org/standards/ecma-323/csta/ed3",
    "ed4": "http://www.ecma-international.org/standards/ecma-323/csta/ed4",
    "ed5": "http://www.ecma-international.org/standards/ecma-323/csta/ed5",
    "ed6": "http://www.ecma-international.org/standards/ecma-323/csta/ed6",
}
"""The ECMA-323 namespace of each edition (all read; the dialect picks the one written)."""

SESSION_NAMESPACE: Final = "http://www.ecma-international.org/standards/ecma-354/appl_session"
"""ECMA-354 application-session documents."""

MAX_DOCUMENT: Final = MAX_FRAME - HEADER_SIZE
"""The largest document one Annex J.2 frame carries."""


class CstaDecodeError(RemoteProtocolError):
    """A document that is not well-formed, hostile, or missing what its type requires.

    A message error: the link goes on (the frame boundary is intact)."""

    def __init__(self, reason: str, *, tag: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag


_T = TypeVar("_T")
_TEXT, _INT, _BOOL, _DEVICE, _PART, _LIST, _TEXTS = range(7)
_XML_SPACE: Final = " \t\r\n"
_ABSENT_DEVICE: Final = frozenset({"notKnown", "notRequired", "restricted", "notSpecified"})


class _Field(NamedTuple):
    name: str
    path: tuple[str, ...]
    kind: int
    required: bool
    part: type[m.Part] | None
    item: str | None
    device_tag: str


def _element_name(field: str) -> str:
    """``monitor_cross_ref_id`` → ``monitorCrossRefID``."""
    head, *rest = field.split("_")
    return head + "".join("ID" if p == "id" else p.capitalize() for p in rest)


def _plan(cls: type[msgspec.Struct]) -> tuple[_Field, ...]:
    hints = get_type_hints(cls, include_extras=True)
    plan = []
    for info in msgspec.structs.fields(cls):
        hint = hints[info.name]
        meta = m.Xml()
        if get_origin(hint) is Annotated:
            hint, *extras = get_args(hint)
            meta = next(x for x in extras if isinstance(x, m.Xml))
        if get_origin(hint) in (Union, types.UnionType):
            hint = next(a for a in get_args(hint) if a is not type(None))
        part: type[m.Part] | None = None
        if meta.device:
            kind = _DEVICE
        elif get_origin(hint) is tuple and get_args(hint)[0] is str:
            kind = _TEXTS
        elif get_origin(hint) is tuple:
            kind, part = _LIST, get_args(hint)[0]
        elif isinstance(hint, type) and issubclass(hint, m.Part):
            kind, part = _PART, hint
        else:
            kind = {str: _TEXT, int: _INT, bool: _BOOL}[hint]
        path = tuple((meta.path or _element_name(info.name)).split("/"))
        plan.append(_Field(info.name, path, kind, info.required, part, meta.item, meta.device_tag))
    return tuple(plan)


def _subclasses(base: type[_T]) -> list[type[_T]]:
    found: list[type[_T]] = []
    for sub in base.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


MESSAGE_TYPES: Final[dict[str, type[m.CstaMessage]]] = {
    cls.__name__: cls
    for cls in _subclasses(m.CstaMessage)
    if cls not in (m.CstaRequest, m.CstaResponse, m.NegativeResponse, m.CstaEvent)
    and cls is not m.UnknownDocument
    and not cls.__name__.startswith("_")
}
"""Root element name → struct: the decoding registry."""


def _response_name(request: str) -> str:
    family = MESSAGE_TYPES[request].session_family
    return request + ("PosResponse" if family else "Response")


RESPONSE_TYPES: Final[dict[type[m.CstaMessage], type[m.CstaMessage]]] = {
    cls: MESSAGE_TYPES[_response_name(name)]
    for name, cls in MESSAGE_TYPES.items()
    if issubclass(cls, m.CstaRequest)
}
"""Request struct → its positive response struct."""

_PLANS: Final[dict[type[msgspec.Struct], tuple[_Field, ...]]] = {}
for _cls in (*MESSAGE_TYPES.values(), *_subclasses(m.Part)):
    _PLANS[_cls] = _plan(_cls)


# -- decoding ---------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition(":")[2]


def _child(el: xmltree.El, name: str) -> xmltree.El | None:
    for child in el[2]:
        if _local(child[0]) == name:
            return child  # type: ignore[no-any-return]
    return None


def _find(el: xmltree.El, path: tuple[str, ...]) -> xmltree.El | None:
    node = el
    for name in path:
        found = _child(node, name)
        if found is None:
            return None
        node = found
    return node


def _text(el: xmltree.El) -> str:
    text = el[3]
    return "" if text is None else str(text).strip(_XML_SPACE)


def _value(field: _Field, el: xmltree.El, tag: str) -> object:
    kind = field.kind
    if kind == _TEXT:
        return _text(el)
    if kind == _INT:
        try:
            return int(_text(el))
        except ValueError:
            raise CstaDecodeError(f"{field.path[-1]} is not an integer", tag=tag) from None
    if kind == _BOOL:
        text = _text(el)
        if text not in ("true", "false", "1", "0"):
            raise CstaDecodeError(f"{field.path[-1]} is not a boolean", tag=tag)
        return text in ("true", "1")
    if kind == _DEVICE:
        if not el[2]:
            return _text(el) or None
        inner = el[2][0]
        if _local(inner[0]) in _ABSENT_DEVICE:
            return None
        return _text(inner) or None
    if kind == _TEXTS:
        return tuple(_text(c) for c in el[2] if _local(c[0]) == field.item)
    assert field.part is not None
    if kind == _PART:
        return _struct(field.part, el, tag)
    item = field.item
    return tuple(_struct(field.part, c, tag) for c in el[2] if _local(c[0]) == item)


def _children(el: xmltree.El) -> dict[str, xmltree.El]:
    """An element's children by local name, the first of each name (one pass, not one per
    field)."""
    index: dict[str, xmltree.El] = {}
    for child in el[2]:
        name = _local(child[0])
        if name not in index:
            index[name] = child
    return index


def _struct(cls: type[msgspec.Struct], el: xmltree.El, tag: str) -> Any:
    values: dict[str, object] = {}
    index = _children(el)
    for field in _PLANS[cls]:
        path = field.path
        node = index.get(path[0])
        if node is not None and len(path) > 1:
            node = _find(node, path[1:])
        if node is None:
            if field.required:
                raise CstaDecodeError(f"{tag} without {'/'.join(field.path)}", tag=tag)
            continue
        values[field.name] = _value(field, node, tag)
    return cls(**values)


def _error_code(el: xmltree.El) -> m.CSTAErrorCode:
    for child in el[2]:
        return m.CSTAErrorCode(category=_local(child[0]), value=_text(child))
    return m.CSTAErrorCode(category="unspecified", value=_text(el))


class _Refused(Exception):
    """A DOCTYPE: CSTA documents have none, and refusing it shuts every DTD door at once."""


def _refuse_doctype(*args: object) -> None:
    raise _Refused("DOCTYPE")


def decode(body: bytes) -> m.CstaMessage:
    """The typed message of one document; :class:`CstaDecodeError` when it is broken."""
    if len(body) > MAX_DOCUMENT:
        raise CstaDecodeError(f"document of {len(body)} bytes exceeds {MAX_DOCUMENT}")
    parser, builder = xmltree.new_parser(None)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    try:
        xmltree.parse(parser, body, True)
        root = xmltree.root_of(builder)
    except _Refused as refused:
        raise CstaDecodeError(f"refused: {refused}") from None
    except xmltree.DecodeError as bad:
        raise CstaDecodeError(bad.reason) from None
    tag = _local(root[0])
    cls = MESSAGE_TYPES.get(tag)
    if cls is None:
        prefix = root[0].rpartition(":")[0]
        namespace = root[1].get(f"xmlns:{prefix}" if prefix else "xmlns")
        return m.UnknownDocument(tag=tag, namespace=namespace)
    if cls is m.CSTAErrorCode:
        return _error_code(root)
    return _struct(cls, root, tag)  # type: ignore[no-any-return]


# -- encoding ---------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(text: str) -> str:
    """``text`` as a double-quoted attribute value that reads back the same: ``&``, ``<`` and
    ``"`` escaped, and the white space attribute-value normalisation would turn into spaces
    written as character references (a namespace read from a PBX's document may hold any)."""
    return (
        _escape(text)
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


class _Node:
    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: str, text: str | None = None) -> None:
        self.tag = tag
        self.text = text
        self.children: list[_Node] = []

    def at(self, path: tuple[str, ...]) -> _Node:
        """The node at ``path`` below this one, creating what is missing."""
        node = self
        for name in path:
            found = next((c for c in node.children if c.tag == name), None)
            if found is None:
                found = _Node(name)
                node.children.append(found)
            node = found
        return node

    def write(self, out: list[str]) -> None:
        if not self.children and self.text is None:
            out.append(f"<{self.tag}/>")
            return
        out.append(f"<{self.tag}>")
        if self.text is not None:
            out.append(_escape(self.text))
        for child in self.children:
            child.write(out)
        out.append(f"</{self.tag}>")


def _fill(node: _Node, struct: msgspec.Struct) -> None:
    for field in _PLANS[type(struct)]:
        value = getattr(struct, field.name)
        if value is None:
            continue
        parent = node.at(field.path[:-1])
        leaf = _Node(field.path[-1])
        parent.children.append(leaf)
        kind = field.kind
        if kind == _TEXT:
            leaf.text = value
        elif kind == _INT:
            leaf.text = str(value)
        elif kind == _BOOL:
            leaf.text = "true" if value else "false"
        elif kind == _DEVICE:
            leaf.children.append(_Node(field.device_tag, value))
        elif kind == _PART:
            _fill(leaf, value)
        elif kind == _TEXTS:
            leaf.children.extend(_Node(field.item or "item", text) for text in value)
        else:
            for item in value:
                child = _Node(field.item or "item")
                leaf.children.append(child)
                _fill(child, item)


def encode(message: m.CstaMessage, *, namespace: str = CSTA_NAMESPACES["ed4"]) -> bytes:
    """The XML document of ``message``; session documents get the ECMA-354 namespace."""
    if isinstance(message, m.UnknownDocument):
        root = _Node(message.tag)
        namespace = message.namespace or namespace
    else:
        root = _Node(type(message).__name__)
        if isinstance(message, m.CSTAErrorCode):
            root.children.append(_Node(message.category, message.value))
        else:
            _fill(root, message)
        if message.session_family:
            namespace = SESSION_NAMESPACE
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    root.write(out)
    head = f'<{root.tag} xmlns="{_escape_attribute(namespace)}"'
    out[1] = head + out[1][len(root.tag) + 1 :]
    return "".join(out).encode("utf-8")
