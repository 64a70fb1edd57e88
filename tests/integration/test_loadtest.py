"""``ivr-server loadtest`` against a real server process: closed and open loop, one and two
generator processes, the report's fields and counts, plots, script files, and wrong answers and
timeouts counted as errors by kind."""

from __future__ import annotations

import json
import sys
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ivr_server.cli import main
from ivr_server.loadtest import ScriptError, builtin_script, parse_script, plots
from ivr_server.loadtest.generator import WorkerResult
from ivr_server.loadtest.report import build_report, merge, render
from tests.integration.conftest import Served, launch, stop

FULL_CALL_MESSAGES = 6
"""Per call of the ``full`` script: requests sent (EndCall included) and replies received."""
REQUESTS = ["NewCall", "CallInfoReq", "UDataSet", "UDataGet", "RouteRequest"]


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """The server with the built-in default configuration (IVR_1: ports 1..32)."""
    served = launch("serve", "--listen", "127.0.0.1:0", "--no-api")
    yield served
    stop(served)


def loadtest(server: Served, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str, str]:
    """Run the command; returns its exit code, the JSON report, stdout and stderr."""
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        ["loadtest", "--port", str(server.port), "--json", str(report), *args],
        catch_exceptions=False,
    )
    assert report.exists(), result.output
    return result.exit_code, json.loads(report.read_text()), result.stdout, result.stderr


def assert_consistent(report: dict[str, Any]) -> None:
    """Counts that must agree with each other in any run of the ``full`` script."""
    calls, messages, latency = report["calls"], report["messages"], report["latency_ms"]
    assert calls["started"] == calls["completed"] + calls["failed"] + calls["unfinished"]
    for name in REQUESTS:
        assert latency[name]["count"] == calls["completed"], name
        row = latency[name]
        assert 0 < row["p50"] <= row["p90"] <= row["p99"] <= row["p99.9"] <= row["max"], row
    assert latency["all"]["count"] == len(REQUESTS) * calls["completed"]
    assert messages["sent"] == FULL_CALL_MESSAGES * calls["completed"]
    assert messages["received"] == FULL_CALL_MESSAGES * calls["completed"]


@pytest.mark.parametrize(
    ("mode", "processes"),
    [("closed", 1), ("open", 1), ("closed", 2), ("open", 2)],
)
def test_full_calls_without_errors(
    server: Served, tmp_path: Path, mode: str, processes: int
) -> None:
    load = ["--concurrency", "8"] if mode == "closed" else ["--rate", "200"]
    plots_dir = tmp_path / "plots"
    code, report, out, err = loadtest(
        server,
        tmp_path,
        *load,
        "--duration",
        "1.5",
        "--processes",
        str(processes),
        "--connections",
        "2",
        "--server-pid",
        str(server.proc.pid),
        *(["--plots", str(plots_dir)] if processes == 2 else []),
    )
    assert code == 0, out + err
    assert report["errors"] == {"total": 0, "by_kind": {}, "examples": {}}
    assert report["mode"] == mode
    assert report["processes"] == processes
    assert report["sessions"] == 2 and report["ports"] == 32
    assert report["ivrs"] == ["IVR_1"]
    assert 1.4 < report["duration_s"] < 2.0
    calls = report["calls"]
    assert calls["failed"] == calls["unfinished"] == 0
    assert calls["completed"] > 100
    assert_consistent(report)
    if mode == "open":
        assert report["concurrency"] is None
        assert report["open_loop"]["offered_per_second"] == 200
        assert 150 < calls["per_second"] <= 210
        assert calls["started"] == pytest.approx(300, abs=5)
    else:
        assert report["concurrency"] == 8
        assert calls["peak_in_flight"] == 8
        assert "open_loop" not in report
    assert report["messages"]["per_second"] > 0
    usage = report["server"]
    assert usage["pid"] == server.proc.pid and usage["problem"] is None
    assert usage["cpu_percent"] > 0 and usage["rss_peak_mb"] > 10
    assert len(report["generator"]["cpu_percent_per_process"]) == processes
    assert "calls/s" in err and "p99" in err  # the live progress
    assert "latency (ms)" in out and "errors     0" in out
    if processes == 2:
        for name in ("latency-over-time.png", "latency-histogram.png"):
            png = plots_dir / name
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
            assert png.stat().st_size > 10_000


