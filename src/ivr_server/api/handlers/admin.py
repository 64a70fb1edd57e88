"""The server's own settings (docs/api.md, "Agents, links, logs" and "Reload"): the log level,
read and changed at run time, and a configuration reload (as ``SIGHUP``).

A reload is the runtime's (it reads the file and rebuilds what changed, then puts the control
layer's router choices back); the log level is the process's. Neither acts on the service's
calls or switches, so neither goes through :class:`~ivr_server.service.control.Control`.
"""

from __future__ import annotations

__all__ = ["RELOAD_CALLS_LISTED", "get_log_level", "reload_config", "set_log_level"]

import logging
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ivr_server import logs
from ivr_server.api.answers import json_response, read_body
from ivr_server.api.models import LogLevelBody, ReloadBody

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

log = logging.getLogger("ivr_server.api")

RELOAD_CALLS_LISTED: Final = 1000
"""Most stranded calls a reload answer lists (``stranded_total`` counts them all)."""


async def get_log_level(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response({"level": logs.get_level()})


async def set_log_level(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, LogLevelBody)
    logs.set_level(body.level)
    log.warning("log level set to %s over the API", body.level)
    return json_response({"level": logs.get_level()})


async def reload_config(api: ApiServer, request: web.Request) -> web.StreamResponse:
    """Re-read the configuration file: 200 applied, 409 refused (nothing changed). The answer
    comes once the reload that started after the request has run (requests that arrive while
    one runs share the next: ``runtime/reload.py``)."""
    body = await read_body(request, ReloadBody)
    log.info("reload requested over the API%s", " (force)" if body.force else "")
    outcome = await api.server.reload_file(force=body.force)
    answer: dict[str, Any] = {
        "result": outcome.result,
        "force": outcome.force,  # forced too when a forced request shared the reload
        "message": outcome.message,
        "stranded_calls": [
            {"call_id": c.call_id, "ivr": c.ivr, "port": c.port, "reason": c.reason}
            for c in outcome.stranded[:RELOAD_CALLS_LISTED]
        ],
        "stranded_total": len(outcome.stranded),
        "problems": list(outcome.problems),
    }
    report = outcome.report
    if report is None:
        return json_response({"error": f"reload refused: {outcome.message}", **answer}, 409)
    answer["report"] = {
        "ports_unavailable": report.ports_unavailable,
        "ports_available": report.ports_available,
        "switches_added": list(report.switches_added),
        "switches_removed": list(report.switches_removed),
        "flow_control_changed": report.flow_control_changed,
        "calls_ended": report.calls_stranded,
    }
    return json_response(answer)
