"""The ``ivr-server`` command as people use it, in real subprocesses, and the shared replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# (re-exported, "as": other test modules still import these from here)
from tests.integration.conftest import ROOT, Served, start, stop
from tests.shared import require_shared
from tests.unit.test_build import compile_list

REPLAY = ROOT.parent / "shared/conformance/replay.py"
SCENARIOS = ROOT.parent / "shared/conformance/scenarios.jsonl"


def all_scenarios() -> list[str]:
    """Every scenario id of the shared file (all must pass, calls included)."""
    if not SCENARIOS.exists():
        return []
    return [json.loads(line)["id"] for line in SCENARIOS.read_text().splitlines() if line.strip()]


def ivr_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr_server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


@pytest.fixture
def default_server() -> Iterator[Served]:
    served = start()
    yield served
    stop(served)


def replay(port: int, only: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPLAY),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
            str(SCENARIOS),
            *(["--only", only] if only else []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def shared() -> None:
    """The shared conformance replay is there (``../shared/conformance/``, the protocol reference
    checked out beside this clone). Without it the replay tests are skipped, except under CI
    (``CI`` set, as ``.ci/run`` is run), where they fail: CI must never pass without them."""
    require_shared(REPLAY, SCENARIOS)


def test_shared_conformance_replay_passes_every_scenario(
    shared: None, default_server: Served
) -> None:
    count = len(all_scenarios())
    assert count >= 19
    done = replay(default_server.port, None)
    assert done.returncode == 0 and f"{count} passed, 0 failed" in done.stdout, done.stdout


def test_conformance_site_configuration_replays_as_iadapter1(shared: None) -> None:
    served = start("--config", str(ROOT / "examples/conformance.toml"))
    try:
        count = len(all_scenarios())
        done = replay(served.port, None, "--ivr", "IAdapter1")
        assert done.returncode == 0 and f"{count} passed, 0 failed" in done.stdout, done.stdout
    finally:
        stop(served)


def test_serve_prints_where_it_listens_and_what_it_loaded(default_server: Served) -> None:
    assert f"listening on 127.0.0.1:{default_server.port}" in default_server.banner
    assert (
        "built-in default" in default_server.banner and "IVR_1 (32 ports)" in default_server.banner
    )


def test_serve_says_whether_its_hot_path_is_compiled(default_server: Served) -> None:
    # .ci/run also tests the compiled build (IVR_SERVER_COMPILE=1) and sets this variable there;
    # the editable install of the test command is never compiled
    if os.environ.get("IVR_SERVER_EXPECT_COMPILED") == "1":
        expected = f"build: hot path compiled with mypyc ({len(compile_list())} modules)"
    else:
        expected = "build: pure Python"
    assert expected in default_server.banner


def test_version() -> None:
    done = ivr_server("--version")
    assert done.returncode == 0 and "ivr-server" in done.stdout


def test_check_config_good_and_bad(tmp_path: Path) -> None:
    done = ivr_server("check-config", str(ROOT / "examples/conformance.toml"))
    assert done.returncode == 0 and "OK" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[ivrs]]\nname = "X"\ntservers = ["nope"]\nports = [{ number = "1", '
        'dn = "1" }]\n[server]\nflow-control = "sideways"\n',
        encoding="utf-8",
    )
    done = ivr_server("check-config", str(bad))
    assert done.returncode == 1
    assert "ivrs[0].tservers" in done.stderr and "server.flow-control" in done.stderr
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[server\n", encoding="utf-8")
    done = ivr_server("check-config", str(syntax))
    assert done.returncode == 1 and "line 1" in done.stderr


def test_serve_refuses_a_bad_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nkeep-alive-tries = 0\n", encoding="utf-8")
    done = ivr_server("serve", "--config", str(bad))
    assert done.returncode != 0 and "keep-alive-tries" in done.stderr


def test_reload_command_sends_sighup(tmp_path: Path) -> None:
    config = tmp_path / "ivr.toml"
    text = (ROOT / "examples/conformance.toml").read_text(encoding="utf-8")
    config.write_text(text, encoding="utf-8")
    pid_file = tmp_path / "ivr.pid"
    served = start("--config", str(config), "--pid-file", str(pid_file))
    try:
        assert pid_file.read_text().strip() == str(served.proc.pid)
        config.write_text(
            text.replace("flow-control = false", "flow-control = true")
            if "flow-control = false" in text
            else text.replace("[server]", "[server]\nflow-control = true", 1),
            encoding="utf-8",
        )
        done = ivr_server("reload", "--pid-file", str(pid_file))
        assert done.returncode == 0, done.stderr
        time.sleep(0.5)
    finally:
        err = stop(served)
    assert "configuration reloaded: server.flow-control false -> true" in err, err
    assert "configuration reloaded: server.flow-control false -> true" in done.stdout, done
    assert not pid_file.exists()


def test_client_command_logs_in_and_shows_replies(default_server: Served) -> None:
    done = ivr_server(
        "client",
        "--port",
        str(default_server.port),
        "--no-interactive",
        "--send",
        "<AgentQuery ReqId='9' PortNum='1'/>",
        "--wait",
        "0.5",
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "LoginResp" in done.stdout and "MonitorInfo" in done.stdout and "9" in done.stdout
