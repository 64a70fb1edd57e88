"""The HTTP API, metrics and web view of a running :class:`~ivr_server.runtime.IvrServer`.

Theory of operation. :class:`ApiServer` is an aiohttp application run by an ``AppRunner`` and one
``TCPSite`` per listen address, in the server's own event loop, so a handler reads and changes
the service directly, between two IVR documents, with no lock. Its routes are registered from the
table of operations (:mod:`ivr_server.api.operations`), which also generates ``/openapi.json``.
Reads build JSON from the live objects (:mod:`ivr_server.api.views`); acts validate the whole
JSON body first (pydantic, :mod:`ivr_server.api.models`), then call
:class:`~ivr_server.service.control.Control`, which looks everything up before it sends any
switch request, then write out the IVR sessions (``IvrServer.flush()``) and answer with the
switch events the act caused (:meth:`ApiServer.acted`).

Its listeners cap the open connections and time each request's headers (:mod:`ivr_server.api.limits`:
``api.max-connections``, ``api.header-timeout``), so that idle or slow clients cannot take the
descriptors the IVR connections need, nor the API's own.

One middleware checks ``Host`` and ``Origin`` of the event stream and of every act and the
bearer token each operation needs (:mod:`ivr_server.api.access`), turns every error into
``{"error": reason}`` with the right status (:mod:`ivr_server.api.answers`), and counts requests
for ``/metrics``.

Also here: the rates sampler task (:mod:`ivr_server.api.rates`), the webhook routers chosen per
routing point (:mod:`ivr_server.api.webhook`) and their HTTP client. See docs/api.md.
"""

from __future__ import annotations

__all__ = ["TOKEN_ENV", "ApiServer", "tls_context"]

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from ivr_server import __version__
from ivr_server.api import openapi
from ivr_server.api.access import AUTHORIZED, TOKEN_ENV, Access, Gate
from ivr_server.api.answers import acted, error_answer, json_response
from ivr_server.api.events import EventHub, event_names
from ivr_server.api.handlers.state import address_text
from ivr_server.api.handlers.web import static_dir
from ivr_server.api.limits import ApiConnections, CappedSite
from ivr_server.api.metrics import ApiRequestCounter, ServiceCollector
from ivr_server.api.operations import OPERATIONS, Operation
from ivr_server.api.peers import PeerClient
from ivr_server.api.rates import RateSampler
from ivr_server.api.views import Clock
from ivr_server.api.webhook import WebhookRouter
from ivr_server.config import ApiConfig
from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.runtime.limits import api_connection_cap, descriptor_limit, set_tcp_keep_alive
from ivr_server.service.control import ActResult, Control

if TYPE_CHECKING:
    from ivr_server.runtime import IvrServer

log = logging.getLogger("ivr_server.api")

EVENTS: Final = "/api/v1/events"
"""The event stream: its ``Host`` and ``Origin`` are checked as an act's."""


