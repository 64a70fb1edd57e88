"""High availability (TOML table ``[ha]``): the shared state store, the node's role, durability.

docs/ha.md explains the modes; ``../shared/spec/MODES-AND-HA.md`` §3 is the design reference.
"""

from __future__ import annotations

__all__ = ["HaConfig", "HaDurability", "HaMode", "OnStoreLoss"]

from typing import Literal, Self

from pydantic import Field, model_validator

from .base import ConfigModel
from .fields import PositiveSeconds

HaMode = Literal["off", "warm", "hot", "active"]
HaDurability = Literal["async", "primary", "replica"]
OnStoreLoss = Literal["pause", "continue"]


class HaConfig(ConfigModel):
    """How this node shares its state with the others (TOML ``[ha]``).

    ``mode = "off"`` (the default): one node, all state in its memory, nothing written anywhere:
    a one-machine site is unchanged. Any other mode needs ``store``.
    """

    mode: HaMode = "off"
    """``off``: single node. ``warm``: the standby listens for IVRs only once it holds the lease
    (the driver reconnects and logs in; its calls go on). ``hot``: both nodes accept the driver,
    answer ``LoginReq`` (and the flow control), only the lease holder answers the rest; the standby
    replays what its peer never committed. ``active``: every node serves, each owns its calls, a
    dead node's calls are adopted by the survivors."""
    node_id: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    """This node's name in the store (leases, call ownership, the web view). Empty: the host
    name and the IVR listen port."""
    store: str = ""
    """The shared store: ``redis://[user:password@]host[:port][/db]`` (``rediss://`` for TLS),
    or ``memory://`` (this process only: tests). Required unless ``mode = "off"``."""
    site: str = Field(default="ivr", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """The key prefix of this site's state in the store (``ivrs:{site}:``): several sites can
    share one store."""
    lease: PositiveSeconds = 2.0
    """How long a node's lease lasts without renewal (renewed every third of it). A standby takes
    over at most this long after the holder died (plus the time to load the state)."""
    poll: PositiveSeconds = 0.2
    """How often a standby looks at the lease (and trims what it kept of the driver's requests)."""
    durability: HaDurability = "replica"
    """When a reply may leave: ``async`` at once (a reply can precede its effects' commit: a
    fail-over may lose them); ``primary`` once the store acknowledged the turn's batch;
    ``replica`` once a replica of the store also has it (``WAIT``; best effort, docs/ha.md)."""
    replicas: int = Field(default=1, ge=0)
    """How many of the store's replicas ``replica`` durability waits for."""
    wait_timeout: PositiveSeconds = 0.05
    """The longest a batch waits for its replicas (``WAIT``'s timeout); then the reply leaves
    anyway and ``ha_replica_timeouts_total`` counts it."""
    on_store_loss: OnStoreLoss = "pause"
    """The store does not answer: ``pause`` sends ``FlowControl On`` to the IVRs (no new calls;
    the calls in progress go on, their writes queued) until it is back; ``continue`` serves on,
    logging an alarm."""
    store_timeout: PositiveSeconds = 1.0
    """A batch or lease command unanswered this long means the store is lost."""
    max_queued: int = Field(default=200_000, ge=1)
    """Most state records queued while the store is lost (coalesced by key: the latest snapshot
    of each call); past it the oldest changes are dropped and a full resync is done on return."""

    @model_validator(mode="after")
    def _store_needed(self) -> Self:
        if self.mode != "off" and not self.store:
            raise ValueError(f'[ha] mode = "{self.mode}" needs store = "redis://host:port/db"')
        if self.store and not self.store.startswith(
            ("redis://", "rediss://", "unix://", "redis+sentinel://", "memory://")
        ):
            raise ValueError(
                f"[ha] store {self.store!r}: write redis://host[:port][/db], rediss://..., "
                "unix:///path, redis+sentinel://host:26379[,host2:26379]/<master>[/db] or memory://"
            )
        if self.wait_timeout >= self.store_timeout:
            raise ValueError(
                f"[ha] wait-timeout ({self.wait_timeout:g} s) must be shorter than store-timeout "
                f"({self.store_timeout:g} s): the store's watchdog would cut the WAIT"
            )
        return self
