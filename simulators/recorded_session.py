"""A whole KAP session recorded at speed into a real event log, for replay tests and the replay benchmark.

Hours of a session in seconds, without ptys or a broker: a scripted `SimulatedPatient` (the scenario
player, one simulated second at a time) is read by an oximeter with its pleth (3 blocks of 25 samples a
second, from the Nonin simulator's waveform), a cuff measuring every 5 minutes (cuff pressure while it
inflates, then SYS/DIA/MEAN) and an infusion pump (rate and volume each second while it runs). Its
readings are stamped as the gateway stamps them and stored, and the alarm engine is run over them, in
the very order and with the very clock the core uses (`Core._store`: append a batch at its receipt time,
feed each new event to the engine, raise what it says, tick the clock). A nurse starts the session, the
infusion runs, assessments are recorded, a note mentions nausea, and every alarm is acknowledged 30 s
after it sounds. So the log has what a real one has: waveform blocks, status changes, clinical events
and the alarm transitions the engine raised, each with the time the "core" received it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from monitor import mdc
from monitor.alarm_profile import AlarmProfile, load_profile
from monitor.alarm_runner import AlarmRunner
from monitor.model import AlarmTransition, ClinicalEvent, DeviceStatus, Observation
from monitor.store import EventLog, LogEvent
from simulators.nonin import PlethGenerator
from simulators.physiology import Vitals
from simulators.scenario_files import load_scenario

#: a Tuesday afternoon, so recordings (and their tests) are the same whatever day they run
DEFAULT_START = 1_795_530_000.0
#: the core receives what a gateway read this long after it read it
CORE_LATENCY_S = 0.02
BP_EVERY_S = 300.0
INFUSION_AT_S = 120.0
INFUSION_MIN = 40.0
WEIGHT_KG = 70.0
MG_PER_KG = 0.5
CONCENTRATION_MG_ML = 1.0
ACK_AFTER_S = 30.0
NURSE = "RN Ana"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What was recorded: the session's id and times, and how many events and alarm transitions."""

    session_id: int
    site: str
    room: str
    started_at: float
    ended_at: float
    events: int
    transitions: int


class _Recorder:
    """The core's recording path (store, engine, ticks) with the clock of the simulation."""

    def __init__(self, store: EventLog, profile: AlarmProfile) -> None:
        self.store = store
        self.runner = AlarmRunner(profile)
        self.events = 0
        self.transitions: list[AlarmTransition] = []

    def receive(self, batch: list[LogEvent], now: float) -> None:
        new = self.store.append_new(batch, now)
        self.events += len(new)
        raised: list[AlarmTransition] = []
        for event in new:
            if isinstance(event, ClinicalEvent) and event.type in ("session_start", "session_end"):
                self.runner.reset(event.site, event.room)
            raised += self.runner.feed(now, event)  # type: ignore[arg-type]
        self._raise(raised, now)
        self.tick(now)

    def tick(self, now: float) -> None:
        self._raise(self.runner.tick(now), now)

    def _raise(self, transitions: list[AlarmTransition], now: float) -> None:
        if transitions:
            new = self.store.append_new(transitions, now)
            self.transitions += [t for t in new if isinstance(t, AlarmTransition)]


