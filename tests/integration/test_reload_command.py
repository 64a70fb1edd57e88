"""``ivr-server reload`` says what came of the reload (issue 20 item 8), against a real server.

The command signals the server and reads the outcome from the status file beside the pid file:
exit 0 applied (what changed printed), 1 refused (the file does not load, or it would strand live
calls), 2 nothing to re-read or no answer. The server's log line is a sentence, not a repr.
docs/operations.md, "Reload".
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from ivr_server.wire import messages as m
from tests.integration.conftest import start, stop
from tests.integration.rawlink import RawLink, start_call
from tests.integration.test_cli import ivr_server
from tests.integration.test_reload_guard import call_is_live, canary_call, config_text

THREE_PORTS = (
    '{ number = "1", dn = "4001" }, { number = "2", dn = "4002" }, { number = "3", dn = "4004" }'
)


async def reload(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(ivr_server, "reload", *args)


async def test_reload_reports_applied_invalid_refused_and_forced(tmp_path: Path) -> None:
    path = tmp_path / "ivr.toml"
    path.write_text(config_text(), encoding="utf-8")
    pid_file = tmp_path / "ivr.pid"
    served = start("--config", str(path), "--pid-file", str(pid_file))
    status_file = tmp_path / "ivr.pid.reload"
    try:
        status = json.loads(status_file.read_text(encoding="utf-8"))
        assert status == {**status, "pid": served.proc.pid, "seq": 0, "result": None}
        link = await RawLink.open(served.port)
        await link.login("L", "IVR_A")
        canary = await RawLink.open(served.port)
        await canary.login("K", "IVR_B")

        # applied: what changed, in words
        path.write_text(config_text(a_ports=THREE_PORTS), encoding="utf-8")
        done = await reload("--pid-file", str(pid_file))
        assert done.returncode == 0, done
        assert (
            "configuration reloaded: IVR IVR_A changed (port 3 added); 1 port became available"
            in done.stdout
        ), done.stdout
        assert (await link.recv_doc(timeout=10))[1] == m.MonitorInfo(
            Port=m.Port(PortNum="3", Status="OK")
        )
        done = await reload("--pid-file", str(pid_file))
        assert done.returncode == 0 and "configuration reloaded: nothing changed" in done.stdout

        # invalid: refused, the problems printed, the running configuration stays
        path.write_text(config_text(a_ports=THREE_PORTS) + "\n[server\n", encoding="utf-8")
        done = await reload("--pid-file", str(pid_file))
        assert done.returncode == 1, done
        assert "reload refused: the file does not load" in done.stderr
        assert "TOML syntax error" in done.stderr, done.stderr

        # refused: it would strand a live call
        await start_call(link, "C1", "2")
        path.write_text("", encoding="utf-8")
        done = await reload("--pid-file", str(pid_file))
        assert done.returncode == 1, done
        assert (
            "reload refused: it would strand 1 live call: IVR IVR_A is removed (calls C1 on "
            "port 2)" in done.stderr
        ), done.stderr
        assert "C1 on port 2 of IVR_A: IVR IVR_A is removed" in done.stderr
        await call_is_live(link, "C1")
        await canary_call(canary, "K1")

        # forced: applied, the call ended first and named
        done = await reload("--force", "--pid-file", str(pid_file))
        assert done.returncode == 0, done
        assert "configuration reloaded: IVRs IVR_A, IVR_B removed" in done.stdout, done.stdout
        assert "live calls ended first (EndCall EndCause='Timeout'): 1" in done.stdout
        assert "C1 on port 2 of IVR_A: IVR IVR_A is removed" in done.stdout
        assert (await link.recv_doc(timeout=10))[:2] == ("C1", m.EndCall(EndCause="Timeout"))
        assert json.loads(status_file.read_text(encoding="utf-8"))["seq"] == 5
        await link.close()
        await canary.close()
    finally:
        err = stop(served)
    logged = [json.loads(line)["message"] for line in err.splitlines() if line.strip()]
    assert (
        "configuration reloaded: IVR IVR_A changed (port 3 added); 1 port became available"
        in logged
    ), logged
    assert "ReloadReport" not in err
    assert not pid_file.exists() and not status_file.exists()


async def test_reload_without_a_file_to_reread_and_without_a_server(tmp_path: Path) -> None:
    pid_file = tmp_path / "ivr.pid"
    served = start("--pid-file", str(pid_file))  # the built-in default configuration
    try:
        done = await reload("--pid-file", str(pid_file))
        assert done.returncode == 2, done
        assert "nothing reloaded: running on the built-in default configuration" in done.stderr
        # --pid alone: the signal is sent, and the command says where the outcome is
        done = await reload("--pid", str(served.proc.pid))
        assert done.returncode == 0, done
        assert "its outcome can only be seen in the server's log" in done.stdout
    finally:
        stop(served)
    # the server is gone: no pid file, no process
    done = await reload("--pid-file", str(pid_file))
    assert done.returncode == 2 and "cannot read a pid" in done.stderr, done
    pid_file.write_text("999999999\n", encoding="ascii")  # above any pid_max: no such process
    done = await reload("--pid-file", str(pid_file))
    assert done.returncode == 2 and "cannot signal process 999999999" in done.stderr, done
