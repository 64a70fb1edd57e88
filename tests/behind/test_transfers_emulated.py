"""A PBX without single-step transfer (MODES-AND-HA row B5, decision G4): with ``[tservers.premise]
emulate-single-step = "on-answer"`` the server does the IVR's OneStepXfer as a consultation and
a transfer (CSTA ConsultationCall, TransferCall) and the IVR sees the guide's sequence ``Held``,
``Dialing``, ``Established``, ``XferComplete``. The simulator refuses every
SingleStepTransferCall (``serviceNotSupported``, as such a PBX answers), so a single-step request
would fail the test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from ivr_server.wire.messages import CallError, CallStatus
from tests.behind.conftest import (
    CALL_INFO_REQ,
    END_CALL,
    Ivr,
    Site,
    behind_config,
    monitors_up,
    new_call,
    ringing_then_established,
    start_server,
    start_sim,
    stop_process,
    stop_site,
    wait_until,
)

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

Open = Callable[..., Awaitable[Ivr]]
AGENT = "3081"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("emulated")
    sim = start_sim(tmp)
    try:
        config = behind_config(tmp, sim.csta_port)
        text = config.read_text(encoding="utf-8")
        text = text.replace(
            "[tservers.premise]\n", '[tservers.premise]\nemulate-single-step = "on-answer"\n', 1
        )
        config.write_text(text, encoding="utf-8")
        running = start_server(tmp, sim, config)
    except BaseException:
        stop_process(sim.proc, sim.log)
        raise
    try:
        wait_until("the simulator to monitor every port DN", lambda: monitors_up(sim))
        sim.api("PUT", f"dns/{AGENT}", {"answer_delay": 0.1}, ok=(200,))
        refusal = {"request": "SingleStepTransferCall", "error": "serviceNotSupported"}
        sim.api("POST", "refusals", {**refusal, "count": 1000}, ok=(200, 201))
        yield running
    finally:
        stop_site(running)


async def test_one_step_transfer_emulated_by_consultation(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    ivr.send("E1", new_call("1"))
    site.sim.deliver("5552001", "3001")
    await ringing_then_established(ivr, "E1")
    ivr.send("E1", f'<OneStepXfer DestDN="{AGENT}"></OneStepXfer>')
    events = [(await ivr.expect("E1", CallStatus)).Event for _ in range(4)]
    assert events == ["Held", "Dialing", "Established", "XferComplete"]
    ivr.send("E1", END_CALL)
    gone = await ivr.ask("E1", CALL_INFO_REQ, CallError)
    assert gone.FailedReq == "NoSuchCall"
    # The caller is with the agent; the port is out of the call; no single-step request was
    # made (the simulator still holds all 1,000 refusals).
    calls = site.sim.api("GET", "calls", ok=(200,))["calls"]
    live = [c for c in calls if c["state"] in ("alerting", "connected")]
    assert any(AGENT in c["parties"] and "5552001" in c["parties"] for c in live), live
    assert not any("3001" in c["parties"] for c in live), live
    (rule,) = site.sim.api("GET", "refusals", ok=(200,))["refusals"]
    assert rule["count"] == 1000, rule
