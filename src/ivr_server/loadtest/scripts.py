"""Call scripts: what one simulated call does, built in (``full``, ``callinfo``, ``hold``) or read
from a small TOML/JSON file, and their compilation into pre-encoded request templates and the byte
checks every reply must pass.

A script is a list of steps. The first is always ``NewCall``; the last is always ``EndCall`` (added
when the file does not end with it). The format is documented in ``docs/loadtest.md``.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from ivr_server.wire import Message, Node, encode_document, int_node, str_node
from ivr_server.wire import messages as m

__all__ = [
    "BUILTIN_SCRIPTS",
    "CALL_TOKEN",
    "CALL_TOKEN_BYTES",
    "PROLOG",
    "Check",
    "CompiledStep",
    "Script",
    "ScriptError",
    "Step",
    "builtin_script",
    "compile_script",
    "latency_labels",
    "load_script",
    "login_body",
    "parse_script",
]

STEP_TYPES: Final = (
    "NewCall",
    "CallInfoReq",
    "UDataSet",
    "UDataGet",
    "RouteRequest",
    "Think",
    "Hold",
    "EndCall",
)
BUILTIN_SCRIPTS: Final = ("full", "callinfo", "hold")
_REQUESTS: Final = ("NewCall", "CallInfoReq", "UDataSet", "UDataGet", "RouteRequest")

_PLAIN: Final = re.compile(r"^[^&<>'\"]*$")


class ScriptError(ValueError):
    """A script file or option that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a script, as written (see docs/loadtest.md for every field)."""

    type: str
    think_ms: float = 0.0
    """Pause before this step's request is sent (after the previous step's reply)."""
    repeat: int = 1
    """Times the request is sent one after the other (0: until the run stops)."""
    ani: str = "5551234"
    dnis: str = "8800"
    data: tuple[tuple[str, str | int], ...] = ()
    action: str = "Replace"
    keys: tuple[str, ...] = ()
    route_dn: str = "5000"
    route_type: str = "Normal"
    dest: str | None = None
    ms: float = 0.0
    cause: str = "Normal"


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    steps: tuple[Step, ...]

    def describe(self) -> str:
        parts = []
        for step in self.steps:
            text = step.type
            if step.type == "Think":
                text = f"Think {step.ms:g} ms"
            elif step.repeat != 1:
                text += " ×∞" if step.repeat == 0 else f" ×{step.repeat}"
            if step.think_ms and step.type != "Think":
                text = f"[{step.think_ms:g} ms] {text}"
            parts.append(text)
        return " → ".join(parts)

    @property
    def holds(self) -> bool:
        """True when calls stay up until the run stops (Hold, or a request repeated forever)."""
        return any(s.type == "Hold" or (s.repeat == 0) for s in self.steps)


CALL_TOKEN: Final = "{call}"
"""In a script's text values (ANI, DNIS, user-data values), replaced by a number of the call's own:
real callers have their own numbers and data, and the server remembers documents that repeat."""
CALL_TOKEN_BYTES: Final = CALL_TOKEN.encode()

DEFAULT_ANI: Final = "9{call}"
DEFAULT_DATA: Final[tuple[tuple[str, str | int], ...]] = (
    ("k1", "load-{call}"),
    ("k2", 42),
    ("k3", "three"),
)


def builtin_script(
    name: str,
    *,
    think_ms: float = 0.0,
    route_dn: str = "5000",
    dest: str | None = "7002",
    repeat: int = 0,
) -> Script:
    """The built-in scripts.

    ``full``: NewCall → CallInfoReq → UDataSet → UDataGet → RouteRequest → EndCall, ``think_ms``
    before every step after NewCall. ``callinfo``: NewCall, then CallInfoReq ``repeat`` times (0:
    until the run stops), then EndCall. ``hold``: NewCall, hold until the run stops, EndCall.
    """
    t = think_ms
    steps: tuple[Step, ...]
    if name == "full":
        steps = (
            Step("NewCall", ani=DEFAULT_ANI),
            Step("CallInfoReq", think_ms=t),
            Step("UDataSet", think_ms=t, data=DEFAULT_DATA),
            Step("UDataGet", think_ms=t, keys=("k1", "k2")),
            Step("RouteRequest", think_ms=t, route_dn=route_dn, dest=dest),
            Step("EndCall", think_ms=t),
        )
    elif name == "callinfo":
        steps = (
            Step("NewCall", ani=DEFAULT_ANI),
            Step("CallInfoReq", think_ms=t, repeat=repeat),
            Step("EndCall"),
        )
    elif name == "hold":
        steps = (Step("NewCall", ani=DEFAULT_ANI), Step("Hold"), Step("EndCall"))
    else:
        raise ScriptError(f"unknown script {name!r} (built in: {', '.join(BUILTIN_SCRIPTS)})")
    return Script(name, steps)


# --------------------------------------------------------------------------------------------
# Script files


def _field(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ScriptError(f"{where}: {key} has the wrong type ({type(value).__name__})")
    return value


def _number(raw: dict[str, Any], key: str, where: str, default: float) -> float:
    if key not in raw:
        return default
    value = float(_field(raw, key, (int, float), where))
    if value < 0:
        raise ScriptError(f"{where}: {key} must not be negative")
    return value


_KEYS: Final = {
    "NewCall": {"ani", "dnis"},
    "CallInfoReq": {"repeat"},
    "UDataSet": {"data", "action", "repeat"},
    "UDataGet": {"keys", "repeat"},
    "RouteRequest": {"route-dn", "route-type", "dest"},
    "Think": {"ms"},
    "Hold": set(),
    "EndCall": {"cause"},
}


def _step(raw: object, where: str, default_think: float, known: dict[str, str | int]) -> Step:
    if not isinstance(raw, dict):
        raise ScriptError(f"{where}: a step is a table")
    kind = raw.get("type")
    if kind not in STEP_TYPES:
        raise ScriptError(f"{where}: type must be one of {', '.join(STEP_TYPES)}, not {kind!r}")
    unknown = set(raw) - _KEYS[kind] - {"type", "think-ms"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) for {kind}: {', '.join(sorted(unknown))}")
    think = _number(raw, "think-ms", where, default_think if kind not in ("NewCall",) else 0.0)
    repeat = int(_number(raw, "repeat", where, 1))
    args: dict[str, Any] = {"think_ms": think, "repeat": repeat}
    if kind == "NewCall":
        for key in ("ani", "dnis"):
            if key in raw:
                args[key] = str(_field(raw, key, (str, int), where))
    elif kind == "UDataSet":
        data = _field(raw, "data", dict, where) if "data" in raw else dict(DEFAULT_DATA)
        pairs: list[tuple[str, str | int]] = []
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ScriptError(f"{where}: data.{key} must be a string or an integer")
            pairs.append((str(key), value))
            known[str(key)] = value
        args["data"] = tuple(pairs)
        if "action" in raw:
            args["action"] = str(_field(raw, "action", str, where))
    elif kind == "UDataGet":
        keys = _field(raw, "keys", list, where) if "keys" in raw else list(known)
        if not keys or not all(isinstance(k, str) for k in keys):
            raise ScriptError(f"{where}: keys must be a non-empty list of strings")
        missing = [k for k in keys if k not in known]
        if missing:
            raise ScriptError(f"{where}: keys {missing} are not set by an earlier UDataSet")
        args["keys"] = tuple(keys)
    elif kind == "RouteRequest":
        if "route-dn" in raw:
            args["route_dn"] = str(_field(raw, "route-dn", (str, int), where))
        if "route-type" in raw:
            args["route_type"] = str(_field(raw, "route-type", str, where))
        if "dest" in raw:
            args["dest"] = str(_field(raw, "dest", (str, int), where))
    elif kind == "Think":
        args["ms"] = _number(raw, "ms", where, 0.0)
    elif kind == "EndCall" and "cause" in raw:
        args["cause"] = str(_field(raw, "cause", str, where))
    return Step(kind, **args)


def parse_script(raw: object, source: str) -> Script:
    """A script from its decoded TOML/JSON document (see docs/loadtest.md)."""
    if not isinstance(raw, dict):
        raise ScriptError(f"{source}: the document must be a table/object")
    unknown = set(raw) - {"name", "think-ms", "steps"}
    if unknown:
        raise ScriptError(f"{source}: unknown key(s): {', '.join(sorted(unknown))}")
    name = str(raw.get("name", Path(source).stem))
    think = _number(raw, "think-ms", source, 0.0)
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ScriptError(f"{source}: steps must be a non-empty list")
    known: dict[str, str | int] = {}
    steps = [_step(s, f"{source}: steps[{i}]", think, known) for i, s in enumerate(steps_raw)]
    if steps[0].type != "NewCall" or any(s.type == "NewCall" for s in steps[1:]):
        raise ScriptError(f"{source}: the first step, and only it, must be NewCall")
    if any(s.type == "EndCall" for s in steps[:-1]):
        raise ScriptError(f"{source}: EndCall can only be the last step")
    if steps[-1].type != "EndCall":
        steps.append(Step("EndCall"))
    for i, step in enumerate(steps):
        if step.repeat == 0 and any(s.type not in ("EndCall",) for s in steps[i + 1 :]):
            raise ScriptError(
                f"{source}: steps[{i}] repeats until the run stops: only EndCall may follow"
            )
    return Script(name, tuple(steps))


def load_script(path: Path) -> Script:
    """Read a script file: TOML (``.toml``) or JSON (anything else)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read {path}: {exc}") from None
    try:
        raw: object = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScriptError(f"{path}: {exc}") from None
    return parse_script(raw, str(path))


