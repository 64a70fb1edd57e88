"""``ivr-server csta-sim``: the CSTA PBX simulator (``docs/csta-sim.md``)."""

from __future__ import annotations

__all__ = ["csta_sim"]

import sys
from pathlib import Path

import click

from ivr_server import logs
from ivr_server.cli.common import LOG_LEVELS, HostPort, host_port, run_loop, setup_logging
from ivr_server.config import ListenAddress
from ivr_server.errors import ConfigError


@click.command("csta-sim")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The simulator's TOML file (default: ports 3001-3008, extensions 3081-3084, queue 3085).",
)
@click.option(
    "--listen", type=HostPort(), help="The CSTA service's address (default 127.0.0.1:3022)."
)
@click.option(
    "--api-listen", type=HostPort(), help="The HTTP API's address (default 127.0.0.1:3023)."
)
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A scenario file to play from the start (instead of the configuration's).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    help="Log level, any case (default INFO: a line per session, call and refusal).",
)
def csta_sim(
    config_file: Path | None,
    listen: ListenAddress | None,
    api_listen: ListenAddress | None,
    scenario_file: Path | None,
    log_level: str,
) -> None:
    """Run a CSTA PBX simulator: a CSTA Phase III XML server an ivr-server premise switch
    connects to, driven by an HTTP API and a scenario file."""
    from ivr_server.sim.app import run_simulator
    from ivr_server.sim.config import default_sim_config, load_sim_config
    from ivr_server.sim.scenario import load_scenario

    try:
        config = load_sim_config(config_file) if config_file else default_sim_config()
        scenario = scenario_file or config.simulator.scenario
        steps = load_scenario(scenario) if scenario else None
    except ConfigError as bad:
        click.echo(f"{bad.source}: {len(bad.problems)} problem(s)", err=True)
        for problem in bad.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    setup_logging(log_level)

    def started(csta: tuple[str, int], api: tuple[str, int]) -> None:
        click.echo(
            f"csta-sim {config.simulator.name}: CSTA on {host_port(*csta)}, "
            f"HTTP API on http://{host_port(*api)}/api/v1/"
        )
        click.echo(f"DNs: {len(config.dns)}; scenario: {scenario or 'none'}")
        sys.stdout.flush()

    try:
        run_loop(
            run_simulator(
                config, listen=listen, api_listen=api_listen, steps=steps, on_started=started
            )
        )
    except OSError as bad:
        raise click.ClickException(f"cannot start: {bad}") from None
    finally:
        logs.shutdown()
