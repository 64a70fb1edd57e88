"""Fuzz target ``link``: the link engine (``session/link.py`` ``IvrLink``) in the server role.

Input: a :class:`~fuzz.harness.Script`: flags, how the stream is cut into reads and how much
time passes before each, then the bytes a peer sends. Flags: bits 0-1 the link's per-call frame
budget when it has one (unbounded, 1, 3, 64 frames), bit 2 keep-alives of our own every 30 s,
bit 3 no malformed document tolerated, bit 4 no partial-frame timeout, bit 5 every document
received is sent back (echo). Properties:

- after its timers have run, none of them is still due;
- only ``DocumentReceived``, ``DocumentRejected`` and ``LinkClosed`` come out; ``LinkClosed``
  once at most, last, and exactly when the state is ``CLOSED``; after it nothing more happens;
- the documents, in order, are those of the stream's Data frames decoded one by one (a prefix of
  them when the link closed early; all of them otherwise), and a stream with an untrusted header
  closes the link;
- the output is whole GLI frames: one keep-alive response per keep-alive request handled,
  keep-alive requests only when enabled, at most one GLI Error frame and only as the last frame
  (its code the one ``LinkClosed`` reports), and the echoed documents, each decoding back to the
  document received (or refused with ``LocalProtocolError`` when it no longer fits a frame).
"""

from __future__ import annotations

from typing import Any

from fuzz.harness import Script, check_output, parse_frames
from ivr_server.errors import LocalProtocolError
from ivr_server.session import (
    DocumentReceived,
    DocumentRejected,
    IvrLink,
    LinkClosed,
    LinkEvent,
    LinkState,
    Role,
)
from ivr_server.wire import MAX_PAYLOAD, DecodeError, decode_document, forget_memos

_BATCHES = hasattr(IvrLink, "receive_more")
"""Whether the link hands frames out in bounded batches (``turn_frames``, ``receive_more``)."""
_BUDGETS = (None, 1, 3, 64)
START = 1000.0


def make_link(flags: int, now: float, **options: Any) -> IvrLink:
    """A server-role link configured by ``flags`` (see the module docstring)."""
    budget = _BUDGETS[flags & 3]
    if budget is not None and _BATCHES:
        options["turn_frames"] = budget
    return IvrLink(
        Role.SERVER,
        now=now,
        keep_alive_interval=30.0 if flags & 4 else None,
        malformed_limit=0 if flags & 8 else 20,
        frame_timeout=None if flags & 16 else 60.0,
        **options,
    )


def receive(link: IvrLink, data: bytes, now: float) -> list[LinkEvent]:
    """``receive_data``, then every batch the link holds back, if it holds any back."""
    events = link.receive_data(data, now)
    more = getattr(link, "receive_more", None)
    for _ in range(len(data) + 1):
        if more is None or not getattr(link, "backlogged", False):
            break
        events += more(now)
    else:
        raise AssertionError("the link kept holding frames back")
    return events


def closed(link: IvrLink) -> bool:
    """Whether the link is closed (a function, so that mypy keeps no narrowed ``state`` across
    the calls that change it)."""
    return link.state is LinkState.CLOSED


def tick(link: IvrLink, now: float) -> list[LinkEvent]:
    """The runtime's timer callback: run what is due; then nothing may be due any more (the
    runtime would re-arm its timer in the past and spin)."""
    deadline = link.next_deadline()
    if deadline is None or now < deadline:
        return []
    events = link.handle_timer(now)
    after = link.next_deadline()
    assert after is None or after > now, f"a link timer due at {after} stays due at {now}"
    return events


def _reference(payload: bytes) -> tuple[Any, ...]:
    if not payload:
        return ("rejected", False)
    try:
        call_id, message = decode_document(payload)
    except DecodeError as exc:
        return ("rejected", exc.well_formed)
    return ("doc", call_id, message)


def _seen(event: DocumentReceived | DocumentRejected) -> tuple[Any, ...]:
    if type(event) is DocumentReceived:
        return ("doc", event.call_id, event.message)
    assert type(event) is DocumentRejected
    return ("rejected", event.error.well_formed)


def one_input(data: bytes) -> None:
    forget_memos()
    script = Script(data)
    frames, error, _leftover = parse_frames(script.stream)
    expected = [_reference(f.payload) for f in frames if f.gli_type == 3]
    ka_requests = sum(1 for f in frames if f.gli_type == 0)

    now = START
    link = make_link(script.flags, now)
    echo = bool(script.flags & 32)
    echoed: list[tuple[Any, ...]] = []
    events: list[LinkEvent] = []
    out = bytearray()
    for piece, dt in script.reads():
        now += dt
        events += tick(link, now)
        out += link.data_to_send()
        if closed(link):
            break
        got = receive(link, piece, now)
        events += got
        if echo:
            for event in got:
                if type(event) is DocumentReceived:
                    try:
                        link.send(event.call_id, event.message)
                    except LocalProtocolError:
                        continue  # the link refuses a document its frame cannot hold
                    if not closed(link):
                        echoed.append(("doc", event.call_id, event.message))
        out += link.data_to_send()
        if closed(link):
            break

    closings = [e for e in events if isinstance(e, LinkClosed)]
    assert all(type(e) in (DocumentReceived, DocumentRejected, LinkClosed) for e in events)
    assert len(closings) <= 1 and (not closings or events[-1] is closings[0]), events[-3:]
    assert closed(link) == bool(closings), (link.state, closings)
    documents = [_seen(e) for e in events if not isinstance(e, LinkClosed)]
    assert documents == expected[: len(documents)], "documents differ from the stream's frames"
    if not closings:
        assert error is None, f"the link stayed open after an untrusted header ({error})"
        assert documents == expected, "documents were lost"

    output = check_output(bytes(out), max_length=MAX_PAYLOAD + 2)
    responses = sum(1 for f in output if f.gli_type == 1)
    assert responses <= ka_requests and (closings or responses == ka_requests), (
        responses,
        ka_requests,
    )
    if not script.flags & 4:
        assert not any(f.gli_type == 0 for f in output), "keep-alive request while disabled"
    errors = [f for f in output if f.gli_type == 2]
    assert len(errors) <= 1 and (not errors or output[-1] is errors[0])
    if errors:
        code = closings[0].error_code if closings else None
        assert code is not None and int(code) == int.from_bytes(errors[0].payload, "big")
    sent = [_reference(f.payload) for f in output if f.gli_type == 3]
    assert sent == echoed, "echoed documents do not decode back to what was received"

    if closed(link):
        assert link.receive_data(b"\x00\x00\x00\x02\x02\x00", now) == []
        assert link.handle_timer(now + 1e6) == []
        assert link.data_to_send() == b""
        assert link.next_deadline() is None
