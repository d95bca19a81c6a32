"""The session at the bedside: start it, see who and what at a glance, log doses in two taps, answer the
assessments that are due, and end it with the discharge check saying what is still missing."""

from __future__ import annotations

import dash_mantine_components as dmc
from dash import html

from monitor.model import DRUGS, ROUTES
from monitor.session_view import DoseRow

ROUTE_LABELS = {
    "iv-infusion": "IV infusion",
    "iv-bolus": "IV bolus",
    "im": "IM",
    "sublingual": "Sublingual",
    "intranasal": "Intranasal",
}
CADSS6_ITEMS = 6
ALDRETE_ITEMS = ("Activity", "Respiration", "Circulation", "Consciousness", "O2 saturation")


def start_form() -> html.Div:
    return html.Div(
        id="session-start",
        className="session-box",
        children=[
            dmc.Title("Start a session", order=3),
            dmc.Text("Pseudonymous code only: never a name.", size="sm", c="dimmed"),
            dmc.Group(
                [
                    dmc.TextInput(id="start-code", label="Patient code", placeholder="K-1042", w=150),
                    dmc.NumberInput(id="start-weight", label="Weight (kg)", min=20, max=300, w=130),
                    dmc.Select(id="start-drug", label="Drug", data=list(DRUGS), value="ketamine", w=150),
                    dmc.Select(
                        id="start-route",
                        label="Route",
                        value="im",
                        w=160,
                        data=[{"value": r, "label": ROUTE_LABELS[r]} for r in ROUTES],
                    ),
                    dmc.NumberInput(
                        id="start-planned", label="Planned (mg/kg)", min=0, max=10, step=0.05, w=150
                    ),
                    dmc.NumberInput(id="start-duration", label="Infusion (min)", min=0, max=600, w=140),
                    dmc.NumberInput(id="start-concentration", label="Pump mg/mL", min=0, max=100, w=120),
                    dmc.TextInput(id="start-nurse", label="Nurse", w=160),
                    dmc.Button("Start session", id="start-session", color="teal"),
                    html.Span("", id="start-feedback", className="measure-feedback"),
                ],
                align="flex-end",
                mt="xs",
            ),
        ],
    )


def header_items(text: str, dose_text: str, concentration_text: str) -> list[html.Span]:
    return [
        html.Span(text, id="session-who", className="session-who"),
        html.Span(dose_text, id="session-dose", className="session-dose"),
        html.Span(concentration_text, id="session-concentration", className="session-concentration"),
        html.Span("", id="session-baseline", className="session-baseline"),
    ]


def running(who: str, dose_text: str, concentration_text: str) -> html.Div:
    return html.Div(
        id="session-running",
        className="session-box",
        children=[
            html.Div(header_items(who, dose_text, concentration_text), className="session-header"),
            dmc.Group(
                [
                    dmc.Select(
                        id="dose-route",
                        label="Route",
                        value="im",
                        w=150,
                        data=[{"value": r, "label": ROUTE_LABELS[r]} for r in ROUTES],
                    ),
                    dmc.NumberInput(id="dose-amount", label="Amount", min=0, max=1000, step=0.5, w=120),
                    dmc.SegmentedControl(id="dose-unit", value="mg", data=["mg", "mg/kg"]),
                    dmc.NumberInput(id="dose-duration", label="Over (min)", min=0, max=600, w=110),
                    dmc.TextInput(id="dose-time", label="Given at (HH:MM, empty = now)", w=200),
                    dmc.Button("Log dose", id="log-dose", color="grape"),
                    html.Span("", id="dose-feedback", className="measure-feedback"),
                ],
                align="flex-end",
                mt="xs",
            ),
            dmc.Modal(
                id="dose-confirm",
                title="Confirm this dose",
                opened=False,
                children=[
                    html.Div(id="dose-confirm-text"),
                    dmc.Group(
                        [
                            dmc.Button("Give it anyway (marked)", id="dose-confirm-yes", color="red"),
                            dmc.Button("Cancel", id="dose-confirm-no", variant="outline"),
                        ],
                        mt="md",
                    ),
                ],
            ),
            html.Div(id="dose-list", className="dose-list"),
            html.Div(id="assessments-due", className="assessments-due"),
            html.Div(
                className="assessment-entry",
                children=[
                    dmc.Group(
                        [html.Span("MOAA/S", className="section-label")]
                        + [
                            dmc.Button(
                                str(v),
                                id={"type": "assess", "kind": "moaas", "value": v},
                                size="sm",
                                variant="light",
                            )
                            for v in range(5, -1, -1)
                        ],
                        gap="xs",
                    ),
                    dmc.Group(
                        [html.Span("Pain NRS", className="section-label")]
                        + [
                            dmc.Button(
                                str(v),
                                id={"type": "assess", "kind": "pain_nrs", "value": v},
                                size="sm",
                                variant="light",
                                color="orange",
                            )
                            for v in range(0, 11)
                        ],
                        gap="xs",
                        mt="xs",
                    ),
                    dmc.Group(
                        [html.Span("CADSS-6", className="section-label")]
                        + [
                            dmc.SegmentedControl(
                                id={"type": "cadss", "item": i},
                                value="0",
                                size="xs",
                                data=[str(v) for v in range(5)],
                            )
                            for i in range(CADSS6_ITEMS)
                        ]
                        + [dmc.Button("Record CADSS", id="record-cadss", size="sm", variant="light")],
                        gap="xs",
                        mt="xs",
                    ),
                    dmc.Group(
                        [html.Span("Aldrete", className="section-label")]
                        + [
                            dmc.SegmentedControl(
                                id={"type": "aldrete", "item": i},
                                value="2",
                                size="xs",
                                data=[str(v) for v in range(3)],
                            )
                            for i in range(len(ALDRETE_ITEMS))
                        ]
                        + [dmc.Button("Record Aldrete", id="record-aldrete", size="sm", variant="light")],
                        gap="xs",
                        mt="xs",
                    ),
                    html.Span("", id="assessment-feedback", className="measure-feedback"),
                ],
            ),
            dmc.Group(
                [
                    dmc.Button("Check discharge", id="check-discharge", variant="outline", color="teal"),
                    dmc.Button("End session", id="end-session", color="red", variant="outline"),
                ],
                mt="md",
            ),
        ],
    )


def discharge_items(ok: bool, items: list[tuple[str, bool, str]]) -> html.Div:
    return html.Div(
        [
            html.Div(
                "Ready for discharge" if ok else "Not ready for discharge:",
                className="discharge-ok" if ok else "discharge-blocked",
            ),
            html.Ul(
                [
                    html.Li(f"{'✓' if good else '✗'} {name}: {detail}", className="ok" if good else "missing")
                    for name, good, detail in items
                ]
            ),
        ]
    )


def dose_list(rows: tuple[DoseRow, ...]) -> list[html.Div]:
    return [
        html.Div(
            className=f"dose-row dose-{row.status}",
            children=[
                html.Span(row.text),
                html.Span(row.status, className="dose-status"),
                dmc.Button("Correct", id={"type": "amend", "dose": row.dose_id}, size="xs", variant="subtle")
                if row.can_correct
                else None,
            ],
        )
        for row in rows
    ]
