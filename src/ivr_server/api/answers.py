"""What the API answers: JSON documents, and every error turned into ``{"error": reason}``.

This is the one place where errors become HTTP answers (docs/api.md, "Errors"): an
:class:`ApiError` carries its status, the control layer's :class:`NotFound` and
:class:`Conflict` are 404 and 409 (:data:`CONTROL_STATUS`), aiohttp's own 4xx/5xx keep their
status, and anything else is a logged 500. A request body is read here too
(:func:`read_body`): the whole JSON object is validated by its pydantic model before a handler
looks anything up, so a malformed request changes nothing (400, with every problem found).
"""

from __future__ import annotations

__all__ = [
    "CONTROL_STATUS",
    "ApiError",
    "acted",
    "error_answer",
    "json_response",
    "read_body",
]

import json
import time
from collections.abc import Mapping
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ivr_server.api.jsonify import event_json, load_json
from ivr_server.errors import LocalProtocolError
from ivr_server.service.control import ActResult, Conflict, ControlError, NotFound
from ivr_server.switch import TErrorCode

M = TypeVar("M", bound=BaseModel)


class ApiError(LocalProtocolError):
    """An answer other than success: ``{"error": reason, ...extra}`` with ``status``."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


CONTROL_STATUS: Final[Mapping[type[ControlError], int]] = {NotFound: 404, Conflict: 409}
"""The status of each refusal of the control layer."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``data`` as compact UTF-8 JSON."""
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def error_answer(exc: Exception) -> web.Response | None:
    """The answer to an error a handler raised; ``None`` when it is not an answer (a 500, or
    an aiohttp redirect or success that must propagate)."""
    if isinstance(exc, ApiError):
        return json_response({"error": exc.reason, **exc.extra}, exc.status, exc.headers)
    if isinstance(exc, ControlError):
        for kind, status in CONTROL_STATUS.items():
            if isinstance(exc, kind):
                return json_response({"error": exc.reason}, status)
        return None
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return json_response({"error": exc.reason}, exc.status, headers)
    return None


def acted(result: ActResult, **extra: Any) -> web.Response:
    """An act's answer: ``{**extra, "events"}``, or 409 with the switch's ``EventError`` (its
    code, name and request) and the events when the switch refused the act's request."""
    now = time.time()
    events = [event_json(event, now) for event in result.events]
    error = result.error
    if error is None:
        return json_response({**extra, "events": events})
    try:
        name: str | None = TErrorCode(error.error_code).name
    except ValueError:
        name = None
    return json_response(
        {
            "error": error.error_message,
            "error_code": error.error_code,
            "error_name": name,
            "request": error.request,
            "events": events,
        },
        409,
    )


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON object validated by ``model`` (an empty body is ``{}``); 400 with
    ``problems`` (every location and message) otherwise."""
    raw = await request.read()
    data: Any = {}
    if raw.strip():
        try:
            data = load_json(raw)
        except ValueError as exc:
            raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"location": _location(error["loc"]), "message": error["msg"]}
            for error in exc.errors(include_url=False)
        ]
        first = problems[0] if problems else {"location": "(body)", "message": "invalid"}
        raise ApiError(
            400,
            f"invalid request body: {first['location']}: {first['message']}",
            extra={"problems": problems},
        ) from None


def _location(loc: tuple[int | str, ...]) -> str:
    """``data.0.value`` from pydantic's location, without the key/value union's tags."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if part in ("node", "list") and i > 0 and isinstance(loc[i - 1], int):
            continue  # the tag of a key/value item, not a field
        parts.append(str(part))
    return ".".join(parts) or "(body)"
