"""Who may call what: the bearer token, and ``Host``/``Origin`` checks (docs/api.md,
"Authentication").

Each operation has an :data:`Access` level. ``public`` routes hold no state; ``read`` routes are
harmless (topology, counts, metrics) and need no token under ``[api] public-read``, where
``/api/v1/state`` then leaves out the calls' user data and caller numbers; ``private`` routes
(calls, routing points' waiting calls, the event stream) carry user data and need the token
always, as every ``act`` does. The token is compared as bytes with
:func:`hmac.compare_digest`, whatever a header holds.

The ``Host`` and ``Origin`` of every act and of the event stream must be the API's own names or
``[api] allowed-origins``: a browser page of another site (cross-site requests) or a host name
that resolves to us by a trick (DNS rebinding) is refused (403).
"""

from __future__ import annotations

__all__ = ["AUTHORIZED", "REALM", "TOKEN_ENV", "Access", "Gate"]

import hmac
import ipaddress
import os
import socket
from typing import TYPE_CHECKING, Final, Literal

from aiohttp import web

from ivr_server.api.answers import ApiError

if TYPE_CHECKING:
    from ivr_server.runtime import IvrServer

TOKEN_ENV: Final = "IVR_SERVER_API_TOKEN"
"""The environment variable that overrides ``[api] token``."""

REALM: Final = 'Bearer realm="ivr-server"'

Access = Literal["public", "read", "private", "act"]
"""``public``: no token ever; ``read``: harmless, no token under ``public-read``; ``private``
(user data, caller numbers) and ``act``: the token always."""

AUTHORIZED: Final = web.RequestKey("ivr_server.authorized", bool)
"""Request key: ``True`` when the request carried the right token (reads answer in full)."""

_DEFAULT_PORT: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class Gate:
    """The checks of ``server``'s API, against its configuration in force."""

    def __init__(self, server: IvrServer) -> None:
        self.server = server
        self._host_names = _machine_names()

    def token(self) -> str | None:
        """The bearer token in force: ``IVR_SERVER_API_TOKEN``, else ``[api] token``."""
        env = os.environ.get(TOKEN_ENV)
        if env:
            return env
        return self.server.config.api.token or None

    def authorize(self, request: web.Request, access: Access) -> bool:
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

    def check_origin(self, request: web.Request) -> None:
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
