"""IVR objects and their ports (PROTOCOL.md §5.5): what a client logs in as, and the ports it
may take calls on, each with its DN and, in legacy mode, the agent the server logs in on it.
"""

from __future__ import annotations

__all__ = ["PORT_DN_TYPES", "AutoLogin", "IvrConfig", "PortConfig"]

import datetime
import math
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, PrivateAttr

from ivr_server.vocabulary import DnType

from .base import ConfigModel, describe_value
from .fields import Encoding, Flag, Name, Number, NumberText

PORT_DN_TYPES: Final[frozenset[DnType]] = frozenset({DnType.EXTENSION, DnType.VOICE_TREATMENT_PORT})
"""DN types an IVR port may be associated with."""


class AutoLogin(ConfigModel):
    """The agent the server logs in on a port itself (original: the port's ``[AutoLogin]`` annex).

    Used only when the port's IVR has ``legacy-mode = true``.
    """

    agent_id: Number
    """Agent login id. Original: ``AgentId``."""
    queue: NumberText = ""
    """ACD queue to log in to, an ``acd-queue`` DN on the port's switch; empty = none. Original:
    ``Queue``."""
    password: str = ""
    """Agent password. Original: ``Password``."""
    set_ready: Flag = False
    """Make the agent Ready after login (otherwise NotReady). Original: ``SetReady``."""
    set_logged_in: Flag = True
    """Log the agent in at all (false: configured but left logged out). Original:
    ``SetLoggedIn``."""


class PortConfig(ConfigModel):
    """An IVR port of an IVR (original: an IVR Port object)."""

    number: Number
    """Port number string as the IVR sends it (``NewCall CalledNum``, agent ``PortNum``), e.g.
    ``"1"``, ``"01"``, ``"101"``; unique within the IVR, compared byte for byte (``"1"`` is not
    ``"01"``). A TOML integer is taken as its decimal string. Original: the port number."""
    dn: Number
    """Number of the port's DN on its switch; must be an ``extension`` or ``voice-treatment-port``
    and used by no other port. Original: the port's associated DN."""
    switch: Name | None = None
    """Switch of the DN. Default: the switch of the IVR's only T-Server; required when the IVR
    has several T-Servers. Original: the associated DN's switch."""
    enabled: Flag = True
    """A disabled port takes no calls. Original: the port object's State Enabled flag."""
    auto_login: AutoLogin | None = None
    """Agent logged in on this port by the server (legacy mode). Original: ``[AutoLogin]``."""


def _data_transport(value: object) -> object:
    """``[ivrs.data-transport]`` table → ordered ``(key, value)`` string pairs."""
    if isinstance(value, Mapping):
        items: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if not (isinstance(item, list | tuple) and len(item) == 2):
                raise ValueError("expected a table of options (key = value)")
            items.append((item[0], item[1]))
    else:
        raise ValueError(f"expected a table of options (key = value), got {describe_value(value)}")
    pairs: list[tuple[str, str]] = []
    for key, raw in items:
        if not isinstance(key, str) or not key:
            raise ValueError(f"option name {key!r} must be a non-empty string")
        pairs.append((key, _option_text(key, raw)))
    return tuple(pairs)


def _option_text(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"option {key!r}: {value!r} is not a usable value")
        return repr(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    raise ValueError(
        f"option {key!r}: expected a string, number or boolean, got {describe_value(value)}"
    )


class IvrConfig(ConfigModel):
    """An IVR object: what a client names in ``LoginReq ClientName``, with its ports."""

    name: Name
    """IVR name = ``LoginReq/@ClientName`` (case-sensitive), unique. Original: the IVR object's
    name."""
    enabled: Flag = True
    """A disabled IVR (and so each of its ports) takes no calls. Original: the IVR object's State
    Enabled flag."""
    tservers: tuple[Name, ...]
    """Names of the T-Servers whose switches carry this IVR's port DNs. Original: the I-Server
    application's connections to T-Servers."""
    legacy_mode: Flag = True
    """True: the server logs in each port's ``auto-login`` agent and refuses agent control from
    clients (``CallError NotAllowed``); false: clients control agents. Original:
    ``[AgentControl] LegacyMode`` (default true)."""
    data_transport: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_data_transport)] = ()
    """Options handed to the client in ``LoginResp ConfigOptions``, in this order, each as a
    string (TOML numbers and booleans are converted). Original: the ``[DataTransport]`` annex."""
    output_encoding: Encoding | None = None
    """Encoding for this IVR's sessions, overriding ``server.output-encoding``. Project option,
    no original (the original's ``target-encoding`` is server-wide)."""
    ports: tuple[PortConfig, ...] = ()
    """The IVR's ports."""

    _ports_by_number: dict[str, PortConfig] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for port in self.ports:
            self._ports_by_number.setdefault(port.number, port)

    def port(self, number: str) -> PortConfig | None:
        """The port with exactly this number (byte comparison), or None."""
        # not self._ports_by_number: pydantic's __getattr__ costs ~3 us a call
        return self.__pydantic_private__["_ports_by_number"].get(number)  # type: ignore[index,no-any-return]
