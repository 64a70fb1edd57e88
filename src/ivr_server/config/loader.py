"""Reading a configuration: TOML text → :class:`ServerConfig`, or one :class:`ConfigError`.

Every problem is reported in one go, each with a location (see :mod:`.checks` for the style):

1. a file that cannot be read or is not UTF-8 → one problem;
2. a TOML syntax error → one problem at ``line L, column C`` (TOML parsing stops at the first);
3. otherwise every value problem pydantic finds, translated into plain words, plus every
   cross-reference problem among the objects that are valid on their own.

Nothing here reads a clock or touches the network; the built-in default is package data.
"""

from __future__ import annotations

__all__ = ["default_config", "default_config_path", "load_config", "parse_config"]

import difflib
import functools
import importlib.resources
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from ivr_server.errors import ConfigError, ConfigProblem

from .base import describe_value, toml_context
from .checks import reference_problems, routing_problems, statistics_problems
from .ivrs import IvrConfig
from .root import ServerConfig
from .routing import AgentGroupConfig, RoutingConfig
from .statistics import StatisticConfig
from .switches import SwitchConfig, TServerConfig

_DEFAULT_RESOURCE: Final = "default.toml"
_TOML_POSITION_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END_RE: Final = re.compile(r"\s*\(at end of document\)$")


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and check the TOML configuration file at ``path``.

    Raises :class:`ConfigError` (``source`` = the path) listing every problem found.
    """
    source = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError([ConfigProblem("", f"cannot read the file: {reason}")], source) from None
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError as error:
        line, column = _position(data[: error.start].decode("utf-8", errors="replace"))
        problem = ConfigProblem(f"line {line}, column {column}", "the file is not UTF-8 text")
        raise ConfigError([problem], source) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<string>") -> ServerConfig:
    """Check the TOML configuration ``text``; ``source`` names it in error messages.

    Raises :class:`ConfigError` listing every problem found; a TOML syntax error is reported
    alone, at ``line L, column C``.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(str(error), text)], source) from None
    try:
        return ServerConfig.model_validate(document, context=toml_context())
    except ValidationError as error:
        problems = [_value_problem(details) for details in error.errors()]
        problems.extend(_partial_reference_problems(document))
        raise ConfigError(problems, source) from None
    except ConfigError as error:  # cross-reference problems, raised by ServerConfig itself
        raise ConfigError(error.problems, source) from None


def default_config_path() -> str:
    """A human-readable name of the built-in default configuration, for startup logs."""
    return f"built-in default (ivr_server/config/{_DEFAULT_RESOURCE})"


@functools.cache
def default_config() -> ServerConfig:
    """The built-in default configuration (package data ``default.toml``), parsed once."""
    text = (
        importlib.resources.files("ivr_server.config")
        .joinpath(_DEFAULT_RESOURCE)
        .read_text("utf-8")
    )
    return parse_config(text, default_config_path())


# --------------------------------------------------------------------------------------------
# TOML syntax errors


def _position(text: str) -> tuple[int, int]:
    """1-based line and column just after ``text``."""
    line = text.count("\n") + 1
    return line, len(text) - (text.rfind("\n") + 1) + 1


def _syntax_problem(message: str, text: str) -> ConfigProblem:
    """tomllib says ``"Invalid value (at line 3, column 7)"``; split where from what."""
    if match := _TOML_POSITION_RE.search(message):
        location = f"line {match.group(1)}, column {match.group(2)}"
        message = message[: match.start()]
    elif match := _TOML_AT_END_RE.search(message):
        line, column = _position(text)
        location = f"line {line}, column {column}"
        message = message[: match.start()] + " (at the end of the file)"
    else:
        location = ""
    return ConfigProblem(location, f"TOML syntax error: {message[:1].lower()}{message[1:]}")


# --------------------------------------------------------------------------------------------
# Pydantic errors → problems


