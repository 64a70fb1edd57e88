"""Documents for people: one header line, then the document as indented XML.

The header says when, which way (``<-`` received, ``->`` sent), which message and which CallId::

    12:04:31.207 <- LoginResp  CallId=L4242_65a1f3_1
      <GctiMsg>
        <CallId>L4242_65a1f3_1</CallId>
        <LoginResp IServerVer='IVR Server:8.5.001.00' Result='Success' Status='OK'/>
      </GctiMsg>

The XML declaration and DOCTYPE are left out. With ``color=True`` the message element and the
CallId are highlighted with ANSI escapes; :func:`use_color` says whether a stream wants that (a TTY,
and no ``NO_COLOR`` in the environment). A payload that is not well-formed XML is shown as escaped
text. Parsing refuses entity declarations, so showing hostile input is safe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TextIO
from xml.parsers import expat

from ivr_server.wire import Message, encode_document

__all__ = ["format_document", "format_note", "format_payload", "pretty_xml", "use_color"]

_MESSAGE: Final = "\x1b[1;36m"
_CALL_ID: Final = "\x1b[1;33m"
_NOTE: Final = "\x1b[2m"
_RESET: Final = "\x1b[0m"
_MAX_DEPTH: Final = 64


def use_color(stream: TextIO) -> bool:
    """Colour for a terminal only, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


@dataclass(slots=True)
class _Element:
    tag: str
    attrs: list[str]
    """``[name, value, name, value, ...]`` in document order (expat's ordered attributes)."""
    children: list[_Element] = field(default_factory=list)
    text: str = ""


class _Refused(Exception):
    pass


def _refuse(*args: object) -> None:
    raise _Refused


def _refuse_entity(*args: object) -> int:
    raise _Refused


def _parse(payload: bytes) -> _Element | None:
    stack: list[_Element] = []
    roots: list[_Element] = []

    def start(tag: str, attrs: list[str]) -> None:
        element = _Element(tag, attrs)
        if stack:
            if len(stack) >= _MAX_DEPTH:
                raise _Refused
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)

    def end(tag: str) -> None:
        stack.pop()

    def data(text: str) -> None:
        if stack:
            stack[-1].text += text

    parser = expat.ParserCreate()
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(payload, True)
    except (_Refused, expat.ExpatError, ValueError, LookupError):
        return None
    return roots[0] if roots else None


def _escape_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
        .replace("\t", "&#x9;")
    )


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def _render(
    element: _Element, depth: int, indent: str, color: bool, lines: list[str], highlight: str | None
) -> None:
    pad = indent * depth
    pairs = element.attrs
    attrs = "".join(f" {pairs[i]}='{_escape_attr(pairs[i + 1])}'" for i in range(0, len(pairs), 2))
    tag = element.tag
    shown = _paint(tag, highlight, color) if highlight else tag
    text = element.text.strip()
    if not element.children:
        if not text:
            lines.append(f"{pad}<{shown}{attrs}/>")
            return
        body = _escape_text(text)
        if depth == 1 and tag == "CallId":
            body = _paint(body, _CALL_ID, color)
        lines.append(f"{pad}<{shown}{attrs}>{body}</{shown}>")
        return
    lines.append(f"{pad}<{shown}{attrs}>")
    if text:
        lines.append(f"{pad}{indent}{_escape_text(text)}")
    for child in element.children:
        mark = _MESSAGE if depth == 0 and child.tag != "CallId" else None
        _render(child, depth + 1, indent, color, lines, mark)
    lines.append(f"{pad}</{shown}>")


def _summary(root: _Element) -> tuple[str | None, str | None]:
    """The CallId and the message element's name of a parsed document, as far as they exist."""
    call_id = tag = None
    for child in root.children:
        if child.tag == "CallId" and call_id is None:
            call_id = child.text
        elif tag is None:
            tag = child.tag
    return call_id, tag


def pretty_xml(payload: bytes, *, color: bool = False, indent: str = "  ") -> str:
    """The document indented, one element per line (declaration and DOCTYPE left out).

    Not well-formed XML comes back as its text with control characters escaped.
    """
    root = _parse(payload)
    if root is None:
        return _raw_text(payload)
    lines: list[str] = []
    _render(root, 0, indent, color, lines, None)
    return "\n".join(lines)


def _raw_text(payload: bytes) -> str:
    text = payload.decode("latin-1")
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def _stamp(when: datetime | None) -> str:
    if when is None:
        return ""
    return when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d} "


def format_payload(
    payload: bytes,
    *,
    direction: str = "->",
    when: datetime | None = None,
    color: bool = False,
    indent: str = "  ",
) -> str:
    """A header line (time, direction, message, CallId) and the indented document below it."""
    root = _parse(payload)
    if root is None:
        head = f"(not well-formed XML, {len(payload)} bytes)" if payload else "(empty payload)"
        body = _raw_text(payload)
    else:
        call_id, tag = _summary(root)
        head = _paint(tag or "(no message)", _MESSAGE, color)
        if call_id is not None:
            head += "  CallId=" + _paint(call_id, _CALL_ID, color)
        rendered: list[str] = []
        _render(root, 0, indent, color, rendered, None)
        body = "\n".join(rendered)
    out = [f"{_stamp(when)}{direction} {head}"]
    out.extend(indent + line for line in body.split("\n") if line)
    return "\n".join(out)


def format_document(
    call_id: str | None,
    message: Message,
    *,
    direction: str = "<-",
    when: datetime | None = None,
    color: bool = False,
    indent: str = "  ",
) -> str:
    """:func:`format_payload` of the document as the server writes it (PROTOCOL.md §2.2)."""
    return format_payload(
        encode_document(call_id, message),
        direction=direction,
        when=when,
        color=color,
        indent=indent,
    )


def format_note(text: str, *, when: datetime | None = None, color: bool = False) -> str:
    """A line that is not a document (connection state, keep-alives, errors)."""
    return f"{_stamp(when)}{_paint('** ' + text, _NOTE, color)}"
