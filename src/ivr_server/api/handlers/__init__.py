"""The API's handlers, one module per family of operations (the table is
:mod:`ivr_server.api.operations`).

Every handler is ``async def handler(api: ApiServer, request) -> response``: reads build JSON
from the live objects; acts validate their whole body first
(:func:`~ivr_server.api.answers.read_body`), then call
:class:`~ivr_server.service.control.Control`, the one door of every act on the service, its
switches and its calls.

- :mod:`.web`: the web view's shell, its files and the OpenAPI document (public).
- :mod:`.state`: the state documents (switches, IVRs, sessions, calls, routing points).
- :mod:`.stats`: statistics, rates and Prometheus metrics.
- :mod:`.stream`: the WebSocket event stream.
- :mod:`.calls`: user data, release, end-call, dial-out.
- :mod:`.routing`: route, treatment, the router of a routing point.
- :mod:`.agents`: agent login/logout/ready/not-ready, a switch's link.
- :mod:`.admin`: the log level and a configuration reload.
"""
