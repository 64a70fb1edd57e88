"""The HTTP API, metrics and web view listener (TOML table ``[api]``)."""

from __future__ import annotations

__all__ = ["ApiConfig"]

from typing import Self

from pydantic import Field, field_validator, model_validator

from .addresses import ListenAddress
from .base import ConfigModel
from .fields import PositiveSeconds


class ApiConfig(ConfigModel):
    """The HTTP API, metrics and web view listener (TOML ``[api]``). No original equivalent: the
    original offers T-Library, a closed protocol, instead."""

    listen: tuple[ListenAddress, ...] = ()
    """Where the HTTP API listens (``"host:port"``); empty = no API. ``--api-listen`` overrides."""
    token: str | None = None
    """Bearer token required by every request that changes state. The environment variable
    ``IVR_SERVER_API_TOKEN`` overrides it. No token at all: state-changing requests are refused."""
    public_read: bool = True
    """``true``: the harmless reads need no token: the topology (switches, IVRs and ports,
    sessions), statistics, rates, the log level, ``/metrics`` and ``/api/v1/state`` without the
    calls' user data, caller numbers and parties. Whatever carries user data or caller numbers
    (``/api/v1/calls``, ``/api/v1/routing-points``, the event stream) needs the token always."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins (``"https://ops.example.com"``, ``"http://ivr-host:8021"``) allowed to open the
    event stream and to change state besides the API's own (same-origin requests to a ``Host``
    that is an IP address, ``localhost``, a listen address or this machine's name); their host
    names are also accepted in ``Host``. ``"*"`` turns the ``Origin``/``Host`` checks off."""
    external_router_window: PositiveSeconds = 300.0
    """How long a routing point's external router (``PUT .../router {"router": "external"}``)
    stays live after its client was last heard of (it chose the router, routed or treated a call
    there, or read ``/api/v1/routing-points``). A Network call (docs/network.md) is taken only
    at a routing point with a live router; otherwise ``EndCall FeatureNotSupported``."""
    max_subscribers: int = Field(default=64, ge=0)
    """Event-stream WebSocket clients connected at once (``GET /api/v1/events``); one more is
    refused with HTTP 503 before the upgrade. ``0`` turns the event stream off. Each event is
    sent to every client that wants it, so this bounds what the stream may cost the IVRs."""
    max_subscribers_per_peer: int = Field(default=16, ge=0)
    """The same, per client address (so that one host cannot take every place); ``0``: no
    per-address limit besides ``max-subscribers``."""
    max_connections: int = Field(default=128, ge=1)
    """Most HTTP connections open at once (event streams included); one more gets ``503`` and
    is closed. When the file-descriptor limit is known, at most ``server.reserved-descriptors``
    less 32 (the API takes only its share of the descriptors IVR connections leave). Read at
    start only."""
    header_timeout: PositiveSeconds = 10.0
    """Seconds a client has to send a request's headers, from the connection's opening or the
    end of its previous request; then the connection is closed (slow or idle clients cannot
    hold connections open). Read at start only."""
    tls_cert: str | None = None
    """PEM certificate (chain) of the API's HTTPS listener; with ``tls-key``. Unset: plain HTTP.
    A relative path is taken from the server's working directory."""
    tls_key: str | None = None
    """PEM private key of ``tls-cert``."""
    tls_client_ca: str | None = None
    """PEM CA certificate(s): every client must present a certificate they signed (mutual TLS).
    Needs ``tls-cert``. The bearer token rules apply on top of it."""

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for text in value:
            origin = text.strip().lower().rstrip("/")
            if origin != "*":
                scheme, sep, rest = origin.partition("://")
                host = rest.rsplit("]", 1)[-1] if rest.startswith("[") else rest
                port = host.partition(":")[2] if ":" in host else ""
                if (
                    scheme not in ("http", "https")
                    or not sep
                    or not rest
                    or any(c in rest for c in "/?#@ ")
                    or (port and not (port.isdigit() and 0 < int(port) < 65536))
                ):
                    raise ValueError(
                        f"{text!r} is not a web origin: write scheme://host[:port] "
                        '(e.g. "https://ops.example.com:8443"), or "*"'
                    )
            out.append(origin)
        return tuple(out)

    @model_validator(mode="after")
    def _tls_complete(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls-cert and tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls-client-ca needs tls-cert and tls-key (HTTPS)")
        return self
