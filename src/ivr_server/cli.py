"""The ``ivr-server`` command: argument parsing and logging set-up only, no logic."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final, NoReturn

import click
from click.core import ParameterSource
from pydantic import ValidationError

from ivr_server import __version__, compiled_modules, logs
from ivr_server.config import default_config, default_config_path, load_config
from ivr_server.config.model import ListenAddress
from ivr_server.errors import ConfigError
from ivr_server.logs import LogFormat

__all__ = ["main"]


def _setup_logging(
    level: str, fmt: LogFormat = "auto", queue_size: int = logs.DEFAULT_QUEUE_SIZE
) -> None:
    """Logs to standard error through a bounded queue and a writer thread: a log output that
    stops taking lines (a pipe nobody reads) never stops the server (:mod:`ivr_server.logs`)."""
    logs.configure(level, fmt, sys.stderr, queue_size=queue_size)


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""What ``--log-level`` accepts (any case): the levels of ``[server] log-level``."""

_ADDRESS_FORMS: Final = "HOST:PORT, [IPV6]:PORT or :PORT (every IPv4 interface)"


class HostPort(click.ParamType[ListenAddress, object]):
    """``HOST:PORT`` on the command line, as a :class:`ListenAddress`; a bad one is reported with
    the option's name and the accepted forms (never pydantic's text)."""

    name = "HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> ListenAddress:
        if isinstance(value, ListenAddress):
            return value  # the root command's value handed on to `serve`
        text = str(value).strip()
        if not text:
            self.fail(f"the address is empty; give {_ADDRESS_FORMS}", param, ctx)
        try:
            return ListenAddress.model_validate(text)
        except ValidationError as exc:
            self.fail(f"{_reason(exc)}; give {_ADDRESS_FORMS}", param, ctx)


def _reason(exc: ValidationError) -> str:
    """The first problem of a pydantic error in our own words (the ``ValueError`` a validator
    raised), without pydantic's boilerplate or its documentation address."""
    error = exc.errors(include_url=False)[0]
    cause = error.get("ctx", {}).get("error")
    reason = str(cause) if cause is not None else str(error["msg"])
    return reason.removeprefix("invalid address ")


def _host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:3021``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _build() -> str:
    """Which build runs: ``hot path compiled with mypyc (N modules)`` or ``pure Python``."""
    compiled = compiled_modules()
    return f"hot path compiled with mypyc ({len(compiled)} modules)" if compiled else "pure Python"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # the modules `serve` runs, so that the build is told as the banner tells it
    import ivr_server.api
    import ivr_server.runtime  # noqa: F401

    python = f"{platform.python_implementation()} {platform.python_version()}"
    click.echo(f"ivr-server {__version__} ({_build()}; {python})")
    ctx.exit()


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version, the build (pure Python or compiled) and the Python, and exit.",
)
@click.pass_context
def main(ctx: click.Context, /, **options: Any) -> None:
    """ivr-server: an open, drop-in-compatible IVR Server (IVR XML protocol over GLI).

    Without a COMMAND it runs `serve`, and the options below are serve's: `ivr-server` serves the
    built-in default configuration, `ivr-server --config site.toml` your file. `ivr-server
    COMMAND --help` tells more about each command.
    """
    # the options are serve's own, added to this group below `serve`
    given = {
        name: value
        for name, value in options.items()
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    }
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve, **options)
    elif given and ctx.invoked_subcommand != "serve":
        names = ", ".join(p.opts[-1] for p in ctx.command.params if p.name in given)
        raise click.UsageError(f"{names}: an option of `serve`, not of `{ctx.invoked_subcommand}`")
    elif given:
        ctx.default_map = {"serve": given}  # `ivr-server --config F serve`; serve's own win


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML configuration file (default: the built-in default configuration).",
)
@click.option(
    "--listen",
    "listen",
    multiple=True,
    type=HostPort(),
    help="Listen here instead of the configuration's addresses (repeatable).",
)
@click.option(
    "--api-listen",
    "api_listen",
    multiple=True,
    type=HostPort(),
    help="Serve the HTTP API, metrics and web view here instead of the configuration's "
    "[api] listen addresses (repeatable; port 0 = any free port).",
)
@click.option(
    "--no-api", is_flag=True, help="Do not start the HTTP API, whatever the configuration says."
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Log level, any case (default: the configuration's [server] log-level, INFO).",
)
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the process id here (used by `ivr-server reload`).",
)
def serve(
    config_file: Path | None,
    listen: tuple[ListenAddress, ...],
    api_listen: tuple[ListenAddress, ...],
    no_api: bool,
    log_level: str | None,
    pid_file: Path | None,
) -> None:
    """Start the server and run until interrupted (SIGHUP reloads the configuration, SIGUSR2
    forces the reload)."""
    from ivr_server.api import ApiServer
    from ivr_server.runtime import IvrServer
    from ivr_server.runtime import serve as run_server

    try:
        config = load_config(config_file) if config_file else default_config()
        addresses = listen or None
        api_addresses = api_listen or None
        if no_api:
            api_addresses = ()
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {config_file}: {exc}") from None
    _setup_logging(
        log_level or config.server.log_level,
        config.server.log_format,
        config.server.log_queue_size,
    )
    source = str(config_file) if config_file else default_config_path()

    def started(server: IvrServer) -> None:
        where = ", ".join(_host_port(h, p) for h, p in server.addresses)
        ivrs = ", ".join(f"{i.name} ({len(i.ports)} ports)" for i in config.ivrs) or "none"
        click.echo(f"ivr-server {__version__} listening on {where} (IVR XML over GLI)")
        click.echo(f"configuration: {source}; IVRs: {ivrs}")
        if server.api_addresses:
            scheme = "https" if config.api.tls_cert else "http"
            urls = ", ".join(
                f"{scheme}://[{h}]:{p}/" if ":" in h else f"{scheme}://{h}:{p}/"
                for h, p in server.api_addresses
            )
            click.echo(f"HTTP API, metrics and web view on {urls}")
        else:
            click.echo("HTTP API: off (no [api] listen address)")
        click.echo(f"build: {_build()}")
        sys.stdout.flush()

    try:
        _run(
            run_server(
                config,
                config_path=str(config_file) if config_file else None,
                listen=addresses,
                on_started=started,
                api_listen=api_addresses,
                api=ApiServer,
                # written once the signal handlers are in place, with the reload status file
                # beside it (runtime/status.py); both removed at the end
                pid_file=str(pid_file) if pid_file is not None else None,
            )
        )
    except (ConfigError, OSError) as exc:  # e.g. an address in use, a TLS file that does not load
        raise click.ClickException(f"cannot start: {exc}") from None
    finally:
        logs.shutdown()  # write the last lines ("stopped after ...") before the process ends