def test_a_wrong_answer_is_an_error_by_kind(server: Served, tmp_path: Path) -> None:
    """Ports 100..103 are not IVR_1's: the server ends every NewCall at once."""
    code, report, out, _ = loadtest(
        server,
        tmp_path,
        "--first-port",
        "100",
        "--ports-per-ivr",
        "4",
        "--duration",
        "0.5",
        "--no-progress",
    )
    assert code == 1
    kind = (
        "NewCall: expected CallStatus Event='Ringing', got EndCall EndCause='FeatureNotSupported'"
    )
    errors = report["errors"]
    assert list(errors["by_kind"]) == [kind]
    assert errors["total"] == errors["by_kind"][kind] == report["calls"]["failed"] > 0
    assert report["calls"]["completed"] == 0
    assert "CallId W0S0_10" in errors["examples"][kind][0]
    assert report["server"] is None
    assert "server     CPU n/a" in out and kind in out


@pytest.mark.parametrize("processes", ["1", "2"])
def test_an_unknown_ivr_stops_the_run_at_once(
    server: Served, tmp_path: Path, processes: str
) -> None:
    """The server answers the login of an IVR it does not know with ``Status='NoSuchClient'``:
    the load test says so and stops before sending a single call, instead of reporting thousands
    of ``EndCall FeatureNotSupported`` failures."""
    report = tmp_path / "report.json"
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        [
            *("loadtest", "--port", str(server.port), "--ivr", "NO_SUCH_IVR", "--duration", "60"),
            *("--processes", processes, "--connections", processes),
            *("--no-progress", "--json", str(report)),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 30  # stopped at the login, not after the 60 s run
    assert "IVR 'NO_SUCH_IVR': LoginResp Status='NoSuchClient'" in result.output
    assert "no IVR of that name" in result.output
    assert "FeatureNotSupported" not in result.output
    assert not report.exists()


def test_failures_are_grouped_in_the_servers_words(server: Served, tmp_path: Path) -> None:
    """A ``CallError`` is reported with both its ``FailedReq`` and its ``TlibErrCode``: 9999 is
    not a routing point."""
    code, report, out, _ = loadtest(
        server, tmp_path, "--route-dn", "9999", "--duration", "0.3", "--no-progress"
    )
    assert code == 1
    kind = (
        "RouteRequest: expected RouteResponse RouteType='Normal' Dest=7002, got "
        "CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'"
    )
    assert list(report["errors"]["by_kind"]) == [kind]
    assert kind in out


def test_a_late_reply_is_a_timeout_error(server: Served, tmp_path: Path) -> None:
    """Routing point 5001 has no router: its RouteResponse only comes after 4 s."""
    code, report, _, _ = loadtest(
        server,
        tmp_path,
        "--route-dn",
        "5001",
        "--timeout",
        "0.3",
        "--concurrency",
        "2",
        "--duration",
        "0.6",
        "--no-progress",
    )
    assert code == 1
    kind = "RouteRequest: no RouteResponse RouteType='Normal' Dest=7002 within 0.3 s"
    assert report["errors"]["by_kind"] == {kind: report["calls"]["failed"]}
    assert report["calls"]["completed"] == 0
    assert report["latency_ms"]["CallInfoReq"]["count"] == report["calls"]["started"]


def test_a_script_file(server: Served, tmp_path: Path) -> None:
    script = tmp_path / "survey.toml"
    script.write_text(
        """
name = "survey"
think-ms = 1
[[steps]]
type = "NewCall"
ani = "5550100"
[[steps]]
type = "CallInfoReq"
repeat = 3
[[steps]]
type = "Think"
ms = 2
[[steps]]
type = "UDataSet"
data = { Segment = "Silver", Score = 7 }
[[steps]]
type = "UDataGet"
[[steps]]
type = "RouteRequest"
route-dn = "5000"
dest = "7002"
""",
        encoding="utf-8",
    )
    code, report, _, _ = loadtest(
        server, tmp_path, "--script", str(script), "--duration", "1", "--no-progress"
    )
    assert code == 0, report["errors"]
    assert report["script"] == "survey"
    assert report["script_steps"].endswith("EndCall")  # added
    completed = report["calls"]["completed"]
    assert completed > 10
    latency = report["latency_ms"]
    assert latency["CallInfoReq"]["count"] == 3 * completed
    assert latency["UDataGet"]["count"] == latency["RouteRequest"]["count"] == completed


def test_held_calls_and_callinfo(server: Served, tmp_path: Path) -> None:
    code, report, _, _ = loadtest(
        server, tmp_path, "--script", "hold", "--duration", "0.5", "--no-progress"
    )
    assert code == 0, report["errors"]
    assert report["calls"]["peak_in_flight"] == 32 == report["calls"]["completed"]
    code, report, _, _ = loadtest(
        server,
        tmp_path,
        "--script",
        "callinfo",
        "--concurrency",
        "4",
        "--duration",
        "0.5",
        "--no-progress",
    )
    assert code == 0, report["errors"]
    assert report["calls"]["completed"] == 4
    assert report["latency_ms"]["CallInfoReq"]["count"] > 100


def test_bad_options_and_scripts(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["loadtest", "--rate", "5", "--concurrency", "2"])
    assert result.exit_code == 1 and "not both" in result.output
    result = runner.invoke(main, ["loadtest", "--concurrency", "33"])
    assert "between 1 and the 32 ports" in result.output
    result = runner.invoke(main, ["loadtest", "--processes", "2"])
    assert "each process needs at least one" in result.output
    result = runner.invoke(main, ["loadtest", "--script", "nope"])
    assert "cannot read nope" in result.output
    with pytest.raises(ScriptError, match="first step, and only it, must be NewCall"):
        parse_script({"steps": [{"type": "CallInfoReq"}]}, "s.json")
    with pytest.raises(ScriptError, match="not set by an earlier UDataSet"):
        parse_script({"steps": [{"type": "NewCall"}, {"type": "UDataGet", "keys": ["x"]}]}, "s")
    with pytest.raises(ScriptError, match="unknown key"):
        parse_script({"steps": [{"type": "NewCall", "port": 3}]}, "s")
    with pytest.raises(ScriptError, match="unknown script"):
        builtin_script("nope")


def test_plots_need_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plots.PlotsUnavailable, match=r"pip install 'ivr-server\[plots\]'"):
        plots.require_matplotlib()


