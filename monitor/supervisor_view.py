"""The supervisor's wall: one tile per room, worst first, from the same room projections as the bedside.

Order (issue text): rooms with a high-priority alarm, then escalated ones, then medium, then link
problems, then the rest; within a rank, the room name. "Exceptions only" keeps the rooms with something
to see. A room whose devices are offline or silent shows that plainly, never its last numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor import mdc
from monitor.model import Observation
from monitor.views import RoomState, alarm_panel_view, bedside_view

RANKS = ("high", "escalated", "medium", "link", "low", "ok")


@dataclass(frozen=True, slots=True)
class TileView:
    site: str
    room: str
    patient: str  # "K-1042 · 00:42" or "no session"
    spo2: str
    pulse: str
    bp: str  # "128/82 · 3 min ago"
    infusion: str  # "52.50 mL/h · 35.0 mg (0.50 mg/kg)"
    alarm: str  # the most severe alarm's message
    alarm_id: str
    link: str  # "all devices online" / "oximeter: OFFLINE (link lost)"
    rank: str  # one of RANKS
    css: str

    @property
    def exceptional(self) -> bool:
        return self.rank != "ok"


def tile_view(state: RoomState, now: float, dose_text: str | None = None) -> TileView:
    """`dose_text`: the session's cumulative dose as the session panel says it from the pump's record
    (`session_dose_text`, refreshed every few seconds); without it, from the doses logged by hand."""
    from monitor.session_view import session_view  # the session panel's own summary, not a second one

    view = bedside_view(state, now)
    panel = alarm_panel_view(state, now)
    worst = panel.alarms[0] if panel.alarms else None
    offline = [b.text.replace(": offline", ": OFFLINE") for b in view.devices if b.state != "online"]
    stale = view.spo2.state in ("no-data", "offline") and mdc.SPO2.code in state.latest
    link = "; ".join(offline) or ("oximeter: NO DATA" if stale else "all devices online")
    if any(a.priority == "high" and a.state != "acknowledged" for a in panel.alarms):
        rank = "high"
    elif any(a.state == "escalated" for a in panel.alarms):
        rank = "escalated"
    elif any(a.priority == "medium" and a.state != "acknowledged" for a in panel.alarms):
        rank = "medium"
    elif offline or stale:
        rank = "link"
    elif panel.alarms:
        rank = "low"
    else:
        rank = "ok"
    session = session_view(state, [], now)
    patient = "no session"
    if session.active and state.session is not None:
        elapsed = int(now - state.session.ts)
        patient = (
            f"{state.session.data.get('patient_code')} · {elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}"
        )
    bp = view.blood_pressure
    bp_text = f"{bp.text} · {bp.age_text.split(', ')[-1]}" if bp.state in ("ok", "overdue") else bp.text
    infusion = f"{view.pump.rate_text} mL/h" if view.pump.state != "none" else ""
    given = dose_text if dose_text is not None and session.active else session.dose_text
    if given:
        infusion = f"{infusion} · {given}".strip(" ·")
    flashing = worst is not None and worst.state == "escalated"
    css = f"tile rank-{rank}" + (" escalated" if flashing else "")
    return TileView(
        state.site,
        state.room,
        patient,
        view.spo2.text,
        view.pulse.text,
        bp_text,
        infusion,
        worst.message if worst else "",
        worst.id if worst else "",
        link,
        rank,
        css,
    )


def session_dose_text(state: RoomState, pump_stream: list[Observation], now: float) -> str:
    """What the session panel says was given ("Given 35.0 mg (0.50 mg/kg)"), the pump's record included."""
    from monitor.session_view import session_view

    return session_view(state, pump_stream, now).dose_text


def wall(
    states: list[RoomState],
    now: float,
    *,
    exceptions_only: bool = False,
    dose_texts: Mapping[tuple[str, str], str] | None = None,
) -> list[TileView]:
    """`dose_texts`: each room's `session_dose_text` by (site, room), where known."""
    known = dose_texts or {}
    tiles = [tile_view(s, now, known.get((s.site, s.room))) for s in states]
    if exceptions_only:
        tiles = [t for t in tiles if t.exceptional]
    return sorted(tiles, key=lambda t: (RANKS.index(t.rank), t.room))
