"""The IVR service: the sans-IO core that answers every IVR message (see core.py)."""

from ivr_server.service.core import IvrService, ReloadReport
from ivr_server.service.reload import ReloadRefused, StrandedCall
from ivr_server.service.sessions import Login, LoginStatus, Session

__all__ = [
    "IvrService",
    "Login",
    "LoginStatus",
    "ReloadRefused",
    "ReloadReport",
    "Session",
    "StrandedCall",
]
