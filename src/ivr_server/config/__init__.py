"""Typed server configuration: TOML in, frozen pydantic models out, every problem reported.

* :func:`load_config` / :func:`parse_config` read a TOML file or text into a :class:`ServerConfig`
  or raise :class:`~ivr_server.errors.ConfigError` listing every problem with its location.
* :func:`default_config` is the built-in default (``default.toml``, shipped with the package).
* The models (:class:`ServerConfig` and its parts) mirror the TOML file; ``docs/configuration.md``
  documents every key. The built-in router's rules (:class:`RoutingConfig`) are the rule
  language of ``docs/routing.md``; :mod:`ivr_server.routing` compiles them. The named
  statistics (:class:`StatisticConfig`, :data:`STAT_TYPES`) are computed by
  :mod:`ivr_server.stats` (``docs/statistics.md``).

One module per section of the file: :mod:`.options` (``[server]``), :mod:`.switches`
(``[[switches]]``, ``[[tservers]]``), :mod:`.premise` (a premise switch's link to its PBX,
``[tservers.premise]``), :mod:`.ivrs` (``[[ivrs]]`` and their ports),
:mod:`.routing` (``[[routing]]``, ``[[agent-groups]]``), :mod:`.statistics`, :mod:`.api`
(``[api]``), :mod:`.sites` (``[[locations]]``: access numbers), and :mod:`.root` for the whole;
:mod:`.checks` ties them together, :mod:`.loader`
turns TOML into them. This package imports only the standard library, pydantic,
:mod:`ivr_server.errors` and :mod:`ivr_server.vocabulary`.
"""

from __future__ import annotations

__all__ = [
    "MATCH_FIELDS",
    "MATCH_OPERATORS",
    "PORT_DN_TYPES",
    "PREMISE_SWITCH_TYPES",
    "STAT_OBJECT_TYPES",
    "STAT_TYPES",
    "TARGET_KEYS",
    "UDATA_PREFIX",
    "AgentGroupConfig",
    "ApiConfig",
    "AutoLogin",
    "CstaDialect",
    "DnConfig",
    "DnType",
    "HaConfig",
    "IvrConfig",
    "KvTable",
    "KvValue",
    "ListenAddress",
    "LocationConfig",
    "MatchCondition",
    "MatchOperator",
    "OutputEncoding",
    "PeerAddress",
    "PortConfig",
    "PremiseConfig",
    "RouteType",
    "RoutingConfig",
    "RoutingRule",
    "ServerConfig",
    "ServerOptions",
    "StatObjectType",
    "StatisticConfig",
    "SwitchConfig",
    "SwitchType",
    "TServerConfig",
    "TcpKeepAlive",
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

from ivr_server.vocabulary import DnType, RouteType, TreatmentType

from .addresses import ListenAddress, PeerAddress
from .api import ApiConfig
from .durations import format_duration, parse_duration
from .fields import OutputEncoding
from .ha import HaConfig
from .ivrs import PORT_DN_TYPES, AutoLogin, IvrConfig, PortConfig
from .kv import KvTable, KvValue
from .loader import default_config, default_config_path, load_config, parse_config
from .options import ServerOptions, TcpKeepAlive, Timers
from .premise import PREMISE_SWITCH_TYPES, CstaDialect, PremiseConfig
from .root import ServerConfig
from .routing import (
    MATCH_FIELDS,
    MATCH_OPERATORS,
    TARGET_KEYS,
    UDATA_PREFIX,
    AgentGroupConfig,
    MatchCondition,
    MatchOperator,
    RoutingConfig,
    RoutingRule,
    TreatmentConfig,
)
from .sites import LocationConfig
from .statistics import (
    STAT_OBJECT_TYPES,
    STAT_TYPES,
    StatisticConfig,
    StatObjectType,
    split_object_id,
)
from .switches import DnConfig, SwitchConfig, SwitchType, TServerConfig
