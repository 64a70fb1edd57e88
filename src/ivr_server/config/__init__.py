"""Typed server configuration: TOML in, frozen pydantic models out, every problem reported.

* :func:`load_config` / :func:`parse_config` read a TOML file or text into a :class:`ServerConfig`
  or raise :class:`~ivr_server.errors.ConfigError` listing every problem with its location.
* :func:`default_config` is the built-in default (``default.toml``, shipped with the package).
* The models (:class:`ServerConfig` and its parts) mirror the TOML file; ``docs/configuration.md``
  documents every key.

This package imports only the standard library, pydantic and :mod:`ivr_server.errors`.
"""

from __future__ import annotations

__all__ = [
    "PORT_DN_TYPES",
    "AutoLogin",
    "DnConfig",
    "DnType",
    "IvrConfig",
    "ListenAddress",
    "OutputEncoding",
    "PortConfig",
    "ServerConfig",
    "ServerOptions",
    "SwitchConfig",
    "SwitchType",
    "TServerConfig",
    "Timers",
    "default_config",
    "default_config_path",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]

from .durations import format_duration, parse_duration
from .loader import default_config, default_config_path, load_config, parse_config
from .model import (
    PORT_DN_TYPES,
    AutoLogin,
    DnConfig,
    DnType,
    IvrConfig,
    ListenAddress,
    OutputEncoding,
    PortConfig,
    ServerConfig,
    ServerOptions,
    SwitchConfig,
    SwitchType,
    Timers,
    TServerConfig,
)
