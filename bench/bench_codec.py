#!/usr/bin/env python3
"""Codec throughput: documents decoded and encoded per second, per message type (one core)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from common import add_common_args, record
from ivr_server.wire.codec import decode_document, encode_document
from ivr_server.wire.kv import int_node, str_node
from ivr_server.wire.messages import (
    Agent,
    CallInfoReq,
    CallInfoResp,
    CallStatus,
    FlowControl,
    LoginReq,
    LoginResp,
    MonitorInfo,
    UDataGet,
    UDataResp,
    UDataSet,
)

CID = "IAdapter1_11271718550003050003"
# Requests as real drivers write them (double quotes, newlines, end tags), PROTOCOL.md §2.3.
REQUESTS: dict[str, bytes] = {
    name: (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n'
        f"<GctiMsg><CallId>{CID}</CallId>{body}</GctiMsg>\n"
    ).encode("latin-1")
    for name, body in {
        "LoginReq": '<LoginReq Version="4.0" ClientName="IAdapter1" ReportStatus="true" '
        'ServerMonitor="clear"></LoginReq>',
        "NewCall": '<NewCall CallControlMode="Network" Version="4.0"><CalledNum>2</CalledNum>'
        "<DNIS>*3002</DNIS><ANI>2225</ANI></NewCall>",
        "CallInfoReq": "<CallInfoReq></CallInfoReq>",
        "UDataGet": '<UDataGet Keys="UEI"><RequestId>100000002</RequestId></UDataGet>',
        "UDataSet": '<UDataSet Action="Add" Keys="UEI"><RequestId>100000002</RequestId><UDataEx>'
        '<Node Name="aaa" Type="Str" Val="111"/><Node Name="bbb" Type="Str" Val="222"/>'
        '<Node Name="ccc" Type="Int" Val="333"/></UDataEx></UDataSet>',
        "AgentQuery": "<AgentQuery ReqId='705' PortNum='1'/>",
        "EndCall": '<EndCall EndCause="Normal"><ExtnsEx><Node Name="GCTIActiveRelease" '
        'Type="Str" Val="false"/></ExtnsEx></EndCall>',
    }.items()
}
REPLIES = {
    "LoginResp": LoginResp(IServerVer="IVR Server:8.5.001.00", Result="Success", Status="OK"),
    "FlowControl": FlowControl(Status="Off"),
    "CallStatus": CallStatus(Event="Ringing"),
    "CallInfoResp": CallInfoResp(
        ANI="2225",
        DNIS="3002",
        CalledNum="2",
        ConnId="0079020eaf04c019",
        TSCallId="2053",
        PortDN="3002",
        PortTrunk="0",
        OtherDN="3081",
        LastEvent="EventEstablished",
    ),
    "UDataResp": UDataResp(
        Result="Success",
        RequestId="100000002",
        UDataEx=(str_node("UEI", "bridgetec"), int_node("n", 7)),
    ),
    "MonitorInfo": MonitorInfo(ReqId="705", Agent=Agent(PortNum="1", Status="Ready")),
}
# Sanity: the request documents really decode to what they say.
assert isinstance(decode_document(REQUESTS["LoginReq"])[1], LoginReq)
assert isinstance(decode_document(REQUESTS["CallInfoReq"])[1], CallInfoReq)
assert isinstance(decode_document(REQUESTS["UDataGet"])[1], UDataGet)
assert isinstance(decode_document(REQUESTS["UDataSet"])[1], UDataSet)


def rate(fn: Callable[[], object], seconds: float = 0.4) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(500):
            fn()
        n += 500
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


TARGET_DECODE = 100_000
TARGET_ENCODE = 200_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap)
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    seconds = 0.1 if args.quick else 0.4
    print(f"{'decode (documents/s)':<28}{'':>12}")
    decode_rates = []
    for name, doc in REQUESTS.items():
        r = rate(partial(decode_document, doc), seconds)
        decode_rates.append(r)
        print(f"  {name:<26}{r:>12,.0f}  ({len(doc)} bytes)")
    print(f"  {'mean':<26}{sum(decode_rates) / len(decode_rates):>12,.0f}")
    print(f"{'encode (documents/s)':<28}")
    encode_rates = []
    for name, msg in REPLIES.items():
        r = rate(partial(encode_document, CID, msg), seconds)
        encode_rates.append(r)
        print(f"  {name:<26}{r:>12,.0f}")
    print(f"  {'mean':<26}{sum(encode_rates) / len(encode_rates):>12,.0f}")
    dec, enc = sum(decode_rates) / len(decode_rates), sum(encode_rates) / len(encode_rates)
    record(
        "codec",
        "decode, mean of 7 requests",
        dec,
        "/s",
        f">= {TARGET_DECODE:,}",
        dec >= TARGET_DECODE,
    )
    slowest, slowest_name = min(zip(decode_rates, REQUESTS, strict=True))
    record("codec", f"decode, slowest ({slowest_name})", slowest, "/s")
    record(
        "codec",
        "encode, mean of 6 replies",
        enc,
        "/s",
        f">= {TARGET_ENCODE:,}",
        enc >= TARGET_ENCODE,
    )


if __name__ == "__main__":
    main()