def record_session(
    store: EventLog,
    *,
    duration_s: float = 4 * 3600.0,
    start: float = DEFAULT_START,
    site: str = "clinic",
    room: str = "replay1",
    scenario: str = "desaturation",
    seed: int = 3,
    pleth: bool = True,
    profile: AlarmProfile | None = None,
) -> Recorded:
    """Record `duration_s` of one patient's session in `room`, starting at `start` (epoch seconds)."""
    spec = load_scenario(scenario)
    player = spec.play(seed=seed)
    recorder = _Recorder(store, profile or load_profile(None))
    waveform = PlethGenerator(seed)
    seq = itertools.count(int(start * 1_000_000))
    infusion_mg = MG_PER_KG * WEIGHT_KG
    rate_ml_h = infusion_mg / CONCENTRATION_MG_ML / (INFUSION_MIN / 60.0)
    infusion_end = INFUSION_AT_S + INFUSION_MIN * 60.0
    volume = 0.0
    pending_acks: dict[str, float] = {}
    acked: set[str] = set()

    def obs(device: str, t: float, metric: mdc.Metric, value: float | None, **extra: object) -> Observation:
        return Observation(site, room, device, next(seq), t, metric.code, value, metric.unit, True, **extra)  # type: ignore[arg-type]

    def status(device: str, t: float, protocol: str, mode: str = "", **details: object) -> DeviceStatus:
        return DeviceStatus(site, room, device, t, "online", protocol, (), "", {}, mode, dict(details))  # type: ignore[arg-type]

    def clinical(t: float, kind: str, **fields: object) -> ClinicalEvent:
        event_id = f"rec-{room}-{kind}-{int(t * 1000)}"
        return ClinicalEvent(site, room, t, kind, NURSE, event_id, **fields)  # type: ignore[arg-type]

    recorder.receive(
        [
            status("oximeter", start, "nonin-f2"),
            status("nibp", start, "suntech-nibp", "idle", interval_s=BP_EVERY_S),
            status("pump", start, "alaris-asena", "stopped"),
        ],
        start + CORE_LATENCY_S,
    )
    session_at = start + 5.0
    protocol = {
        "patient_code": "K-4242",
        "weight_kg": WEIGHT_KG,
        "drug": "ketamine",
        "route": "iv-infusion",
        "planned_mg_per_kg": MG_PER_KG,
        "duration_min": INFUSION_MIN,
        "concentration_mg_ml": CONCENTRATION_MG_ML,
        "nurse": NURSE,
    }
    clinical_script: dict[int, ClinicalEvent] = {
        5: clinical(session_at, "session_start", data=protocol),
        30: clinical(start + 30, "assessment", data={"kind": "pain_nrs", "score": 6}),
        int(infusion_end) + 60: clinical(
            start + infusion_end + 60, "assessment", data={"kind": "pain_nrs", "score": 2}
        ),
        1500: clinical(start + 1500, "note", text="patient nauseous, denies headache"),
    }
    for minutes in (15, 30, 45, 60):
        at = INFUSION_AT_S + minutes * 60.0
        clinical_script[int(at)] = clinical(start + at, "assessment", data={"kind": "moaas", "score": 4})
    session_id = 0
    vitals = player.patient.vitals()
    for second in range(int(duration_s)):
        t = start + second
        batch: list[LogEvent] = []
        if second == int(INFUSION_AT_S):
            player.patient.give("iv-infusion", infusion_mg, INFUSION_MIN * 60.0)
            batch.append(status("pump", t, "alaris-asena", "running"))
        if second == int(infusion_end):
            batch.append(status("pump", t, "alaris-asena", "stopped"))
        vitals = player.step(1.0)
        batch += _oximeter(obs, t, vitals)
        running = INFUSION_AT_S <= second < infusion_end
        if running:
            volume += rate_ml_h / 3600.0
        if second >= INFUSION_AT_S:
            batch.append(obs("pump", t, mdc.INFUSION_RATE, rate_ml_h if running else 0.0))
            batch.append(obs("pump", t, mdc.VOLUME_INFUSED, round(volume, 3)))
        batch += _cuff(obs, status, t, second, vitals)
        if second in clinical_script:
            batch.append(clinical_script[second])
        for alarm_id, due in sorted(pending_acks.items()):
            if due <= t:
                batch.append(clinical(t, "alarm_ack", alarm_id=alarm_id))
                del pending_acks[alarm_id]
        recorder.receive(batch, t + CORE_LATENCY_S)
        for t2 in recorder.transitions[-8:]:
            if t2.state in ("active", "escalated") and t2.id not in acked:
                acked.add(t2.id)
                pending_acks[t2.id] = t2.ts + ACK_AFTER_S
        if session_id == 0 and second >= 5:
            session_id = store.open_session(site, room, t)
        if pleth:
            for third in (1, 2, 3):
                at = t + third / 3.0
                samples = tuple(waveform.next_samples(vitals))
                block = obs("oximeter", at, mdc.PLETH, None, samples=samples, sample_rate=75.0)
                recorder.receive([block], at + CORE_LATENCY_S)
    end = start + int(duration_s)
    recorder.tick(end)
    return Recorded(session_id, site, room, session_at, end, recorder.events, len(recorder.transitions))


def _oximeter(obs, t: float, vitals: Vitals) -> list[Observation]:  # type: ignore[no-untyped-def]
    return [
        obs("oximeter", t, mdc.SPO2, float(round(vitals.spo2))),
        obs("oximeter", t, mdc.PULSE_RATE, float(round(vitals.pulse))),
        obs("oximeter", t, mdc.PERFUSION_INDEX, round(vitals.pi, 2)),
    ]


def _cuff(obs, status, t: float, second: int, vitals: Vitals) -> list[LogEvent]:  # type: ignore[no-untyped-def]
    """A measurement every 5 min: 20 s inflating and deflating (cuff pressure), then the result."""
    phase = (second - 60) % int(BP_EVERY_S)
    if second < 60 or phase > 20:
        return []
    if phase == 0:
        return [status("nibp", t, "suntech-nibp", "measuring", interval_s=BP_EVERY_S)]
    if phase < 20:
        return [obs("nibp", t, mdc.NIBP_CUFF, float(170 - phase * 6))]
    systolic, diastolic = round(vitals.systolic), round(vitals.diastolic)
    return [
        obs("nibp", t, mdc.NIBP_SYS, float(systolic)),
        obs("nibp", t, mdc.NIBP_DIA, float(diastolic)),
        obs("nibp", t, mdc.NIBP_MEAN, float(round((systolic + 2 * diastolic) / 3))),
        obs("nibp", t, mdc.NIBP_PULSE_RATE, float(round(vitals.pulse))),
        status("nibp", t, "suntech-nibp", "idle", interval_s=BP_EVERY_S),
    ]
