"""One IVR link's protocol engine: GLI frames, keep-alives and documents, with no I/O at all.

Theory of operation (aioquic style): the adapter calls :meth:`IvrLink.receive_data` with the bytes
it read and the current time, gets back events (documents received or rejected, link closed),
queues answers with :meth:`IvrLink.send`, writes :meth:`IvrLink.data_to_send` to the socket, and
arms one timer at :meth:`IvrLink.next_deadline`, calling :meth:`IvrLink.handle_timer` when it fires.

The same engine serves both roles: the server (``Role.SERVER``) and the IVR client library
(``Role.CLIENT``). Keep-alive requests from the peer are answered at once, whatever the state
(PROTOCOL.md §1.6). Optional keep-alives of our own go out after ``keep_alive_interval`` seconds of
silence; after ``keep_alive_tries`` unanswered ones the link is closed. A header that cannot be
trusted, a partial frame left hanging for ``frame_timeout`` seconds, or too many malformed documents
within ``malformed_window`` seconds close the link with a GLI Error frame (PROTOCOL.md §9.4).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Final

from ivr_server.session.events import DocumentReceived, DocumentRejected, LinkClosed, LinkEvent
from ivr_server.timers import earliest
from ivr_server.wire import (
    MAX_PAYLOAD,
    DecodeError,
    FrameDecoder,
    GliErrorCode,
    GliFrameError,
    GliType,
    Message,
    PartialDocument,
    decode_document,
    encode_document_parts,
    encode_error_frame,
    encode_frame,
)
from ivr_server.wire.gli import HEADER
from ivr_server.wire.limits import MAX_DOCUMENT, DocumentTooLarge

__all__ = ["IvrLink", "LinkState", "Role"]

_KEEP_ALIVE_RESPONSE: Final = encode_frame(GliType.KEEP_ALIVE_RESPONSE)
_KEEP_ALIVE_REQUEST: Final = encode_frame(GliType.KEEP_ALIVE_REQUEST)
_DATA: Final = int(GliType.DATA)
_KA_REQUEST: Final = int(GliType.KEEP_ALIVE_REQUEST)
_ERROR: Final = int(GliType.ERROR)


class Role(Enum):
    """Which end of the link this engine plays."""

    SERVER = "server"
    CLIENT = "client"


class LinkState(Enum):
    """``OPEN`` carries traffic; ``CLOSED`` is final (the adapter closes the connection)."""

    OPEN = "open"
    CLOSED = "closed"


class IvrLink:
    """Sans-IO engine for one GLI/XML connection. See the module docstring."""

    __slots__ = (
        "_decoded",
        "_decoder",
        "_ka_sent",
        "_last_activity",
        "_malformed",
        "_out",
        "_partial",
        "_partial_since",
        "dtd_file",
        "encoding",
        "frame_timeout",
        "keep_alive_answers",
        "keep_alive_interval",
        "keep_alive_tries",
        "malformed_limit",
        "malformed_window",
        "role",
        "state",
        "turn_bytes",
        "turn_frames",
    )

    def __init__(
        self,
        role: Role,
        *,
        now: float,
        keep_alive_interval: float | None = None,
        keep_alive_tries: int = 1,
        frame_timeout: float | None = 60.0,
        malformed_limit: int = 20,
        malformed_window: float = 10.0,
        encoding: str = "ISO-8859-1",
        dtd_file: str = "IServer.dtd",
        turn_frames: int = 0x7FFFFFFF,
        turn_bytes: int = 0x7FFFFFFF,
    ) -> None:
        self.role = role
        self.state = LinkState.OPEN
        self.keep_alive_interval = keep_alive_interval if keep_alive_interval else None
        """Seconds of silence before we send a keep-alive request; ``None`` = never."""
        self.keep_alive_tries = max(1, keep_alive_tries)
        """Unanswered keep-alive requests after which the link is closed."""
        self.frame_timeout = frame_timeout
        """Longest time a partial frame may wait for its remaining bytes; ``None`` = forever."""
        self.malformed_limit = malformed_limit
        """More malformed documents than this within ``malformed_window`` close the link."""
        self.malformed_window = malformed_window
        self.encoding = encoding
        """Output character set (``ISO-8859-1`` or ``UTF-8``)."""
        self.dtd_file = dtd_file
        """System id written in the DOCTYPE of every document we send."""
        self.turn_frames = max(1, turn_frames)
        """Most frames one :meth:`receive_data` or :meth:`receive_more` call handles."""
        self.turn_bytes = max(1, turn_bytes)
        """Most bytes of frames one call handles (a larger frame is handled alone)."""
        self.keep_alive_answers = 0
        """KeepAliveResponse frames received so far (the client library's ``keep_alive()``)."""
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._last_activity = now
        self._ka_sent = 0
        self._partial_since: float | None = None
        self._partial: PartialDocument | None = None
        """A document larger than ``turn_bytes`` being decoded a piece per call."""
        self._decoded: DocumentReceived | None = None
        """Such a document once decoded, for the next call."""
        self._malformed: deque[float] = deque()

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes, now: float) -> list[LinkEvent]:
        """Feed bytes read from the peer (``b""`` = the peer closed); return what happened.

        At most ``turn_frames`` frames or ``turn_bytes`` bytes of them are handled per call (at
        least one frame), and a document larger than ``turn_bytes`` is decoded ``turn_bytes`` at a
        time, one piece per call, its message built in the next call and returned in the one
        after; the rest stays buffered, :attr:`backlogged` says so, and :meth:`receive_more`
        handles the next batch."""
        if self.state is LinkState.CLOSED:
            return []
        if not data:
            self.state = LinkState.CLOSED
            return [LinkClosed("peer closed the connection", by_peer=True)]
        self._decoder.push(data)
        return self._take(now)

    def buffer(self, data: bytes) -> None:
        """Keep bytes read from the peer for :meth:`receive_more`, handling none of them yet."""
        if self.state is LinkState.OPEN and data:
            self._decoder.push(data)
            self._decoder.more = True  # (receive_more finds out whether a frame is complete)

    def receive_more(self, now: float) -> list[LinkEvent]:
        """Handle the next batch of frames already received (when :attr:`backlogged`)."""
        if self.state is LinkState.CLOSED:
            return []
        return self._take(now)

    @property
    def backlogged(self) -> bool:
        """Whether complete frames received are still waiting for :meth:`receive_more` (or a
        document being decoded a piece at a time, or a bad header after frames handed out:
        :meth:`receive_more` then closes the link)."""
        return (
            self._decoder.more or self._partial is not None or self._decoded is not None
        ) and self.state is LinkState.OPEN

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handled."""
        return self._decoder.pending

    def _take(self, now: float) -> list[LinkEvent]:
        decoded = self._decoded
        if decoded is not None:
            self._decoded = None
            return [decoded]
        partial = self._partial
        if partial is not None:
            return self._decode_piece(partial, now)
        decoder = self._decoder
        try:
            frames = decoder.pull(self.turn_frames, self.turn_bytes)
        except GliFrameError as bad_frame:  # not ``exc`` (below): one type per name for mypyc
            return [self._fail(bad_frame.code, str(bad_frame))]
        self._partial_since = (
            (self._partial_since or now) if decoder.pending and not decoder.more else None
        )
        if not frames:
            return []
        self._last_activity = now
        self._ka_sent = 0
        events: list[LinkEvent] = []
        for gli_type, payload in frames:
            if gli_type == _DATA:
                if len(payload) > self.turn_bytes:  # alone in its batch (FrameDecoder.pull)
                    return self._decode_piece(PartialDocument(payload), now)
                try:
                    if not payload:
                        raise DecodeError("empty Data frame", well_formed=False)
                    call_id, message = decode_document(payload)
                except DecodeError as exc:
                    events.append(DocumentRejected(exc))
                    if not exc.well_formed and self._count_malformed(now):
                        events.append(
                            self._fail(
                                GliErrorCode.TOO_MANY_MALFORMED, "too many malformed documents"
                            )
                        )
                        break
                    continue
                events.append(DocumentReceived(call_id, message))
            elif gli_type == _KA_REQUEST:
                self._out += _KEEP_ALIVE_RESPONSE
            elif gli_type == _ERROR:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                self.state = LinkState.CLOSED
                events.append(LinkClosed(f"peer sent GLI Error frame (code {code})", by_peer=True))
                break
            else:  # KeepAliveResponse: counted; the activity update above does the rest
                self.keep_alive_answers += 1
        return events

    def _decode_piece(self, partial: PartialDocument, now: float) -> list[LinkEvent]:
        """Decode the next ``turn_bytes`` of a document larger than that (one per call)."""
        try:
            document = partial.step(self.turn_bytes)
        except DecodeError as error:  # not ``exc``: one type per name for mypyc
            self._partial = None
            if not error.well_formed and self._count_malformed(now):
                return [
                    DocumentRejected(error),
                    self._fail(GliErrorCode.TOO_MANY_MALFORMED, "too many malformed documents"),
                ]
            return [DocumentRejected(error)]
        if document is None:
            self._partial = partial
            return []
        self._partial = None
        self._decoded = DocumentReceived(document[0], document[1])  # handled in the next call,
        return []  # not in the one that built it: the two cost the most of such a document

    def _count_malformed(self, now: float) -> bool:
        window = self._malformed
        window.append(now)
        while window and window[0] <= now - self.malformed_window:
            window.popleft()
        return len(window) > self.malformed_limit

    def _fail(self, code: GliErrorCode, reason: str) -> LinkClosed:
        if self.role is Role.SERVER:
            self._out += encode_error_frame(code)
        self.state = LinkState.CLOSED
        return LinkClosed(reason, error_code=code if self.role is Role.SERVER else None)

    # ------------------------------------------------------------------ output

    def send(self, call_id: str | None, message: Message) -> None:
        """Queue one document. Sending on a closed link is a silent no-op (the peer is gone).

        A document longer than the role allows raises :class:`DocumentTooLarge` and nothing of it
        is queued: the server sends at most ``MAX_DOCUMENT`` bytes (32,765: some drivers read the
        GLI length as a signed 16-bit number), the client library up to a full frame."""
        if self.state is LinkState.CLOSED:
            return
        head, body = encode_document_parts(call_id, message, self.encoding, self.dtd_file)
        size = len(head) + len(body)
        if size > MAX_DOCUMENT and (self.role is Role.SERVER or size > MAX_PAYLOAD):
            raise DocumentTooLarge(
                message.tag, size, MAX_DOCUMENT if self.role is Role.SERVER else MAX_PAYLOAD
            )
        out = self._out
        out += HEADER.pack(_DATA, size + 2, 2, 0)
        out += head
        out += body

    def send_keep_alive(self) -> None:
        """Queue a keep-alive request (the client library uses this)."""
        if self.state is LinkState.OPEN:
            self._out += _KEEP_ALIVE_REQUEST

    def refuse(self, code: GliErrorCode, reason: str) -> LinkClosed:
        """Close the link with a GLI Error frame (e.g. a client not on the allow-list)."""
        if self.state is LinkState.CLOSED:
            return LinkClosed(reason)
        return self._fail(code, reason)

    def close(self, reason: str) -> LinkClosed:
        """Close the link from our side without an error frame."""
        self.state = LinkState.CLOSED
        return LinkClosed(reason)

    def data_to_send(self) -> bytes:
        """Everything queued for the peer, once."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None``."""
        if self.state is LinkState.CLOSED:
            return None
        interval, since, timeout = self.keep_alive_interval, self._partial_since, self.frame_timeout
        return earliest(
            None if interval is None else self._last_activity + interval * (self._ka_sent + 1),
            None if since is None or timeout is None else since + timeout,
        )

    def handle_timer(self, now: float) -> list[LinkEvent]:
        """Send keep-alives or close the link, as the deadlines that have passed require."""
        if self.state is LinkState.CLOSED:
            return []
        if (
            self._partial_since is not None
            and self.frame_timeout is not None
            and now >= self._partial_since + self.frame_timeout
        ):
            return [self._fail(GliErrorCode.BAD_LENGTH, "partial frame never completed")]
        interval = self.keep_alive_interval
        if interval is not None and now >= self._last_activity + interval * (self._ka_sent + 1):
            if self._ka_sent >= self.keep_alive_tries:
                self.state = LinkState.CLOSED
                return [
                    LinkClosed(
                        f"no traffic for {interval * (self._ka_sent + 1):g} s "
                        f"({self._ka_sent} keep-alive requests unanswered)"
                    )
                ]
            self._out += _KEEP_ALIVE_REQUEST
            self._ka_sent += 1
            # A timer that fired late: the next request (or the close) is a full interval after
            # this one, not already due (the deadline counts from the last activity).
            self._last_activity = max(self._last_activity, now - interval * self._ka_sent)
        return []
