"""The HTTP API, Prometheus metrics, WebSocket event stream and live web view (docs/api.md).

:class:`ApiServer` is an aiohttp application in the server's own event loop. The runtime does
not import this package (it sits above the runtime): the command line passes it to the server,
``IvrServer(config, api=ApiServer, api_listen=...)``.
"""

from ivr_server.api.server import TOKEN_ENV, ApiServer

__all__ = ["TOKEN_ENV", "ApiServer"]
