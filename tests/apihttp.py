"""HTTP requests of the tests to server and simulator processes, with urllib (no event loop)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http(
    method: str, url: str, body: object = None, timeout: float = 5.0, token: str | None = None
) -> tuple[int, Any]:
    """One JSON request (blocking; loopback only), with the bearer ``token`` if any: the
    status and the answer (JSON decoded; text when it is not JSON; ``None`` when empty). HTTP
    errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def api_request(
    api_port: int, token: str, method: str, path: str, body: object = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """``method /api/v1/<path>`` on an ivr-server's API at ``127.0.0.1:api_port``."""
    url = f"http://127.0.0.1:{api_port}/api/v1/{path}"
    return http(method, url, body, timeout, token)
