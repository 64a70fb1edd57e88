"""The base every configuration model derives from, and the notation a value was written in.

Every model is frozen, refuses unknown keys and is written in kebab-case in TOML (``legacy-mode``
is the attribute ``legacy_mode``). Numbers in ``[server.timers]`` follow the original's
``[Timers]`` section: in a TOML file a bare number is milliseconds. The loader says so by
validating with :func:`toml_context`; a model built in Python (``Timers(router_timeout=0.5)``)
takes seconds, the unit of the attributes.
"""

from __future__ import annotations

__all__ = ["ConfigModel", "describe_value", "from_toml", "toml_context"]

import datetime
from collections.abc import Mapping
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, ValidationInfo


def _kebab(name: str) -> str:
    """Attribute name → TOML key: ``legacy_mode`` → ``legacy-mode``."""
    return name.replace("_", "-")


_TOML_CONTEXT_KEY: Final = "ivr_server.config.notation"


def toml_context() -> dict[str, Any]:
    """The pydantic validation context meaning "these values come from a TOML file".

    With it, a bare number in ``[server.timers]`` is milliseconds (the original's notation);
    without it, seconds.
    """
    return {_TOML_CONTEXT_KEY: "toml"}


def from_toml(info: ValidationInfo) -> bool:
    """Whether the value being validated comes from a TOML file (see :func:`toml_context`)."""
    context = info.context
    return isinstance(context, Mapping) and context.get(_TOML_CONTEXT_KEY) == "toml"


class ConfigModel(BaseModel):
    """Base of every configuration model: frozen, strict about keys, kebab-case in TOML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=_kebab,
        use_attribute_docstrings=True,
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` (attribute names → values) applied, validated and checked again.

        Unlike pydantic's own ``model_copy``, the result is a fully validated object: values are
        checked, lookups are rebuilt and a :class:`ServerConfig` is cross-checked (raising
        :class:`~ivr_server.errors.ConfigError`). Values are in Python units (seconds).
        """
        copy = super().model_copy(update=update, deep=deep)
        fields = {name: getattr(copy, name) for name in type(self).model_fields}
        return type(self).model_validate(fields)


def describe_value(value: object) -> str:
    """A short description of a raw TOML value, for messages: ``'abc'``, ``12``, ``a table``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__
