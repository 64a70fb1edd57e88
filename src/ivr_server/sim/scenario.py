"""A scenario file for the CSTA simulator: timed operations played from its start.

TOML, one ``[[step]]`` table per operation: ``at`` (seconds after the simulator started), ``op``
(``deliver``, ``answer``, ``hangup``, ``dn``, ``refuse``, ``drop``) and the operation's keys, as
the HTTP API's bodies (:mod:`.operations`). A ``deliver`` step may name its call (``call =
"first"``) for later ``answer`` / ``hangup`` steps. Steps run in ``at`` order.
"""

from __future__ import annotations

__all__ = ["Step", "load_scenario", "parse_scenario"]

import os
import tomllib
from pathlib import Path
from typing import NamedTuple

import msgspec

from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.sim.operations import Operation


class Step(NamedTuple):
    """One operation and when it runs."""

    at: float
    op: Operation


def parse_scenario(text: str, source: str = "<string>") -> list[Step]:
    """The steps of the scenario in TOML ``text``, by time; :class:`ConfigError` listing every
    bad step."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise ConfigError([ConfigProblem("", f"TOML syntax error: {bad}")], source) from None
    problems = [ConfigProblem(key, "unknown key") for key in document if key != "step"]
    raw = document.get("step", [])
    if not isinstance(raw, list):
        raise ConfigError([ConfigProblem("step", "must be an array of tables ([[step]])")], source)
    steps: list[Step] = []
    for index, table in enumerate(raw):
        where = f"step[{index}]"
        if not isinstance(table, dict):
            problems.append(ConfigProblem(where, "must be a table"))
            continue
        fields = dict(table)
        at = fields.pop("at", 0.0)
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            problems.append(ConfigProblem(f"{where}.at", "must be a number of seconds >= 0"))
            continue
        try:
            op: Operation = msgspec.convert(fields, Operation)
        except msgspec.ValidationError as bad:
            problems.append(ConfigProblem(where, str(bad)))
            continue
        steps.append(Step(float(at), op))
    if problems:
        raise ConfigError(problems, source)
    return sorted(steps, key=lambda step: step.at)


def load_scenario(path: str | os.PathLike[str]) -> list[Step]:
    """The steps of the scenario file at ``path``."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as bad:
        raise ConfigError([ConfigProblem("", f"cannot read the file: {bad}")], source) from None
    return parse_scenario(text, source)
