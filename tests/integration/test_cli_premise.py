"""The commands with a premise switch configured (Behind mode, not built yet): ``check-config``
accepts it with a note, ``serve`` refuses to start with one line naming the switch."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import ROOT
from tests.integration.test_cli import ivr_server

BEHIND = ROOT / "examples/behind.toml"
NOTE = "switch 'SW_Site': Behind mode (premise-csta) is not available in this build yet"


def test_check_config_passes_the_behind_example_with_a_note() -> None:
    done = ivr_server("check-config", str(BEHIND))
    assert done.returncode == 0, done.stderr
    assert "OK (1 switches, 1 T-Servers, 1 IVRs, 3 ports)" in done.stdout
    assert f"note: switches[0]: {NOTE}; `ivr-server serve` refuses it" in done.stdout


def test_serve_refuses_a_premise_switch_without_a_traceback() -> None:
    done = ivr_server("serve", "--config", str(BEHIND), "--no-api", "--listen", "127.0.0.1:0")
    assert done.returncode == 1, done.stdout
    assert f"switches[0]: {NOTE}" in done.stderr
    assert "cannot start" in done.stderr
    assert "Traceback" not in done.stderr and "listening" not in done.stdout


def check_with_credentials(tmp_path: Path, credentials: str) -> tuple[int, str]:
    """``check-config`` on the example with ``credentials`` added to its link: (status, output)."""
    text = BEHIND.read_text(encoding="utf-8").replace(
        'application-id = "ivr-server"\n', f'application-id = "ivr-server"\n{credentials}'
    )
    path = tmp_path / "credentials.toml"
    path.write_text(text, encoding="utf-8")
    done = ivr_server("check-config", str(path))
    return done.returncode, done.stdout + done.stderr


def test_check_config_never_shows_the_password(tmp_path: Path) -> None:
    status, said = check_with_credentials(
        tmp_path, 'user = "ivr"\npassword = "hunter2"\nheartbeat-typo = "x"\n'
    )
    assert status == 1 and "tservers[0].premise.heartbeat-typo" in said
    assert "hunter2" not in said


def test_check_config_never_echoes_a_mistyped_password(tmp_path: Path) -> None:
    status, said = check_with_credentials(tmp_path, 'user = "ivr"\npassword = 73914\n')
    assert status == 1 and "tservers[0].premise.password" in said
    assert "73914" not in said