# --------------------------------------------------------------------------------------------
# Compilation: request templates (everything after the CallId) and reply checks.


@dataclass(frozen=True, slots=True)
class Check:
    """A reply the server must send: its element and byte strings the document must contain."""

    element: bytes
    needles: tuple[bytes, ...]
    text: str
    """For error kinds, e.g. ``CallStatus Event='Ringing'``."""


@dataclass(frozen=True, slots=True)
class CompiledStep:
    kind: str
    label: str
    """Latency column: the request's element name (``NewCall``…), or '' without a reply."""
    body: bytes
    """Everything after the CallId's text: ``</CallId><Request …/></GctiMsg>``; empty: no request."""
    replies: tuple[Check, ...]
    think: float
    """Seconds to wait before the request."""
    repeat: int
    hold: bool = False
    per_call: bool = False
    """The body or the checks hold :data:`CALL_TOKEN`: the generator puts the call's number in."""


# The requests are the client library's: its typed messages, serialised by its codec, cut around
# the CallId once so that a call's request is the prolog, its CallId and a pre-encoded body.
_MARK: Final = "0"
_TEMPLATE: Final = encode_document(_MARK, m.EndCall(EndCause="Normal"))
PROLOG: Final = _TEMPLATE[: _TEMPLATE.index(b"<CallId>") + len(b"<CallId>")]
"""Everything before a request's CallId text, as :func:`ivr_server.wire.encode_document` writes it."""


