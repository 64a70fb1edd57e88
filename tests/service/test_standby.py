"""The hot standby's service side in memory (service/standby.py, MODES-AND-HA §3.5, issue 25):
roles, driver streams, what a standby answers (LoginResp and FlowControl only, PROTOCOL.md §8.1),
its journal and the leader's marks, the replay at takeover, and a fenced leader stepping down.

A pair is two :class:`MemoryServer`s, a leader and a standby, and a "driver" that sends every
document to both, as a hot-standby driver does; the runtime's part (marks written with the
turn's batch, read by the standby while polling) is done by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ivr_server.service.persist import StatePersistence
from ivr_server.service.standby import FRESH_S
from ivr_server.wire import messages as m
from tests.service.memory import Document, MemoryClient, MemoryServer, frame

RINGING = m.CallStatus(Event="Ringing")
ESTABLISHED = m.CallStatus(Event="Established")


def no_such_call(req: int) -> m.UDataResp:
    """The answer to ``udata_get(req)`` on an unknown call."""
    return m.UDataResp(Result="NoSuchCall", RequestId=str(req))


def new_call(port: str) -> str:
    return (
        f"<NewCall CallControlMode='Network' Version='4.0'><CalledNum>{port}</CalledNum></NewCall>"
    )


def udata_get(req: int) -> str:
    return f"<UDataGet Keys='a'><RequestId>{req}</RequestId></UDataGet>"


def udata_set(req: int, value: str) -> str:
    return (
        f"<UDataSet Action='Add'><RequestId>{req}</RequestId>"
        f"<UDataEx><Node Name='a' Type='Str' Val='{value}'/></UDataEx></UDataSet>"
    )


def _pairs(got: list[Document]) -> list[tuple[str | None, m.Message]]:
    return [(doc.call_id, doc.message) for doc in got]


@dataclass
class Pair:
    """A leader and a standby, and one driver connection to each."""

    leader: MemoryServer
    standby: MemoryServer
    to_leader: MemoryClient
    to_standby: MemoryClient

    def send(self, call_id: str | None, body: str) -> tuple[list[Document], list[Document]]:
        """The driver sends the same document to both: what each answered."""
        return self.to_leader.send(call_id, body), self.to_standby.send(call_id, body)

    def commit(self) -> dict[str, int]:
        """The leader's turn is committed; the standby reads the marks."""
        marks = self.leader.service.take_marks()
        self.standby.service.trim_journal(marks)
        return marks


@pytest.fixture
def pair() -> Pair:
    leader, standby = MemoryServer(), MemoryServer()
    leader.service.set_role("leader", leader.now)
    standby.service.set_role("standby", standby.now)
    to_leader, to_standby = leader.connect(), standby.connect()
    assert to_leader.login(monitor=True)[:2] == to_standby.login(monitor=True)
    return Pair(leader, standby, to_leader, to_standby)


# ---------------------------------------------------------------------- roles


def test_the_single_role_changes_nothing(server: MemoryServer, ivr: MemoryClient) -> None:
    service = server.service
    assert service.role == "single"
    assert ivr.session.stream is None
    assert service.take_marks() == {}
    assert service.journal_streams() == {}
    assert service.journal_counters is None
    assert ivr.send("C1", new_call("1")) == [
        Document("C1", RINGING),
        Document("C1", ESTABLISHED),
    ]
    assert service.replay({}, server.now) == 0
    assert service.role == "single"


def test_an_unknown_role_is_refused(server: MemoryServer) -> None:
    with pytest.raises(ValueError, match="role"):
        server.service.set_role("primary", server.now)  # type: ignore[arg-type]
    assert server.service.role == "single"


