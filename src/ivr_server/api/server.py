"""The HTTP API, metrics and web view of a running :class:`~ivr_server.runtime.IvrServer`.

Theory of operation. :class:`ApiServer` is an aiohttp application run by an ``AppRunner`` and one
``TCPSite`` per listen address, in the server's own event loop, so a handler reads and changes
the service directly, between two IVR documents, with no lock. Reads build JSON from the live
objects (:mod:`ivr_server.api.views`); acts validate the whole JSON body first (pydantic,
:mod:`ivr_server.api.models`), then call :class:`~ivr_server.service.control.Control`, which looks
everything up before it sends any switch request, then write out the IVR sessions
(``IvrServer.flush()``) and answer with the switch events the act caused. One middleware checks
``Host`` and ``Origin`` of the event stream and of every act against the API's own names and
``[api] allowed-origins`` (DNS rebinding, cross-site requests), does authentication (bearer
token, :func:`hmac.compare_digest` over UTF-8 bytes), turns every error into
``{"error": reason}`` with the right status, and counts requests for ``/metrics``.

Who may read what (docs/api.md, "Authentication"): ``public`` routes hold no state; ``read``
routes are harmless (topology, counts, metrics) and need no token under ``[api] public-read``,
where ``/api/v1/state`` then leaves out the calls' user data and caller numbers; ``private``
routes (calls, routing points' waiting calls, the event stream) carry user data and need the
token always, as every ``act`` does.

Also here: the WebSocket event stream (:mod:`ivr_server.api.events`), the rates sampler task
(:mod:`ivr_server.api.rates`), the per-routing-point router choice with the webhook router
(:mod:`ivr_server.api.webhook`), ``/metrics`` (:mod:`ivr_server.api.metrics`) and
``/openapi.json`` (:mod:`ivr_server.api.openapi`). See docs/api.md.
"""

from __future__ import annotations

__all__ = ["TOKEN_ENV", "ApiServer", "tls_context"]

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from pydantic import BaseModel, ValidationError

from ivr_server import __version__, logs
from ivr_server.api import openapi
from ivr_server.api.events import EventFilter, EventHub, event_names, split_values
from ivr_server.api.jsonify import event_json, load_json
from ivr_server.api.metrics import ApiRequestCounter, ServiceCollector, exposition
from ivr_server.api.models import (
    AgentLoginBody,
    AgentLogoutBody,
    AgentStateBody,
    DialOutBody,
    EndCallBody,
    LinkBody,
    LogLevelBody,
    ReleaseBody,
    ReloadBody,
    RouteBody,
    RouterBody,
    TreatmentBody,
    UserDataBody,
    kv_items,
)
from ivr_server.api.rates import RateSampler
from ivr_server.api.views import (
    Clock,
    call_view,
    calls_view,
    ivrs_view,
    routing_points_view,
    sessions_view,
    switches_view,
)
from ivr_server.api.webhook import WebhookRouter
from ivr_server.config.model import ApiConfig
from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.outbound import DialOutOutcome, DialOutRequest
from ivr_server.runtime.limits import set_tcp_keep_alive
from ivr_server.service.control import ActResult, Conflict, Control, NotFound
from ivr_server.switch import TErrorCode

if TYPE_CHECKING:
    from ivr_server.runtime import IvrServer

log = logging.getLogger("ivr_server.api")

TOKEN_ENV: Final = "IVR_SERVER_API_TOKEN"
"""The environment variable that overrides ``[api] token``."""

API: Final = "/api/v1"
RELOAD_CALLS_LISTED: Final = 1000
"""Most stranded calls a reload answer lists (``stranded_total`` counts them all)."""
EVENTS: Final = f"{API}/events"
REALM: Final = 'Bearer realm="ivr-server"'

Access = Literal["public", "read", "private", "act"]
"""``public``: no token ever; ``read``: harmless, no token under ``public-read``; ``private``
(user data, caller numbers) and ``act``: the token always."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

_STATIC_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

AUTHORIZED: Final = web.RequestKey("ivr_server.authorized", bool)
"""Request key: ``True`` when the request carried the right token (reads answer in full)."""

PLACEHOLDER: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IVR Server</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>IVR Server</h1>
<p>The web view is not installed. The API is here:
<a href="/openapi.json">/openapi.json</a>, <a href="/api/v1/state">/api/v1/state</a>,
<a href="/metrics">/metrics</a>.</p>
</body></html>
"""


