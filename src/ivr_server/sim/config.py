"""The CSTA simulator's configuration (``examples/pbx.toml``): its addresses, the application it
accepts, its DNs and pre-logged-in agents, and the scenario it plays at start.

Kebab-case keys as ivr-server's own configuration; durations are seconds (numbers). Every
problem is reported with its key, one per line (:class:`~ivr_server.errors.ConfigError`).
Without a file the simulator runs :func:`default_sim_config`: IVR port DNs 3001-3008
(voice-treatment ports, answered at once), agent extensions 3081-3084, ACD queue 3085.
"""

from __future__ import annotations

__all__ = [
    "AgentConfig",
    "DnConfig",
    "SimConfig",
    "SimulatorOptions",
    "default_sim_config",
    "load_sim_config",
    "parse_sim_config",
]

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ivr_server.config import ListenAddress
from ivr_server.config.base import describe_value
from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.switch.csta.dialects import DIALECTS
from ivr_server.vocabulary import DnType

SIM_DN_TYPES = (
    DnType.VOICE_TREATMENT_PORT,
    DnType.EXTENSION,
    DnType.ACD_QUEUE,
    DnType.ROUTING_POINT,
)
"""The DN types the simulator has (not ivr-server's own virtual routing points)."""


class _SimModel(BaseModel):
    """Base of the simulator's models: frozen, strict about keys, kebab-case in TOML, as
    ivr-server's own (not a :class:`~ivr_server.config.base.ConfigModel`: the simulator's keys
    are documented in ``docs/csta-sim.md``, not in ivr-server's configuration reference)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=lambda name: name.replace("_", "-"),
        use_attribute_docstrings=True,
    )


class SimulatorOptions(_SimModel):
    """``[simulator]``: where it listens and what application it accepts."""

    name: str = "SimPBX"
    """The PBX's name (logs, ``GET /api/v1/health``)."""
    listen: ListenAddress = ListenAddress(host="127.0.0.1", port=3022)
    """The CSTA XML service (ECMA-323 Annex J.2 framing over TCP)."""
    api_listen: ListenAddress = ListenAddress(host="127.0.0.1", port=3023)
    """The HTTP API."""
    application_id: str | None = None
    """Accept only this application id (any when absent)."""
    user: str | None = None
    """Accept only this user name in the session's login info (any when absent)."""
    password: str | None = None
    """Accept only this password (never logged)."""
    session_duration_max: int = Field(default=300, ge=1)
    """The longest session duration granted, in seconds (also granted when none is asked)."""
    dialect: str = "generic"
    """The CSTA dialect written (``generic``, ``openscape``, ``avaya-dmcc``, ``mx-one``)."""
    answer_delay: float = Field(default=0.0, ge=0)
    """Seconds before a voice-treatment-port DN answers a call delivered to it."""
    single_step_transfer: bool = True
    """Whether the PBX serves SingleStepTransferCall; ``false``: it refuses it
    ``operation``/``serviceNotSupported``, as a PBX without it (the premise switch then emulates
    it with a consultation and a transfer, MODES-AND-HA G4)."""
    scenario: str | None = None
    """A scenario file played at start (relative to the configuration file)."""

    @model_validator(mode="after")
    def _known_dialect(self) -> SimulatorOptions:
        if self.dialect not in DIALECTS:
            raise ValueError(
                f"unknown dialect {self.dialect!r} (known: {', '.join(sorted(DIALECTS))})"
            )
        return self


