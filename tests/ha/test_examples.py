"""``examples/ha-a.toml`` and ``examples/ha-b.toml`` (issue 25): a hot-standby pair on
127.0.0.1:3021 and 127.0.0.1:3031 (APIs on 8021 and 8031) sharing ``redis://127.0.0.1:6379/0``,
the default configuration's IVRs, ports, switch and routing otherwise; served as a pair (on free
ports and a test Redis: the fixed ones may be taken on a test machine); and the shared
conformance replay against the leader of a pair.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ivr_server.config import default_config, load_config
from tests.ha.conftest import EXAMPLES, Cluster, default_body
from tests.integration.test_cli import REPLAY, SCENARIOS, all_scenarios
from tests.shared import require_shared

pytestmark = pytest.mark.xdist_group(__name__)


@pytest.mark.parametrize(
    ("name", "node", "listen", "api"),
    [("ha-a.toml", "a", 3021, 8021), ("ha-b.toml", "b", 3031, 8031)],
)
def test_the_example_pair_loads(name: str, node: str, listen: int, api: int) -> None:
    config = load_config(EXAMPLES / name)
    assert [(a.host, a.port) for a in config.server.listen] == [("127.0.0.1", listen)]
    assert [(a.host, a.port) for a in config.api.listen] == [("127.0.0.1", api)]
    ha = config.ha
    assert (ha.mode, ha.node_id, ha.store) == ("hot", node, "redis://127.0.0.1:6379/0")
    default = default_config()
    assert [i.name for i in config.ivrs] == [i.name for i in default.ivrs]
    assert [len(i.ports) for i in config.ivrs] == [len(i.ports) for i in default.ivrs]
    assert [s.name for s in config.switches] == [s.name for s in default.switches]
    assert [r.dn for r in config.routing] == [r.dn for r in default.routing]


def test_the_two_examples_differ_only_in_addresses_and_node_id() -> None:
    a = (EXAMPLES / "ha-a.toml").read_text().splitlines()
    b = (EXAMPLES / "ha-b.toml").read_text().splitlines()
    assert len(a) == len(b)
    differ = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert all(x.startswith(("listen", "node-id", "# ivr-server")) for x, _ in differ), differ


def _example_body(name: str, store: str) -> str:
    """The example's text without its [ha] table (the cluster adds one naming the test store)."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    body = text[: text.index("\n[ha]\n")]
    assert store
    return body


def test_the_example_pair_serves_as_leader_and_standby(cluster: Cluster) -> None:
    a = cluster.add("a", _example_body("ha-a.toml", cluster.redis.url))
    a.wait_role("leader", 10)
    b = cluster.add("b", _example_body("ha-b.toml", cluster.redis.url))
    b.wait_role("standby", 10)


def test_the_shared_conformance_replay_passes_against_the_leader_of_a_pair(
    cluster: Cluster,
) -> None:
    require_shared(REPLAY, SCENARIOS)
    a = cluster.add("a", default_body())
    a.wait_role("leader", 10)
    b = cluster.add("b", default_body())
    b.wait_role("standby", 10)
    count = len(all_scenarios())
    done = subprocess.run(
        [sys.executable, str(REPLAY), "--host", "127.0.0.1", "--port", str(a.port), str(SCENARIOS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and f"{count} passed, 0 failed" in done.stdout, done.stdout
