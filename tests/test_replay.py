"""The replay model: the state at any time of a recorded session is what the live projections made of the
log received by then; the alarms are the recorded ones, which the engine re-run over the log reproduces;
long series are thinned for display without losing an extreme; the cursor plays, pauses and jumps."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from monitor import mdc
from monitor.alarm_profile import load_profile
from monitor.alarm_runner import AlarmRunner, replay
from monitor.downsample import minmax_indices, thin
from monitor.layouts import timeline
from monitor.layouts.replay import frame_props, player, session_props, timeline_figure, zoom_span
from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation
from monitor.replay import (
    ReplayCursor,
    ReplayModel,
    filter_sessions,
    parse_jump,
    session,
    sessions,
)
from monitor.store import EventLog
from monitor.views import RoomState, alarm_panel_view, bedside_view, chart_time, notes_view
from simulators.recorded_session import Recorded, record_session

ALL_TYPES = ("obs", "status", "clinical", "alarm")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventLog, Recorded]:
    """30 minutes of a session with desaturations (alarms), an infusion, a note and assessments."""
    store = EventLog(tmp_path_factory.mktemp("replay") / "kap.sqlite")
    return store, record_session(store, duration_s=1800, room="room7")


@pytest.fixture(scope="module")
def model(recorded: tuple[EventLog, Recorded]) -> ReplayModel:
    store, rec = recorded
    info = session(store, rec.session_id)
    assert info is not None
    return ReplayModel(store, info)


def folded(store: EventLog, rec: Recorded, at: list[float]) -> list[RoomState]:
    """The live way: a RoomState fed every event the web had received by each time, in log order."""
    state, out = RoomState(rec.site, rec.room), []
    events = iter(store.log(rec.site, rec.room, types=ALL_TYPES))
    pending = next(events, None)
    for t in at:
        while pending is not None and pending[0] <= t:
            state.apply(pending[1])  # type: ignore[arg-type]
            pending = next(events, None)
        out.append(copy.deepcopy(state))
    return out


def times(rec: Recorded, count: int = 12) -> list[float]:
    return [
        rec.started_at + 2.5 + i * (rec.ended_at - rec.started_at - 5) / (count - 1) for i in range(count)
    ]


def test_the_state_at_any_time_is_the_live_projection_of_what_was_received_by_then(recorded, model) -> None:  # type: ignore[no-untyped-def]
    store, rec = recorded
    for t, live in zip(times(rec), folded(store, rec, times(rec)), strict=True):
        at = model.state_at(t)
        assert bedside_view(at, t) == bedside_view(live, t), t
        assert alarm_panel_view(at, t) == alarm_panel_view(live, t), t
        assert notes_view(at) == notes_view(live), t
        assert at.doses == live.doses and at.assessments == live.assessments
    shown = frame_props(model, rec.started_at + 600)["spo2-value"]["children"]
    spo2 = [
        e
        for r, e in store.log(rec.site, rec.room, types=("obs",))
        if r <= rec.started_at + 600 and e.code == mdc.SPO2.code  # type: ignore[union-attr]
    ][-1]
    assert shown == f"{spo2.value:.0f}", "the number on screen is the recorded reading in force"


def test_the_alarms_shown_are_the_recorded_ones_and_the_engine_reproduces_them(recorded, model) -> None:  # type: ignore[no-untyped-def]
    store, rec = recorded
    stored = store.alarm_log(rec.session_id)
    assert {t.condition for t in stored} >= {"spo2_low", "spo2_very_low", "side_effect:nausea"}
    log = list(store.log(rec.site, rec.room, session_id=rec.session_id))
    again = replay(load_profile(None), log, until=rec.ended_at)
    assert again == stored, "re-running the engine over the log gives exactly the transitions recorded"
    far = [t for t in times(rec, 30) if all(abs(t - a.ts) > 2 for a in stored)]
    assert len(far) > 10
    raised_at_some_point = False
    runner, engine, fed = AlarmRunner(load_profile(None)), RoomState(rec.site, rec.room), 0
    for t in far:  # the engine, fed the log up to each time (it does not depend on how often it ticks)
        while fed < len(log) and log[fed][0] <= t:
            for transition in runner.feed(*log[fed]):  # type: ignore[arg-type]
                engine.apply(transition)
            fed += 1
        for transition in runner.tick(t):
            engine.apply(transition)
        shown = model.state_at(t).alarms
        assert shown == engine.alarms, t
        assert all(a in stored for a in shown.values()), "only recorded transitions are shown"
        raised_at_some_point |= bool(shown)
    assert raised_at_some_point


def test_the_session_panel_and_timeline_read_nothing_recorded_after_the_replay_time(model) -> None:  # type: ignore[no-untyped-def]
    early = model.start + 20 * 60
    panel = session_props(model, early)
    assert "K-4242" in panel["session-who"]["children"]
    given = float(panel["session-dose"]["children"].split()[1])
    assert 0 < given < 35, "20 min into a 40 min infusion: part of the 35 mg, never the whole"
    figure = timeline_figure(model, early, None)
    xs = [x for trace in figure["data"] if trace.get("name") == "SpO2" for x in trace["x"]]
    assert xs and max(xs) <= chart_time(early), "no vital after the replay time on the timeline"
    later = [o for o in model.at(early).observations("", "", codes=[mdc.SPO2.code]) if o.ts > early]
    assert later == []


def plain(props: object) -> str:
    """Props with Dash components, as the browser receives them (components compare by identity)."""
    return json.dumps(props, sort_keys=True, default=lambda o: getattr(o, "to_plotly_json", lambda: str(o))())


def test_the_pump_read_as_its_changes_gives_the_same_doses_as_every_reading(model) -> None:  # type: ignore[no-untyped-def]
    from monitor.layouts import bedside
    from monitor.replay import LogAt

    for t in (model.start + 100, model.start + 900, model.start + 2300, model.end - 1, model.end):
        state = model.state_at(t)
        every = bedside._session_props(state, LogAt(model, t), t)  # type: ignore[arg-type]
        assert plain(session_props(model, t) | {"timeline": every["timeline"]}) == plain(every), t
    counters = [mdc.INFUSION_RATE.code, mdc.VOLUME_INFUSED.code]
    read = model.at(model.end).observations("", "", codes=counters)
    assert len(read) < 0.55 * len(LogAt(model, model.end).observations("", "", codes=counters))


def test_a_zoomed_timeline_has_the_vitals_of_its_span_at_full_resolution_and_the_same_doses(model) -> None:  # type: ignore[no-untyped-def]
    def trace(figure: dict, name: str) -> dict:  # type: ignore[type-arg]
        return next(t for t in figure["data"] if t.get("name", "").startswith(name))

    whole = timeline_figure(model, model.end, None)
    span = (model.start + 600, model.start + 660)
    zoomed = timeline_figure(model, model.end, span)
    seconds = model.observations(model.end, [mdc.SPO2.code], *span)
    assert len(trace(zoomed, "SpO2")["x"]) == len(seconds) > 50, "every reading of the zoomed minute"
    assert trace(zoomed, "doses") == trace(whole, "doses"), "doses come from the whole pump record"
    assert trace(zoomed, "ketamine") == trace(whole, "ketamine")


def test_long_series_are_thinned_keeping_every_extreme_and_gap() -> None:
    x = np.arange(14_400, dtype=np.float64)
    y = 97 + np.sin(x / 300.0)
    y[5_000], y[9_001] = 71.0, 100.0  # a one-second dip and spike in four hours
    y[12_000:12_010] = np.nan  # the probe off for 10 s
    picked = minmax_indices(x, y, 1000)
    assert len(picked) <= 1000 and list(picked) == sorted(picked)
    assert 5_000 in picked and 9_001 in picked
    assert np.isnan(y[picked]).any(), "a gap stays a gap"
    assert np.nanmin(y[picked]) == np.nanmin(y) and np.nanmax(y[picked]) == np.nanmax(y)
    assert list(minmax_indices(x[:500], y[:500], 1000)) == list(range(500)), "few points: all of them"


def test_the_session_timeline_keeps_a_one_reading_dip_of_a_four_hour_session() -> None:
    readings = [
        Observation("clinic", "r", "oximeter", i, 1000.0 + i, mdc.SPO2.code, 97.0, "%", True)
        for i in range(14_400)
    ]
    readings[7_777] = Observation("clinic", "r", "oximeter", 7_777, 8_777.0, mdc.SPO2.code, 79.0, "%", True)
    figure = timeline.figure(readings, [], {}, [], [], [])
    spo2 = next(trace for trace in figure["data"] if trace.get("name") == "SpO2")
    assert len(spo2["y"]) <= timeline.MAX_VITAL_POINTS and min(spo2["y"]) == 79.0
    assert len(thin(readings[:10], 1500)) == 10


def test_windows_are_thinned_for_display_and_full_when_zoomed(model) -> None:  # type: ignore[no-untyped-def]
    end = model.end
    whole = model.observations(end, [mdc.SPO2.code])
    thinned = model.observations(end, [mdc.SPO2.code], max_points=200)
    assert len(whole) > 1500 and len(thinned) <= 200
    assert min(o.value for o in thinned) == min(o.value for o in whole), "the desaturation's floor is kept"
    zoom = model.observations(end, [mdc.SPO2.code], whole[100].ts, whole[400].ts, max_points=5000)
    assert zoom == whole[100:401], "a zoomed span at full resolution"
    midway = model.start + 300
    assert all(o.ts <= midway for o in model.observations(midway, [mdc.SPO2.code]))


def test_the_waveform_on_screen_is_the_blocks_of_the_last_seconds(model) -> None:  # type: ignore[no-untyped-def]
    t = model.start + 400.5
    blocks = model.pleth(t, 6.0)
    assert 15 <= len(blocks) <= 19 and all(len(b.samples) == 25 and b.sample_rate == 75 for b in blocks)
    assert all(t - 7 < b.ts <= t for b in blocks)


def test_statuses_from_before_the_session_are_in_force_at_its_start(recorded, model) -> None:  # type: ignore[no-untyped-def]
    _, rec = recorded
    first = model.state_at(model.start)  # devices say nothing new when a session starts
    assert set(first.devices) == {"oximeter", "nibp", "pump"}
    assert all(isinstance(s, DeviceStatus) and s.ts < rec.started_at for s in first.devices.values())


def test_sessions_are_found_by_room_day_and_patient_code(recorded) -> None:  # type: ignore[no-untyped-def]
    store, rec = recorded
    found = sessions(store)
    assert found[0].session_id == rec.session_id and found[0].patient_code == "K-4242"
    assert found[0].protocol["route"] == "iv-infusion"
    assert filter_sessions(found, code="k-42") == [found[0]]
    assert filter_sessions(found, room="room7", day="1999-01-01") == []
    assert filter_sessions(found, room="elsewhere") == []


def test_the_cursor_plays_at_its_speed_stops_at_the_end_and_jumps() -> None:
    now = [100.0]
    cursor = ReplayCursor(1000.0, 2000.0, clock=lambda: now[0])
    woken: list[int] = []
    cursor.listen(lambda: woken.append(cursor.revision))
    cursor.set_speed(16)
    cursor.play()
    now[0] += 10
    assert cursor.position() == pytest.approx(1160.0)
    cursor.pause()
    now[0] += 10
    assert cursor.position() == pytest.approx(1160.0) and not cursor.playing
    cursor.seek(1990.0)
    cursor.play()
    now[0] += 5
    assert cursor.position() == 2000.0 and not cursor.playing, "stops at the end"
    cursor.play()
    assert cursor.position() == 1000.0, "play at the end starts over"
    with pytest.raises(ValueError):
        cursor.set_speed(3)
    assert len(woken) == 6
    cursor.remember_slider(160)
    assert cursor.pushed_slider(160) and not cursor.pushed_slider(161)


def test_typed_times_and_zooms_are_understood() -> None:
    start = 1_795_530_000.0
    assert parse_jump("+12:00", start, start + 3600) == start + 720
    assert parse_jump("+1:00:05", start, start + 7200) == start + 3605
    half_way = datetime.fromtimestamp(start + 1800).strftime("%H:%M:%S")
    assert parse_jump(half_way, start, start + 3600) == start + 1800, "a clock time on the session's day"
    for bad in ("", "noon", "+5:xx", "25:00"):
        with pytest.raises(ValueError):
            parse_jump(bad, start, start + 3600)
    with pytest.raises(ValueError, match="outside the session"):
        parse_jump("+2:00:00", start, start + 3600)
    assert zoom_span({"xaxis.autorange": True}) is None
    assert zoom_span({"autosize": True}) is False
    span = zoom_span({"xaxis.range[0]": "2026-11-24 14:00:00", "xaxis.range[1]": "2026-11-24 14:10:00.5"})
    assert isinstance(span, tuple) and span[1] - span[0] == pytest.approx(600.5)
    assert zoom_span({"xaxis3.range": ["2026-11-24 14:10:00", "2026-11-24 14:00:00"]}) == (
        span[0],
        span[0] + 600,
    )


def test_a_transition_is_never_invented(model) -> None:  # type: ignore[no-untyped-def]
    recorded_ids = {a.id for a in model.alarms(model.end)}
    for t in (model.start + 90, model.end):
        assert set(model.state_at(t).alarms) <= recorded_ids
    assert all(isinstance(a, AlarmTransition) for a in model.alarms(model.end))


def test_an_empty_database_has_no_session_and_a_session_with_one_event_still_opens(tmp_path: Path) -> None:
    store = EventLog(tmp_path / "empty.sqlite")
    assert sessions(store) == [] and session(store, 1) is None
    start = ClinicalEvent("clinic", "r9", 1_795_530_000.0, "session_start", "RN Ana", "s1", data={})
    store.append([start], start.ts)
    info = sessions(store)[0]
    model = ReplayModel(store, info)
    assert model.start == model.end == start.ts and model.pleth(model.end, 6) == []
    assert frame_props(model, model.end)["spo2-value"] == {"children": "--"}
    assert "No active alarms" in str(frame_props(model, model.end)["alarm-summary"])
    assert player(model, "token", model.start) is not None