def test_each_call_has_its_own_number_and_data() -> None:
    from ivr_server.loadtest.scripts import CALL_TOKEN_BYTES, compile_script

    steps = {s.kind: s for s in compile_script(builtin_script("full"), "7")}
    # NewCall's ANI, the ANI checked in CallInfoResp, UDataSet's value and UDataGet's read-back
    # carry the token the generator replaces; the rest is the same for every call
    for kind in ("NewCall", "CallInfoReq", "UDataSet", "UDataGet"):
        assert steps[kind].per_call, kind
    assert CALL_TOKEN_BYTES in steps["NewCall"].body
    assert any(CALL_TOKEN_BYTES in n for n in steps["CallInfoReq"].replies[0].needles)
    assert not steps["RouteRequest"].per_call and not steps["EndCall"].per_call
    plain = parse_script({"steps": [{"type": "NewCall", "ani": "555"}, {"type": "EndCall"}]}, "t")
    assert not any(s.per_call for s in compile_script(plain, "7"))


@pytest.mark.parametrize(("cpu_seconds", "busy"), [((0.2, 0.5), False), ((0.3, 1.9), True)])
def test_a_busy_generator_is_reported(cpu_seconds: tuple[float, float], busy: bool) -> None:
    """A load test measures the server only while its generator keeps up: a generator process
    that used 90% of a core or more is flagged in the JSON and warned about in the table."""
    results = [
        WorkerResult(
            w,
            ["CallInfoReq"],
            {"CallInfoReq": array("d", [0.001])},
            {"CallInfoReq": array("d", [0.5])},
            window=2.0,
            cpu_seconds=cpu,
        )
        for w, cpu in enumerate(cpu_seconds)
    ]
    settings: dict[str, Any] = {"target": "127.0.0.1:3021", "script": "callinfo", "mode": "closed"}
    settings |= {"concurrency": 8, "ivrs": ["IVR_1"]}
    report = build_report(merge(results), settings=settings, server=None)
    generator = report["generator"]
    assert generator["cpu_percent_per_process"] == [c * 50 for c in cpu_seconds]
    assert generator["busy"] is busy
    assert ("the generator may have limited the load" in render(report)) is busy
