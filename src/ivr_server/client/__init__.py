"""The asyncio IVR client library: connect to an IVR Server, log in, send requests, read events.

Used by IVR drivers, the test suite, ``ivr-server client`` and the load generator. It is the wire
codec plus a client-role :class:`~ivr_server.session.IvrLink` behind a thin asyncio adapter
(:class:`IvrClient`). How to write a driver with it: ``docs/client.md``.
"""

from ivr_server.client.connection import IvrClient
from ivr_server.client.console import build_document, run_console
from ivr_server.client.documents import LoginResult, MessageTypes, Received
from ivr_server.client.errors import (
    BadDocument,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    RequestTimeout,
    UnexpectedDocument,
)
from ivr_server.client.pair import (
    Exchange,
    HotStandbyDriver,
    NodeAddress,
    Tagged,
    WarmStandbyClient,
)
from ivr_server.client.pretty import (
    format_document,
    format_note,
    format_payload,
    pretty_xml,
    use_color,
)

__all__ = [
    "BadDocument",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "Exchange",
    "HotStandbyDriver",
    "IvrClient",
    "LoginResult",
    "MessageTypes",
    "NodeAddress",
    "Received",
    "RequestTimeout",
    "Tagged",
    "UnexpectedDocument",
    "WarmStandbyClient",
    "build_document",
    "format_document",
    "format_note",
    "format_payload",
    "pretty_xml",
    "run_console",
    "use_color",
]
