"""The HTTP client of peer Locations: an ``AccessNumGet`` for a Location served by a peer
ivr-server reserves the number there, over the peer's API (``POST /api/v1/access-numbers``), and
a number this server no longer needs is released there (``DELETE /api/v1/access-numbers/{n}``)
(MODES-AND-HA G24, ``docs/access-numbers.md``).

Like the webhook router (:mod:`ivr_server.api.webhook`), the service does no I/O: it hands a
:class:`~ivr_server.sites.PeerAsk` or :class:`~ivr_server.sites.PeerRelease` to
:meth:`PeerClient.send`, which starts a task on the event loop and returns. The task's answer
goes back through :meth:`AccessNumberService.peer_answered
<ivr_server.service.access_numbers.AccessNumberService.peer_answered>`, then the IVR sessions are
written out. A peer that is down, refuses, answers nonsense or is slower than the Location's
``request-timeout`` gives ``AccessNumResp Result='Failure'`` (the service's own timer answers a
silent peer at its deadline, whatever the socket does).
"""

from __future__ import annotations

__all__ = ["PeerClient"]

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from ivr_server.api.jsonify import MAX_JSON_BYTES, kv_json, load_json
from ivr_server.service.access_numbers import AccessNumberService
from ivr_server.sites import PeerAsk, PeerRelease

log = logging.getLogger("ivr_server.api.peers")

PATH = "/api/v1/access-numbers"
RELEASE_TIMEOUT = 5.0
"""Seconds a release on a peer may take (best effort: the peer's lifetime frees it anyway)."""


class PeerClient:
    """Carries the access-number requests of ``service`` to peer servers."""

    def __init__(
        self,
        service: AccessNumberService,
        *,
        client: Callable[[], aiohttp.ClientSession],
        flush: Callable[[], None],
    ) -> None:
        self.service = service
        self._client = client
        self._flush = flush
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, request: PeerAsk | PeerRelease) -> None:
        """Start carrying ``request`` (no I/O here)."""
        loop = asyncio.get_running_loop()
        job = self._ask(request) if isinstance(request, PeerAsk) else self._release(request)
        task = loop.create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        """Cancel the requests in flight (the service's timers answer their calls)."""
        for task in list(self.tasks):
            task.cancel()

    async def _ask(self, ask: PeerAsk) -> None:
        number: str | None = None
        reason = ""
        body = {
            "location": ask.remote_location,
            "dest": ask.dest,
            "user_data": kv_json(ask.data),
        }
        try:
            timeout = aiohttp.ClientTimeout(total=ask.timeout)
            async with self._client().post(
                ask.peer + PATH, json=body, headers=_auth(ask.token), timeout=timeout
            ) as response:
                data = await _json(response)
                if response.status == 201 and isinstance(data, dict):
                    found = data.get("number")
                    number = found if isinstance(found, str) and found else None
                    reason = "" if number else "an answer without a number"
                else:
                    error = data.get("error") if isinstance(data, dict) else None
                    reason = f"HTTP {response.status}: {error or 'no reason given'}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self.service.peer_answered(ask, number, reason, asyncio.get_running_loop().time())
        self._flush()

    async def _release(self, release: PeerRelease) -> None:
        url = f"{release.peer}{PATH}/{release.number}"
        try:
            timeout = aiohttp.ClientTimeout(total=RELEASE_TIMEOUT)
            async with self._client().delete(
                url, headers=_auth(release.token), timeout=timeout
            ) as response:
                if response.status // 100 != 2 and response.status != 404:
                    log.warning(
                        "peer %s: release of %s: HTTP %d", url, release.number, response.status
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("peer %s: release of %s failed: %r", url, release.number, exc)


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _json(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON (``None``: none). ``ValueError``: too large, too deep, not JSON."""
    body = await response.content.read(MAX_JSON_BYTES + 1)
    return load_json(body) if body.strip() else None
