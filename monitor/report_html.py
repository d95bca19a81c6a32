"""A recorded session as one standalone HTML file: what a clinical lead files or a reviewer reads offline.

Every number comes from the projections the bedside uses (monitor.views.RoomState folded over the
session's log, monitor.session_view for doses, baseline, concentration estimate and discharge check,
monitor.alarm_log for the alarm rows, the bedside timeline figure), so the report says what the screen
said. Plotly's JavaScript is inlined, so the file opens without a network. The patient appears only by the
session's pseudonymous code. Times are the clinic's local time (this machine's time zone), with UTC given
for the start and end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

import plotly.graph_objects as go
import plotly.io as pio

from monitor import alarm_log, mdc, session_view
from monitor.dosing import cumulative
from monitor.layouts import timeline
from monitor.model import AlarmTransition, ClinicalEvent, Observation
from monitor.store import EventLog, SessionRecord
from monitor.views import RoomState

#: the report's vitals: numeric vitals of the timeline (SpO2, pulse, NIBP); the pleth is never drawn here
REPORT_VITALS = frozenset(session_view.VITAL_CODES_ALL) | {mdc.SPO2.code, mdc.PULSE_RATE.code}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #1f2937; }
h1 { margin-bottom: 0; } h2 { margin-top: 32px; border-bottom: 1px solid #d1d5db; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { background: #f3f4f6; } .note { color: #6b7280; font-size: 13px; }
.ok { color: #15803d; font-weight: 600; } .missing { color: #b91c1c; font-weight: 600; }
.prio-high { color: #b91c1c; } .prio-medium { color: #a16207; } .prio-low { color: #0e7490; }
"""


@dataclass
class SessionLog:
    """The session folded once: the room state at its end and the series the report draws."""

    record: SessionRecord
    state: RoomState
    end: float
    vitals: list[Observation] = field(default_factory=list)
    pump: list[Observation] = field(default_factory=list)
    alarms: list[AlarmTransition] = field(default_factory=list)
    clinical: list[ClinicalEvent] = field(default_factory=list)  # every note and side effect
    assessments: list[ClinicalEvent] = field(default_factory=list)


def fold(store: EventLog, record: SessionRecord) -> SessionLog:
    state = RoomState(record.site, record.room)
    folded = SessionLog(record, state, record.ended_at or record.started_at)
    last = record.started_at
    log = store.log(
        record.site, record.room, types=("obs", "status", "clinical", "alarm"), session_id=record.id
    )
    for _received, event in log:
        state.apply(event)
        last = max(last, event.ts)
        if isinstance(event, Observation):
            if event.code in REPORT_VITALS:
                folded.vitals.append(event)
            elif event.code in session_view.PUMP_CODES:
                folded.pump.append(event)
        elif isinstance(event, AlarmTransition):
            folded.alarms.append(event)
        elif not isinstance(event, ClinicalEvent):
            continue
        elif event.type in ("note", "side_effect"):
            folded.clinical.append(event)
        elif event.type == "assessment":
            folded.assessments.append(event)
    folded.end = record.ended_at or last
    return folded


def _time(ts: float, fmt: str = "%H:%M:%S") -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime(fmt)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], classes: Iterable[str] = ()) -> str:
    shown = list(rows)
    if not shown:
        return '<p class="note">None recorded.</p>'
    css = list(classes) or [""] * len(shown)
    cells = "".join(
        f'<tr class="{c}">'
        + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row)
        + "</tr>"
        for row, c in zip(shown, css, strict=True)
    )
    return f"<table><tr>{''.join(f'<th>{escape(h)}</th>' for h in head)}</tr>{cells}</table>"


def _facts(folded: SessionLog) -> list[tuple[str, str]]:
    record, state = folded.record, folded.state
    duration = int(folded.end - record.started_at)
    facts = [
        ("Room", f"{record.room} ({record.site})"),
        ("Start", f"{_time(record.started_at, '%Y-%m-%d %H:%M:%S %Z')}"
                  f" ({datetime.fromtimestamp(record.started_at, UTC):%Y-%m-%d %H:%M:%S} UTC)"),
        ("End", (f"{_time(folded.end, '%Y-%m-%d %H:%M:%S %Z')}"
                 f" ({datetime.fromtimestamp(folded.end, UTC):%Y-%m-%d %H:%M:%S} UTC)")
         + ("" if record.ended_at else " — still open: last event")),
        ("Duration", f"{duration // 3600} h {duration % 3600 // 60:02d} min"),
    ]  # fmt: skip
    session = state.session
    if session is None:
        return [*facts, ("Patient", "no patient session: the room's recording between sessions")]
    data, kg = session.data, session_view.weight(session)
    doses = session_view.session_doses(state, folded.pump)
    mg, per_kg = cumulative(doses, kg, until=folded.end)
    planned = session_view.planned_mg(session)
    facts += [
        ("Patient code", str(data.get("patient_code", ""))),
        ("Weight", f"{kg:g} kg"),
        ("Drug and route", f"{data.get('drug')} {data.get('route')}"),
        ("Planned", f"{planned:.0f} mg ({planned / kg:.2f} mg/kg)" if planned else "not given"),
        ("Given", f"{mg:.1f} mg ({per_kg:.2f} mg/kg)"),
        ("Nurse", str(data.get("nurse") or "")),
        ("Baseline", session_view.baseline_text(state, folded.pump, folded.vitals)),
    ]
    summary = folded.record.summary
    if summary:
        missing = summary.get("missing") or []
        ended = "all criteria met" if summary.get("discharge_ok") else "ended before every criterion was met"
        facts.append(("Stored at its end", ended + ("".join(f"; {m}" for m in missing) if missing else "")))  # type: ignore[attr-defined]
    return facts


