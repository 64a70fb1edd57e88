"""The shared conformance replay (``../shared/conformance/replay.py``) against the Behind-mode
server of examples/behind.toml, linked to the simulator: the scenarios that do not depend on an
In-Front switch (sessions, keep-alive, monitoring, an agent query through the PBX, session
errors, unknown calls and ports) must pass unchanged. The call scenarios expect In-Front's
immediate Ringing and are not played here (the In-Front replay is tests/integration/test_cli.py's)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.behind.conftest import IVR, Site, running_site
from tests.integration.test_cli import REPLAY, SCENARIOS
from tests.shared import require_shared

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

BEHIND_SCENARIOS = (
    "login-report-status",
    "login-without-report-status",
    "login-v3-no-flowcontrol",
    "login-unknown-client",
    "login-invalid-version",
    "relogin-same-connection",
    "keepalive",
    "monitor-server-on-login",
    "agent-query",
    "endcall-unknown-call",
    "newcall-unknown-port",
    "newcall-before-login",
)
"""The scenarios that make sense against a Behind server (no call needs the switch to ring)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("replay")) as running:
        yield running


def test_the_session_scenarios_pass_against_behind_mode(site: Site) -> None:
    require_shared(REPLAY, SCENARIOS)  # the site is linked: the PBX monitors every port DN
    failed = []
    for name in BEHIND_SCENARIOS:
        done = subprocess.run(
            [
                *(sys.executable, str(REPLAY), "--host", "127.0.0.1", "--port", str(site.port)),
                *("--ivr", IVR, str(SCENARIOS), "--only", name),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0 or f"PASS {name}" not in done.stdout:
            failed.append(done.stdout + done.stderr)
    assert not failed, "\n".join(failed)
