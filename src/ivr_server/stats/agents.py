"""What the agents on a switch are doing, counted per queue or per agent group.

Every logged-in agent is in exactly one :class:`AgentActivity`, read from the switch's DN
snapshots at the moment of the question:

* ``BUSY`` — its DN is a party of a call on the switch (for an IVR port's agent: the port has a
  call), whatever its Ready/NotReady state;
* ``READY`` — Ready and its DN has no call: it can take a call now;
* ``NOT_READY`` — NotReady (any work mode: after-call work, walk-away…) and its DN has no call.

So ready + not ready + busy = logged in, for every set of agents. Nothing is stored here.
"""

from __future__ import annotations

__all__ = ["AgentActivity", "AgentCounts", "agent_activities", "count_activities"]

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from ivr_server.switch import AgentSnapshot, AgentState, Switch


class AgentActivity(Enum):
    """What a logged-in agent is doing (see the module docstring)."""

    READY = "ready"
    NOT_READY = "not_ready"
    BUSY = "busy"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCounts:
    """Logged-in agents of a queue or group, by activity."""

    ready: int = 0
    """Ready and without a call."""
    not_ready: int = 0
    """NotReady and without a call."""
    busy: int = 0
    """On a call."""

    @property
    def logged_in(self) -> int:
        """Every logged-in agent: ``ready + not_ready + busy``."""
        return self.ready + self.not_ready + self.busy

    def as_dict(self) -> dict[str, int]:
        """``{"ready", "not_ready", "busy", "logged_in"}`` for the API."""
        return {
            "ready": self.ready,
            "not_ready": self.not_ready,
            "busy": self.busy,
            "logged_in": self.logged_in,
        }


def agent_activities(
    switch: Switch, held: Container[str] = ()
) -> Iterator[tuple[AgentSnapshot, AgentActivity]]:
    """Every agent logged in on ``switch`` with its activity, in DN configuration order;
    ``held``: DNs whose agent has a call elsewhere (active nodes: another node's call routed
    to it, issue 25), busy too."""
    busy_dns = {dn for call in switch.view.calls() for dn in call.parties}
    for dn in switch.view.dns():
        agent = dn.agent
        if agent is None:
            continue
        if dn.number in busy_dns or dn.number in held:
            yield agent, AgentActivity.BUSY
        elif agent.state is AgentState.READY:
            yield agent, AgentActivity.READY
        else:
            yield agent, AgentActivity.NOT_READY


def count_activities(activities: Iterable[AgentActivity]) -> AgentCounts:
    """Tally ``activities`` into :class:`AgentCounts`."""
    tally = dict.fromkeys(AgentActivity, 0)
    for activity in activities:
        tally[activity] += 1
    return AgentCounts(
        ready=tally[AgentActivity.READY],
        not_ready=tally[AgentActivity.NOT_READY],
        busy=tally[AgentActivity.BUSY],
    )