class ApiError(Exception):
    """An answer other than success: ``{"error": reason, ...extra}`` with ``status``."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: method, path template, handler, who may call it."""

    method: str
    path: str
    handler: Handler
    access: Access


def _static_dir() -> Path | None:
    try:
        path = Path(str(resources.files("ivr_server.api").joinpath("static")))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - odd installs
        return None
    return path if path.is_dir() else None


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        data,
        status=status,
        headers=headers,
        dumps=lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")),
    )


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
        self.rates = RateSampler(server.service, rate_interval, rate_window)
        self.requests = ApiRequestCounter()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            ServiceCollector(server.service, self.requests, lambda: len(self.hub.subscribers))
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds... (Linux)
        ProcessCollector(registry=self.registry)
        self.stats_source: Callable[[], Mapping[str, Any]] | None = None
        """The statistics hook: when the statistics engine is wired, it sets this to a function
        returning its current figures, served as ``GET /api/v1/stats`` and ``state.stats``.
        ``None`` (today): ``{}``."""
        self.ssl_context = ssl_context
        """HTTPS (and mutual TLS); by default built from ``[api] tls-*`` when the API starts."""
        self._ssl_given = ssl_context is not None
        self.static_dir = _static_dir()
        self._host_names = _machine_names()
        self._event_names = event_names()
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._webhooks: dict[tuple[str, str], WebhookRouter] = {}
        self.routes: list[Route] = self._routes()
        self._access: dict[str, Access] = {}
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
                site = web.TCPSite(
                    runner,
                    address.host or "0.0.0.0",
                    address.port,
                    ssl_context=self.ssl_context,
                    reuse_address=True,
                )
                await site.start()
                # TCP keep-alive on the listener, inherited by what it accepts (aiohttp turns
                # SO_KEEPALIVE on per connection, but keeps the system's two-hour timers);
                # aiohttp keeps the server private, its own runner.addresses reads it too
                listener = getattr(site, "_server", None)
                for sock in getattr(listener, "sockets", None) or ():
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
            "HTTP API on %s", ", ".join(f"{scheme}://{_host(h)}:{p}/" for h, p in self.addresses)
        )

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        for webhook in self._webhooks.values():
            webhook.close()
        await self.hub.close_all()
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
        return f"{scheme}://{_host(host)}:{port}"

    # ------------------------------------------------------------------ the application

    def _routes(self) -> list[Route]:
        r = Route
        return [
            r("GET", "/", self.index, "public"),
            r("GET", "/static/{name}", self.static, "public"),
            r("GET", "/openapi.json", self.openapi, "public"),
            r("GET", "/metrics", self.metrics, "read"),
            r("GET", f"{API}/state", self.get_state, "read"),
            r("GET", f"{API}/switches", self.get_switches, "read"),
            r("GET", f"{API}/ivrs", self.get_ivrs, "read"),
            r("GET", f"{API}/sessions", self.get_sessions, "read"),
            r("GET", f"{API}/calls", self.get_calls, "private"),
            r("GET", f"{API}/calls/{{call_id}}", self.get_call, "private"),
            r("GET", f"{API}/routing-points", self.get_routing_points, "private"),
            r("GET", f"{API}/stats", self.get_stats, "read"),
            r("GET", f"{API}/rates", self.get_rates, "read"),
            r("GET", f"{API}/log-level", self.get_log_level, "read"),
            r("GET", EVENTS, self.events, "private"),
            r("POST", f"{API}/calls/{{call_id}}/user-data", self.set_user_data, "act"),
            r("DELETE", f"{API}/calls/{{call_id}}/user-data", self.delete_all_user_data, "act"),
            r("DELETE", f"{API}/calls/{{call_id}}/user-data/{{key}}", self.delete_key, "act"),
            r("POST", f"{API}/calls/{{call_id}}/release", self.release, "act"),
            r("POST", f"{API}/calls/{{call_id}}/end-call", self.end_call, "act"),
            r("POST", f"{API}/ivrs/{{ivr}}/ports/{{port}}/end-call", self.end_port_call, "act"),
            r(
                "POST",
                f"{API}/routing-points/{{switch}}/{{dn}}/calls/{{conn_id}}/route",
                self.route_call,
                "act",
            ),
            r(
                "POST",
                f"{API}/routing-points/{{switch}}/{{dn}}/calls/{{conn_id}}/treatment",
                self.apply_treatment,
                "act",
            ),
            r("PUT", f"{API}/routing-points/{{switch}}/{{dn}}/router", self.set_router, "act"),
            r("POST", f"{API}/agents/{{switch}}/{{dn}}/login", self.agent_login, "act"),
            r("POST", f"{API}/agents/{{switch}}/{{dn}}/logout", self.agent_logout, "act"),
            r("POST", f"{API}/agents/{{switch}}/{{dn}}/ready", self.agent_ready, "act"),
            r("POST", f"{API}/agents/{{switch}}/{{dn}}/not-ready", self.agent_not_ready, "act"),
            r("PUT", f"{API}/switches/{{switch}}/link", self.set_link, "act"),
            r("PUT", f"{API}/log-level", self.set_log_level, "act"),
            r("POST", f"{API}/dial-out", self.dial_out, "act"),
            r("POST", f"{API}/reload", self.reload_config, "act"),
        ]

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler)
            self._access[f"{route.method} {route.path}"] = route.access
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info
        resource = info.route.resource
        template = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            access = self._access.get(f"{request.method} {template}")
            if access is None:  # unknown path or method: reading or acting, by the method
                access = "read" if request.method in ("GET", "HEAD") else "act"
            if access == "act" or template == EVENTS:
                self._check_origin(request)
            request[AUTHORIZED] = self._authorize(request, access)
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.status
            return _json({"error": exc.reason, **exc.extra}, exc.status, exc.headers)
        except NotFound as exc:
            status = 404
            return _json({"error": exc.reason}, 404)
        except Conflict as exc:
            status = 409
            return _json({"error": exc.reason}, 409)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            status = exc.status
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            return _json({"error": exc.reason}, exc.status, headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("API: internal error on %s %s", request.method, request.path)
            status = 500
            return _json({"error": "internal error (logged by the server)"}, 500)
        finally:
            self.requests.add(request.method, template, status)
            if request.method not in ("GET", "HEAD"):
                log.info(
                    "API %s %s from %s -> %d",
                    request.method,
                    request.path,
                    request.remote or "?",
                    status,
                )

    # ------------------------------------------------------------------ authentication

    def token(self) -> str | None:
        """The bearer token in force: ``IVR_SERVER_API_TOKEN``, else ``[api] token``."""
        env = os.environ.get(TOKEN_ENV)
        if env:
            return env
        return self.server.config.api.token or None

    def _authorize(self, request: web.Request, access: Access) -> bool:
        """Check the token ``access`` needs; ``True`` if the request carried the right one."""
        if access == "public":
            return False
        given: str | None = None
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                given = value.strip()
        elif request.method == "GET" and "access_token" in request.query:
            # RFC 6750 §2.3, for browsers' WebSockets, which cannot send headers
            given = request.query["access_token"]
        token = self.token()
        public = access == "read" and self.server.config.api.public_read
        if public and (given is None or token is None):
            return False  # a public read (a wrong token is still refused below)
        if token is None:
            raise ApiError(
                403,
                "no API token is configured: set [api] token or the environment variable "
                f"{TOKEN_ENV}",
            )
        if given is None:
            raise ApiError(401, "a bearer token is required", headers={"WWW-Authenticate": REALM})
        # Bytes, never str: a header may hold any byte (aiohttp decodes them as surrogates) and
        # the query any character; "surrogatepass" encodes every str, one way only.
        if not hmac.compare_digest(_utf8(given), _utf8(token)):
            raise ApiError(
                401,
                "wrong bearer token",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        return True

    # ------------------------------------------------------------------ Host and Origin

    def _check_origin(self, request: web.Request) -> None:
        """Refuse (403) a ``Host`` that is not one of the API's names (DNS rebinding) and an
        ``Origin`` that is neither the request's own nor in ``[api] allowed-origins``
        (cross-site requests). Requests without these headers (not from a browser) pass."""
        allowed = self.server.config.api.allowed_origins
        if "*" in allowed:
            return
        host_header = request.headers.get("Host")
        host: tuple[str, int | None] | None = None
        if host_header is not None:
            host = _authority(host_header)
            if host is None or not self._own_host(host[0], allowed):
                raise ApiError(
                    403,
                    f"Host {_short(host_header)} is not a name of this API: add its origin to "
                    "[api] allowed-origins",
                )
        origin = request.headers.get("Origin")
        if origin is None:
            return
        parts = _origin(origin)
        if parts is not None:
            if parts in {_origin(text) for text in allowed}:
                return
            scheme, name, port = parts
            if host is not None and (name, port) == (host[0], host[1] or _DEFAULT_PORT[scheme]):
                return  # same origin: a page this API served
        raise ApiError(
            403,
            f"Origin {_short(origin)} is not allowed: add it to [api] allowed-origins",
        )

    def _own_host(self, name: str, allowed: tuple[str, ...]) -> bool:
        """Is ``name`` (lower case) a name of this API? An IP address (DNS rebinding needs a
        host name), ``localhost`` and ``*.localhost`` (RFC 6761: never asked of a DNS server),
        a listen address, this machine's name, or the host of an allowed origin."""
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        if name == "localhost" or name.endswith(".localhost"):
            return True
        if name in self._host_names:
            return True
        if any(address.host.lower() == name for address in self.server.api_listen):
            return True
        return any(parts[1] == name for parts in map(_origin, allowed) if parts is not None)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    async def _body(request: web.Request, model: type[M]) -> M:
        raw = await request.read()
        data: Any = {}
        if raw.strip():
            try:
                data = load_json(raw)
            except ValueError as exc:
                raise ApiError(400, f"malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = [
                {"location": _location(error["loc"]), "message": error["msg"]}
                for error in exc.errors(include_url=False)
            ]
            first = problems[0] if problems else {"location": "(body)", "message": "invalid"}
            raise ApiError(
                400,
                f"invalid request body: {first['location']}: {first['message']}",
                extra={"problems": problems},
            ) from None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _acted(self, result: ActResult, **extra: Any) -> web.Response:
        self.server.flush()
        now = time.time()
        events = [event_json(event, now) for event in result.events]
        error = result.error
        if error is not None:
            try:
                name: str | None = TErrorCode(error.error_code).name
            except ValueError:
                name = None
            return _json(
                {
                    "error": error.error_message,
                    "error_code": error.error_code,
                    "error_name": name,
                    "request": error.request,
                    "events": events,
                },
                409,
            )
        return _json({**extra, "events": events})

    # ------------------------------------------------------------------ public

    async def index(self, request: web.Request) -> web.StreamResponse:
        page = self.static_dir / "index.html" if self.static_dir is not None else None
        if page is not None and page.is_file():
            return web.FileResponse(page, headers={"Cache-Control": "no-cache"})
        return web.Response(text=PLACEHOLDER, content_type="text/html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if self.static_dir is None or not _STATIC_NAME.fullmatch(name):
            raise ApiError(404, f"no static file {name!r}")
        path = self.static_dir / name
        if not path.is_file():
            raise ApiError(404, f"no static file {name!r}")
        return web.FileResponse(
            path, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        )

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return _json(openapi.document(__version__))

    # ------------------------------------------------------------------ read

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        body, content_type = exposition(self.registry, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    def stats(self) -> dict[str, Any]:
        """The statistics engine's figures (``{}`` until it is wired: :attr:`stats_source`)."""
        source = self.stats_source
        if source is not None:
            return dict(source())
        service = self.server.service
        now = service.now
        return {"statistics": service.stats.snapshot(now), **service.stats.overview(now)}

    def state(self, *, redact: bool = False) -> dict[str, Any]:
        """Everything the web view shows, in one document (``redact``: without the calls' user
        data, caller numbers and parties, for a public read)."""
        server = self.server
        service = server.service
        return {
            "server": {
                "version": __version__,
                "version_string": server.config.server.version_string,
                "started_at": round(server.started_at, 3),
                "time": round(time.time(), 3),
                "flow_control": service.flow_control,
                "listen": [f"{_host(h)}:{p}" for h, p in server.addresses],
                "api_listen": [f"{_host(h)}:{p}" for h, p in self.addresses],
                "log_level": logs.get_level(),
            },
            "switches": switches_view(self.control),
            "ivrs": ivrs_view(self.control),
            "sessions": sessions_view(self.control, self.clock),
            "calls": calls_view(self.control, redact=redact),
            "routing_points": routing_points_view(self.control, self.clock, redact=redact),
            "stats": self.stats(),
            "redacted": redact,
        }

    async def get_state(self, request: web.Request) -> web.StreamResponse:
        return _json(self.state(redact=not request.get(AUTHORIZED, False)))

    async def get_switches(self, request: web.Request) -> web.StreamResponse:
        return _json(switches_view(self.control))

    async def get_ivrs(self, request: web.Request) -> web.StreamResponse:
        return _json(ivrs_view(self.control))

    async def get_sessions(self, request: web.Request) -> web.StreamResponse:
        return _json(sessions_view(self.control, self.clock))

    async def get_calls(self, request: web.Request) -> web.StreamResponse:
        return _json(calls_view(self.control))

    async def get_call(self, request: web.Request) -> web.StreamResponse:
        return _json(call_view(self.control, self.control.call(request.match_info["call_id"])))

    async def get_routing_points(self, request: web.Request) -> web.StreamResponse:
        return _json(routing_points_view(self.control, self.clock))

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        return _json(self.stats())

    async def get_rates(self, request: web.Request) -> web.StreamResponse:
        return _json(self.rates.rates())

    async def get_log_level(self, request: web.Request) -> web.StreamResponse:
        return _json({"level": logs.get_level()})

    # ------------------------------------------------------------------ event stream

    def _event_filter(self, request: web.Request) -> EventFilter:
        query = request.query
        allowed = {"dn", "ivr", "type", "access_token"}
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)}")
        types = split_values(query.getall("type", []))
        bad = sorted(set(types) - self._event_names)
        if bad:
            raise ApiError(400, f"unknown event type(s): {', '.join(bad)}")
        config = self.server.config
        ivr_names = split_values(query.getall("ivr", []))
        ivr_dns: set[tuple[str, str]] = set()
        for name in ivr_names:
            ivr = config.ivr(name)
            if ivr is None:
                raise ApiError(404, f"no IVR {name!r}")
            for port in ivr.ports:
                switch = config.port_switch_name(ivr, port)
                if switch is not None:
                    ivr_dns.add((switch, port.dn))
        return EventFilter(
            dns=frozenset(split_values(query.getall("dn", []))),
            ivr_dns=frozenset(ivr_dns),
            ivrs_given=bool(ivr_names),
            types=frozenset(types),
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        event_filter = self._event_filter(request)
        ws = web.WebSocketResponse(heartbeat=30.0)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "this endpoint is a WebSocket (send an Upgrade request)")
        subscriber = self.hub.subscribe(event_filter, self.event_queue_limit)
        self.hub.sockets.add(ws)
        sender: asyncio.Task[None] | None = None
        try:
            await ws.prepare(request)
            sender = asyncio.get_running_loop().create_task(subscriber.run(ws))
            async for _message in ws:
                pass  # the stream is one-way; pings and close frames are handled by aiohttp
        finally:
            self.hub.unsubscribe(subscriber)
            self.hub.sockets.discard(ws)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
        return ws

    # ------------------------------------------------------------------ act: calls

    async def set_user_data(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, UserDataBody)
        result = self.control.set_user_data(
            request.match_info["call_id"],
            kv_items(body.data),
            replace=body.action == "replace",
            now=self._now(),
        )
        return self._acted(result)

    async def delete_all_user_data(self, request: web.Request) -> web.StreamResponse:
        await self._body(request, ReleaseBody)
        return self._acted(
            self.control.delete_user_data(request.match_info["call_id"], None, now=self._now())
        )

    async def delete_key(self, request: web.Request) -> web.StreamResponse:
        await self._body(request, ReleaseBody)
        return self._acted(
            self.control.delete_user_data(
                request.match_info["call_id"], request.match_info["key"], now=self._now()
            )
        )

    async def dial_out(self, request: web.Request) -> web.StreamResponse:
        """A predictive call: answered once the call is established or has failed for good."""
        body = await self._body(request, DialOutBody)
        service = self.server.service
        if not service.is_routing_point(body.dn):
            raise ApiError(404, f"{body.dn} is not a routing point")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        outcomes: list[dict[str, Any]] = []

        def on_outcome(request: DialOutRequest, outcome: DialOutOutcome) -> None:
            outcomes.append(
                {
                    "kind": outcome.kind,
                    "call_id": outcome.call_id,
                    "error_code": outcome.error_code,
                    "cause": outcome.cause,
                    "time": round(time.time(), 6),
                }
            )
            if (outcome.final or outcome.kind == "established") and not done.done():
                done.set_result(None)

        service.now = self._now()
        dialled = service.dial_out(
            on_outcome,
            body.dn,
            body.dest,
            timeout=body.timeout,
            user_data=kv_items(body.user_data),
            extensions=kv_items(body.extensions),
        )
        self.server.flush()
        if dialled is None:
            raise ApiError(409, f"no IVR session registered {body.dn} for outbound calls")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), body.timeout + dialled.time_to_answer + 5)
        last = outcomes[-1] if outcomes else None
        return _json(
            {
                "ref_id": dialled.ref_id,
                "dn": body.dn,
                "dest": body.dest,
                "result": last["kind"] if last else "pending",
                "call_id": next((o["call_id"] for o in outcomes if o["call_id"]), None),
                "outcomes": outcomes,
            },
            200
            if last is not None and last["kind"] in ("established", "ended")
            else 409
            if last is not None
            else 202,
        )

    async def release(self, request: web.Request) -> web.StreamResponse:
        await self._body(request, ReleaseBody)
        return self._acted(self.control.release(request.match_info["call_id"], now=self._now()))

    async def end_call(self, request: web.Request) -> web.StreamResponse:
        """End a call on the server's side, as its Call Timeout does: the port is free."""
        await self._body(request, ReleaseBody)
        call = self.control.call(request.match_info["call_id"])
        result = self.control.end_call(call.call_id, by=_who(request), now=self._now())
        return self._acted(result, call_id=call.call_id, ivr=call.ivr, port=call.port)

    async def end_port_call(self, request: web.Request) -> web.StreamResponse:
        """The same by IVR and port: any port can be freed, whatever its call's CallId."""
        body = await self._body(request, EndCallBody)
        info = request.match_info
        call = self.control.port_call(info["ivr"], info["port"])
        result = self.control.end_port_call(
            info["ivr"], info["port"], call_id=body.call_id, by=_who(request), now=self._now()
        )
        return self._acted(result, call_id=call.call_id, ivr=call.ivr, port=call.port)

    # ------------------------------------------------------------------ act: routing

    async def route_call(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, RouteBody)
        info = request.match_info
        result = self.control.route_call(
            info["switch"],
            info["dn"],
            info["conn_id"],
            route_type=body.route_type,
            dest=body.dest,
            extensions=kv_items(body.extensions),
            now=self._now(),
        )
        return self._acted(result)

    async def apply_treatment(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, TreatmentBody)
        info = request.match_info
        result = self.control.apply_treatment(
            info["switch"],
            info["dn"],
            info["conn_id"],
            treatment_type=body.type,
            parameters=kv_items(body.parameters),
            extensions=kv_items(body.extensions),
            now=self._now(),
        )
        return self._acted(result)

    async def set_router(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, RouterBody)
        switch, dn = request.match_info["switch"], request.match_info["dn"]
        self.control.routing_point(switch, dn)
        webhook: WebhookRouter | None = None
        if body.router == "webhook":
            assert body.url is not None
            webhook = WebhookRouter(
                self.control,
                switch,
                dn,
                body.url,
                client=self._http_client,
                timeout=lambda: self.server.config.server.timers.router_timeout,
                flush=self.server.flush,
            )
        choice = self.control.set_router(switch, dn, body.router, webhook, body.url)
        old = self._webhooks.pop((switch, dn), None)
        if old is not None:
            old.close()
        if webhook is not None:
            self._webhooks[(switch, dn)] = webhook
        log.info("routing point %s/%s: router %s %s", switch, dn, choice.mode, choice.url or "")
        return _json({"switch": switch, "dn": dn, "router": choice.mode, "url": choice.url})

    def _http_client(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        return self._client

    # ------------------------------------------------------------------ act: agents, links, logs

    async def agent_login(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, AgentLoginBody)
        info = request.match_info
        result = self.control.agent_login(
            info["switch"],
            info["dn"],
            agent_id=body.agent_id,
            queue=body.queue,
            password=body.password,
            work_mode=body.work_mode,
            now=self._now(),
        )
        return self._acted(result)

    async def agent_logout(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, AgentLogoutBody)
        info = request.match_info
        return self._acted(
            self.control.agent_logout(info["switch"], info["dn"], queue=body.queue, now=self._now())
        )

    async def agent_ready(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, AgentStateBody)
        info = request.match_info
        return self._acted(
            self.control.agent_ready(
                info["switch"],
                info["dn"],
                queue=body.queue,
                work_mode=body.work_mode,
                now=self._now(),
            )
        )

    async def agent_not_ready(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, AgentStateBody)
        info = request.match_info
        return self._acted(
            self.control.agent_not_ready(
                info["switch"],
                info["dn"],
                queue=body.queue,
                work_mode=body.work_mode,
                now=self._now(),
            )
        )

    async def set_link(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, LinkBody)
        switch = request.match_info["switch"]
        result = self.control.set_link(switch, body.up, now=self._now())
        return self._acted(result, switch=switch, link_up=self.control.switch(switch).link_up)

    async def set_log_level(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, LogLevelBody)
        logs.set_level(body.level)
        log.warning("log level set to %s over the API", body.level)
        return _json({"level": logs.get_level()})

    # ------------------------------------------------------------------ act: reload

    async def reload_config(self, request: web.Request) -> web.StreamResponse:
        """Re-read the configuration file: 200 applied, 409 refused (nothing changed)."""
        body = await self._body(request, ReloadBody)
        log.info("reload requested over the API%s", " (force)" if body.force else "")
        outcome = self.server.request_reload(force=body.force)
        answer: dict[str, Any] = {
            "result": outcome.result,
            "force": body.force,
            "message": outcome.message,
            "stranded_calls": [
                {"call_id": c.call_id, "ivr": c.ivr, "port": c.port, "reason": c.reason}
                for c in outcome.stranded[:RELOAD_CALLS_LISTED]
            ],
            "stranded_total": len(outcome.stranded),
            "problems": list(outcome.problems),
        }
        report = outcome.report
        if report is None:
            return _json({"error": f"reload refused: {outcome.message}", **answer}, 409)
        answer["report"] = {
            "ports_unavailable": report.ports_unavailable,
            "ports_available": report.ports_available,
            "switches_added": list(report.switches_added),
            "switches_removed": list(report.switches_removed),
            "flow_control_changed": report.flow_control_changed,
            "calls_ended": report.calls_stranded,
        }
        return _json(answer)


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


def _location(loc: tuple[int | str, ...]) -> str:
    """``data.0.value`` from pydantic's location, without the key/value union's tags."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if part in ("node", "list") and i > 0 and isinstance(loc[i - 1], int):
            continue  # the tag of a key/value item, not a field
        parts.append(str(part))
    return ".".join(parts) or "(body)"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_DEFAULT_PORT: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _utf8(text: str) -> bytes:
    """``text`` as bytes, whatever it holds (lone surrogates included): never raises."""
    return text.encode("utf-8", "surrogatepass")


def _short(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut to ``limit`` characters (a header can be 8 KB)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _authority(text: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]:port`` too) -> (host in lower case, port or ``None``)."""
    text = text.strip().lower()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
        if ":" in port_text:
            return None
    host = host.rstrip(".")
    if not host or any(c in host for c in "/?#@ \t") or not host.isascii():
        return None
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def _origin(text: str) -> tuple[str, str, int] | None:
    """``scheme://host[:port]`` -> (scheme, host, port with the scheme's default); ``None`` for
    anything else (``null``, a path, an unknown scheme)."""
    scheme, sep, rest = text.strip().lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORT:
        return None
    authority = _authority(rest.rstrip("/"))
    if authority is None:
        return None
    host, port = authority
    return scheme, host, port if port is not None else _DEFAULT_PORT[scheme]


def _machine_names() -> frozenset[str]:
    """This machine's host name, in lower case, with and without its domain."""
    name = socket.gethostname().lower().rstrip(".")
    return frozenset(n for n in (name, name.partition(".")[0]) if n)


def _who(request: web.Request) -> str:
    """Who asked, for the log of an operator action."""
    return f"API client {request.remote or '?'}"
