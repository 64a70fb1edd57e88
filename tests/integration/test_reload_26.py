"""Reloads off the loop (issue 26 item 4): the file read and checked in a worker thread, one
reload at a time with the requests that come meanwhile served by the next one, and a live IVR
served on time throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from ivr_server.config import load_config, parse_config
from ivr_server.errors import ConfigError
from ivr_server.runtime import IvrServer
from ivr_server.runtime.status import read_reload_status
from tests.integration.conftest import start as start_cli
from tests.integration.conftest import stop as stop_cli
from tests.integration.rawlink import RawLink, start_call

StartServer = Callable[..., Awaitable[IvrServer]]

BIG = 20_000
"""Ports of the large configuration (the issue's)."""


def config_text(ports: int, extra_ivr: str | None = None, first_dn: int = 100_001) -> str:
    """One In-Front switch and IVR ``IVR_1`` with ``ports`` ports; ``extra_ivr``: one more IVR,
    without ports (a change a reader can see)."""
    dns = "\n".join(
        f'  {{ number = "{first_dn + i}", type = "voice-treatment-port" }},' for i in range(ports)
    )
    port_list = "\n".join(
        f'  {{ number = "{i + 1}", dn = "{first_dn + i}" }},' for i in range(ports)
    )
    extra = "" if extra_ivr is None else f'\n[[ivrs]]\nname = "{extra_ivr}"\ntservers = ["TS"]\n'
    return (
        f'[server]\nlog-level = "INFO"\n\n[[switches]]\nname = "SW"\ntype = "in-front"\n'
        f'dns = [\n{dns}\n]\n\n[[tservers]]\nname = "TS"\nswitch = "SW"\n\n'
        f'[[ivrs]]\nname = "IVR_1"\ntservers = ["TS"]\nlegacy-mode = false\n'
        f"ports = [\n{port_list}\n]\n{extra}"
    )


def write(path: Path, text: str) -> None:
    """Replace the file at once (a reader never sees half of it)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class Prober:
    """An IVR making complete calls one after another on port 1, noting each call's time."""

    def __init__(self, link: RawLink) -> None:
        self.link = link
        self.times: list[tuple[float, float]] = []
        """(when the call began, how long NewCall to Established took)."""
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        i = 0
        while not self._stop:
            i += 1
            began = time.perf_counter()
            await start_call(self.link, f"P{i}")
            self.times.append((began, time.perf_counter() - began))
            await self.link.send(f"P{i}", "<EndCall EndCause='Normal'/>")
            await self.link.send(f"P{i}", "<CallInfoReq/>")
            await self.link.recv_doc(timeout=30)
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._stop = True
        assert self._task is not None
        await self._task

    def during(self, began: float, ended: float) -> list[float]:
        return [took for at, took in self.times if began <= at <= ended]


async def test_a_large_file_is_read_off_the_loop(start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    write(path, config_text(BIG))
    server = await start_server(load_config(path), config_path=str(path))
    server.settle_heap()
    link = await RawLink.open(server.port)
    await link.login("L", "IVR_1")
    prober = Prober(link)
    prober.start()
    await asyncio.sleep(0.3)
    write(path, config_text(BIG, extra_ivr="IVR_2"))
    began = time.perf_counter()
    outcome = await server.reload_file()
    ended = time.perf_counter()
    await asyncio.sleep(0.3)
    await prober.stop()
    await link.close()
    assert outcome.result == "applied" and "IVR IVR_2 added" in outcome.message
    assert server.config.ivr("IVR_2") is not None
    during = prober.during(began, ended)
    # Reading and checking 20,000 ports, what changes and the new ports' index take seconds in
    # the worker thread, during which the IVR's calls go on (the thread holds the GIL a switch
    # interval, 5 ms, at a time; its garbage collections 30-80 ms). What is left on the loop is
    # the service's apply, then, a turn later, the heap's collection: the longest call waited
    # 0.02-0.10 s (a loaded 2-core machine, not compiled; once 0.8 s, the machine busy with
    # other tests). Bound: 1 s (before the fix: the whole reload, 1.3-5 s in the issue).
    assert len(during) >= 5, during
    assert max(took for _, took in prober.times) < 1.0, prober.times


async def test_requests_meanwhile_share_the_next_reload(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "conf.toml"
    write(path, config_text(2000))
    server = await start_server(load_config(path), config_path=str(path))
    recorded: list[str] = []
    server.on_reload = lambda outcome: recorded.append(outcome.result)
    write(path, config_text(2000, extra_ivr="IVR_A"))
    first = asyncio.ensure_future(server.reload_file())
    await asyncio.sleep(0)  # the first run has begun: the others wait for the next
    write(path, config_text(2000, extra_ivr="IVR_B"))
    later = [asyncio.ensure_future(server.reload_file()) for _ in range(20)]
    outcomes = await asyncio.gather(first, *later)
    assert server.reloader.runs == 2 and server.reloader.requests == 21
    assert recorded == ["applied", "applied"]
    assert outcomes[0].result == "applied" and outcomes[1] is not outcomes[0]
    assert all(o is outcomes[1] for o in outcomes[1:])  # one outcome for all who waited
    assert server.config.ivr("IVR_B") is not None and server.config.ivr("IVR_A") is None


async def test_a_forced_request_forces_the_shared_reload(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "conf.toml"
    write(path, config_text(3))
    server = await start_server(load_config(path), config_path=str(path))
    link = await RawLink.open(server.port)
    await link.login("L", "IVR_1")
    await start_call(link, "C1", "3")  # port 3: the new file takes it away
    write(path, config_text(2))
    refused = await server.reload_file()
    assert refused.result == "refused" and "port 3 of IVR IVR_1 is removed" in refused.message
    safe, forced = await asyncio.gather(server.reload_file(), server.reload_file(force=True))
    assert safe is forced and forced.result == "applied" and forced.force
    assert [c.call_id for c in forced.stranded] == ["C1"]
    await link.close()
    assert server.config.ivr("IVR_1").port("3") is None  # type: ignore[union-attr]


async def test_an_invalid_file_is_refused_with_the_same_problems(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "conf.toml"
    write(path, config_text(2))
    server = await start_server(load_config(path), config_path=str(path))
    write(path, config_text(2).replace('type = "in-front"', 'type = "sideways"') + "[bogus]\n")
    with pytest.raises(ConfigError) as expected:
        load_config(path)
    outcome = await server.reload_file()
    assert outcome.result == "invalid" and outcome.report is None
    assert outcome.problems == tuple(str(p) for p in expected.value.problems)
    assert outcome.message == str(expected.value)
    path.unlink()
    gone = await server.reload_file()
    assert gone.result == "invalid" and "cannot read" in gone.message
    assert server.config == parse_config(config_text(2))


# ------------------------------------------------------------------------ 200 SIGHUPs, a process


async def test_a_burst_of_sighups_costs_a_few_reloads(tmp_path: Path) -> None:
    path = tmp_path / "conf.toml"
    pid_file = tmp_path / "server.pid"
    write(path, config_text(5000))
    served = start_cli("--config", str(path), "--pid-file", str(pid_file))
    err = ""
    try:
        line = served.banner.splitlines()[2]
        url = line.split(" on ", 1)[1].strip().split(",")[0].rstrip("/")
        link = await RawLink.open(served.port)
        await link.login("L", "IVR_1")
        prober = Prober(link)
        prober.start()
        await asyncio.sleep(0.3)
        began = time.perf_counter()
        for i in range(200):
            write(path, config_text(5000, extra_ivr=f"IVR_N{i}"))
            served.proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.01)
        ended = time.perf_counter()
        status_path = Path(f"{pid_file}.reload")
        for _ in range(300):  # the last run ends
            await asyncio.sleep(0.05)
            record = read_reload_status(status_path) or {}
            if not record.get("running") and "IVR_N199" in " ".join(record["changes"]):
                break
        await prober.stop()
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/v1/ivrs") as response:
            names = sorted(ivr["name"] for ivr in json.loads(await response.text()))
        await link.close()
    finally:
        err = stop_cli(served)
    assert names == ["IVR_1", "IVR_N199"]  # the last content written
    reloads = err.count("configuration reloaded:")
    # Reading 5,000 ports takes ~0.2-0.5 s: the 200 requests of 2 s are served by one run each
    # time one ends, a handful of runs in all.
    assert 2 <= reloads <= 40, err[-2000:]
    assert "requests served by one reload" in err
    during = prober.during(began, ended)
    assert len(during) >= 20, during  # calls went on all along
    assert max(took for _, took in prober.times) < 2.0, prober.times
