"""The root of every error ivr-server raises, split by who is at fault.

* :class:`RemoteProtocolError` — a peer (IVR or switch) sent something illegal. Subclasses carry
  the exact answer the peer gets, so the one place that answers (the session adapter) never has to
  inspect messages or text.
* :class:`LocalProtocolError` — our own code or an API caller tried something illegal. The
  operator's side has two: ``ivr_server.service.control.ControlError`` (an action that cannot be
  carried out: ``NotFound``, ``Conflict``) and ``ivr_server.api.answers.ApiError`` (an HTTP
  answer other than success, with its status).
* :class:`ConfigError` — a configuration file or value is invalid.

This module imports nothing from the package, so every layer may import it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "IvrServerError",
    "LocalProtocolError",
    "RemoteProtocolError",
]

from dataclasses import dataclass


class IvrServerError(Exception):
    """Base of every error raised by ivr-server."""


class RemoteProtocolError(IvrServerError):
    """The peer broke the protocol. Subclasses say how it is answered."""


class LocalProtocolError(IvrServerError):
    """Our code (or an API caller) tried something the protocol does not allow."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem found in a configuration: where it is and what is wrong."""

    location: str
    """Dotted path inside the configuration, e.g. ``ivrs[0].ports[3].dn``."""
    message: str
    """What is wrong, in words for the operator."""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(IvrServerError):
    """A configuration could not be loaded; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"invalid configuration {source}".rstrip()
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))