def _body(message: Message) -> bytes:
    """Everything after the CallId text of ``message`` as the codec writes it."""
    document = encode_document(_MARK, message)
    assert document.startswith(PROLOG + _MARK.encode())  # the same prolog for every request
    return document[len(PROLOG) + len(_MARK) :]


def login_body(ivr: str) -> bytes:
    """The body of a ``LoginReq`` (version 4.0) for IVR ``ivr``, asking for the login ``Status``
    (``NoSuchClient`` for an IVR the server does not know, ``InitInProgress`` while a T-Server link
    of the IVR is down), so that the load test can stop at once with the server's reason."""
    return _body(m.LoginReq(Version="4.0", ClientName=ivr, ReportStatus="true"))


def _node(name: str, value: str | int) -> Node:
    return int_node(name, value) if isinstance(value, int) else str_node(name, value)


def _reply_node(name: str, value: str | int) -> bytes | None:
    """The node as the server writes it (single quotes), or None when escaping makes it vague."""
    if not (_PLAIN.match(name) and _PLAIN.match(str(value))):
        return None
    kind = "Int" if isinstance(value, int) else "Str"
    return f"<Node Name='{name}' Type='{kind}' Val='{value}'/>".encode("latin-1")


def compile_script(script: Script, port: str) -> tuple[CompiledStep, ...]:
    """The script for one port: NewCall's CalledNum and CallInfoResp's check depend on it."""
    out: list[CompiledStep] = []
    ani = "5551234"
    data: dict[str, str | int] = {}
    request_id = 0
    for step in script.steps:
        kind = step.type
        if kind == "NewCall":
            ani = step.ani
            body = _body(
                m.NewCall(
                    CallControlMode="Network",
                    Version="4.0",
                    CalledNum=port,
                    DNIS=step.dnis,
                    ANI=step.ani,
                )
            )
            replies = (
                Check(b"CallStatus", (b"Event='Ringing'",), "CallStatus Event='Ringing'"),
                Check(b"CallStatus", (b"Event='Established'",), "CallStatus Event='Established'"),
            )
            out.append(CompiledStep(kind, kind, body, replies, 0.0, 1))
        elif kind == "CallInfoReq":
            needles = [f"CalledNum='{port}'".encode("latin-1")] if _PLAIN.match(port) else []
            if _PLAIN.match(ani):
                needles.append(f"ANI='{ani}'".encode("latin-1"))
            check = Check(b"CallInfoResp", tuple(needles), f"CallInfoResp CalledNum='{port}'")
            body = _body(m.CallInfoReq())
            out.append(CompiledStep(kind, kind, body, (check,), step.think_ms / 1e3, step.repeat))
        elif kind == "UDataSet":
            request_id += 1
            data.update(step.data)
            body = _body(
                m.UDataSet(
                    Action=step.action,  # type: ignore[arg-type]  # checked by parse_script
                    RequestId=str(request_id),
                    UDataEx=tuple(_node(k, v) for k, v in step.data),
                )
            )
            rid = f"<RequestId>{request_id}</RequestId>".encode()
            check = Check(
                b"UDataResp",
                (b"Result='Success'", rid),
                f"UDataResp Result='Success' RequestId={request_id}",
            )
            out.append(CompiledStep(kind, kind, body, (check,), step.think_ms / 1e3, step.repeat))
        elif kind == "UDataGet":
            request_id += 1
            rid = f"<RequestId>{request_id}</RequestId>".encode()
            body = _body(m.UDataGet(Keys=":".join(step.keys), RequestId=str(request_id)))
            expected = [_reply_node(k, data[k]) for k in step.keys if k in data]
            values = tuple(n for n in expected if n is not None)
            check = Check(
                b"UDataResp",
                (b"Result='Success'", rid, *values),
                f"UDataResp Result='Success' RequestId={request_id} + values",
            )
            out.append(CompiledStep(kind, kind, body, (check,), step.think_ms / 1e3, step.repeat))
        elif kind == "RouteRequest":
            body = _body(m.RouteRequest(RouteDN=step.route_dn))
            route = [f"RouteType='{step.route_type}'".encode("latin-1")]
            text = f"RouteResponse RouteType='{step.route_type}'"
            if step.dest is not None:
                route.append(f"<Dest>{step.dest}</Dest>".encode("latin-1"))
                text += f" Dest={step.dest}"
            check = Check(b"RouteResponse", tuple(route), text)
            out.append(CompiledStep(kind, kind, body, (check,), step.think_ms / 1e3, step.repeat))
        elif kind == "Think":
            out.append(CompiledStep(kind, "", b"", (), step.ms / 1e3, 1))
        elif kind == "Hold":
            out.append(CompiledStep(kind, "", b"", (), step.think_ms / 1e3, 1, hold=True))
        else:  # EndCall
            body = _body(m.EndCall(EndCause=step.cause))  # type: ignore[arg-type]
            out.append(CompiledStep(kind, "", body, (), step.think_ms / 1e3, 1))
    return tuple(_per_call(step) for step in out)


def _per_call(step: CompiledStep) -> CompiledStep:
    token = CALL_TOKEN_BYTES
    if token in step.body or any(token in n for check in step.replies for n in check.needles):
        return replace(step, per_call=True)
    return step


def latency_labels(script: Script) -> list[str]:
    """The latency columns of a script: its request types, in order of first use."""
    names: list[str] = []
    for step in script.steps:
        if step.type in _REQUESTS and step.type not in names:
            names.append(step.type)
    return names
