"""The bedside page's incremental reads give the session panel exactly what whole reads of the store give."""

from __future__ import annotations

from pathlib import Path

from monitor import mdc, session_view
from monitor.layouts import bedside
from monitor.model import Observation
from monitor.room_reads import IncrementalReads
from monitor.store import EventLog
from monitor.views import RoomState
from simulators.recorded_session import record_session

PUMP = session_view.PUMP_CODES


def _pump(seq: int, ts: float, code: int, value: float, valid: bool = True) -> Observation:
    unit = "mL/h" if code == mdc.INFUSION_RATE.code else "mL"
    return Observation("clinic", "r1", "pump", seq, ts, code, value, unit, valid)


def test_a_recorded_session_panel_is_the_same_from_incremental_reads(tmp_path: Path) -> None:
    store = EventLog(tmp_path / "kap.sqlite")
    rec = record_session(store, duration_s=50 * 60.0, pleth=False)
    state = RoomState(rec.site, rec.room)
    reads = IncrementalReads(store, compact_codes=PUMP)
    # the page follows the session as it is recorded: panel and timeline at 5 moments, rows read once
    moments = [rec.started_at + f * (rec.ended_at - rec.started_at) for f in (0.1, 0.3, 0.5, 0.8, 1.0)]
    events = list(store.log(rec.site, rec.room, types=("obs", "status", "clinical", "alarm")))
    shown = 0
    for moment in moments:
        while shown < len(events) and events[shown][0] <= moment:
            state.apply(events[shown][1])
            shown += 1
        if state.session is None:
            continue
        whole = EventLog(tmp_path / "kap.sqlite")  # the same file, read whole
        assert repr(bedside._session_props(state, reads, moment)) == repr(
            bedside._session_props(state, whole, moment)
        )
    assert bedside._timeline(state, reads, rec.ended_at) == bedside._timeline(state, store, rec.ended_at)
    compacted = reads.observations(rec.site, rec.room, since=state.session.ts, codes=PUMP)
    recorded = store.observations(rec.site, rec.room, since=state.session.ts, codes=PUMP)
    # the rate, read each second, repeats itself; the volume grows while the infusion runs
    rate = mdc.INFUSION_RATE.code
    assert 0 < sum(o.code == rate for o in compacted) <= 4 < sum(o.code == rate for o in recorded) / 100
    assert reads.full_reads == 2  # the pump query and the vitals query, each read whole once


def test_rows_stored_later_are_added_and_runs_of_equal_readings_keep_first_and_last(tmp_path: Path) -> None:
    store = EventLog(tmp_path / "kap.sqlite")
    reads = IncrementalReads(store, compact_codes=PUMP)
    rate, volume = mdc.INFUSION_RATE.code, mdc.VOLUME_INFUSED.code
    store.append([_pump(1, 10.0, rate, 50.0), _pump(2, 11.0, rate, 50.0), _pump(3, 12.0, rate, 50.0)], 12.0)
    assert [o.seq for o in reads.observations("clinic", "r1", codes=PUMP)] == [1, 3]
    store.append([_pump(4, 13.0, rate, 50.0), _pump(5, 14.0, volume, 1.0)], 14.0)
    assert [o.seq for o in reads.observations("clinic", "r1", codes=PUMP)] == [1, 4, 5]
    # a change of validity is a change, even at the same value
    store.append([_pump(6, 15.0, rate, 50.0, valid=False), _pump(7, 16.0, rate, 0.0)], 16.0)
    assert [o.seq for o in reads.observations("clinic", "r1", codes=PUMP)] == [1, 4, 5, 6, 7]
    assert reads.full_reads == 1


def test_a_reading_that_arrives_late_is_slotted_in_by_a_whole_read(tmp_path: Path) -> None:
    store = EventLog(tmp_path / "kap.sqlite")
    reads = IncrementalReads(store)
    spo2 = mdc.SPO2.code
    ox = [Observation("clinic", "r1", "ox", s, 100.0 + s, spo2, 97.0, "%", True) for s in range(5)]
    store.append([ox[0], ox[1], ox[3], ox[4]], 105.0)
    assert [o.seq for o in reads.observations("clinic", "r1", codes=[spo2])] == [0, 1, 3, 4]
    store.append([ox[2]], 106.0)  # delivered from a gateway's outbox after an outage
    assert [o.seq for o in reads.observations("clinic", "r1", codes=[spo2])] == [0, 1, 2, 3, 4]
    whole = store.observations("clinic", "r1", codes=[spo2])
    assert reads.observations("clinic", "r1", codes=[spo2]) == whole
    assert reads.full_reads == 2
