"""The ``ivr-server`` command group: ``--version``, and the root running ``serve`` with serve's
options when no command is given. The commands live one per module beside it."""

from __future__ import annotations

import platform
from typing import Any

import click
from click.core import ParameterSource

from ivr_server import __version__
from ivr_server.cli.common import build_name
from ivr_server.cli.console import client
from ivr_server.cli.loadtest import loadtest
from ivr_server.cli.reload import reload
from ivr_server.cli.serve import check_config, serve
from ivr_server.cli.sim import csta_sim

__all__ = ["main"]


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # the modules `serve` runs, so that the build is told as the banner tells it
    import ivr_server.api
    import ivr_server.runtime  # noqa: F401

    python = f"{platform.python_implementation()} {platform.python_version()}"
    click.echo(f"ivr-server {__version__} ({build_name()}; {python})")
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


# `ivr-server [serve's options]` runs `serve` (main above): the root takes serve's options too
main.params.extend(serve.params)
for _command in (serve, check_config, client, loadtest, reload, csta_sim):
    main.add_command(_command)
