"""The only asyncio code of the server: listeners, connection adapters, reload, start and stop."""

from ivr_server.runtime.app import ApiFactory, ApiPart, IvrServer, serve

__all__ = ["ApiFactory", "ApiPart", "IvrServer", "serve"]
