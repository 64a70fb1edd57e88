"""What differs between PBXs on a CSTA XML link, as small tables (``docs/behind.md``).

``generic`` follows the standards only. The others record differences found in public documents;
each is to be confirmed against the real PBX (none was available to this project):

- ``openscape`` (Unify OpenScape Voice): ECMA-323 edition 4 namespace and protocol version, events
  with invoke id 9999, a 600 s session (documents captured in ``skarcos/pyssimist``), ``scx:``
  private data (skipped by the codec).
- ``avaya-dmcc`` (Avaya AES DMCC XML): the ECMA-323 edition 3 binding (``ch.ecma.csta``), the user
  name and password sent in ``applicationSpecificInfo`` at session start.
- ``mx-one`` (Mitel MiVoice MX-ONE CSTA III XML): edition 3 documents.
"""

from __future__ import annotations

__all__ = ["DIALECTS", "Dialect"]

from dataclasses import dataclass
from typing import Final

from ivr_server.switch.csta.codec import CSTA_NAMESPACES


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    """One PBX family's CSTA differences."""

    name: str
    namespace: str
    """The ECMA-323 namespace of the documents we write."""
    protocol_versions: tuple[str, ...]
    """Offered in StartApplicationSession ``requestedProtocolVersions``."""
    session_duration_s: int
    """Requested session duration (ECMA-354); the PBX answers the actual one."""
    event_invoke_id: int | None
    """The invoke id the PBX puts on events (never allocated to our requests), if fixed."""
    login_in_session: bool
    """Send user name and password in the session start's ``applicationSpecificInfo``."""


def _dialect(
    name: str,
    edition: str,
    *,
    session_duration_s: int = 180,
    event_invoke_id: int | None = None,
    login_in_session: bool = False,
) -> Dialect:
    namespace = CSTA_NAMESPACES[edition]
    return Dialect(
        name=name,
        namespace=namespace,
        protocol_versions=(namespace,),
        session_duration_s=session_duration_s,
        event_invoke_id=event_invoke_id,
        login_in_session=login_in_session,
    )


DIALECTS: Final[dict[str, Dialect]] = {
    d.name: d
    for d in (
        _dialect("generic", "ed3"),
        _dialect("openscape", "ed4", session_duration_s=600, event_invoke_id=9999),
        _dialect("avaya-dmcc", "ed3", login_in_session=True),
        _dialect("mx-one", "ed3"),
    )
}
"""Dialect name (as in the configuration) → its table."""
