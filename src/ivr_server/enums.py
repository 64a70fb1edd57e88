"""Enums that key the state-machine tables.

A plain :class:`enum.Enum` member hashes through ``Enum.__hash__``, a Python function
(``hash(self._name_)``): every ``TRANSITIONS[(state, input)]`` lookup ran two of them per request,
interpreted even in the compiled build. Members are singletons compared by identity, so the
identity hash of ``object`` is consistent with their equality and runs in C.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TableEnum"]


class TableEnum(Enum):
    """An :class:`~enum.Enum` hashed by identity (in C), for members used as table keys."""

    __hash__ = object.__hash__
