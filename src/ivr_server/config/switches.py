"""Switches with their DNs, and the T-Server applications serving them (PROTOCOL.md §5.5).

The original's Switch and DN objects and its T-Server applications: an IVR's ports name DNs of a
switch, and reach that switch through the T-Server serving it. A premise switch's T-Server also
holds the link to the PBX (:mod:`.premise`).
"""

from __future__ import annotations

__all__ = ["DnConfig", "SwitchConfig", "SwitchType", "TServerConfig"]

from typing import Literal

from ivr_server.vocabulary import DnType

from .base import ConfigModel
from .fields import Name, Number
from .premise import PremiseConfig

SwitchType = Literal["in-front", "premise-csta"]
"""Switch types. ``in-front`` is the original's "Virtual Switch for IVR In-Front", the switch the
server itself presents; ``premise-csta`` is a premise PBX watched over CSTA XML (Behind mode), its
T-Server carrying the link (:class:`~.premise.PremiseConfig`)."""


class DnConfig(ConfigModel):
    """A DN of a switch (original: a DN object under the switch)."""

    number: Number
    """The DN's number, unique on its switch (a TOML integer is taken as its decimal string)."""
    type: DnType
    """``extension``, ``voice-treatment-port``, ``routing-point``, ``acd-queue`` or
    ``virtual-routing-point``. Original: the DN object's type."""
    alias: Number | None = None
    """Another name the DN may be addressed by, unique on its switch. Original: the DN's alias."""


class SwitchConfig(ConfigModel):
    """A switch (original: a Switch object, with its DNs)."""

    name: Name
    """Switch name, unique; reported as ``MonitorInfo Server/@Switch``. Original: the Switch
    object's name."""
    type: SwitchType = "in-front"
    """``in-front``: the "Virtual Switch for IVR In-Front" that the server itself presents;
    ``premise-csta``: a premise PBX the server watches over CSTA XML (Behind mode; its T-Server
    has a ``[tservers.premise]`` table). Original: the switch type."""
    dns: tuple[DnConfig, ...] = ()
    """The switch's DNs: the IVR ports' DNs, routing points, ACD queues, agents' extensions."""


class TServerConfig(ConfigModel):
    """A T-Server application (original: e.g. ``TServer_IVR``), serving one switch."""

    name: Name
    """Application name, unique; reported as ``MonitorInfo Server/@Name``."""
    switch: Name
    """Name of the switch this T-Server serves; each switch is served by exactly one T-Server.
    Original: the application's switch assignment."""
    premise: PremiseConfig | None = None
    """The link to the PBX when the switch is a premise switch (TOML ``[tservers.premise]``,
    required then, refused otherwise)."""
