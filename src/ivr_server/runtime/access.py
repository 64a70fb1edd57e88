"""Which IVR clients may connect: the original ``gli-client-list`` (``server.client-list``).

Each entry is ``host:port`` or ``host:*``; names are resolved once, when the list is built (at
start and on reload), so that accepting a connection never waits for the resolver. An empty list
lets everyone in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable

__all__ = ["ClientList"]


class ClientList:
    """The clients allowed to connect (``server.client-list``; empty: all)."""

    def __init__(self, entries: Iterable[object]) -> None:
        self._allowed: list[tuple[set[str], int | None]] = []
        """Per entry: its host's addresses (and the name as written), and its port (``None``:
        any port)."""
        for entry in entries:
            text = str(entry)
            host, _, port = text.rpartition(":")
            host = host.strip("[]")
            addresses = {host}
            with contextlib.suppress(OSError):
                for info in socket.getaddrinfo(host, None):
                    addresses.add(str(info[4][0]))
            self._allowed.append((addresses, None if port == "*" else int(port)))

    def allows(self, host: str, port: int) -> bool:
        """Is a client at ``host:port`` allowed? An IPv4 peer seen as an IPv4-mapped IPv6
        address matches its IPv4 entry."""
        if not self._allowed:
            return True
        candidates = {host}
        with contextlib.suppress(ValueError):
            ip = ipaddress.ip_address(host)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                candidates.add(str(ip.ipv4_mapped))
        return any(
            candidates & hosts and (want is None or want == port) for hosts, want in self._allowed
        )