def _location(loc: tuple[int | str, ...]) -> str:
    """``('ivrs', 0, 'ports', 3, 'dn')`` → ``ivrs[0].ports[3].dn``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


_SECRET_KEYS: Final = frozenset({"password"})
"""Keys whose value a problem never repeats (``[tservers.premise] password``)."""


def _value_problem(details: Mapping[str, Any]) -> ConfigProblem:
    """One entry of ``ValidationError.errors()`` in the operator's words."""
    loc, kind, value = details["loc"], details["type"], details["input"]
    message = details["msg"]
    if kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}{_key_hint(loc)}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind in ("value_error", "assertion_error"):
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    elif loc[-1] in _SECRET_KEYS:  # never echo a secret, even a mistyped one
        message = f"{message[:1].lower()}{message[1:]}"
    else:
        message = f"{message[:1].lower()}{message[1:]}, got {describe_value(value)}"
    return ConfigProblem(_location(loc), message)


def _key_hint(loc: tuple[int | str, ...]) -> str:
    """``"; did you mean 'x'?"`` or the list of the keys allowed where an unknown key is."""
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    keys = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]).replace("_", "-"), keys, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed here: {', '.join(keys)}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the table at ``loc`` (indexes skipped)."""
    model: type[BaseModel] = ServerConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        inner = None if field is None else _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model in ``X``, ``X | None`` or ``tuple[X, ...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            if (found := _model_in(argument)) is not None:
                return found
    return None


# --------------------------------------------------------------------------------------------
# Cross-references when some objects are invalid


def _partial_reference_problems(document: Mapping[str, Any]) -> list[ConfigProblem]:
    """Cross-reference problems among the objects that are valid on their own.

    Run when pydantic rejected the document, so that one pass reports both kinds. Objects that
    failed keep their index (as None); references to their names are not called unknown. A
    section that is not an array of tables makes the checks that need its names impossible:
    those are skipped.
    """
    sections: dict[str, tuple[list[Any], frozenset[str]] | None] = {
        key: _validated_items(document, key, model)
        for key, model in (
            ("switches", SwitchConfig),
            ("tservers", TServerConfig),
            ("ivrs", IvrConfig),
            ("routing", RoutingConfig),
            ("agent-groups", AgentGroupConfig),
            ("statistics", StatisticConfig),
        )
    }
    switches, tservers, ivrs = sections["switches"], sections["tservers"], sections["ivrs"]
    problems: list[ConfigProblem] = []
    if switches is None:
        return problems  # every cross-check needs the switches' names and DNs
    if tservers is not None and ivrs is not None:
        problems += reference_problems(
            switches[0],
            tservers[0],
            ivrs[0],
            unverified_switches=switches[1],
            unverified_tservers=tservers[1],
        )
    routing, groups = sections["routing"], sections["agent-groups"]
    if routing is not None and groups is not None:
        problems += routing_problems(
            switches[0],
            routing[0],
            groups[0],
            unverified_switches=switches[1],
            unverified_groups=groups[1],
        )
    statistics = sections["statistics"]
    if ivrs is not None and groups is not None and statistics is not None:
        problems += statistics_problems(
            switches[0],
            ivrs[0],
            groups[0],
            statistics[0],
            unverified_switches=switches[1],
            unverified_ivrs=ivrs[1],
            unverified_groups=groups[1],
        )
    return problems


def _validated_items(
    document: Mapping[str, Any], key: str, model: type[BaseModel]
) -> tuple[list[Any], frozenset[str]] | None:
    """The items of the array ``key``, each validated (None if it failed), and the names of the
    failed ones; None when the section is not an array."""
    raw = document.get(key, [])
    if not isinstance(raw, list):
        return None
    context = toml_context()
    items: list[Any] = []
    failed: set[str] = set()
    for item in raw:
        try:
            items.append(model.model_validate(item, context=context))
        except ValidationError:
            items.append(None)
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                failed.add(item["name"])
    return items, frozenset(failed)