class DnConfig(_SimModel):
    """``[[dns]]``: one DN of the PBX."""

    number: str = Field(min_length=1)
    """The directory number."""
    type: DnType = DnType.EXTENSION
    """``voice-treatment-port``, ``extension``, ``acd-queue`` or ``routing-point``."""
    answer_delay: float | None = Field(default=None, ge=0)
    """Seconds before the DN answers a call (default: the simulator's for voice-treatment
    ports; never for the others unless answered through the API)."""
    busy: bool = False
    """A call to it fails busy."""
    no_answer: bool = False
    """A call to it rings but is never answered by itself."""

    @model_validator(mode="after")
    def _simulated_type(self) -> DnConfig:
        if self.type not in SIM_DN_TYPES:
            allowed = ", ".join(t.value for t in SIM_DN_TYPES)
            raise ValueError(f"DN type {self.type.value!r} is not simulated (allowed: {allowed})")
        return self


class AgentConfig(_SimModel):
    """``[[agents]]``: an agent logged in when the simulator starts."""

    dn: str = Field(min_length=1)
    """The extension or port DN the agent is at."""
    agent_id: str = Field(min_length=1)
    """The agent's login id."""
    queue: str = ""
    """The ACD queue DN of the login (empty: none)."""
    ready: bool = False
    """Ready at start (else not ready)."""


class SimConfig(_SimModel):
    """The whole simulator configuration."""

    simulator: SimulatorOptions = SimulatorOptions()
    """``[simulator]``."""
    dns: tuple[DnConfig, ...] = ()
    """``[[dns]]``, in order."""
    agents: tuple[AgentConfig, ...] = ()
    """``[[agents]]``, logged in at start in order."""

    @model_validator(mode="after")
    def _references(self) -> SimConfig:
        numbers = [d.number for d in self.dns]
        duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
        if duplicates:
            raise ValueError(f"DN numbers appear twice: {', '.join(duplicates)}")
        types = {d.number: d.type for d in self.dns}
        for agent in self.agents:
            if types.get(agent.dn) not in (DnType.EXTENSION, DnType.VOICE_TREATMENT_PORT):
                raise ValueError(
                    f"agent {agent.agent_id}: DN {agent.dn} is not an extension or port"
                )
            if agent.queue and types.get(agent.queue) is not DnType.ACD_QUEUE:
                raise ValueError(f"agent {agent.agent_id}: {agent.queue} is not an acd-queue DN")
        return self


def default_sim_config() -> SimConfig:
    """The built-in PBX: ports 3001-3008, extensions 3081-3084, queue 3085."""
    dns = [DnConfig(number=str(n), type=DnType.VOICE_TREATMENT_PORT) for n in range(3001, 3009)]
    dns += [DnConfig(number=str(n), type=DnType.EXTENSION) for n in range(3081, 3085)]
    dns.append(DnConfig(number="3085", type=DnType.ACD_QUEUE))
    return SimConfig(dns=tuple(dns))


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(details: Any) -> ConfigProblem:
    loc, kind, message = tuple(details["loc"]), details["type"], str(details["msg"])
    if kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif loc and loc[-1] == "password":
        message = message[:1].lower() + message[1:]
    else:
        message = f"{message[:1].lower()}{message[1:]}, got {describe_value(details['input'])}"
    return ConfigProblem(_location(loc), message)


def parse_sim_config(text: str, source: str = "<string>") -> SimConfig:
    """The configuration in TOML ``text``; :class:`ConfigError` listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise ConfigError([ConfigProblem("", f"TOML syntax error: {bad}")], source) from None
    try:
        return SimConfig.model_validate(document)
    except ValidationError as bad:
        problems = [_problem(e) for e in bad.errors(include_url=False)]
        raise ConfigError(problems, source) from None


def load_sim_config(path: str | os.PathLike[str]) -> SimConfig:
    """Read and check the simulator's TOML file at ``path``."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as bad:
        raise ConfigError([ConfigProblem("", f"cannot read the file: {bad}")], source) from None
    config = parse_sim_config(text, source)
    scenario = config.simulator.scenario
    if scenario is not None and not os.path.isabs(scenario):
        resolved = str(Path(source).resolve().parent / scenario)
        options = config.simulator.model_copy(update={"scenario": resolved})
        config = config.model_copy(update={"simulator": options})
    return config
