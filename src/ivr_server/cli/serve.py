"""``ivr-server serve`` (also the root command's default) and ``ivr-server check-config``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ivr_server import __version__, logs
from ivr_server.cli.common import (
    LOG_LEVELS,
    HostPort,
    build_name,
    guard_standard_streams,
    host_port,
    run_loop,
    setup_logging,
)
from ivr_server.config import (
    HaConfig,
    ListenAddress,
    default_config,
    default_config_path,
    load_config,
)
from ivr_server.errors import ConfigError

__all__ = ["check_config", "serve"]


@click.command()
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
    "--node-id",
    help="This node's name in the shared store ([ha] node-id; high availability only).",
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
    node_id: str | None,
    pid_file: Path | None,
) -> None:
    """Start the server and run until interrupted (SIGHUP reloads the configuration, SIGUSR2
    forces the reload)."""
    from ivr_server.api import ApiServer
    from ivr_server.runtime import IvrServer
    from ivr_server.runtime import serve as run_server
    from ivr_server.runtime.status import PidFileError

    fallback = guard_standard_streams()  # before anything could take descriptor 2 (a socket)
    try:
        config = load_config(config_file) if config_file else default_config()
        if node_id is not None:  # validated as the file's would be
            ha = HaConfig.model_validate({**config.ha.model_dump(), "node_id": node_id})
            config = config.model_copy(update={"ha": ha})
        addresses = listen or None
        api_addresses = api_listen or None
        if no_api:
            api_addresses = ()
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {config_file}: {exc}") from None
    setup_logging(
        log_level or config.server.log_level,
        config.server.log_format,
        config.server.log_queue_size,
    )
    if fallback:
        logging.getLogger("ivr_server").warning("%s", fallback)
    source = str(config_file) if config_file else default_config_path()

    def started(server: IvrServer) -> None:
        where = ", ".join(host_port(h, p) for h, p in server.addresses)
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
        click.echo(f"build: {build_name()}")
        sys.stdout.flush()

    try:
        run_loop(
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
    except PidFileError as exc:  # one line: "cannot write the pid file /dev/null/x: Not a ..."
        raise click.ClickException(str(exc)) from None
    except (ConfigError, OSError) as exc:  # e.g. an address in use, a TLS file that does not load
        raise click.ClickException(f"cannot start: {exc}") from None
    finally:
        logs.shutdown()  # write the last lines ("stopped after ...") before the process ends


@click.command("check-config")
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
