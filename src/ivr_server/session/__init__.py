"""One IVR connection's protocol engine (sans-IO), used by the server and the client library."""

from ivr_server.session.events import DocumentReceived, DocumentRejected, LinkClosed, LinkEvent
from ivr_server.session.link import IvrLink, LinkState, Role

__all__ = [
    "DocumentReceived",
    "DocumentRejected",
    "IvrLink",
    "LinkClosed",
    "LinkEvent",
    "LinkState",
    "Role",
]
