"""Results remembered by key, for documents that repeat: what the decoder and the encoder share.

IVR drivers send the same documents again and again with only the CallId changed, and the server
sends the same replies; :class:`Memo` keeps those results, bounded, so a repeated document costs
a dictionary lookup instead of a parse or a serialisation.
"""

from __future__ import annotations

__all__ = ["MEMO_MAX_CALL_ID", "MEMO_MAX_ENTRIES", "MEMO_MAX_PAYLOAD", "Memo"]

from collections.abc import Hashable
from typing import Final, Generic, TypeVar

MEMO_MAX_ENTRIES: Final = 4096
"""Entries of a memo (and hashes of keys seen once) before it is emptied."""
MEMO_MAX_PAYLOAD: Final = 2048
"""Longest document (decoding) or message element (encoding) remembered, in bytes."""
MEMO_MAX_CALL_ID: Final = 256
"""Longest CallId whose document or document head is remembered."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
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
