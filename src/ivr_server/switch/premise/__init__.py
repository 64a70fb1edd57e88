"""The premise switch (Behind mode): a PBX watched over CSTA Phase III XML (docs/behind.md).

Only :mod:`ivr_server.switch.registry` (and tests) import the switch; the layers above know it as
a :class:`~ivr_server.switch.protocol.LinkedSwitch`. :class:`PremiseSettings` is the plain-value
form of its link's configuration.
"""

from __future__ import annotations

from ivr_server.switch.premise.settings import PremiseSettings
from ivr_server.switch.premise.switch import PremiseSwitch

__all__ = ["PremiseSettings", "PremiseSwitch"]
