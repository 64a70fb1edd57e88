"""Typed server configuration: TOML in, frozen pydantic models out, every problem reported.

* :func:`load_config` / :func:`parse_config` read a TOML file or text into a :class:`ServerConfig`
  or raise :class:`~ivr_server.errors.ConfigError` listing every problem with its location.
* :func:`default_config` is the built-in default (``default.toml``, shipped with the package).
* The models (:class:`ServerConfig` and its parts) mirror the TOML file; ``docs/configuration.md``
  documents every key. The built-in router's rules (:class:`RoutingConfig`) are the rule
  language of ``docs/routing.md``; :mod:`ivr_server.routing` compiles them. The named
  statistics (:class:`StatisticConfig`, :data:`STAT_TYPES`) are computed by
  :mod:`ivr_server.stats` (``docs/statistics.md``).

This package imports only the standard library, pydantic and :mod:`ivr_server.errors`.
"""

from __future__ import annotations

__all__ = [
    "MATCH_FIELDS",
    "MATCH_OPERATORS",
    "PORT_DN_TYPES",
    "STAT_OBJECT_TYPES",
    "STAT_TYPES",
    "TARGET_KEYS",
    "UDATA_PREFIX",
    "AgentGroupConfig",
    "AutoLogin",
    "DnConfig",
    "DnType",
    "IvrConfig",
    "KvTable",
    "KvValue",
    "ListenAddress",
    "MatchCondition",
    "MatchOperator",
    "OutputEncoding",
    "PortConfig",
    "RouteTypeName",
    "RoutingConfig",
    "RoutingRule",
    "ServerConfig",
    "ServerOptions",
    "StatObjectType",
    "StatisticConfig",
    "SwitchConfig",
    "SwitchType",
    "TServerConfig",
    "Timers",
    "TreatmentConfig",
    "TreatmentType",
    "default_config",
    "default_config_path",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
    "split_object_id",
]

from .durations import format_duration, parse_duration
from .loader import default_config, default_config_path, load_config, parse_config
from .model import (
    MATCH_FIELDS,
    MATCH_OPERATORS,
    PORT_DN_TYPES,
    STAT_OBJECT_TYPES,
    STAT_TYPES,
    TARGET_KEYS,
    UDATA_PREFIX,
    AgentGroupConfig,
    AutoLogin,
    DnConfig,
    DnType,
    IvrConfig,
    KvTable,
    KvValue,
    ListenAddress,
    MatchCondition,
    MatchOperator,
    OutputEncoding,
    PortConfig,
    RouteTypeName,
    RoutingConfig,
    RoutingRule,
    ServerConfig,
    ServerOptions,
    StatisticConfig,
    StatObjectType,
    SwitchConfig,
    SwitchType,
    Timers,
    TreatmentConfig,
    TreatmentType,
    TServerConfig,
    split_object_id,
)
