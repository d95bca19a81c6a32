"""What the session panel says, from the session's events: corrections, baseline, pump versus manual doses."""

from __future__ import annotations

from monitor import mdc
from monitor.model import ClinicalEvent, Observation
from monitor.session_view import baseline_text, dose_questions, dose_rows, session_view
from monitor.views import RoomState

T0 = 1_800_000_000.0


def session(**data: object) -> RoomState:
    state = RoomState("clinic", "room1")
    base = {"patient_code": "K-1042", "weight_kg": 70, "drug": "ketamine", "route": "im", "planned_mg": 35}
    state.apply(ClinicalEvent("clinic", "room1", T0, "session_start", "Ana", "s1", data={**base, **data}))
    return state


def dose(event_id: str, ts: float, mg: float, route: str = "im", **data: object) -> ClinicalEvent:
    return ClinicalEvent(
        "clinic", "room1", ts, "dose", "Ana", event_id, data={"route": route, "mg": mg, **data}
    )


def test_a_correction_supersedes_and_is_checked_without_the_dose_it_corrects() -> None:
    state = session()
    state.apply(dose("d1", T0 + 60, 35))
    state.apply(dose("d2", T0 + 90, 30, supersedes="d1", given_at=T0 + 60))
    view = session_view(state, [], T0 + 600)
    assert view.dose_text == "Given 30.0 mg (0.43 mg/kg)"
    rows = {r.dose_id: r for r in dose_rows(state, [])}
    assert rows["d1"].status == "superseded" and not rows["d1"].can_correct
    assert rows["d2"].status == "counts" and "corrects an earlier entry" in rows["d2"].text
    assert dose_questions(state, [], 10) == ["exceeds the planned dose of 35 mg by 5 mg"]
    assert dose_questions(state, [], 35, replacing="d2") == []


def test_the_baseline_is_the_last_value_before_dosing() -> None:
    state = session()
    state.apply(dose("d1", T0 + 300, 35))

    def vital(code: int, ts: float, value: float) -> Observation:
        return Observation("clinic", "room1", "dev", int(ts), ts, code, value, "", True)

    vitals = [
        vital(mdc.NIBP_SYS.code, T0 + 10, 120),
        vital(mdc.NIBP_DIA.code, T0 + 10, 80),
        vital(mdc.SPO2.code, T0 + 200, 98),
        vital(mdc.SPO2.code, T0 + 400, 93),
        vital(mdc.NIBP_SYS.code, T0 + 600, 150),
        vital(mdc.NIBP_DIA.code, T0 + 600, 95),
    ]
    assert baseline_text(state, [], vitals) == "Baseline 120/80 mmHg, SpO2 98 %"


def test_the_pump_is_the_record_of_an_infusion_when_it_delivered() -> None:
    state = session(
        route="iv-infusion", duration_min=40, concentration_mg_ml=1.0, planned_mg=None, planned_mg_per_kg=0.5
    )
    state.apply(dose("manual", T0 + 60, 35, route="iv-infusion", duration_min=40))

    def pump(ts: float, code: int, value: float) -> Observation:
        return Observation("clinic", "room1", "pump", int(ts * 10) + code, ts, code, value, "", True)

    stream = [
        pump(T0 + 60, mdc.INFUSION_RATE.code, 52.5),
        pump(T0 + 60, mdc.VOLUME_INFUSED.code, 0.0),
        pump(T0 + 660, mdc.INFUSION_RATE.code, 52.5),
        pump(T0 + 660, mdc.VOLUME_INFUSED.code, 8.75),
    ]
    view = session_view(state, stream, T0 + 660)
    assert view.dose_text == "Given 8.8 mg (0.12 mg/kg)", (
        "the pump's 8.75 mL at 1 mg/mL, not the manual 35 mg"
    )
    assert [r.status for r in dose_rows(state, stream)] == ["pump"]
