"""Acts on DNs and switches (docs/api.md, "Agents, links, logs"): agent login, logout, ready
and not ready on any DN, and a switch's T-Server link up or down."""

from __future__ import annotations

__all__ = ["agent_login", "agent_logout", "agent_not_ready", "agent_ready", "set_link"]

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ivr_server.api.answers import read_body
from ivr_server.api.models import AgentLoginBody, AgentLogoutBody, AgentStateBody, LinkBody
from ivr_server.service.control import ActResult

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer


async def agent_login(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, AgentLoginBody)
    info = request.match_info
    result = api.control.agent_login(
        info["switch"],
        info["dn"],
        agent_id=body.agent_id,
        queue=body.queue,
        password=body.password,
        work_mode=body.work_mode,
        now=api.now(),
    )
    return api.acted(result)


async def agent_logout(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, AgentLogoutBody)
    info = request.match_info
    return api.acted(
        api.control.agent_logout(info["switch"], info["dn"], queue=body.queue, now=api.now())
    )


async def agent_ready(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return await _agent_state(api, request, api.control.agent_ready)


async def agent_not_ready(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return await _agent_state(api, request, api.control.agent_not_ready)


async def _agent_state(
    api: ApiServer, request: web.Request, act: Callable[..., ActResult]
) -> web.StreamResponse:
    """TAgentSetReady or TAgentSetNotReady (``act``), with the body both take."""
    body = await read_body(request, AgentStateBody)
    info = request.match_info
    result = act(
        info["switch"], info["dn"], queue=body.queue, work_mode=body.work_mode, now=api.now()
    )
    return api.acted(result)


async def set_link(api: ApiServer, request: web.Request) -> web.StreamResponse:
    body = await read_body(request, LinkBody)
    switch = request.match_info["switch"]
    result = api.control.set_link(switch, body.up, now=api.now())
    return api.acted(result, switch=switch, link_up=api.control.switch(switch).view.link_up)
