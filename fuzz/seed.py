"""Write the fuzz targets' seed corpora and the engine's dictionary (``python3 fuzz/seed.py``).

Seeds come from two places:

- the conformance scenarios (``../shared/conformance/scenarios.jsonl``, real documents
  exchanged with the original server and the vendor's guides), when that folder is beside the
  repository: each scenario's documents (for ``codec``) and the whole byte stream its client
  sends (for ``gli``, ``link`` and ``service``). The files written are kept in the repository,
  so nothing needs ``../shared`` afterwards;
- the schema (``wire/messages.py``): one instance of every message with every attribute and
  child it may carry, encoded as the server encodes (``schema-<Tag>``), and for ``service`` the
  same after a login and a ``NewCall`` on port 1.

Plus a few hand-written hostile documents. Seeds are named ``<origin>-<name>``; the engine's
own finds (``fuzz/run.py --grow``) are named by their SHA-1. ``fuzz/gctimsg.dict`` lists the
tokens of the protocol (element and attribute names, enumerated values, prolog pieces, GLI
headers) for the engine's mutations. Running this again rewrites the same files.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``fuzz`` and the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.harness import CORPUS_DIR, FUZZ_DIR, Script, frame
from ivr_server.switch.csta import encode_frame as csta_frame
from ivr_server.wire import (
    SPECS,
    List,
    Message,
    Node,
    NVPair,
    decode_document,
    encode_document,
)
from ivr_server.wire.schema import ChildSpec, ElementSpec

SCENARIOS = FUZZ_DIR.parents[1] / "shared" / "conformance" / "scenarios.jsonl"
CSTA_GOLDEN = FUZZ_DIR.parent / "tests" / "unit" / "csta_golden"
"""Documents written by others (their sources: its README.md), the ``csta`` target's seeds."""
DICTIONARY = FUZZ_DIR / "gctimsg.dict"

LOGIN = (
    b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
    b"<GctiMsg><CallId>L1</CallId><LoginReq Version='4.0' ClientName='IVR_1' "
    b"ReportStatus='true'/></GctiMsg>"
)
NEW_CALL = (
    b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
    b"<GctiMsg><CallId>C1</CallId><NewCall CallControlMode='Network' Version='4.0'>"
    b"<CalledNum>1</CalledNum><DNIS>5000</DNIS><ANI>2225</ANI></NewCall></GctiMsg>"
)
HOSTILE = {
    "entity": b'<?xml version="1.0"?><!DOCTYPE GctiMsg [<!ENTITY e "x">]><GctiMsg>&e;</GctiMsg>',
    "external": b'<!DOCTYPE GctiMsg SYSTEM "file:///etc/passwd"><GctiMsg><CallId>a</CallId>'
    b"<CallInfoReq/></GctiMsg>",
    "deep": b"<GctiMsg><CallId>a</CallId><UDataSet Action='Add'><RequestId>1</RequestId>"
    b"<UDataEx>" + b"<List Name='l'>" * 40 + b"<Node Name='k' Type='Str' Val='v'/>"
    b"" + b"</List>" * 40 + b"</UDataEx></UDataSet></GctiMsg>",
    "utf8": "<?xml version='1.0' encoding='utf-8'?><GctiMsg><CallId>é€</CallId>"
    "<LogMsg MsgType='Info'><Msg>café &#x1F600; &lt;&amp;&gt;</Msg></LogMsg></GctiMsg>".encode(),
    "quotes": b'<?xml version="1.0" encoding="iso-8859-1"?>\n<GctiMsg>\n <CallId>a</CallId>\n'
    b' <EndCall EndCause="Normal"></EndCall>\n</GctiMsg>\n',
    "cdata": b"<GctiMsg><CallId><![CDATA[a<b]]></CallId><CallInfoReq/></GctiMsg>",
    "apostrophes": b"<GctiMsg><CallId>a</CallId><UDataSet Action='Add'><RequestId>1</RequestId>"
    b"<UDataEx><Node Name='k' Type='Str' Val='" + b"&apos;" * 200 + b"'/></UDataEx>"
    b"</UDataSet></GctiMsg>",
}


# ------------------------------------------------------------------ the schema's messages


def _child(cs: ChildSpec) -> Any:
    if cs.kind == "text":
        return "1"
    if cs.kind == "kvlist":
        node = Node(Name="k", Type="Str", Val="v")
        if cs.name == "ConfigOptions":
            return (node,)
        return (node, List(Name="l", items=(Node(Name="n", Type="Int", Val="7"),)))
    if cs.kind == "nvpairs":
        return (NVPair(NVName="k", NVVal="v"),)
    return instance(SPECS[cs.name])


def instance(spec: ElementSpec) -> Any:
    """An instance of ``spec`` with every attribute and child it may carry (the first of each
    choice), enumerated attributes at their first value, free text ``1``."""
    kw: dict[str, Any] = {}
    for a in spec.attrs:
        kw[a.name] = sorted(a.values)[0] if a.values is not None else "1"
    chosen: dict[str, str] = {}
    only = spec.exactly_one_of[0] if spec.exactly_one_of else None
    for cs in spec.children:
        if only is not None:
            if cs.name == only:
                kw[cs.name] = _child(cs)
            continue
        if cs.group is not None and chosen.setdefault(cs.group, cs.alt or "") != cs.alt:
            continue
        kw[cs.name] = _child(cs)
    return spec.cls(**kw)


