"""``GET /api/v1/nodes``'s pure parts (api/handlers/nodes.py, issue 25): what a value of the
shared state looks like in JSON."""

from __future__ import annotations

from dataclasses import dataclass

from ivr_server.api.handlers.nodes import _plain


@dataclass(frozen=True)
class _Record:
    node: str
    ports: frozenset[str]
    wait: float


def test_values_become_plain_json() -> None:
    assert _plain(_Record("n1", frozenset({"2", "1"}), 1.23456789)) == {
        "node": "n1",
        "ports": ["1", "2"],
        "wait": 1.234568,
    }
    assert _plain({1: (True, None, "x"), "k": [b"raw"]}) == {
        "1": [True, None, "x"],
        "k": ["b'raw'"],
    }
    assert _plain({"s": {3, 1, 2}}) == {"s": [1, 2, 3]}
    assert _plain(_Record) == str(_Record)  # a class is not a record
