"""What the bedside shows of a patient's session: pure functions of the session's events (and, for IV
infusions, the pump's recorded stream), for the session panel and the timeline.

Doses: manual entries, amended by later entries (never overwritten). When the session set a pump
concentration and the pump delivered, the pump's segments are the IV infusion record and manual
"iv-infusion" entries are shown but not counted, so one bag is never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from monitor import mdc
from monitor.assessments import Due, default_schedule, due_assessments
from monitor.discharge import VITAL_CODES, DischargeCheck, discharge_check
from monitor.dosing import (
    Dose,
    check_dose,
    cumulative,
    dose_inputs,
    effective_doses,
    pump_segments,
    resolve_amendments,
)
from monitor.model import ClinicalEvent, Observation
from monitor.pk import concentration_curve, curve_times
from monitor.views import RoomState

#: the dose ceiling a dose is checked against, per session [practice, unverified; see monitor.dosing]
DEFAULT_CEILING_MG_PER_KG = 1.0
CURVE_STEP_S = 30.0


@dataclass(frozen=True, slots=True)
class SessionView:
    active: bool
    who: str  # "K-1042 · 70 kg · ketamine IM, planned 0.50 mg/kg (35 mg) · nurse RN Ana · 00:42"
    dose_text: str  # "Given 35 mg (0.50 mg/kg)"
    concentration_text: str  # "Estimated plasma ketamine 182 ng/mL (Clements)"
    due: tuple[Due, ...]


def weight(session: ClinicalEvent) -> float:
    return float(session.data.get("weight_kg") or 70.0)  # type: ignore[arg-type]


def planned_mg(session: ClinicalEvent) -> float | None:
    data = session.data
    if data.get("planned_mg"):
        return float(data["planned_mg"])  # type: ignore[arg-type]
    if data.get("planned_mg_per_kg"):
        return float(data["planned_mg_per_kg"]) * weight(session)  # type: ignore[arg-type]
    return None


def dose_of(event: ClinicalEvent, kg: float) -> Dose:
    """A dose event as a Dose: mg/kg converted with the session's weight, given at its corrected time."""
    data = event.data
    mg = float(data["mg"]) if data.get("mg") else float(data.get("mg_per_kg") or 0) * kg  # type: ignore[arg-type]
    given = float(data["given_at"]) if data.get("given_at") else event.ts  # type: ignore[arg-type]
    return Dose(
        event.event_id,
        given,
        str(data["route"]),
        mg,
        float(data.get("duration_min") or 0) * 60.0,  # type: ignore[arg-type]
        "manual",
        str(data.get("supersedes") or "") or None,
        event.author,
        bool(data.get("confirmed")),
    )


def session_doses(state: RoomState, pump_stream: list[Observation]) -> list[Dose]:
    if state.session is None:
        return []
    kg = weight(state.session)
    manual = [dose_of(e, kg) for e in state.doses]
    concentration = state.session.data.get("concentration_mg_ml")
    pumped = pump_segments(pump_stream, float(concentration)) if concentration and pump_stream else []  # type: ignore[arg-type]
    if pumped:
        manual = [d for d in manual if d.route != "iv-infusion"]
    return manual + pumped


def dosing_start(doses: list[Dose]) -> float | None:
    effective = effective_doses(doses)
    return min((d.ts for d in effective if d.mg > 0), default=None)


def concentration(
    doses: list[Dose], kg: float, start: float, end: float, model: str = "clements"
) -> tuple[list[float], list[float]]:
    """The ESTIMATED plasma ketamine (ng/mL) from the session start to `end`, every 30 s."""
    times = curve_times(start, end, CURVE_STEP_S)
    return times, concentration_curve(model, kg, dose_inputs(doses), times)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M")


def session_view(state: RoomState, pump_stream: list[Observation], now: float) -> SessionView:
    session = state.session
    if session is None or state.ended is not None:
        return SessionView(False, "No session in this room", "", "", ())
    data, kg = session.data, weight(session)
    doses = session_doses(state, pump_stream)
    mg, per_kg = cumulative(doses, kg, until=now)
    planned = planned_mg(session)
    elapsed = int(now - session.ts)
    who = (
        f"{data.get('patient_code')} · {kg:g} kg · {data.get('drug')} {data.get('route')}"
        + (f", planned {planned:.0f} mg ({planned / kg:.2f} mg/kg)" if planned else "")
        + (f" · {data.get('nurse')}" if data.get("nurse") else "")
        + f" · {elapsed // 3600:02d}:{elapsed % 3600 // 60:02d} since {_clock(session.ts)}"
    )
    dose_text = f"Given {mg:.1f} mg ({per_kg:.2f} mg/kg)"
    conc_text = ""
    if effective_doses(doses):
        _, values = concentration(doses, kg, now, now)
        conc_text = f"Estimated plasma ketamine {values[-1]:.0f} ng/mL (Clements model, an estimate)"
    done = [(str(e.data["kind"]), e.ts) for e in state.assessments]
    due = tuple(due_assessments(default_schedule(), dosing_start(doses), done, now))
    return SessionView(True, who, dose_text, conc_text, due)


