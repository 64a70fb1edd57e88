"""Golden CSTA documents written by others (tests/unit/csta_golden/README.md) decode as expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import decode, encode
from ivr_server.switch.csta.framing import Frame, FrameDecoder

GOLDEN = Path(__file__).parent / "csta_golden"
C = m.ConnectionID
OSV_CALL = "FF000100000000002D65C85C1C750000"

EXPECTED: dict[str, m.CstaMessage] = {
    "pyssimist_MonitorStop.xml": m.MonitorStop(monitor_cross_ref_id="1193240031"),
    "pyssimist_StartApplicationSessionPosResponse.xml": m.StartApplicationSessionPosResponse(
        session_id="009968951",
        actual_protocol_version="http://www.ecma-international.org/standards/ecma-323/csta/ed4",
        actual_session_duration=600,
    ),
    "pyssimist_SystemRegisterResponse.xml": m.UnknownDocument(
        tag="SystemRegisterResponse",
        namespace="http://www.ecma-international.org/standards/ecma-323/csta/ed4",
    ),
    "pyssimist_MonitorStartResponse.xml": m.MonitorStartResponse(monitor_cross_ref_id="1136370025"),
    "pyssimist_MonitorStart.xml": m.MonitorStart(device="12313213", monitor_type="device"),
    "pyssimist_StartApplicationSession.xml": m.StartApplicationSession(
        application_id="pythontsm",
        requested_protocol_versions=(
            "http://www.ecma-international.org/standards/ecma-323/csta/ed4",
        ),
        requested_session_duration=600,
    ),
    "pyssimist_SystemStatus_ed2.xml": m.SystemStatus(system_status="normal"),
    "pyssimist_SystemStatus_prefixed.xml": m.SystemStatus(),
    "pyssimist_MonitorStart_prefixed.xml": m.MonitorStart(device="3021033"),
    "pyssimist_DeflectCall.xml": m.UnknownDocument(tag="DeflectCall"),
    "pyssimist_CallInformationEvent.xml": m.UnknownDocument(
        tag="CallInformationEvent",
        namespace="http://www.ecma-international.org/standards/ecma-323/csta/ed4",
    ),
    "pyssimist_DeliveredEvent.xml": m.DeliveredEvent(
        monitor_cross_ref_id="1173673890",
        connection=C(call_id="FF00010000000000EC6114647E570000", device_id="3021061290002"),
        alerting_device="N<3021061290002>;noa=nk",
        calling_device="N<7868772298>Line71001;displayNumber=7868772298;uid=FF00010000000000EC6114647E570000",
        called_device="N<3021061290002>;noa=nk",
        last_redirection_device=None,
        local_connection_info="alerting",
        cause="enteringDistribution",
        network_called_device="02911",
    ),
    "pyssimist_TransferedEvent.xml": m.TransferedEvent(
        monitor_cross_ref_id="1184300014",
        primary_old_call=C(call_id="FF00010000000000CFB6706408000000", device_id="+17867104700"),
        transferring_device="+17867104700",
        transferred_to_device="N<+17867100001>Line00001;displayNumber=00001",
        transferred_connections=(
            m.ConnectionListItem(
                new_connection=C(
                    call_id="0300010000000000CFB6706408000000", device_id="+17867100001"
                ),
                endpoint="N<+17867100001>Line00001;displayNumber=00001",
            ),
            m.ConnectionListItem(
                new_connection=C(
                    call_id="0300010000000000CFB6706408000000",
                    device_id="N<+17867100000>;uid=FF00010000000000CFB6706408000000",
                ),
                endpoint="N<+17867100000>+ 30(210)8216100;displayNumber=7867100000;"
                "uid=FF00010000000000CFB6706408000000",
            ),
        ),
        local_connection_info="null",
        cause="singleStepTransfer",
    ),
    "pool_SnapshotDeviceResponse.xml": m.SnapshotDeviceResponse(calls=()),
    "pool_SystemStatusResponse.xml": m.SystemStatusResponse(),
    "pool_SnapshotDevice.xml": m.SnapshotDevice(snapshot_object="3001"),
    "pool_MakeCall.xml": m.MakeCall(calling_device="3001", called_directory_number="3081"),
    "pool_MakeCallResponse_ed2.xml": m.MakeCallResponse(calling_device=C(device_id="3001")),
    "pool_ClearConnection_ed2.xml": m.ClearConnection(connection_to_be_cleared=C(device_id="3001")),
    "pool_EstablishedEvent_ed2.xml": m.EstablishedEvent(
        monitor_cross_ref_id="7",
        established_connection=C(device_id="3001"),
        answering_device="3001",
        calling_device="5551234",
        called_device="3001",
        last_redirection_device="3085",
        local_connection_info="connected",
        cause="newCall",
        network_calling_device="5551234",
        network_called_device="8005550100",
    ),
    "pool_ConnectionClearedEvent.xml": m.ConnectionClearedEvent(
        monitor_cross_ref_id="7",
        dropped_connection=C(device_id="5551234"),
        releasing_device="5551234",
        local_connection_info="null",
        cause="normalClearing",
    ),
    "sipe_MonitorStart.xml": m.MonitorStart(
        device="tel:73124;phone-context=dialstring;partition=BE_BRS_INT"
    ),
    "sipe_MonitorStop.xml": m.MonitorStop(monitor_cross_ref_id="99fda87c"),
    "sipe_MakeCall.xml": m.MakeCall(
        calling_device="tel:73124;phone-context=dialstring;partition=BE_BRS_INT",
        called_directory_number="tel:+3222220220",
    ),
    "sipe_ClearConnection.xml": m.ClearConnection(
        connection_to_be_cleared=C(
            call_id="0_99f261b4", device_id="tel:73124;phone-context=dialstring"
        )
    ),
    "sipe_RequestSystemStatus.xml": m.UnknownDocument(
        tag="RequestSystemStatus",
        namespace="http://www.ecma-international.org/standards/ecma-323/csta/ed3",
    ),
}

FRAMES: dict[str, m.CstaMessage] = {
    "pyssimist_ServiceInitiatedEvent.frame": m.ServiceInitiatedEvent(
        monitor_cross_ref_id="1169730059",
        initiated_connection=C(call_id=OSV_CALL, device_id="302118840100"),
        initiating_device="N<302118840100>;noa=nk",
        local_connection_info="initiated",
        cause="makeCall",
    ),
    "pyssimist_OriginatedEvent.frame": m.OriginatedEvent(
        monitor_cross_ref_id="1169730059",
        originated_connection=C(call_id=OSV_CALL, device_id="302118840100"),
        calling_device="302118840100",
        called_device="N<302118840101>;displayNumber=302118840101;noa=nk",
        local_connection_info="connected",
        cause="newCall",
    ),
}


def test_every_golden_file_has_an_expectation() -> None:
    names = {p.name for p in GOLDEN.iterdir() if p.suffix in (".xml", ".frame")}
    assert names == set(EXPECTED) | set(FRAMES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_document_decodes(name: str) -> None:
    message = decode((GOLDEN / name).read_bytes())
    assert message == EXPECTED[name]
    if not isinstance(message, m.UnknownDocument):
        assert decode(encode(message)) == message


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_golden_frame_decodes(name: str) -> None:
    data = (GOLDEN / name).read_bytes()
    frames = FrameDecoder().feed(data)
    assert [f.invoke_id for f in frames] == [9999]
    assert decode(frames[0].body) == FRAMES[name]
    assert frames == [Frame(9999, data[8:])]
