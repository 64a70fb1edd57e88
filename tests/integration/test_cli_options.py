"""What a new operator types first: the root command, option errors, the version, the banner.

Option errors are checked through click's runner (nothing starts); the commands that start a
server run as real subprocesses, as people start them.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr_server.cli import LOG_LEVELS, main
from tests.integration.conftest import ROOT, free_port, launch, stop
from tests.integration.test_cli import ivr_server
from tests.unit.test_build import compile_list

BAD_ADDRESSES = ["127.0.0.1:99999", "localhost:abc", "", "::1:3021"]


def site(tmp_path: Path) -> tuple[Path, int]:
    """A site file listening on a free loopback port, its API on any free port."""
    port = free_port()
    text = (ROOT / "examples/conformance.toml").read_text(encoding="utf-8")
    config = tmp_path / "site.toml"
    assert text.count('listen = ["127.0.0.1:3021"]') == 1
    config.write_text(
        text.replace('listen = ["127.0.0.1:3021"]', f'listen = ["127.0.0.1:{port}"]')
        + '\n[api]\nlisten = ["127.0.0.1:0"]\n',
        encoding="utf-8",
    )
    return config, port


# -- the root command runs `serve` (docs/configuration.md: `ivr-server --config site.toml`)


def test_root_command_with_config_serves_that_file(tmp_path: Path) -> None:
    config, port = site(tmp_path)
    served = launch("--config", str(config), port=port)
    try:
        assert f"listening on 127.0.0.1:{port}" in served.banner
        assert f"configuration: {config}" in served.banner and "IAdapter1" in served.banner
    finally:
        stop(served)


def test_bare_root_command_serves_the_built_in_default() -> None:
    port = free_port()
    served = launch("--listen", f"127.0.0.1:{port}", "--api-listen", "127.0.0.1:0", port=port)
    try:
        assert "built-in default" in served.banner and "IVR_1 (32 ports)" in served.banner
    finally:
        stop(served)


def test_options_before_serve_are_serves(tmp_path: Path) -> None:
    config, port = site(tmp_path)
    served = launch("--config", str(config), "serve", "--log-level", "warning", port=port)
    try:
        assert f"configuration: {config}" in served.banner
    finally:
        err = stop(served)
    assert "listening on" not in err  # an INFO line: --log-level warning was applied


def test_serve_options_are_refused_before_another_command() -> None:
    result = CliRunner().invoke(main, ["--config", "x.toml", "check-config", "y.toml"])
    assert result.exit_code == 2
    assert "--config: an option of `serve`, not of `check-config`" in result.output


def test_root_help_lists_the_commands_and_serves_options() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "[COMMAND [ARGS]...]" in result.output and "Without a COMMAND it runs `serve`" in (
        " ".join(result.output.split())
    )
    for word in ("--config", "--listen", "check-config", "loadtest", "-V, --version"):
        assert word in result.output


# -- --log-level


@pytest.mark.parametrize("command", [["serve"], []])
def test_unknown_log_level_names_the_option_and_every_level(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--log-level", "verbose"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--log-level'" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    for level in LOG_LEVELS:
        assert repr(level.lower()) in result.output


def test_log_level_help_lists_exactly_the_accepted_levels() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "[debug|info|warning|error|critical]" in result.output
    assert LOG_LEVELS == ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@pytest.mark.parametrize("given", ["debug", "Warning", "CRITICAL", "error", "INFO"])
def test_log_level_in_any_case_is_accepted(given: str) -> None:
    serve = main.commands["serve"]
    ctx = serve.make_context("serve", ["--log-level", given])
    assert ctx.params["log_level"] == given.upper()


# -- --listen / --api-listen


@pytest.mark.parametrize("option", ["--listen", "--api-listen"])
@pytest.mark.parametrize("address", BAD_ADDRESSES)
@pytest.mark.parametrize("command", [["serve"], []])
def test_bad_address_names_the_option_and_the_accepted_form(
    command: list[str], option: str, address: str
) -> None:
    result = CliRunner().invoke(main, [*command, option, address])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"Invalid value for '{option}'" in text
    assert "HOST:PORT, [IPV6]:PORT or :PORT" in text
    assert "pydantic" not in text and "Traceback" not in text
    if address:
        assert repr(address) in text


def test_bad_address_says_what_is_wrong() -> None:
    runner = CliRunner()
    said = {
        a: " ".join(runner.invoke(main, ["serve", "--listen", a]).output.split())
        for a in BAD_ADDRESSES
    }
    assert "port must be 0..65535" in said["127.0.0.1:99999"]
    assert "port 'abc' is not a number" in said["localhost:abc"]
    assert "the address is empty" in said[""]
    assert "write an IPv6 address in brackets, '[::1]:3021'" in said["::1:3021"]


@pytest.mark.parametrize(
    "good", ["127.0.0.1:3021", "[::1]:3021", ":3021", "localhost:0", " 10.0.0.1:1 "]
)
def test_good_addresses_are_accepted(good: str) -> None:
    ctx = main.commands["serve"].make_context("serve", ["--listen", good, "--api-listen", good])
    (listen,) = ctx.params["listen"]
    assert ctx.params["api_listen"] == (listen,)
    assert str(listen) == (good.strip() if not good.startswith(":") else f"0.0.0.0{good}")


@pytest.mark.parametrize("section", ["server", "api"])
def test_check_config_reports_a_bad_listen_without_pydantic(tmp_path: Path, section: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[{section}]\nlisten = ["::1:3021", "127.0.0.1:99999"]\n', encoding="utf-8")
    done = ivr_server("check-config", str(bad))
    assert done.returncode == 1
    assert f"{section}.listen[0]" in done.stderr and "'[::1]:3021'" in done.stderr
    assert f"{section}.listen[1]" in done.stderr and "port must be 0..65535" in done.stderr
    assert "pydantic" not in done.stderr


def test_tservers_is_required_on_every_ivr_and_may_be_empty_without_ports(tmp_path: Path) -> None:
    # docs/configuration.md, [[ivrs]] tservers
    cases = {
        'name = "X"\n': ["ivrs[0].tservers: required key is missing"],
        'name = "X"\ntservers = []\n': [],
        'name = "X"\ntservers = []\nports = [{ number = "1", dn = "1" }]\n': ["ivrs[0].tservers"],
    }
    for body, problems in cases.items():
        path = tmp_path / "ivr.toml"
        path.write_text(f"[[ivrs]]\n{body}", encoding="utf-8")
        done = ivr_server("check-config", str(path))
        assert done.returncode == (1 if problems else 0), done
        assert all(problem in done.stderr for problem in problems), done.stderr


def test_the_configuration_docs_start_commands_are_the_root_command() -> None:
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    assert "ivr-server --config site.toml" in text and "\nivr-server        " in text
    header = (ROOT / "src/ivr_server/config/default.toml").read_text(encoding="utf-8")
    assert "`ivr-server --config your.toml`" in header
    # both run `serve` with these options (the subprocess tests above start them for real)
    for args in (["--config", "site.toml"], []):
        ctx = main.make_context("ivr-server", list(args))
        assert ctx.params["config_file"] == (Path("site.toml") if args else None)
        assert main.invoke_without_command


# -- --version / -V names the build


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_the_build_and_the_python(flag: str) -> None:
    done = ivr_server(flag)
    assert done.returncode == 0, done.stderr
    if os.environ.get("IVR_SERVER_EXPECT_COMPILED") == "1":
        build = f"hot path compiled with mypyc ({len(compile_list())} modules)"
    else:
        build = "pure Python"
    python = f"{sys.implementation.name.replace('cpython', 'CPython')} {sys.version.split()[0]}"
    assert re.fullmatch(rf"ivr-server \S+ \({re.escape(build)}; {python}\)\n", done.stdout), (
        done.stdout
    )


def test_client_keeps_its_own_version_option() -> None:
    ctx = main.commands["client"].make_context("client", ["--version", "3.0"])
    assert ctx.params["version"] == "3.0"


# -- IPv6 addresses are printed in brackets


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listen_address_is_bracketed_in_banner_and_log() -> None:
    port, port6 = free_port(), free_port()
    served = launch(
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--listen",
        f"[::1]:{port6}",
        "--api-listen",
        "[::1]:0",
        port=port,
    )
    try:
        assert f"listening on 127.0.0.1:{port}, [::1]:{port6} (IVR XML" in served.banner
        assert "http://[::1]:" in served.banner
    finally:
        err = stop(served)
    assert f"listening on 127.0.0.1:{port}, [::1]:{port6}" in err
