"""Fixtures of the in-memory service tests: a fresh server on the default configuration, and an
IVR_1 session logged in with version 4.0 on the session CallId ``L``."""

from __future__ import annotations

import pytest

from tests.service.memory import MemoryClient, MemoryServer


@pytest.fixture
def server() -> MemoryServer:
    return MemoryServer()


@pytest.fixture
def ivr(server: MemoryServer) -> MemoryClient:
    client = server.connect()
    client.login()
    return client
