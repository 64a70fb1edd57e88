"""The real Redis fixtures of tests/redisproc.py (``redis_server``, ``redis_pair``)."""

from __future__ import annotations

from tests.redisproc import redis_pair, redis_server

__all__ = ["redis_pair", "redis_server"]