def schema_documents() -> dict[str, tuple[str | None, Message, bytes]]:
    """Tag -> (CallId, message, document) for every message that round-trips."""
    out: dict[str, tuple[str | None, Message, bytes]] = {}
    for tag, spec in sorted(SPECS.items()):
        if not issubclass(spec.cls, Message):
            continue
        message = instance(spec)
        kind = spec.cls.call_id_kind
        call_id = None if kind == "none" else ("L1" if kind == "login" else "C1")
        document = encode_document(call_id, message)
        if decode_document(document) != (call_id, message):
            print(f"seed: schema-{tag} does not round-trip, skipped", file=sys.stderr)
            continue
        out[tag] = (call_id, message, document)
    return out


# ------------------------------------------------------------------ the conformance scenarios


def _templated(text: str) -> bytes:
    text = re.sub(r"\{c(\d+)\}", r"FUZZ_c\1", text)
    text = re.sub(r"\{port(\d+)\}", r"\1", text)
    return text.replace("{ivr}", "IVR_1").encode("utf-8")


def scenarios() -> dict[str, list[bytes]]:
    """Scenario id -> the GLI frames its client sends, in order."""
    out: dict[str, list[bytes]] = {}
    for line in SCENARIOS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        scenario = json.loads(line)
        frames: list[bytes] = []
        for step in scenario["steps"]:
            if "send" in step:
                frames.append(frame(3, _templated(step["send"])))
            elif step.get("send_keepalive"):
                frames.append(frame(0))
        out[scenario["id"]] = frames
    return out


# ------------------------------------------------------------------ writing


def _write(target: str, name: str, data: bytes) -> None:
    folder = CORPUS_DIR / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def _payloads(frames: list[bytes]) -> list[bytes]:
    return [f[6:] for f in frames if f[:2] == b"\x00\x03"]


def write_dictionary() -> None:
    tokens: set[bytes] = {
        b"<?xml version='1.0' encoding='ISO-8859-1'?>",
        b'<?xml version="1.0" encoding="UTF-8"?>',
        b"<!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>",
        b"<GctiMsg>",
        b"</GctiMsg>",
        b"<CallId>",
        b"</CallId>",
        b"<![CDATA[",
        b"]]>",
        b"<!--",
        b"-->",
        b"<!ENTITY",
        b"&amp;",
        b"&apos;",
        b"&#x",
        b"/>",
        b"\x00\x03\x00\x02\x02\x00",  # GLI Data header (length to be mutated)
        b"\x00\x00\x00\x02\x02\x00",  # keep-alive request
        b"\x00\x01\x00\x02\x02\x00",  # keep-alive response
        b"\x00\x02\x00\x04\x02\x00",  # GLI Error
    }
    for tag, spec in SPECS.items():
        tokens |= {f"<{tag}".encode(), f"</{tag}>".encode()}
        for a in spec.attrs:
            tokens.add(f" {a.name}='".encode())
            tokens |= {v.encode() for v in a.values or ()}
        for alias in spec.attr_aliases:
            tokens.add(f" {alias}='".encode())
    for name in ("Node", "List", "NVPair", "NVName", "NVVal", "IVR_1", "IVR_2", "Int", "Str"):
        tokens.add(name.encode())

    def quoted(token: bytes) -> str:
        return "".join(
            chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02X}" for b in token
        )

    lines = [
        "# Tokens of the IVR XML protocol for the fuzzing engine (libFuzzer -dict).",
        "# GENERATED by fuzz/seed.py from the schema - do not edit.",
    ]
    lines += [f'"{quoted(t)}"' for t in sorted(tokens)]
    DICTIONARY.write_text("\n".join(lines) + "\n", encoding="ascii")


def main() -> int:
    documents = schema_documents()
    for tag, (_call_id, _message, document) in documents.items():
        _write("codec", f"schema-{tag}", document)
        _write("gli", f"schema-{tag}", b"\x00" + frame(3, document))
        _write("link", f"schema-{tag}", Script.make(32, frame(3, document)))
        spec = SPECS[tag]
        if spec.cls.direction != "server->ivr":  # type: ignore[attr-defined]
            stream = frame(3, NEW_CALL) + frame(3, document) + frame(0)
            _write("service", f"schema-{tag}", Script.make(1, stream))
    for name, document in HOSTILE.items():
        _write("codec", f"hostile-{name}", document)
        _write("service", f"hostile-{name}", Script.make(1, frame(3, document)))
    _write("gli", "hostile-bad-version", b"\x00" + frame(0) + b"\x00\x03\x00\x04\x03\x00ab")
    _write("gli", "hostile-split", b"\x05" + frame(3, LOGIN) + frame(1) + frame(3, b"")[:4])
    _write("link", "hostile-malformed", Script.make(8, frame(3, b"<a>") * 3 + frame(3, LOGIN)))
    _write("link", "hostile-timeouts", Script.make(0, frame(3, LOGIN) + frame(0)[:3], cut=0x7D))
    _write("service", "login-then-timers", Script.make(1 | 16, frame(3, NEW_CALL), cut=0xF9))
    if SCENARIOS.exists():
        for scenario, frames in scenarios().items():
            stream = b"".join(frames)
            for n, payload in enumerate(_payloads(frames), 1):
                _write("codec", f"conformance-{scenario}-{n}", payload)
            _write("gli", f"conformance-{scenario}", b"\x02" + stream)
            _write("link", f"conformance-{scenario}", Script.make(0, stream))
            _write("service", f"conformance-{scenario}", Script.make(0, stream))
    else:
        print(f"seed: {SCENARIOS} not found; conformance seeds left as they are", file=sys.stderr)
    for golden in sorted(CSTA_GOLDEN.iterdir()):
        if golden.suffix == ".xml":  # a document: framed under invoke id 1
            body = golden.read_bytes()
            _write("csta", f"golden-{golden.stem}", b"\x07" + csta_frame(1, body))
        elif golden.suffix == ".frame":  # a whole frame as captured
            _write("csta", f"golden-{golden.stem}", b"\x07" + golden.read_bytes())
    write_dictionary()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