# `ivr-server [serve's options]` runs `serve` (main above): the root takes serve's options too
main.params.extend(serve.params)


@main.command("check-config")
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(config_file: Path) -> None:
    """Validate a configuration file and print every problem with its location."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        click.echo(f"{config_file}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {config_file}: {exc}") from None
    ports = sum(len(i.ports) for i in config.ivrs)
    click.echo(
        f"{config_file}: OK ({len(config.switches)} switches, {len(config.tservers)} "
        f"T-Servers, {len(config.ivrs)} IVRs, {ports} ports)"
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3021, show_default=True, type=int)
@click.option(
    "--name",
    "client_name",
    default="IVR_1",
    show_default=True,
    help="LoginReq ClientName: the IVR object to log in as.",
)
@click.option(
    "--version", "version", default="4.0", show_default=True, help="Session protocol version."
)
@click.option("--monitor/--no-monitor", default=False, help="Log in with ServerMonitor='set'.")
@click.option(
    "--send",
    "commands",
    multiple=True,
    metavar="XML",
    help="A message element to send, e.g. \"<AgentQuery ReqId='1' PortNum='1'/>\"; "
    "prefix with CALLID: to choose the CallId ({new} = a fresh one).",
)
@click.option(
    "--wait",
    default=1.0,
    show_default=True,
    help="Seconds to keep watching after the last --send (non-interactive).",
)
@click.option(
    "--interactive/--no-interactive",
    default=None,
    help="Read more messages from standard input (default: when it is a terminal and "
    "no --send is given).",
)
def client(
    host: str,
    port: int,
    client_name: str,
    version: str,
    monitor: bool,
    commands: tuple[str, ...],
    wait: float,
    interactive: bool | None,
) -> None:
    """A small IVR client for people: log in, send messages, watch what comes back."""
    from ivr_server.client.console import run_console

    if interactive is None:
        interactive = not commands and sys.stdin.isatty()
    code = asyncio.run(
        run_console(
            host,
            port,
            client_name=client_name,
            version=version,
            monitor=monitor,
            commands=commands,
            interactive=interactive,
            wait=wait,
        )
    )
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The server to load.")
@click.option("--port", default=3021, show_default=True, type=int, help="Its IVR (GLI) port.")
@click.option(
    "--ivr",
    "ivr_names",
    multiple=True,
    metavar="NAME",
    help="An IVR to simulate (repeatable; default IVR_1).",
)
@click.option(
    "--ivrs",
    "ivr_count",
    type=click.IntRange(min=1),
    help="Simulate N IVRs named by --ivr-pattern instead of --ivr.",
)
@click.option(
    "--ivr-pattern",
    default="IVR_{n}",
    show_default=True,
    help="Names for --ivrs; {n} counts from 1.",
)
@click.option(
    "--ports-per-ivr",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Ports of each IVR to use, numbered from --first-port; they must exist in the server's "
    "configuration.",
)
@click.option(
    "--first-port",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Number of the first port used (NewCall CalledNum).",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Sessions (TCP connections) per IVR; each owns an equal share of its ports.",
)
@click.option(
    "--script",
    "script_name",
    default="full",
    show_default=True,
    metavar="NAME|FILE",
    help="full, callinfo, hold, or a TOML/JSON script file (docs/loadtest.md).",
)
@click.option(
    "--think-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Built-in scripts: pause before each request after NewCall.",
)
@click.option("--route-dn", default="5000", show_default=True, help="RouteRequest RouteDN.")
@click.option(
    "--expect-dest",
    default="7002",
    show_default=True,
    help="RouteResponse Dest the router must answer ('any': not checked).",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Script callinfo: CallInfoReq per call (0: until the run ends).",
)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Open loop: calls/s.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Closed loop: calls in progress (default: one per port).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds measured (after --warmup); then calls in progress are let finish.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds of load before the measurement starts (not counted).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Generator processes; each owns a share of the sessions.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds a reply may take before it counts as an error.",
)
@click.option(
    "--server-pid", type=int, help="The server's process id: report its CPU and memory (/proc)."
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here as JSON.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Draw latency-over-time and latency-histogram PNGs here (needs matplotlib).",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Live progress on stderr (one updating line on a terminal).",
)
def loadtest(
    host: str,
    port: int,
    ivr_names: tuple[str, ...],
    ivr_count: int | None,
    ivr_pattern: str,
    ports_per_ivr: int,
    first_port: int,
    connections: int,
    script_name: str,
    think_ms: float,
    route_dn: str,
    expect_dest: str,
    repeat: int,
    rate: float | None,
    concurrency: int | None,
    duration: float,
    warmup: float,
    processes: int,
    timeout: float,
    server_pid: int | None,
    json_file: Path | None,
    plots_dir: Path | None,
    progress: bool,
) -> None:
    """Simulate IVRs with many ports running call scripts against a running server.

    Closed loop (--concurrency calls in progress, the default) or open loop (--rate calls per
    second). Every reply is validated; the exit status is 1 when any error was counted.
    """
    from ivr_server import loadtest as lt

    if ivr_count is not None and ivr_names:
        raise click.UsageError("give --ivr or --ivrs, not both")
    if ivr_count is not None:
        if "{n}" not in ivr_pattern:
            raise click.UsageError("--ivr-pattern must contain {n}")
        ivr_names = tuple(ivr_pattern.replace("{n}", str(n + 1)) for n in range(ivr_count))
    try:
        if script_name in lt.BUILTIN_SCRIPTS:
            script = lt.builtin_script(
                script_name,
                think_ms=think_ms,
                route_dn=route_dn,
                dest=None if expect_dest == "any" else expect_dest,
                repeat=repeat,
            )
        else:
            script = lt.load_script(Path(script_name))
        options = lt.LoadTestOptions(
            script=script,
            host=host,
            port=port,
            ivrs=ivr_names or ("IVR_1",),
            ports_per_ivr=ports_per_ivr,
            first_port=first_port,
            connections=connections,
            rate=rate,
            concurrency=concurrency,
            duration=duration,
            warmup=warmup,
            processes=processes,
            timeout=timeout,
            server_pid=server_pid,
            progress=progress,
        )
        lt.plan(options)
        if plots_dir is not None:
            lt.require_matplotlib()  # fail before the run, not after it
        outcome = lt.run_loadtest(options)
    except (lt.ScriptError, lt.LoadTestError, lt.PlotsUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(lt.render(outcome.report))
    if json_file is not None:
        lt.write_json(outcome.report, json_file)
        click.echo(f"report written to {json_file}")
    if plots_dir is not None:
        for path in lt.draw_plots(
            outcome.merged, plots_dir, f"{script.name}, {_host_port(host, port)}"
        ):
            click.echo(f"plot written to {path}")
    if outcome.report["errors"]["total"]:
        sys.exit(1)


RELOAD_EXIT: Final = {"applied": 0, "refused": 1, "invalid": 1, "no-file": 2}
"""``ivr-server reload``'s exit status for each outcome; 2 also when there is no answer."""


