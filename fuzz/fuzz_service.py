"""Fuzz target ``service``: the whole sans-IO server in memory, as ``runtime/connection.py``
drives it: an ``IvrService`` built from the default configuration, a session on a server-role
``IvrLink``, the fuzzed bytes fed through ``receive_data`` (and the batches the link holds back),
``DocumentReceived`` to ``service.handle``, ``DocumentRejected`` to ``service.handle_rejected``,
the service's and the link's timers run as the time the input chooses passes.

Input: a :class:`~fuzz.harness.Script`. Flags: bit 0 a valid login first (``LoginReq`` of
``IVR_1``, version 4.0, ``ReportStatus='true'``), bit 1 version 3.0 instead, bit 2
``ServerMonitor='set'``, bit 3 keep-alives of our own every 30 s, bit 4 a second, well-behaved
session of the same IVR logged in first with ``ServerMonitor='set'`` (it sees the monitoring
notices and inherits the calls), bit 5 log in as ``IVR_2`` (agents logged in by the server),
bits 6-7 the link's per-call frame budget when it has one (unbounded, 1, 3, 64 frames).
Properties:

- no exception escapes, and none is caught and logged by the service (its answer to its own
  bugs: a generic error reply and a traceback in the log);
- everything written to either session is whole GLI frames, each within
  :data:`~fuzz.harness.MAX_REPLY_LENGTH`, and every Data frame decodes (a client can read
  every reply);
- after the service's timers have run, none of them is still due (the runtime's timer would
  spin);
- once both sessions are gone and ``orphan-call-timeout`` has passed, no call is left: no
  input leaves a port occupied beyond its documented timeout.
"""

from __future__ import annotations

from fuzz.fuzz_link import closed, make_link, receive, tick
from fuzz.harness import LoggedExceptions, Script, check_output, frame
from ivr_server.config import default_config
from ivr_server.service import IvrService, Session
from ivr_server.session import (
    DocumentReceived,
    DocumentRejected,
    IvrLink,
    LinkEvent,
    Role,
)
from ivr_server.wire import DecodeError, decode_document, encode_document, forget_memos
from ivr_server.wire import messages as m

CONFIG = default_config()
START = 1000.0


def login_frame(client: str, version: str, *, monitor: bool = False, call_id: str = "L1") -> bytes:
    message = m.LoginReq(
        Version=version,  # type: ignore[arg-type]  # one of the Literal's values
        ClientName=client,
        ReportStatus="true",
        ServerMonitor="set" if monitor else None,
    )
    return frame(3, encode_document(call_id, message))


def _dispatch(service: IvrService, session: Session, events: list[LinkEvent], now: float) -> None:
    for event in events:
        if type(event) is DocumentReceived:
            service.handle(session, event.call_id, event.message, now)
        elif type(event) is DocumentRejected:
            service.handle_rejected(session, event.error, now)


def run_timers(service: IvrService, now: float) -> None:
    """The runtime's timer callback: run what is due; then nothing may be due any more (the
    runtime would re-arm its timer in the past and spin)."""
    deadline = service.next_deadline()
    if deadline is not None and now >= deadline:
        service.handle_timer(now)
        after = service.next_deadline()
        assert after is None or after > now, f"a timer due at {after} stays due at {now}"


def _check(output: bytes) -> None:
    for f in check_output(output):
        if f.gli_type == 3:
            try:
                decode_document(f.payload)
            except DecodeError as exc:
                raise AssertionError(f"server wrote a document it cannot read: {exc}") from None


def one_input(data: bytes) -> None:
    with LoggedExceptions():
        _run(Script(data))


def _run(script: Script) -> None:
    forget_memos()
    flags = script.flags
    now = START
    service = IvrService(CONFIG)
    outputs: dict[int, bytearray] = {}
    sessions: list[Session] = []

    def open_session(link: IvrLink, peer: str) -> Session:
        session = service.open_session(peer, link, now)
        sessions.append(session)
        outputs[session.id] = bytearray()
        return session

    def flush() -> None:
        service.take_dirty()
        for s in sessions:
            outputs[s.id] += s.link.data_to_send()

    if flags & 16:
        bystander = open_session(IvrLink(Role.SERVER, now=now), "192.0.2.2:4001")
        events = bystander.link.receive_data(login_frame("IVR_1", "4.0", monitor=True), now)
        _dispatch(service, bystander, events, now)
        flush()

    link = make_link((flags >> 6) & 3 | (4 if flags & 8 else 0), now)
    session = open_session(link, "192.0.2.1:4000")
    stream = script.stream
    if flags & 1:
        client = "IVR_2" if flags & 32 else "IVR_1"
        version = "3.0" if flags & 2 else "4.0"
        stream = login_frame(client, version, monitor=bool(flags & 4)) + stream

    for piece, dt in script.reads(stream):
        now += dt
        run_timers(service, now)
        tick(link, now)
        if not closed(link):
            _dispatch(service, session, receive(link, piece, now), now)
        flush()
        if closed(link):
            break

    # The peer goes away (or the link closed itself): the runtime's connection_lost.
    receive(link, b"", now)
    service.close_session(session, "fuzz input ended", now)
    for other in sessions:
        service.close_session(other, "fuzz input ended", now)
    flush()
    closed_at = now
    limit = closed_at + CONFIG.server.timers.orphan_call_timeout + 60.0
    for _ in range(10000):
        deadline = service.next_deadline()
        if deadline is None or deadline > limit:
            break
        now = max(now, deadline)
        run_timers(service, now)
    flush()

    for output in outputs.values():
        _check(bytes(output))
    internal = service.metrics.errors["internal"]
    assert not internal, f"{internal} internal error(s) counted"
    left = sorted(service.calls.calls)[:5]
    assert not left, f"calls left {now - closed_at:g} s after their sessions closed: {left}"