def _timeline(folded: SessionLog) -> go.Figure:
    state = folded.state
    doses, curves = [], {}
    start = folded.record.started_at
    if state.session is not None:
        doses = session_view.session_doses(state, folded.pump)
        kg = session_view.weight(state.session)
        curves = {
            m: session_view.concentration(doses, kg, start, folded.end, m) for m in ("clements", "domino")
        }
    fig = go.Figure(
        timeline.figure(folded.vitals, doses, curves, folded.clinical, folded.assessments, folded.alarms)
    )
    fig.update_layout(template="plotly_white", paper_bgcolor="white", plot_bgcolor="white", uirevision=None)
    return fig


def _discharge(folded: SessionLog) -> str:
    if folded.state.session is None:
        return '<p class="note">No patient session.</p>'
    check = session_view.discharge(folded.state, folded.pump, folded.vitals, folded.end)
    verdict = (
        '<p class="ok">Every criterion met.</p>'
        if check.ok
        else '<p class="missing">Not every criterion met.</p>'
    )
    rows = [(item.name, "met" if item.ok else "missing", item.detail) for item in check.items]
    return verdict + _table(
        ["criterion", "", "detail"], rows, ["ok" if i.ok else "missing" for i in check.items]
    )


def _alarms(folded: SessionLog) -> str:
    raised: dict[str, AlarmTransition] = {}
    for t in folded.alarms:
        raised.setdefault(t.id, t)
    counts = Counter((t.condition, t.priority, t.kind) for t in raised.values())
    summary = _table(
        ["condition", "priority", "kind", "alarms raised"],
        [(c, p, k, n) for (c, p, k), n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))],
    )
    rows = alarm_log.rows(folded.alarms)
    head = ["time", "priority", "kind", "state", "message", "value", "limit", "device", "user"]
    log_rows = [
        [r[h] if h != "time" else _time(t.ts) for h in head] for r, t in zip(rows, folded.alarms, strict=True)
    ]
    return (
        summary
        + "<h3>Every transition</h3>"
        + _table(head, log_rows, [f"prio-{r['priority']}" for r in rows])
    )


def _notes(folded: SessionLog) -> str:
    rows = []
    for e in folded.clinical:
        what = (
            e.text if e.type == "note" else f"side effect: {e.effect} ({e.severity or 'severity not given'})"
        )
        alerts = ", ".join(f"{c} ({p})" for c, p in folded.state.raised_by.get(e.event_id, {}).items())
        rows.append((_time(e.ts), e.author, what, alerts))
    return _table(["time", "by", "note or side effect", "alerts raised"], rows)


def _assessments(folded: SessionLog) -> str:
    rows = [
        (_time(e.ts), e.data.get("kind"), e.data.get("score"), e.data.get("answers", ""), e.author)
        for e in folded.assessments
    ]
    return _table(["time", "assessment", "score", "answers", "by"], rows)


def _doses(folded: SessionLog) -> str:
    rows = [(r.text, r.status) for r in session_view.dose_rows(folded.state, folded.pump)]
    return _table(["dose", "status"], rows)


def session_report(store: EventLog, session_id: int) -> str:
    """The whole report as one HTML document. Raises LookupError for an unknown session."""
    record = store.session(session_id)
    if record is None:
        raise LookupError(f"no session {session_id} in this database")
    folded = fold(store, record)
    figure = pio.to_html(
        _timeline(folded), include_plotlyjs=True, full_html=False, config={"displaylogo": False}
    )
    who = record.patient_code or record.room
    facts = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _facts(folded))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>KAP session report — {escape(who)}</title>
<style>{_STYLE}</style></head><body>
<h1>KAP session report — {escape(who)}</h1>
<p class="note">KAP Monitor session {session_id}. Decision support, not a certified medical device.
Plasma ketamine is an ESTIMATE from population models (Clements, Domino), never a measurement.
Times are local ({escape(_time(record.started_at, "%Z"))}).</p>
<h2>Session</h2><table>{facts}</table>
<h2>Timeline</h2>
<p class="note">Vitals, estimated plasma ketamine (dissociative band 100-250 ng/mL shaded), and every dose,
note, assessment and alarm as a marker.</p>
{figure}
<h2>Doses</h2>{_doses(folded)}
<h2>Discharge check at the end of the session</h2>{_discharge(folded)}
<h2>Alarms</h2>{_alarms(folded)}
<h2>Notes and side effects</h2>{_notes(folded)}
<h2>Assessments</h2>{_assessments(folded)}
</body></html>
"""
