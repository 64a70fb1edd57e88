"""``ivr-server loadtest``: its options, handed to :mod:`ivr_server.loadtest` (docs/loadtest.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ivr_server.cli.common import host_port

__all__ = ["loadtest"]


@click.command()
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
            outcome.merged, plots_dir, f"{script.name}, {host_port(host, port)}"
        ):
            click.echo(f"plot written to {path}")
    if outcome.report["errors"]["total"]:
        sys.exit(1)