@main.command()
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pid file given to `ivr-server serve --pid-file`; the outcome is read from the "
    "status file beside it.",
)
@click.option(
    "--pid",
    type=int,
    help="The server's process id, instead of --pid-file (the outcome is then only in the "
    "server's log).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply the file even if it takes away the IVR, port, switch or DN of live calls "
    "(they are ended first). Sends SIGUSR2 instead of SIGHUP.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the server's answer.",
)
def reload(pid_file: Path | None, pid: int | None, force: bool, timeout: float) -> None:
    """Make a running server re-read its configuration file, and say what came of it.

    Sends the server SIGHUP (--force: SIGUSR2) and waits for its answer in the status file
    beside its pid file (<pid-file>.reload). The server refuses a file that does not load, or
    that would take away the IVR, port, switch or DN of a live call (an emptied file, say), and
    keeps its configuration; --force applies the latter anyway, ending those calls first.

    Exit status: 0 applied (what changed is printed); 1 refused (why is printed); 2 nothing to
    re-read (the server runs on the built-in default), no answer, or no such server.
    """
    from ivr_server.runtime.status import read_reload_status, reload_status_path

    if pid is None:
        if pid_file is None:
            raise click.UsageError("give --pid-file or --pid")
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            _reload_fails(f"cannot read a pid from {pid_file}: {exc} (is the server running?)")
    status_path = reload_status_path(pid_file) if pid_file is not None else None
    before = read_reload_status(status_path) if status_path is not None else None
    sig = signal.SIGUSR2 if force else signal.SIGHUP
    try:
        os.kill(pid, sig)
    except OSError as exc:
        _reload_fails(f"cannot signal process {pid}: {exc}")
    what = "forced reload" if force else "reload"
    if status_path is None or before is None or before.get("pid") != pid:
        why = (
            "--pid was given instead of --pid-file"
            if status_path is None
            else f"process {pid} keeps no status file {status_path}"
        )
        click.echo(
            f"{what} requested from process {pid} ({sig.name}); its outcome can only be seen in "
            f"the server's log ({why})"
        )
        return
    click.echo(f"{what} requested from process {pid} ({sig.name}); waiting for its answer")
    record = _await_reload(status_path, pid, int(before["seq"]), timeout)
    result = str(record.get("result"))
    stranded = record.get("stranded_calls") or []
    total = int(record.get("stranded_total") or 0)
    calls = [
        f"  {c.get('call_id')} on port {c.get('port')} of {c.get('ivr')}: {c.get('reason')}"
        for c in stranded
    ]
    if total > len(stranded):
        calls.append(f"  and {total - len(stranded)} more")
    message = str(record.get("message"))
    if result == "applied":
        click.echo(message)
        if calls:
            click.echo(f"live calls ended first (EndCall EndCause='Timeout'): {total}")
            click.echo("\n".join(calls))
        return
    if result == "refused":
        click.echo(f"reload refused: {message}", err=True)
        if calls:
            click.echo("\n".join(calls), err=True)
    elif result == "invalid":
        problems = record.get("problems") or []
        click.echo(
            "reload refused: the file does not load; the running configuration stays", err=True
        )
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        extra = int(record.get("problems_total") or 0) - len(problems)
        if extra > 0:
            click.echo(
                f"  and {extra} more (ivr-server check-config FILE lists them all)", err=True
            )
    else:
        click.echo(f"nothing reloaded: {message}", err=True)
    sys.exit(RELOAD_EXIT.get(result, 2))


def _reload_fails(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _await_reload(path: Path, pid: int, seq: int, timeout: float) -> dict[str, Any]:
    """The record in ``path`` that follows ``seq``, written by process ``pid``."""
    from ivr_server.runtime.status import read_reload_status

    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.05)
        record = read_reload_status(path)
        if record is not None and record.get("pid") == pid and int(record["seq"]) > seq:
            return record
        if record is None or record.get("pid") != pid or not _alive(pid):
            _reload_fails(f"process {pid} stopped before it answered (see the server's log)")
        if time.monotonic() > deadline:
            _reload_fails(
                f"no answer from process {pid} within {timeout:g} s (see the server's log)"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


if __name__ == "__main__":
    main()