class ApiServer:
    """The HTTP API of ``server``; ``await start()`` / ``await stop()`` (the server does both)."""

    def __init__(
        self,
        server: IvrServer,
        *,
        rate_interval: float = 5.0,
        rate_window: float = 600.0,
        event_queue_limit: int = 1000,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = server
        self.control: Control = server.control
        self.clock = Clock(lambda: asyncio.get_running_loop().time())
        self.addresses: list[tuple[str, int]] = []
        self.hub = EventHub(server.service)
        self.event_queue_limit = event_queue_limit
        self.event_names = event_names()
        """Every event name the stream's ``type`` filter accepts."""
        self.rates = RateSampler(server.service, rate_interval, rate_window)
        self.requests = ApiRequestCounter()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            ServiceCollector(server.service, self.requests, lambda: len(self.hub.subscribers))
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds... (Linux)
        ProcessCollector(registry=self.registry)
        self.stats_source: Callable[[], Mapping[str, Any]] | None = None
        """The statistics hook: a function returning the figures served as
        ``GET /api/v1/stats`` and ``state.stats``; ``None``: the service's statistics engine."""
        self.ssl_context = ssl_context
        """HTTPS (and mutual TLS); by default built from ``[api] tls-*`` when the API starts."""
        self._ssl_given = ssl_context is not None
        self.static_dir = static_dir()
        self.gate = Gate(server)
        self.connections = ApiConnections(
            api_connection_cap(server.config, descriptor_limit()), server.config.api.header_timeout
        )
        """The open connections: capped, their request headers timed (``api/limits.py``)."""
        self.webhooks: dict[tuple[str, str], WebhookRouter] = {}
        """The webhook router of each routing point that has one."""
        self.peers = PeerClient(
            server.service.access_numbers, client=self.http_client, flush=server.flush
        )
        """The HTTP client of peer Locations' access numbers (:mod:`ivr_server.api.peers`)."""
        server.service.access_numbers.peers = self.peers.send
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self.operations: tuple[Operation, ...] = OPERATIONS
        """Every endpoint, from the table (:mod:`ivr_server.api.operations`)."""
        self._access: dict[tuple[str, str], Access] = {
            (op.method, op.path): op.access for op in self.operations
        }
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._ssl_given:
            self.ssl_context = tls_context(self.server.config.api)
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        try:
            for address in self.server.api_listen:
                site = CappedSite(
                    runner,
                    address.host or "0.0.0.0",
                    address.port,
                    self.connections,
                    ssl_context=self.ssl_context,
                    backlog=self.server.config.server.listen_backlog,
                )
                await site.start()
                # TCP keep-alive on the listener, inherited by what it accepts (aiohttp turns
                # SO_KEEPALIVE on per connection, but keeps the system's two-hour timers)
                for sock in site.sockets:
                    set_tcp_keep_alive(sock, self.server.config.server.tcp_keep_alive)
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self.addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
        self._client = aiohttp.ClientSession()
        self.rates.sample(time.time())
        self._sampler = loop.create_task(self._sample_rates())
        scheme = "https" if self.ssl_context is not None else "http"
        log.info(
            "HTTP API on %s",
            ", ".join(f"{scheme}://{address_text(h, p)}/" for h, p in self.addresses),
        )

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        for webhook in self.webhooks.values():
            webhook.close()
        self.server.service.access_numbers.peers = None
        self.peers.close()
        await self.hub.close_all()
        self.connections.close_refusing()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _sample_rates(self) -> None:
        while True:
            await asyncio.sleep(self.rates.interval)
            self.rates.sample(time.time())

    @property
    def url(self) -> str:
        """The base URL of the first listen address."""
        host, port = self.addresses[0]
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{address_text(host, port)}"

    # ------------------------------------------------------------------ what handlers use

    def now(self) -> float:
        """The event loop's time: the service's clock for an act."""
        return asyncio.get_running_loop().time()

    def acted(self, result: ActResult, **extra: Any) -> web.Response:
        """Write out what the act queued for the IVR sessions, then answer with its events."""
        self.server.flush()
        return acted(result, **extra)

    def http_client(self) -> aiohttp.ClientSession:
        """The HTTP client of the webhooks (a new one if the last was closed)."""
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        return self._client

    def token(self) -> str | None:
        """The bearer token in force: ``IVR_SERVER_API_TOKEN``, else ``[api] token``."""
        return self.gate.token()

    def openapi_document(self) -> dict[str, Any]:
        """The OpenAPI document of :attr:`operations`."""
        return openapi.document(__version__)

    # ------------------------------------------------------------------ the application

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        for op in self.operations:
            app.router.add_route(op.method, op.path, self._bind(op))
        return app

    def _bind(self, op: Operation) -> Callable[[web.Request], Any]:
        handler = op.handler

        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(self, request)

        handle.__name__ = handle.__qualname__ = handler.__name__
        return handle

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else "unmatched"
        status = 500
        connections = self.connections
        connections.request_started(request.transport)  # its headers came in time
        try:
            access = self._access.get((request.method, template))
            if access is None:  # unknown path or method: reading or acting, by the method
                access = "read" if request.method in ("GET", "HEAD") else "act"
            if access == "act" or template == EVENTS:
                self.gate.check_origin(request)
            request[AUTHORIZED] = self.gate.authorize(request, access)
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            answer = error_answer(exc)
            if answer is None:
                if isinstance(exc, web.HTTPException):
                    raise  # a redirect or a success aiohttp raised
                log.exception("API: internal error on %s %s", request.method, request.path)
                answer = json_response({"error": "internal error (logged by the server)"}, 500)
            status = answer.status
            return answer
        finally:
            connections.request_ended(request.transport)  # the next request's headers are timed
            self.requests.add(request.method, template, status)
            if request.method not in ("GET", "HEAD"):
                log.info(
                    "API %s %s from %s -> %d",
                    request.method,
                    request.path,
                    request.remote or "?",
                    status,
                )


def tls_context(api: ApiConfig) -> ssl.SSLContext | None:
    """The HTTPS context of ``[api] tls-cert`` / ``tls-key`` (``None``: plain HTTP); with
    ``tls-client-ca`` every client must present a certificate signed by that CA."""
    if api.tls_cert is None or api.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    where = "api.tls-cert"
    try:
        context.load_cert_chain(api.tls_cert, api.tls_key)
        if api.tls_client_ca is not None:
            where = "api.tls-client-ca"
            context.load_verify_locations(cafile=api.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([ConfigProblem(where, f"cannot load: {exc}")]) from None
    return context
