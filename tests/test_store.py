"""The event log on a real SQLite file: stored once, never changed, organised by room and session."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.model import DeviceStatus, Observation
from monitor.store import EventLog


def obs(seq: int, value: float, ts: float = 1000.0, room: str = "room1") -> Observation:
    return Observation("clinic", room, "oximeter", seq, ts + seq, 150456, value, "%", True)


def status(state: str, ts: float, conditions: tuple[str, ...] = (), counters: int = 0) -> DeviceStatus:
    return DeviceStatus(
        "clinic", "room1", "oximeter", ts, state, "masimo-ascii", conditions, "", {"frames_ok": counters}
    )


def test_redelivered_observations_are_stored_once(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "kap.sqlite")
    assert log.append([obs(1, 97), obs(2, 96)], received_at=2000) == 2
    assert log.append([obs(2, 96), obs(3, 95), obs(1, 97)], received_at=2001) == 1
    values = [o.value for o in log.observations("clinic", "room1")]
    assert values == [97, 96, 95]


def test_the_log_is_wal_and_refuses_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "kap.sqlite"
    EventLog(path).append([obs(1, 97)], received_at=2000)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET value = 50")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events")
    assert conn.execute("SELECT value FROM events").fetchall() == [(97.0,)]


def test_status_is_stored_when_it_changes_not_on_every_retained_copy(tmp_path: Path) -> None:
    path = tmp_path / "kap.sqlite"
    log = EventLog(path)
    log.append([status("online", 10), status("online", 11, counters=5)], received_at=20)
    log.append([status("online", 12, ("sensor_off",)), status("offline", 13)], received_at=21)
    # a restarted core receives the retained copy of the last status again: not a change
    EventLog(path).append([status("offline", 13)], received_at=30)
    states = [(s.state, s.conditions) for s in EventLog(path).statuses("clinic", "room1")]
    assert states == [("online", ()), ("online", ("sensor_off",)), ("offline", ())]


def test_each_room_records_into_its_own_open_session(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "kap.sqlite")
    log.append([obs(1, 97, room="room1"), obs(1, 91, room="room2"), obs(2, 96, room="room1")], received_at=5)
    recordings = {r.room: r for r in log.recordings()}
    assert set(recordings) == {"room1", "room2"}
    assert recordings["room1"].session_id != recordings["room2"].session_id
    assert recordings["room1"].last_event_ts == 1002
    # the session survives a restart of the store
    again = EventLog(tmp_path / "kap.sqlite")
    assert again.open_session("clinic", "room1", 9999) == recordings["room1"].session_id


def test_latest_observation_per_code(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "kap.sqlite")
    pulse = Observation("clinic", "room1", "oximeter", 10, 1010, 149530, 80, "/min", True)
    log.append([obs(1, 97), obs(2, 93), pulse], received_at=5)
    latest = {o.code: o.value for o in log.latest_observations("clinic", "room1")}
    assert latest == {150456: 93, 149530: 80}


def test_a_change_of_mode_or_details_is_a_new_status_but_counters_alone_are_not(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "kap.sqlite")

    def cuff(mode: str, interval: int, frames: int) -> DeviceStatus:
        return DeviceStatus(
            "clinic",
            "room1",
            "nibp",
            10.0 + frames,
            "online",
            "suntech-nibp",
            (),
            "",
            {"frames_ok": frames},
            mode,
            {"interval_s": interval},
        )

    log.append(
        [
            cuff("idle", 300, 1),
            cuff("idle", 300, 2),
            cuff("measuring", 300, 3),
            cuff("idle", 300, 4),
            cuff("idle", 600, 5),
            cuff("idle", 600, 6),
        ],
        received_at=20,
    )
    rows = [(s.mode, s.details["interval_s"]) for s in log.statuses("clinic", "room1")]
    assert rows == [("idle", 300), ("measuring", 300), ("idle", 300), ("idle", 600)]


def test_clinical_events_and_alarm_transitions_are_stored_once_and_replayable(tmp_path: Path) -> None:
    from monitor.model import AlarmTransition, ClinicalEvent

    log = EventLog(tmp_path / "kap.sqlite")
    note = ClinicalEvent("clinic", "room1", 100.0, "note", "Ana", "e1", text="nauseous")
    raised = AlarmTransition(
        "clinic",
        "room1",
        "room1:side_effect:nausea:100000",
        100.0,
        "active",
        "medium",
        "clinical",
        "side_effect:nausea",
        "Nausea (note)",
        source_event="e1",
    )
    assert log.append_new([obs(1, 97), note, raised], received_at=100.5) == [obs(1, 97), note, raised]
    assert log.append_new([note, raised], received_at=101.0) == [], "redelivered: stored once"
    assert log.clinical_events("clinic", "room1") == [note]
    assert log.alarms("clinic", "room1") == [raised]
    kinds = [(received, type(event).__name__) for received, event in log.log("clinic", "room1")]
    assert kinds == [(100.5, "Observation"), (100.5, "ClinicalEvent")]


def test_a_session_start_opens_a_patients_session_and_its_end_closes_it(tmp_path: Path) -> None:
    from monitor.model import ClinicalEvent

    log = EventLog(tmp_path / "kap.sqlite")
    log.append([obs(1, 97, ts=100)], received_at=101)  # the room's recording before the patient
    start = ClinicalEvent(
        "clinic",
        "room1",
        200.0,
        "session_start",
        "Ana",
        "s1",
        data={"patient_code": "K-1042", "weight_kg": 70},
    )
    end = ClinicalEvent("clinic", "room1", 900.0, "session_end", "Ana", "s2", data={"summary": {"mg": 35}})
    log.append([start, obs(2, 96, ts=300)], received_at=301)
    log.append([start], received_at=302)  # redelivered: no second session
    log.append([end], received_at=901)
    log.append([obs(3, 98, ts=1000)], received_at=1001)  # after discharge: a new recording
    sessions = sorted(log.sessions(), key=lambda row: row[3])  # (id, site, room, started, ended)
    assert [(started, ended) for _, _, _, started, ended in sessions] == [
        (101.0, 200.0),
        (200.0, 900.0),
        (1003.0, None),
    ]
    patient = sessions[1]
    in_session = [e for _, e in log.log("clinic", "room1", session_id=patient[0])]
    assert [type(e).__name__ for e in in_session] == ["ClinicalEvent", "Observation", "ClinicalEvent"]