def test_sessions_logged_in_before_the_role_get_their_streams(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    server.service.set_role("leader", server.now)
    assert ivr.session.stream == "IVR_1#0"
    assert server.service.take_marks() == {"IVR_1#0": 0}
    server.service.set_role("single", server.now)
    assert ivr.session.stream is None
    assert server.service.take_marks() == {}


# ---------------------------------------------------------------------- the standby


def test_a_standby_answers_the_login_and_flow_control_only(pair: Pair) -> None:
    # the fixture checked the login: LoginResp and FlowControl alike; the leader's MonitorInfo
    # about the T-Server was not sent by the standby
    at_leader, at_standby = pair.send("C1", new_call("1"))
    assert _pairs(at_leader) == [("C1", RINGING), ("C1", ESTABLISHED)]
    assert at_standby == []
    at_leader, at_standby = pair.send("C1", udata_set(1, "x"))
    assert [doc.message.tag for doc in at_leader] == ["UDataResp"]
    assert at_standby == []
    assert pair.to_standby.send_bytes(frame(b"<GctiMsg><Nonsense/>")) == []
    pair.standby.service.set_flow_control(True)
    pair.standby.shuttle()
    assert pair.to_standby.messages() == [m.FlowControl(Status="On")]
    assert pair.standby.service.calls.calls == {}  # no effect at all
    assert pair.standby.service.journal_streams() == {"IVR_1#0": 3}
    counters = pair.standby.service.journal_counters
    assert counters is not None and counters.journaled == 3


def test_a_request_before_the_login_is_neither_answered_nor_kept() -> None:
    standby = MemoryServer()
    standby.service.set_role("standby", standby.now)
    client = standby.connect()
    assert client.send("C1", new_call("1")) == []
    assert standby.service.journal_streams() == {}


def test_a_second_login_on_the_standby_is_answered_and_keeps_the_stream(pair: Pair) -> None:
    pair.send("C1", new_call("1"))
    got = pair.to_standby.login()
    assert [msg.tag for msg in got] == ["LoginResp", "FlowControl"]
    assert pair.to_standby.session.stream == "IVR_1#0"
    pair.to_leader.login()
    assert pair.leader.service.take_marks() == {"IVR_1#0": 2}  # the LoginReq is counted too


# ---------------------------------------------------------------------- streams and marks


def test_streams_are_named_by_client_and_order_of_login() -> None:
    server = MemoryServer()
    server.service.set_role("leader", server.now)
    first, second, other = server.connect(), server.connect(), server.connect()
    first.login()
    second.login(call_id="L2")
    other.login("IVR_2")
    assert [c.session.stream for c in (first, second, other)] == ["IVR_1#0", "IVR_1#1", "IVR_2#0"]
    assert server.service.take_marks() == {"IVR_1#0": 0, "IVR_1#1": 0, "IVR_2#0": 0}
    first.close()
    assert server.service.take_marks() == {"IVR_1#0": 0}  # reset: its mark must not outlive it
    again = server.connect()
    again.login()
    assert again.session.stream == "IVR_1#0"
    assert server.service.take_marks() == {"IVR_1#0": 0}
    assert server.service.take_marks() == {}


def test_the_leader_marks_move_with_each_document_handled(pair: Pair) -> None:
    assert pair.leader.service.take_marks() == {"IVR_1#0": 0}
    assert pair.leader.service.take_marks() == {}
    pair.send("C1", new_call("1"))
    pair.send("C1", udata_set(1, "x"))
    assert pair.leader.service.take_marks() == {"IVR_1#0": 2}
    pair.to_leader.send_bytes(frame(b"<GctiMsg><Nonsense/>"))  # a rejected one counts too
    assert pair.leader.service.take_marks() == {"IVR_1#0": 3}
    assert pair.leader.service.take_marks() == {}


def test_the_standby_forgets_what_the_marks_cover(pair: Pair) -> None:
    pair.commit()
    for req in range(1, 6):
        pair.send("X", udata_get(req))
    assert pair.standby.service.journal_streams() == {"IVR_1#0": 5}
    assert pair.standby.service.trim_journal({"IVR_1#0": 3}) == 3
    assert pair.standby.service.journal_streams() == {"IVR_1#0": 2}
    assert pair.standby.service.trim_journal({"IVR_2#0": 9, "IVR_1#0": 3}) == 0
    assert pair.commit() == {"IVR_1#0": 5}
    assert pair.standby.service.journal_streams() == {"IVR_1#0": 0}
    counters = pair.standby.service.journal_counters
    assert counters is not None and (counters.journaled, counters.trimmed) == (5, 5)


def test_a_full_journal_drops_its_oldest_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    standby = MemoryServer()
    standby.service.set_role("standby", standby.now, journal_limit=3)
    client = standby.connect()
    client.login()
    for req in range(1, 6):
        client.send("X", udata_get(req))
    counters = standby.service.journal_counters
    assert counters is not None and counters.overflowed == 2
    assert standby.service.journal_streams() == {"IVR_1#0": 3}
    assert sum("journal of stream IVR_1#0 is full" in r.message for r in caplog.records) == 1
    standby.service.set_role("leader", standby.now)
    assert client.take() == []
    assert standby.service.replay({}, standby.now) == 3
    standby.shuttle()
    assert [doc.message for doc in client.take()] == [no_such_call(r) for r in (3, 4, 5)]


# ---------------------------------------------------------------------- takeover


def test_replay_answers_the_uncommitted_requests_once(pair: Pair) -> None:
    pair.commit()
    answers = [pair.send("X", udata_get(req))[0] for req in range(1, 5)]
    pair.standby.service.trim_journal({"IVR_1#0": 2})  # the leader committed two, then died
    service = pair.standby.service
    assert service.bind_orphans(pair.standby.now) == 0
    assert service.replay({"IVR_1#0": 2}, pair.standby.now) == 2
    pair.standby.shuttle()
    assert service.role == "leader"
    # the monitoring session hears about the T-Server now, then the two answers lost with the
    # leader, in order, on the same connection
    got = pair.to_standby.take()
    assert [doc.message.tag for doc in got[:-2]] == ["MonitorInfo"]
    assert _pairs(got[-2:]) == [("X", no_such_call(3)), ("X", no_such_call(4))]
    assert _pairs(got[-2:]) == _pairs(answers[2] + answers[3])  # what the leader answered
    assert service.journal_streams() == {}
    assert service.replay({"IVR_1#0": 2}, pair.standby.now) == 0  # nothing twice
    assert pair.to_standby.take() == []
    # from now on it answers as the leader did
    assert _pairs(pair.to_standby.send("X", udata_get(9))) == [("X", no_such_call(9))]
    counters = service.journal_counters
    assert counters is not None and counters.replayed == 2


def test_replay_of_everything_gives_the_leaders_answers(pair: Pair) -> None:
    answers: list[Document] = []
    for call_id, body in [
        ("C1", new_call("1")),
        ("C1", udata_set(1, "x")),
        ("C1", udata_get(2)),
        ("C2", new_call("2")),
        ("C1", "<EndCall EndCause='Normal'/>"),
        ("C1", udata_get(3)),
    ]:
        answers += pair.send(call_id, body)[0]
    pair.to_standby.send_bytes(frame(b"<GctiMsg><Nonsense/>"))
    answers += pair.to_leader.send_bytes(frame(b"<GctiMsg><Nonsense/>"))
    service = pair.standby.service
    service.set_role("leader", pair.standby.now)  # as the runtime does, then replay
    assert service.replay({}, pair.standby.now) == 7
    pair.standby.shuttle()
    got = [doc for doc in pair.to_standby.take() if doc.message.tag != "MonitorInfo"]
    assert _pairs(got) == _pairs(answers)
    assert sorted(service.calls.calls) == sorted(pair.leader.service.calls.calls)


def test_documents_of_a_closed_session_are_not_replayed(pair: Pair) -> None:
    pair.send("X", udata_get(1))
    pair.to_standby.close()
    assert pair.standby.service.journal_streams() == {}
    assert pair.standby.service.replay({}, pair.standby.now) == 0
    counters = pair.standby.service.journal_counters
    assert counters is not None and counters.closed == 1


def test_a_mark_ahead_of_the_standby_replays_nothing_of_its_stream(pair: Pair) -> None:
    # the leader handled and committed three documents; the standby has received one
    for req in (1, 2, 3):
        pair.to_leader.send("X", udata_get(req))
    marks = pair.leader.service.take_marks()
    assert marks == {"IVR_1#0": 3}
    pair.to_standby.send("X", udata_get(1))
    service = pair.standby.service
    assert service.replay(marks, pair.standby.now) == 0
    pair.standby.shuttle()
    pair.to_standby.take()
    # what arrives late is handled: a duplicate answer, rather than a request dropped
    assert _pairs(pair.to_standby.send("X", udata_get(2))) == [("X", no_such_call(2))]
    assert service.take_marks() == {"IVR_1#0": 2}


def test_a_leader_stream_that_started_again_is_never_replayed(pair: Pair) -> None:
    for req in (1, 2):
        pair.send("X", udata_get(req))
    pair.commit()
    pair.leader.advance(FRESH_S)
    pair.standby.advance(FRESH_S)
    # the driver's connection to the leader breaks and is opened again; the standby's goes on
    pair.to_leader.close()
    again = pair.leader.connect()
    again.login()
    pair.to_leader = again
    pair.send("X", udata_get(3))
    assert pair.commit() == {"IVR_1#0": 1}  # the reset (0) and the new count, in one turn
    service = pair.standby.service
    assert service.journal_streams() == {"IVR_1#0": 0}  # emptied: its indices mean nothing
    pair.send("X", udata_get(4))
    assert service.replay({"IVR_1#0": 1}, pair.standby.now) == 0
    counters = service.journal_counters
    assert counters is not None and counters.unaligned == 2


def test_a_stale_mark_reset_soon_after_the_login_is_forgotten(pair: Pair) -> None:
    """Both nodes restarted: the store still has the mark of a session the old leader had (7),
    read before the new leader reset it (0). Right after the stream's start, going down is
    taken as that reset, and the stream is replayed as usual."""
    service = pair.standby.service
    service.trim_journal({"IVR_1#0": 7})
    pair.send("X", udata_get(1))
    service.trim_journal({"IVR_1#0": 0})
    pair.send("X", udata_get(2))
    assert service.journal_streams() == {"IVR_1#0": 2}
    assert service.replay({"IVR_1#0": 1}, pair.standby.now) == 1


def test_a_stale_mark_far_ahead_is_not_taken_as_the_streams(pair: Pair) -> None:
    """A mark an earlier session of the stream's name left (the reset not read yet) trims,
    but is not remembered: the reset that follows is not taken as the leader starting again."""
    service = pair.standby.service
    pair.send("X", udata_get(1))
    service.trim_journal({"IVR_1#0": 5000})
    service.trim_journal({"IVR_1#0": 0})
    pair.send("X", udata_get(2))
    pair.send("X", udata_get(3))
    service.trim_journal({"IVR_1#0": 2})
    assert service.journal_streams() == {"IVR_1#0": 1}
    assert service.replay({"IVR_1#0": 2}, pair.standby.now) == 1


def test_bind_orphans_gives_ownerless_calls_to_a_session_of_their_ivr(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    ivr.send("C1", new_call("1"))
    ivr.send("C2", new_call("2"))
    calls = list(server.service.calls.calls.values())
    for call in calls:
        call.owner = None  # as restored from the store
    assert server.service.bind_orphans(server.now) == 2
    assert all(call.owner is ivr.session for call in calls)
    assert isinstance(ivr.request("C1", "<CallInfoReq/>"), m.CallInfoResp)


# ---------------------------------------------------------------------- demotion


def test_a_fenced_leader_drops_its_calls_without_a_word(pair: Pair) -> None:
    pair.send("C1", new_call("1"))
    pair.send("C1", udata_set(1, "x"))
    service = pair.leader.service
    service.set_role("standby", pair.leader.now)
    assert service.role == "standby"
    assert service.calls.calls == {}
    assert service.calls.next_deadline() is None
    pair.leader.advance(120.0)  # no call timeout, router timeout, EndCall, nothing
    assert pair.to_leader.take() == []
    assert pair.to_leader.send("C1", udata_get(2)) == []  # kept, not answered
    assert service.journal_streams() == {"IVR_1#0": 1}


# ---------------------------------------------------------------------- with the state store


def test_a_takeover_restores_the_committed_and_replays_the_rest() -> None:
    """H1 and H2 in memory: what the leader committed comes from its records, what it did not
    is replayed from the standby's journal, and each request is answered once."""
    pair, (leader_state, standby_state) = _tracked_pair()
    store: dict[str, bytes] = {}

    def commit() -> None:  # the leader's runtime writes the turn; the standby reads the marks
        puts, deletes = leader_state.collect()
        store.update(puts)
        for key in deletes:
            store.pop(key, None)
        pair.standby.service.trim_journal(pair.leader.service.take_marks())

    at_leader, at_standby = pair.send("C1", new_call("1"))
    assert _pairs(at_leader) == [("C1", RINGING), ("C1", ESTABLISHED)] and at_standby == []
    at_leader, _ = pair.send("C1", udata_set(1, "committed"))
    assert [doc.message.tag for doc in at_leader] == ["UDataResp"]
    info = pair.to_leader.request("C1", "<CallInfoReq/>")
    pair.to_standby.send("C1", "<CallInfoReq/>")
    commit()
    assert pair.standby.service.journal_streams() == {"IVR_1#0": 0}
    # the leader handles this one, its reply held until a commit that never comes: it dies
    pair.send(
        "C1",
        "<UDataSet Action='Add'><RequestId>2</RequestId><UDataEx>"
        "<Node Name='b' Type='Str' Val='lost'/></UDataEx></UDataSet>",
    )
    marks = {"IVR_1#0": 3}  # what the store has
    standby, service = pair.standby, pair.standby.service
    assert standby_state.restore(store, standby.now) == 1
    assert service.bind_orphans(standby.now) == 1
    service.set_role("leader", standby.now)
    assert service.replay(marks, standby.now) == 1
    standby.shuttle()
    got = [doc for doc in pair.to_standby.take() if doc.message.tag != "MonitorInfo"]
    assert _pairs(got) == [("C1", m.UDataResp(Result="Success", RequestId="2"))]
    data = pair.to_standby.request("C1", "<UDataGetAll><RequestId>3</RequestId></UDataGetAll>")
    assert isinstance(data, m.UDataResp) and data.UDataEx is not None
    assert sorted((n.Name, getattr(n, "Val", None)) for n in data.UDataEx) == [
        ("a", "committed"),
        ("b", "lost"),
    ]
    assert pair.to_standby.request("C1", "<CallInfoReq/>") == info  # the same ConnID...
    assert pair.to_standby.send("C1", "<EndCall EndCause='Normal'/>") == []
    assert service.calls.calls == {}


def _tracked_pair() -> tuple[Pair, tuple[StatePersistence, StatePersistence]]:
    """A pair whose state changes are tracked (service/persist.py), as the runtime sets it up."""
    leader, standby = MemoryServer(), MemoryServer()
    states = (StatePersistence(leader.service), StatePersistence(standby.service))
    for state in states:
        state.enable()
    leader.service.set_role("leader", leader.now)
    standby.service.set_role("standby", standby.now)
    to_leader, to_standby = leader.connect(), standby.connect()
    to_leader.login()
    to_standby.login()
    return Pair(leader, standby, to_leader, to_standby), states


def test_the_standby_remembers_each_calls_latest_document_even_once_committed(pair: Pair) -> None:
    """``answered_since`` (the reply outbox's evidence at a takeover, runtime/ha.py): the index
    of each call's latest document the standby received on a stream, kept after the marks
    trimmed the journal, forgotten with the stream; a leader knows nothing of it."""
    pair.send("C1", new_call("1"))  # index 1
    pair.send("C2", new_call("2"))  # 2
    pair.send("C1", udata_set(1, "x"))  # 3
    pair.commit()  # the journal trimmed: the indices stay
    service = pair.standby.service
    assert service.answered_since("IVR_1#0", "C1", 2)  # C1's UDataSet (3) came after 2
    assert not service.answered_since("IVR_1#0", "C1", 3)
    assert not service.answered_since("IVR_1#0", "C2", 2)
    assert not service.answered_since("IVR_1#0", "C3", 0)
    assert not service.answered_since("other#0", "C1", 0)
    assert not pair.leader.service.answered_since("IVR_1#0", "C1", 0)
    pair.to_standby.close()
    assert not service.answered_since("IVR_1#0", "C1", 2)  # the stream closed: forgotten
