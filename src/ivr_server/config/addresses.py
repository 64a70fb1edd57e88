"""Network addresses in the configuration: where the server listens, which clients it accepts.

``"host:port"``, ``"[ipv6]:port"`` or ``":port"`` (every IPv4 interface) for a listen address;
``"host:port"`` or ``"host:*"`` (any port) for an allowed client; ``"host:port"`` or
``"[ipv6]:port"`` for a peer the server connects to (a premise PBX). Host names and IPv4/IPv6
addresses are checked as written, so a typo is reported at load time rather than at bind time.
"""

from __future__ import annotations

__all__ = ["ClientEntry", "ListenAddress", "PeerAddress"]

import ipaddress
import re
from typing import Annotated, Final

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .base import ConfigModel

_HOSTNAME_RE: Final = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_LISTEN_SHAPE: Final = "expected 'host:port', '[ipv6]:port' or ':port'"
_PEER_SHAPE: Final = "expected 'host:port' or '[ipv6]:port'"
_CLIENT_SHAPE: Final = "expected 'host:port' or 'host:*' (IPv6 in brackets: '[::1]:*')"


def _split_host_port(text: str, shape: str) -> tuple[str, str]:
    """Split ``host:port`` / ``[v6]:port``; check the host. Raises ValueError."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid address {text!r}: {shape}")
        host, port = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid address {text!r}: {host!r} is not an IPv6 address") from None
        return host, port
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"invalid address {text!r}: {shape}")
    if ":" in host:
        try:
            suggestion = f"[{ipaddress.IPv6Address(host)}]:{port}"
        except ValueError:
            suggestion = "[::1]:3021"
        raise ValueError(
            f"invalid address {text!r}: write an IPv6 address in brackets, {suggestion!r}"
        )
    if host:
        _check_host(host, text)
    return host, port


def _check_host(host: str, text: str) -> None:
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"invalid address {text!r}: {host!r} is not an IPv4 address") from None
    elif not _HOSTNAME_RE.fullmatch(host):
        raise ValueError(f"invalid address {text!r}: {host!r} is not a valid host name")


def _port_number(port: str, text: str, *, allow_zero: bool) -> int:
    if not port.isascii() or not port.isdigit():
        raise ValueError(f"invalid address {text!r}: port {port!r} is not a number")
    number = int(port)
    if number > 65535 or (number == 0 and not allow_zero):
        low = 0 if allow_zero else 1
        raise ValueError(f"invalid address {text!r}: port must be {low}..65535")
    return number


def _client_entry(value: object) -> object:
    """Check one ``gli-client-list`` entry, ``host:port`` or ``host:*``; keep it as written."""
    if not isinstance(value, str):
        return value  # pydantic reports the type
    text = value.strip()
    host, port = _split_host_port(text, _CLIENT_SHAPE)
    if not host:
        raise ValueError(f"invalid client {text!r}: the host is missing ('host:port' or 'host:*')")
    if port != "*":
        _port_number(port, text, allow_zero=False)
    return text


ClientEntry = Annotated[str, BeforeValidator(_client_entry)]
"""An allowed client, ``host:port`` or ``host:*`` (any port)."""


class _HostPort(ConfigModel):
    """A host and a TCP port, shown as ``host:port`` (``[ipv6]:port``)."""

    host: str
    """Host name or address, IPv6 without brackets."""
    port: int
    """TCP port."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if not isinstance(value, str):
            return value  # a table {host = ..., port = ...}, or an instance
        return cls._from_text(value.strip())

    @classmethod
    def _from_text(cls, text: str) -> dict[str, object]:
        """``host:port`` as written → the fields; raises ValueError in the loader's words."""
        raise NotImplementedError

    @field_validator("host")
    @classmethod
    def _check_host_field(cls, value: str) -> str:
        if ":" in value:
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv6 address") from None
        else:
            _check_host(value, value)
        return value

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ListenAddress(_HostPort):
    """One address the server listens on. In TOML: ``"host:port"``, ``"[::1]:port"``, ``":port"``."""

    host: str
    """Interface address or host name, IPv6 without brackets; ``0.0.0.0`` = every IPv4 interface."""
    port: int = Field(ge=0, le=65535)
    """TCP port; 0 lets the system choose one (tests)."""

    @classmethod
    def _from_text(cls, text: str) -> dict[str, object]:
        host, port = _split_host_port(text, _LISTEN_SHAPE)
        return {"host": host or "0.0.0.0", "port": _port_number(port, text, allow_zero=True)}


class PeerAddress(_HostPort):
    """An address the server connects to (a premise PBX). In TOML: ``"host:port"`` or
    ``"[ipv6]:port"``; the host is required and the port is 1..65535."""

    host: str = Field(min_length=1)
    """Host name or address, IPv6 without brackets."""
    port: int = Field(ge=1, le=65535)
    """TCP port."""

    @classmethod
    def _from_text(cls, text: str) -> dict[str, object]:
        host, port = _split_host_port(text, _PEER_SHAPE)
        if not host:
            raise ValueError(f"invalid address {text!r}: the host is missing ({_PEER_SHAPE})")
        return {"host": host, "port": _port_number(port, text, allow_zero=False)}
