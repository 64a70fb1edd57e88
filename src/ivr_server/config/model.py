"""The former home of the configuration models: re-exports the names still imported from here.

The models live in one module per section (:mod:`.root`, :mod:`.options`, :mod:`.switches`,
:mod:`.ivrs`, :mod:`.routing`, :mod:`.statistics`, :mod:`.api`...) and are imported from
:mod:`ivr_server.config`. This module goes once no importer names it.
"""

from __future__ import annotations

__all__ = [
    "ApiConfig",
    "DnType",
    "ListenAddress",
    "RouteTypeName",
    "ServerOptions",
    "TcpKeepAlive",
    "TreatmentType",
]

from ivr_server.vocabulary import DnType, TreatmentType

from .addresses import ListenAddress
from .api import ApiConfig
from .options import ServerOptions, TcpKeepAlive
from .routing import RouteTypeName
