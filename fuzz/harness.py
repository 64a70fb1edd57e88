"""What every fuzz target shares: the targets' registry, how an input is cut into reads and
timer ticks, an independent GLI frame parser to check the server's output against, and a trap
for exceptions the service catches and logs.

A target is a module ``fuzz/fuzz_<name>.py`` with a function ``one_input(data: bytes) -> None``
that raises on a broken property and returns otherwise. The same function serves atheris (the
coverage-guided engine, ``fuzz/run.py``) and the plain replay of the corpus and of every crash
ever found (``tests/unit/test_fuzz_regressions.py``), so nothing here needs atheris. An input's
outcome depends on its bytes alone: targets empty the codec's memos and build fresh engines for
each input, and time is the targets' own counter.
"""

from __future__ import annotations

import logging
import struct
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = [
    "CORPUS_DIR",
    "CRASHES_DIR",
    "FUZZ_DIR",
    "MAX_REPLY_LENGTH",
    "TARGETS",
    "Frame",
    "LoggedExceptions",
    "Script",
    "Target",
    "frame",
    "parse_frames",
]

FUZZ_DIR: Final = Path(__file__).resolve().parent
CORPUS_DIR: Final = FUZZ_DIR / "corpus"
"""``corpus/<target>/``: inputs the engine starts from (seeds, and what earlier runs kept)."""
CRASHES_DIR: Final = FUZZ_DIR / "crashes"
"""``crashes/<target>/``: every input that ever broke a property, replayed by the test suite."""


@dataclass(frozen=True)
class Target:
    """One fuzz target."""

    name: str
    module: str
    """Import path of the module holding ``one_input``."""
    max_len: int
    """Longest input the engine makes up (libFuzzer ``-max_len``)."""
    about: str


TARGETS: Final[dict[str, Target]] = {
    t.name: t
    for t in (
        Target("gli", "fuzz.fuzz_gli", 8192, "wire/gli.py FrameDecoder, whole and split"),
        Target("codec", "fuzz.fuzz_codec", 8192, "wire/codec.py decode, re-encode, memos"),
        Target("link", "fuzz.fuzz_link", 16384, "session/link.py IvrLink, server role"),
        Target("service", "fuzz.fuzz_service", 16384, "IvrService in memory, default config"),
        Target("csta", "fuzz.fuzz_csta", 16384, "switch/csta framing and codec, round trip"),
    )
}

# ------------------------------------------------------------------ GLI frames, independently

_HEADER: Final = struct.Struct(">HHBB")
MAX_REPLY_LENGTH: Final = 32767
"""Largest GLI MessageLength any frame the server writes may carry: some IVR drivers read the
16-bit length as signed, so a longer frame breaks them (issue 19, item 1)."""


@dataclass(frozen=True)
class Frame:
    gli_type: int
    payload: bytes


def frame(gli_type: int, payload: bytes = b"") -> bytes:
    """A GLI frame (the fuzz inputs' own encoder, not the one under test)."""
    return _HEADER.pack(gli_type, len(payload) + 2, 2, 0) + payload


def parse_frames(stream: bytes) -> tuple[list[Frame], str | None, int]:
    """The frames of a GLI byte stream as PROTOCOL.md §1 defines them: ``(frames, error,
    leftover)`` where ``error`` names the first header that cannot be trusted (``None`` if
    none) and ``leftover`` counts the bytes after the last complete frame."""
    frames: list[Frame] = []
    pos = 0
    while len(stream) - pos >= 6:
        gli_type, length, version, app = _HEADER.unpack_from(stream, pos)
        if version != 2:
            return frames, "BAD_VERSION", len(stream) - pos
        if app != 0:
            return frames, "BAD_APPLICATION", len(stream) - pos
        if gli_type > 3:
            return frames, "UNKNOWN_TYPE", len(stream) - pos
        if length < 2:
            return frames, "BAD_LENGTH", len(stream) - pos
        if pos + 4 + length > len(stream):
            break
        frames.append(Frame(gli_type, stream[pos + 6 : pos + 4 + length]))
        pos += 4 + length
    return frames, None, len(stream) - pos


