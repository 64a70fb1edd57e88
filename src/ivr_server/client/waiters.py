"""Who waits for which inbound document: the routing half of :class:`~.connection.IvrClient`.

Routing of one inbound document, first match wins:

1. the oldest pending request on the same CallId that it answers (:meth:`Waiters.add_request`);
2. the oldest waiting ``expect()`` whose filter it matches;
3. the oldest waiting ``events()`` iterator;
4. otherwise the unsolicited queue, where later ``expect()``/``events()`` calls find it, in order.

A bad document (:class:`~.errors.BadDocument`) goes to the pending request it can be tied to (same
CallId, compatible ReqId/RequestId), else to the first waiting ``expect()``; ``events()`` skips
it. When the link closes (:meth:`Waiters.fail`), every waiter raises
:class:`~.errors.ConnectionLost`.

Every future here has one owner, the coroutine awaiting it; every timer is cancelled by its owner.
No socket here: the connection feeds documents in and the coroutines wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ivr_server.client.documents import Received, compatible
from ivr_server.client.errors import BadDocument, ConnectionLost, RequestTimeout
from ivr_server.wire import DecodeError

__all__ = ["Waiter", "Waiters"]

_T = TypeVar("_T")


@dataclass(eq=False, slots=True)
class Waiter:
    """A coroutine waiting for one document; the coroutine owns ``future`` and removes it."""

    accepts: Callable[[Received], bool]
    future: asyncio.Future[Received]
    req_id: str | None = None
    request_id: str | None = None


def _expire(future: asyncio.Future[Any], text: str) -> None:
    if not future.done():
        future.set_exception(RequestTimeout(text))


class Waiters:
    """The pending requests, ``expect()`` and ``events()`` waiters, keep-alive waiters and the
    unsolicited queue of one connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._requests: dict[str | None, list[Waiter]] = {}
        self._expecters: list[Waiter] = []
        self._listeners: list[Waiter] = []
        self._inbox: deque[Received | BadDocument] = deque()
        self._keep_alives: deque[asyncio.Future[float]] = deque()
        self._lost: Callable[[], ConnectionLost] | None = None
        """Set once the link is closed: makes the error the waiters raise from then on."""

    # ------------------------------------------------------------------ documents in

    def deliver(self, received: Received) -> None:
        """Route one inbound document (rules 1-4 of the module docstring)."""
        waiters = self._requests.get(received.call_id)
        if waiters:
            for i, waiter in enumerate(waiters):
                if not waiter.future.done() and waiter.accepts(received):
                    del waiters[i]
                    waiter.future.set_result(received)
                    return
        self.offer(received)

    def offer(self, item: Received | BadDocument, *, front: bool = False) -> None:
        """Give an unsolicited document to a waiting expect()/events(), else queue it."""
        if isinstance(item, BadDocument):
            for waiter in self._expecters:
                if not waiter.future.done():
                    waiter.future.set_exception(item)
                    return
            if any(not w.future.done() for w in self._listeners):
                return  # events() skips bad documents; they are logged and in `rejected`
        else:
            for waiter in self._expecters:
                if waiter.future.done():
                    continue
                try:
                    matched = waiter.accepts(item)
                except Exception as exc:  # a caller's predicate failed: that caller gets it
                    waiter.future.set_exception(exc)
                    continue
                if matched:
                    waiter.future.set_result(item)
                    return
            for waiter in self._listeners:
                if not waiter.future.done():
                    waiter.future.set_result(item)
                    return
        if front:
            self._inbox.appendleft(item)
        else:
            self._inbox.append(item)

    def reject(self, error: DecodeError) -> None:
        """Route a document the server got wrong, as a :class:`BadDocument`."""
        bad = BadDocument(error)
        waiters = self._requests.get(error.call_id) if error.call_id is not None else None
        if waiters:
            for i, waiter in enumerate(waiters):
                if (
                    not waiter.future.done()
                    and compatible(waiter.req_id, error.req_id)
                    and compatible(waiter.request_id, error.request_id)
                ):
                    del waiters[i]
                    waiter.future.set_exception(bad)
                    return
        self.offer(bad)

    def answer_keep_alives(self, answers: int, now: float) -> None:
        """``answers`` keep-alive responses came at ``now``: they answer the oldest waiters."""
        keep_alives = self._keep_alives
        while answers and keep_alives:
            future = keep_alives.popleft()
            if not future.done():
                future.set_result(now)
                answers -= 1

    def fail(self, lost: Callable[[], ConnectionLost]) -> None:
        """The link closed: every waiter, and every later one, raises ``lost()``."""
        self._lost = lost
        waiters = [w for queue in self._requests.values() for w in queue]
        waiters += self._expecters + self._listeners
        self._requests.clear()
        self._expecters.clear()
        self._listeners.clear()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(lost())
        while self._keep_alives:
            future = self._keep_alives.popleft()
            if not future.done():
                future.set_exception(lost())

    # ------------------------------------------------------------------ waiting

    def add_request(
        self,
        call_id: str | None,
        accepts: Callable[[Received], bool],
        req_id: str | None = None,
        request_id: str | None = None,
    ) -> Waiter:
        """Wait for the answer to a request on ``call_id`` (register before sending)."""
        waiter = Waiter(accepts, self._loop.create_future(), req_id, request_id)
        self._requests.setdefault(call_id, []).append(waiter)
        return waiter

    def drop_request(self, call_id: str | None, waiter: Waiter) -> None:
        """The owner of ``waiter`` is done with it."""
        waiters = self._requests.get(call_id)
        if waiters is None:
            return
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            del self._requests[call_id]

    def abandon_request(self, call_id: str | None, waiter: Waiter) -> None:
        """Drop a waiter nobody will await: its document, if it got one, becomes unsolicited."""
        self.drop_request(call_id, waiter)
        future = waiter.future
        if not future.done():
            future.cancel()
        elif not future.cancelled() and future.exception() is None:
            self.offer(future.result())

    def add_keep_alive(self) -> asyncio.Future[float]:
        """Wait for the next keep-alive response (the time it came)."""
        future: asyncio.Future[float] = self._loop.create_future()
        self._keep_alives.append(future)
        return future

    def drop_keep_alive(self, future: asyncio.Future[float]) -> None:
        if future in self._keep_alives:
            self._keep_alives.remove(future)

    async def next_unsolicited(
        self,
        accepts: Callable[[Received], bool] | None,
        limit_s: float | None,
        what: str,
        *,
        scan: bool,
    ) -> Received:
        """Wait as an expecter (``accepts`` given) or as an events() listener (``None``)."""
        inbox = self._inbox
        if scan:
            if accepts is None:
                while inbox:
                    item = inbox.popleft()
                    if not isinstance(item, BadDocument):
                        return item
            else:
                for i, item in enumerate(inbox):
                    if isinstance(item, BadDocument):
                        del inbox[i]
                        raise item
                    if accepts(item):
                        del inbox[i]
                        return item
        if self._lost is not None:
            raise self._lost()
        if accepts is None:
            waiter = Waiter(lambda _: True, self._loop.create_future())
            queue = self._listeners
        else:
            waiter = Waiter(accepts, self._loop.create_future())
            queue = self._expecters
        queue.append(waiter)
        try:
            return await self.wait(
                waiter.future, limit_s, what, orphan=lambda item: self.offer(item, front=True)
            )
        finally:
            if waiter in queue:
                queue.remove(waiter)

    async def wait(
        self,
        future: asyncio.Future[_T],
        limit_s: float | None,
        what: str,
        orphan: Callable[[_T], None] | None = None,
    ) -> _T:
        """Await ``future`` with a timeout that fails it with :class:`RequestTimeout`.

        If the caller is cancelled after the result arrived, ``orphan`` gets the result (so an
        unsolicited document is not lost); an exception that arrived is marked as retrieved.
        """
        timer = None
        if limit_s is not None:
            timer = self._loop.call_later(
                limit_s, _expire, future, f"no {what} within {limit_s:g} s"
            )
        try:
            return await future
        except asyncio.CancelledError:
            # Retrieve what arrived anyway (an unretrieved exception would be logged at GC).
            arrived = future.done() and not future.cancelled() and future.exception() is None
            if arrived and orphan is not None:
                orphan(future.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
