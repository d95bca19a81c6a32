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
from monitor.dosing import Dose, check_dose, cumulative, dose_inputs, effective_doses, pump_segments
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


def dose_questions(state: RoomState, pump_stream: list[Observation], new_mg: float) -> list[str]:
    """Why a new dose needs confirmation (over the planned dose or the ceiling); [] when it does not."""
    if state.session is None:
        return []
    kg = weight(state.session)
    given, _ = cumulative(session_doses(state, pump_stream), kg)
    return check_dose(new_mg, given, planned_mg(state.session), DEFAULT_CEILING_MG_PER_KG, kg)


def discharge(
    state: RoomState, pump_stream: list[Observation], vitals: list[Observation], now: float
) -> DischargeCheck:
    """The discharge check of the room's session, from its events and the recorded vitals."""
    session = state.session
    assert session is not None
    doses = session_doses(state, pump_stream)
    effective = effective_doses(doses)
    start = dosing_start(doses)
    baseline: dict[str, float] = {}
    latest: dict[str, tuple[float, float]] = {}
    for obs in vitals:  # in time order: the first valid value is the baseline, the last the latest
        name = VITAL_CODES.get(obs.code)
        if name is None or not obs.valid or obs.value is None:
            continue
        if start is None or obs.ts <= start:
            baseline[name] = obs.value
        baseline.setdefault(name, obs.value)
        latest[name] = (obs.value, obs.ts)
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
