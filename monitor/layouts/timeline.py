"""The session timeline: one shared time axis with the vitals above, the ESTIMATED plasma ketamine with
the dissociative band in the middle, and every dose, note, side effect, assessment and alarm below."""

from __future__ import annotations

from plotly.subplots import make_subplots

from monitor import mdc
from monitor.dosing import Dose, effective_doses
from monitor.downsample import thin
from monitor.model import AlarmTransition, ClinicalEvent, Observation
from monitor.views import chart_time

#: Analgesia about 70-160 ng/mL, dissociation about 100-250 ng/mL (PMC6020109, clinical.md)
DISSOCIATIVE_BAND = (100.0, 250.0)
MARKER_ROWS = {"dose": 4, "note": 3, "assessment": 2, "alarm": 1}
PRIORITY_COLOURS = {"high": "#ef4444", "medium": "#eab308", "low": "#22d3ee"}
MAX_VITAL_POINTS = 1500


def _thin(points: list[Observation]) -> list[Observation]:
    """Keep long sessions light on the wire: the min and max of each bin, so no dip is thinned away (the
    trend chart has the full 1 Hz data)."""
    return thin(points, MAX_VITAL_POINTS)


def figure(
    vitals: list[Observation],
    doses: list[Dose],
    curves: dict[str, tuple[list[float], list[float]]],
    clinical: list[ClinicalEvent],
    assessments: list[ClinicalEvent],
    alarms: list[AlarmTransition],
) -> dict:  # type: ignore[type-arg]
    fig = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.45, 0.3, 0.25]
    )
    for metric, colour, mode in (
        (mdc.SPO2, "#22d3ee", "lines"),
        (mdc.PULSE_RATE, "#4ade80", "lines"),
        (mdc.NIBP_SYS, "#f87171", "lines+markers"),
        (mdc.NIBP_DIA, "#fca5a5", "lines+markers"),
    ):
        points = _thin([o for o in vitals if o.code == metric.code and o.valid and o.value is not None])
        fig.add_scatter(
            x=[chart_time(o.ts) for o in points],
            y=[o.value for o in points],
            name=metric.label,
            mode=mode,
            line={"color": colour, "width": 1.5},
            row=1,
            col=1,
        )
    for model, (times, values) in curves.items():
        fig.add_scatter(
            x=[chart_time(t) for t in times],
            y=values,
            name=f"ketamine ({model}, estimate)",
            mode="lines",
            line={"dash": "solid" if model == "clements" else "dot"},
            row=2,
            col=1,
        )
    fig.add_hrect(
        y0=DISSOCIATIVE_BAND[0],
        y1=DISSOCIATIVE_BAND[1],
        fillcolor="#a855f7",
        opacity=0.15,
        line_width=0,
        row=2,
        col=1,
        annotation_text="dissociative 100-250 ng/mL",
        annotation_position="top left",
    )
    given = effective_doses(doses)
    fig.add_scatter(
        x=[chart_time(d.ts) for d in given],
        y=[MARKER_ROWS["dose"]] * len(given),
        name="doses",
        mode="markers",
        marker={"symbol": "triangle-up", "size": 14, "color": "#c084fc"},
        hovertext=[
            f"{d.route} {d.mg:.1f} mg"
            + (f" over {d.duration_s / 60:.0f} min" if d.duration_s else "")
            + (" (pump)" if d.source == "pump" else "")
            for d in given
        ],
        hoverinfo="text+x",
        row=3,
        col=1,
    )
    fig.add_scatter(
        x=[chart_time(e.ts) for e in clinical],
        y=[MARKER_ROWS["note"]] * len(clinical),
        name="notes",
        mode="markers",
        marker={"symbol": "square", "size": 11, "color": "#fbbf24"},
        hovertext=[e.text if e.type == "note" else f"{e.severity} {e.effect}" for e in clinical],
        hoverinfo="text+x",
        row=3,
        col=1,
    )
    fig.add_scatter(
        x=[chart_time(e.ts) for e in assessments],
        y=[MARKER_ROWS["assessment"]] * len(assessments),
        name="assessments",
        mode="markers",
        marker={"symbol": "diamond", "size": 11, "color": "#67e8f9"},
        hovertext=[f"{e.data.get('kind')} {e.data.get('score')}" for e in assessments],
        hoverinfo="text+x",
        row=3,
        col=1,
    )
    raised = [a for a in alarms if a.state == "active"]
    fig.add_scatter(
        x=[chart_time(a.ts) for a in raised],
        y=[MARKER_ROWS["alarm"]] * len(raised),
        name="alarms",
        mode="markers",
        marker={
            "symbol": "x",
            "size": 11,
            "color": [PRIORITY_COLOURS.get(a.priority, "#fff") for a in raised],
        },
        hovertext=[a.message for a in raised],
        hoverinfo="text+x",
        row=3,
        col=1,
    )
    fig.update_yaxes(title_text="vitals", row=1, col=1)
    fig.update_yaxes(title_text="ng/mL (estimate)", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(
        tickvals=list(MARKER_ROWS.values()), ticktext=list(MARKER_ROWS), range=[0.5, 4.5], row=3, col=1
    )
    fig.update_layout(
        template="plotly_dark",
        paper_bgcolor="#111820",
        plot_bgcolor="#111820",
        height=560,
        margin={"l": 60, "r": 20, "t": 30, "b": 30},
        legend={"orientation": "h", "y": 1.06},
        uirevision="timeline",
        title={"text": "Session timeline", "x": 0.01},
    )
    return fig.to_plotly_json()
