"""The commands with a premise switch configured (Behind mode): ``check-config`` accepts it as it
does any valid file, ``serve`` starts with it and keeps trying to reach an absent PBX."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.conftest import ROOT, free_port, launch, stop
from tests.integration.test_cli import ivr_server

BEHIND = ROOT / "examples/behind.toml"


def test_check_config_passes_the_behind_example() -> None:
    done = ivr_server("check-config", str(BEHIND))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("OK (1 switches, 1 T-Servers, 1 IVRs, 3 ports)")
    assert "note" not in done.stdout and not done.stderr


def test_serve_starts_with_a_premise_switch_and_retries_an_absent_pbx(tmp_path: Path) -> None:
    nowhere = free_port()
    path = tmp_path / "behind.toml"
    path.write_text(
        BEHIND.read_text(encoding="utf-8").replace("127.0.0.1:3022", f"127.0.0.1:{nowhere}"),
        encoding="utf-8",
    )
    log = tmp_path / "serve.log"
    wanted = f"switch SW_Site: cannot connect to the PBX at 127.0.0.1:{nowhere}"
    with log.open("w", encoding="utf-8") as stderr:
        served = launch(
            "serve", "--config", str(path), "--no-api", "--listen", "127.0.0.1:0", stderr=stderr
        )
        assert "listening on 127.0.0.1:" in served.banner
        until = time.monotonic() + 10.0
        while wanted not in log.read_text(encoding="utf-8"):  # the first attempt, in background
            assert time.monotonic() < until, log.read_text(encoding="utf-8")
            time.sleep(0.02)
        stop(served)
    assert "Traceback" not in log.read_text(encoding="utf-8")


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