def check_output(stream: bytes, *, max_length: int = MAX_REPLY_LENGTH) -> list[Frame]:
    """What a server wrote must be whole, valid GLI frames, each no longer than ``max_length``."""
    frames, error, leftover = parse_frames(stream)
    assert error is None, f"server wrote a bad GLI header ({error}): {stream[:64]!r}"
    assert leftover == 0, f"server wrote {leftover} bytes that are not a whole frame"
    for f in frames:
        assert len(f.payload) + 2 <= max_length, (
            f"server wrote a GLI frame of MessageLength {len(f.payload) + 2} > {max_length}: "
            f"{f.payload[:200]!r}"
        )
        if f.gli_type == 2:
            assert len(f.payload) == 2, f"GLI Error frame with payload {f.payload!r}"
    return frames


# ------------------------------------------------------------------ an input as reads and ticks

_STEPS: Final = (0.0, 0.0, 0.0, 0.0, 0.0, 0.001, 0.5, 3.0, 5.0, 11.0, 61.0, 601.0, 30000.0)
"""Seconds that pass before a read: mostly none, sometimes past the keep-alive, router,
partial-frame, malformed-window, orphan-call and call timeouts of the default configuration."""


class Script:
    """An input for the engines that read a byte stream over time (link, service).

    Byte 0 holds the target's flags; byte 1 seeds how the rest, the stream the peer sends, is
    cut into reads (bits 0-1: one read, reads of 1-16 bytes, of 1-600 bytes, or of 1-6000
    bytes) and how much time passes before each (bits 2-7). Seeds are written with flags and
    cut 0 (one read), and the engine mutates the two bytes like any other.
    """

    __slots__ = ("_state", "cut", "flags", "stream")

    def __init__(self, data: bytes) -> None:
        self.flags = data[0] if data else 0
        self.cut = data[1] if len(data) > 1 else 0
        self.stream = data[2:]
        self._state = (self.cut * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & (2**64 - 1)

    @staticmethod
    def make(flags: int, stream: bytes, cut: int = 0) -> bytes:
        """The input that replays ``stream`` with these flags and cut."""
        return bytes((flags & 0xFF, cut & 0xFF)) + stream

    def _next(self, bound: int) -> int:
        # xorshift64*: the same sequence on every Python, unlike ``random``'s methods
        x = self._state
        x ^= (x >> 12) & (2**64 - 1)
        x ^= (x << 25) & (2**64 - 1)
        x ^= x >> 27
        self._state = x
        return (((x * 0x2545F4914F6CDD1D) & (2**64 - 1)) >> 11) % bound

    def reads(self, stream: bytes | None = None) -> Iterator[tuple[bytes, float]]:
        """``(bytes, seconds passed before them)`` for each read of ``stream`` (the input's)."""
        data = self.stream if stream is None else stream
        longest = (len(data) or 1, 16, 600, 6000)[self.cut & 3]
        timed = self.cut >> 2
        pos = 0
        while pos < len(data):
            size = 1 + self._next(longest)
            dt = _STEPS[self._next(len(_STEPS))] if timed else 0.0
            yield data[pos : pos + size], dt
            pos += size


# ------------------------------------------------------------------ exceptions the core logs


class LoggedExceptions(logging.Handler):
    """Collects every record logged with an exception under ``ivr_server``: the service answers
    its own bugs with a generic error and logs the traceback, so without this trap a fuzzer
    would never see them. Use as a context manager around one input; on exit it raises an
    ``AssertionError`` carrying the first traceback, if any was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.caught: list[str] = []
        self._logger = logging.getLogger("ivr_server")
        self._saved: tuple[int, bool] = (logging.NOTSET, True)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(record.exc_info[1]))
            self.caught.append(f"{record.getMessage()}\n{text}")

    def __enter__(self) -> LoggedExceptions:
        self.caught.clear()
        logger = self._logger
        self._saved = (logger.level, logger.propagate)
        logger.setLevel(logging.ERROR)  # info and warnings cost time and tell nothing here
        logger.propagate = False
        logger.addHandler(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        logger = self._logger
        logger.removeHandler(self)
        logger.setLevel(self._saved[0])
        logger.propagate = self._saved[1]
        if exc is None and self.caught:
            raise AssertionError(
                f"the core logged {len(self.caught)} exception(s); the first:\n{self.caught[0]}"
            )