def dose_questions(
    state: RoomState, pump_stream: list[Observation], new_mg: float, replacing: str | None = None
) -> list[str]:
    """Why a new dose needs confirmation (over the planned dose or the ceiling); [] when it does not.
    A correction (`replacing` a dose) is checked without the dose it corrects."""
    if state.session is None:
        return []
    kg = weight(state.session)
    # what counts now, less the dose being corrected (the entries it already corrected stay superseded)
    doses = [d for d in effective_doses(session_doses(state, pump_stream)) if d.dose_id != replacing]
    given, _ = cumulative(doses, kg)
    return check_dose(new_mg, given, planned_mg(state.session), DEFAULT_CEILING_MG_PER_KG, kg)


def baseline_and_latest(
    vitals: list[Observation], dosing_started: float | None
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """The reference vitals (the last valid value before dosing, else the first one) and the latest."""
    baseline: dict[str, float] = {}
    latest: dict[str, tuple[float, float]] = {}
    for obs in vitals:  # in time order
        name = VITAL_CODES.get(obs.code)
        if name is None or not obs.valid or obs.value is None:
            continue
        if dosing_started is None or obs.ts <= dosing_started:
            baseline[name] = obs.value
        baseline.setdefault(name, obs.value)
        latest[name] = (obs.value, obs.ts)
    return baseline, latest


def baseline_text(state: RoomState, pump_stream: list[Observation], vitals: list[Observation]) -> str:
    """ "Baseline 122/78 mmHg, pulse 72, SpO2 98 %": the reference every later vital is read against."""
    baseline, _ = baseline_and_latest(vitals, dosing_start(session_doses(state, pump_stream)))
    parts = []
    if "systolic" in baseline and "diastolic" in baseline:
        parts.append(f"{baseline['systolic']:.0f}/{baseline['diastolic']:.0f} mmHg")
    if "pulse" in baseline:
        parts.append(f"pulse {baseline['pulse']:.0f}")
    if "spo2" in baseline:
        parts.append(f"SpO2 {baseline['spo2']:.0f} %")
    return "Baseline " + ", ".join(parts) if parts else "Baseline: waiting for the first vitals"


def discharge(
    state: RoomState, pump_stream: list[Observation], vitals: list[Observation], now: float
) -> DischargeCheck:
    """The discharge check of the room's session, from its events and the recorded vitals."""
    session = state.session
    assert session is not None
    doses = session_doses(state, pump_stream)
    effective = effective_doses(doses)
    start = dosing_start(doses)
    baseline, latest = baseline_and_latest(vitals, start)
    scores = {kind: None for kind in ("moaas", "aldrete")}
    for e in state.assessments:
        if e.data.get("kind") in scores:
            scores[str(e.data["kind"])] = (int(e.data["score"]), e.ts)  # type: ignore[arg-type,assignment]
    ends = [d.ts + d.duration_s for d in effective if d.duration_s]
    active = sum(1 for a in state.alarms.values() if a.state != "cleared")
    return discharge_check(
        now=now,
        session_start=session.ts,
        dosing_start=start,
        routes_given={d.route for d in effective},
        drug=str(session.data.get("drug")),
        baseline=baseline,
        latest_vitals=latest,
        latest_moaas=scores["moaas"],
        latest_aldrete=scores["aldrete"],
        active_alarms=active,
        dosing_end=max(ends) if ends else (max((d.ts for d in effective), default=None)),
        tz=datetime.now().astimezone().tzinfo or UTC,
    )


PUMP_CODES = (mdc.INFUSION_RATE.code, mdc.VOLUME_INFUSED.code)
VITAL_CODES_ALL = tuple(VITAL_CODES)


@dataclass(frozen=True, slots=True)
class DoseRow:
    dose_id: str
    text: str  # "14:03 IM 35.0 mg (0.50 mg/kg) by RN Ana"
    status: str  # "counts", "superseded", "pump"
    can_correct: bool


def dose_rows(state: RoomState, pump_stream: list[Observation]) -> tuple[DoseRow, ...]:
    """Every dose recorded, newest first, with what became of it: corrections never overwrite."""
    if state.session is None:
        return ()
    kg = weight(state.session)
    doses = session_doses(state, pump_stream)
    resolved = resolve_amendments(doses)
    counted = {d.dose_id for d in resolved.effective}
    rows = []
    for d in sorted(doses, key=lambda d: d.ts, reverse=True):
        over = f" over {d.duration_s / 60:.0f} min" if d.duration_s else ""
        corrects = ", corrects an earlier entry" if d.supersedes else ""
        who = f" by {d.author}" if d.author else ""
        marked = " (confirmed over the limit)" if d.confirmed_over_limit else ""
        text = f"{_clock(d.ts)} {d.route} {d.mg:.1f} mg ({d.mg / kg:.2f} mg/kg){over}{who}{marked}{corrects}"
        status = "pump" if d.source == "pump" else ("counts" if d.dose_id in counted else "superseded")
        rows.append(DoseRow(d.dose_id, text, status, d.source == "manual" and d.dose_id in counted))
    return tuple(rows)


def session_summary(
    state: RoomState, pump_stream: list[Observation], check: DischargeCheck, now: float
) -> dict[str, object]:
    """What is stored with a session when it ends: the discharge criteria missing, the dose, the duration."""
    assert state.session is not None
    mg, per_kg = cumulative(session_doses(state, pump_stream), weight(state.session), until=now)
    return {
        "discharge_ok": check.ok,
        "missing": [f"{item.name}: {item.detail}" for item in check.items if not item.ok],
        "mg": round(mg, 2),
        "mg_per_kg": round(per_kg, 3),
        "duration_s": round(now - state.session.ts),
        "notes": len(state.clinical),
        "assessments": len(state.assessments),
    }
