"""A call's timeline over the real server (docs/api.md, "A call's timeline"): an IVR over TCP
makes a call, has a request refused and ends the call; ``GET /api/v1/calls/{id}/timeline``
shows what happened, the refusal with its code's name and explanation, user data as keys only,
needs the token always, and stays readable after the call ended."""

from __future__ import annotations

from ivr_server.api import responses as r
from ivr_server.calls.timeline_view import EXPLANATIONS
from ivr_server.wire import messages as m
from tests.integration import test_api
from tests.integration.test_api import (
    StartApi,
    call_with_data,
    make_config,
    next_message,
)

SECRET = "4929-1234-5678-SECRET"

launch = test_api.start_api
"""The API tests' fixture: ``await launch(config)`` starts a server with its API."""


async def test_a_refused_request_is_on_the_timeline_with_its_explanation(
    launch: StartApi,
) -> None:
    env = await launch()
    link = await call_with_data(env, "C1")
    await link.send(
        "C1",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
        f"<Node Name='CardNumber' Type='Str' Val='{SECRET}'/></UDataEx></UDataSet>",
    )
    assert (await next_message(link, "C1")).Result == "Success"
    await link.send("C1", "<RetrieveCall/>")  # nothing to retrieve: refused
    refused = await next_message(link, "C1")
    assert isinstance(refused, m.CallError) and refused.FailedReq == "RetrieveCall"
    code = refused.TlibErrCode
    assert code is not None

    answer = await env.get("/api/v1/calls/C1/timeline")
    r.CallTimeline.model_validate(answer)
    assert answer["call_id"] == "C1" and answer["ended"] is False
    entries = answer["entries"]
    names = [(e["kind"], e["name"]) for e in entries]
    assert names[0] == ("ivr-in", "NewCall")
    assert ("ivr-out", "CallStatus") in names and ("ivr-in", "UDataSet") in names
    assert ("ivr-in", "RetrieveCall") in names
    (error,) = [e for e in entries if e["kind"] == "error"]
    assert error["name"] == "CallError"
    assert error["error"]["code"] == code and error["error"]["request"] == "RetrieveCall"
    explained = EXPLANATIONS.get(error["error"]["name"] or "")
    assert explained and error["error"]["explanation"] == explained
    assert "CardNumber" in str(entries) and SECRET not in str(entries)
    times = [e["time"] for e in entries]
    assert times == sorted(times)

    # the call ends: its timeline stays readable, ended, with the EndCall last
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    for _ in range(50):
        answer = await env.get("/api/v1/calls/C1/timeline")
        if answer["ended"]:
            break
    assert answer["ended"] is True and answer["ended_at"] >= times[-1]
    assert any(e["name"] == "EndCall" and e["kind"] == "ivr-in" for e in answer["entries"])
    status, _, _ = await env.request("GET", "/api/v1/calls/C1")
    assert status == 404  # the call is gone, its timeline is not


async def test_the_timeline_needs_the_token_and_unknown_calls_are_404(
    launch: StartApi,
) -> None:
    env = await launch()
    await call_with_data(env, "C2")
    for token in (None, "wrong"):
        status, _, _ = await env.request("GET", "/api/v1/calls/C2/timeline", token=token)
        assert status == 401, token
    status, body, _ = await env.request("GET", "/api/v1/calls/nope/timeline")
    assert status == 404 and "nope" in body["error"]


async def test_no_timelines_when_switched_off(launch: StartApi) -> None:
    base = make_config()
    server = base.server.model_copy(update={"timeline_entries": 0})
    env = await launch(base.model_copy(update={"server": server}))
    await call_with_data(env, "C3")
    status, _, _ = await env.request("GET", "/api/v1/calls/C3/timeline")
    assert status == 404
    assert (await env.get("/api/v1/calls/C3"))["call_id"] == "C3"
