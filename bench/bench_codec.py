#!/usr/bin/env python3
"""Codec throughput: documents decoded and encoded per second, per message type (one core).

Three columns: *parsed* with the codec's memos off (the XML parser and the serialiser alone),
*first seen* with the memos on but emptied before each document (the parser plus the memo's
bookkeeping: what a document never seen before costs in production; a little pessimistic, as
emptying the memos is counted too), and *repeated* (the same document again with only the CallId
changed, as drivers send CallInfoReq or EndCall: a memo hit). The targets apply to the first-seen
column."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from common import add_common_args, record
from ivr_server.wire.codec import decode_document, encode_document, memoize
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


def three_rates(fn: Callable[[Any], object], arg: Any, seconds: float) -> tuple[float, ...]:
    """``fn(arg)`` per second: memos off, memos on but emptied before each call, memo hits."""

    def first_seen() -> None:
        memoize(True)  # empties the memos
        fn(arg)

    memoize(False)
    parsed = rate(partial(fn, arg), seconds)
    seen = rate(first_seen, seconds)
    memoize(True)
    return parsed, seen, rate(partial(fn, arg), seconds)


def means(rows: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(sum(column) / len(rows) for column in zip(*rows, strict=True))


def show(row: tuple[float, ...]) -> str:
    return "".join(f"{value:>12,.0f}" for value in row)


TARGET_DECODE = 100_000
TARGET_ENCODE = 200_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap)
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    seconds = 0.1 if args.quick else 0.4
    columns = f"{'parsed':>12}{'first seen':>12}{'repeated':>12}"
    print(f"{'decode (documents/s)':<28}{columns}")
    decode_rows = [three_rates(decode_document, doc, seconds) for doc in REQUESTS.values()]
    for name, doc, row in zip(REQUESTS, REQUESTS.values(), decode_rows, strict=True):
        print(f"  {name:<26}{show(row)}  ({len(doc)} bytes)")
    print(f"  {'mean':<26}{show(means(decode_rows))}")
    print(f"{'encode (documents/s)':<28}{columns}")
    encode_rows = [three_rates(partial(encode_document, CID), m, seconds) for m in REPLIES.values()]
    for name, row in zip(REPLIES, encode_rows, strict=True):
        print(f"  {name:<26}{show(row)}")
    print(f"  {'mean':<26}{show(means(encode_rows))}")
    decode_rates = [row[1] for row in decode_rows]
    encode_rates = [row[1] for row in encode_rows]
    decode_repeated = [row[2] for row in decode_rows]
    encode_repeated = [row[2] for row in encode_rows]
    dec, enc = sum(decode_rates) / len(decode_rates), sum(encode_rates) / len(encode_rates)
    record(
        "codec",
        "decode (first seen), mean of 7 requests",
        dec,
        "/s",
        f">= {TARGET_DECODE:,}",
        dec >= TARGET_DECODE,
    )
    slowest, slowest_name = min(zip(decode_rates, REQUESTS, strict=True))
    record("codec", f"decode (first seen), slowest ({slowest_name})", slowest, "/s")
    record(
        "codec",
        "decode, repeated document (memo), mean",
        sum(decode_repeated) / len(decode_repeated),
        "/s",
    )
    record(
        "codec",
        "encode (first seen), mean of 6 replies",
        enc,
        "/s",
        f">= {TARGET_ENCODE:,}",
        enc >= TARGET_ENCODE,
    )
    record(
        "codec",
        "encode, repeated message (memo), mean",
        sum(encode_repeated) / len(encode_repeated),
        "/s",
    )


if __name__ == "__main__":
    main()
