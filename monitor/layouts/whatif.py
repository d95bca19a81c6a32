"""`/whatif`: re-run the alarm engine over a recorded session, or every session in a date range, with
other limits and delays, and see per rule how many alarms it raised as recorded and would have raised
(monitor.whatif does the work; this page only collects the settings and renders the counts)."""

from __future__ import annotations

from datetime import datetime

import dash_mantine_components as dmc
from dash import ALL, Dash, Input, Output, State, dcc, html

from monitor.alarm_profile import AlarmProfile, load_profile
from monitor.store import EventLog, SessionRecord
from monitor.whatif import (
    WhatIfResult,
    change_text,
    parse_day,
    sessions_between,
    setting_text,
    settings_from_table,
    what_if,
)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def session_options(records: list[SessionRecord]) -> list[dict[str, str]]:
    return [
        {
            "value": str(r.id),
            "label": f"{r.room} — {_when(r.started_at)}"
            + (f" — {r.patient_code}" if r.patient_code else "")
            + f" ({r.alarms} alarm{'s' if r.alarms != 1 else ''})",
        }
        for r in records
    ]


def _number(id_type: str, rule: str, value: float, unit: str) -> dmc.NumberInput:
    return dmc.NumberInput(
        id={"type": id_type, "rule": rule},
        value=value,
        min=0,
        step=1,
        w=110,
        size="xs",
        rightSection=dmc.Text(unit, size="xs", c="dimmed"),
    )


def settings_table(profile: AlarmProfile) -> dmc.Table:
    """Every threshold rule with its limit and delay as inputs, set to the profile's values."""
    rows = [
        dmc.TableTr(
            [
                dmc.TableTd(rule.id),
                dmc.TableTd(
                    f"{rule.metric.label} {rule.op}" + (" baseline +" if rule.relative_to_baseline else "")
                ),
                dmc.TableTd(rule.priority),
                dmc.TableTd(_number("whatif-limit", rule.id, rule.limit, rule.metric.unit)),
                dmc.TableTd(_number("whatif-delay", rule.id, rule.delay_s, "s")),
            ]
        )
        for rule in profile.rules
    ]
    head = dmc.TableThead(
        dmc.TableTr([dmc.TableTh(h) for h in ("Rule", "Condition", "Priority", "Limit", "Delay")])
    )
    return dmc.Table([head, dmc.TableTbody(rows)], withTableBorder=True, highlightOnHover=True)


def result_view(result: WhatIfResult) -> html.Div:
    if not result.sessions:
        return html.Div(dmc.Text("No session in that range.", id="whatif-summary"))
    summary = (
        f"{len(result.sessions)} session{'s' if len(result.sessions) != 1 else ''}: "
        f"{result.recorded} alarms recorded, {result.whatif} what-if"
        f" ({change_text(result.recorded, result.whatif)})"
    )
    head = ["Rule", "Kind", "Priority", "Limit", "Delay", "Recorded", "What-if", "Change"]
    rows = [
        dmc.TableTr(
            [
                dmc.TableTd(r.condition),
                dmc.TableTd(r.kind),
                dmc.TableTd(r.priority),
                dmc.TableTd(setting_text(r.limit, arrow=" → ")),
                dmc.TableTd(setting_text(r.delay_s, " s", " → ")),
                dmc.TableTd(str(r.recorded), className="whatif-recorded"),
                dmc.TableTd(str(r.whatif), className="whatif-whatif"),
                dmc.TableTd(r.change_text),
            ],
            className="whatif-row",
            id={"type": "whatif-row", "rule": r.condition},
        )
        for r in result.rows
    ]
    table = dmc.Table(
        [dmc.TableThead(dmc.TableTr([dmc.TableTh(h) for h in head])), dmc.TableTbody(rows)],
        striped=True,
        withTableBorder=True,
        id="whatif-table",
    )
    return html.Div([dmc.Text(summary, id="whatif-summary", fw=600, my="sm"), table])


def layout(store: EventLog) -> html.Div:
    options = session_options(store.session_records())
    return html.Div(
        [
            dmc.Group(
                [dmc.Title("What-if: alarms under other limits", order=2), html.A("All rooms", href="/")],
                justify="space-between",
            ),
            dmc.Text(
                "Re-runs the alarm engine over recorded sessions with the limits and delays below, and "
                "counts per rule the alarms raised as recorded and under these settings (the alarm-fatigue "
                "analysis). Recorded limit changes and acknowledgements still apply.",
                c="dimmed",
                size="sm",
                my="sm",
            ),
            dmc.Group(
                [
                    dmc.SegmentedControl(
                        id="whatif-scope",
                        data=[
                            {"value": "session", "label": "One session"},
                            {"value": "range", "label": "Date range"},
                        ],
                        value="session",
                    ),
                    dmc.Select(
                        id="whatif-session",
                        data=options,
                        value=options[0]["value"] if options else None,
                        label="Session",
                        w=380,
                        allowDeselect=False,
                    ),
                    dmc.TextInput(id="whatif-from", label="From", placeholder="YYYY-MM-DD", w=140),
                    dmc.TextInput(id="whatif-to", label="To", placeholder="YYYY-MM-DD", w=140),
                ],
                align="flex-end",
                my="md",
            ),
            settings_table(load_profile()),
            dmc.Button("Run what-if", id="whatif-run", my="md"),
            dcc.Loading(html.Div(id="whatif-result")),
        ]
    )


def register_whatif_callbacks(app: Dash, store: EventLog) -> None:
    @app.callback(
        Output("whatif-result", "children"),
        Input("whatif-run", "n_clicks"),
        State("whatif-scope", "value"),
        State("whatif-session", "value"),
        State("whatif-from", "value"),
        State("whatif-to", "value"),
        State({"type": "whatif-limit", "rule": ALL}, "value"),
        State({"type": "whatif-limit", "rule": ALL}, "id"),
        State({"type": "whatif-delay", "rule": ALL}, "value"),
        State({"type": "whatif-delay", "rule": ALL}, "id"),
        prevent_initial_call=True,
    )
    def run(_n, scope, session, date_from, date_to, limits, limit_ids, delays, delay_ids):  # type: ignore[no-untyped-def]
        profile = load_profile()

        def by_rule(values: list[object], ids: list[dict[str, str]]) -> dict[str, float | None]:
            return {
                i["rule"]: float(v) if isinstance(v, int | float) else None
                for v, i in zip(values, ids, strict=True)
            }

        try:
            if scope == "range":
                records = sessions_between(
                    store, parse_day(date_from or ""), parse_day(date_to or "", end=True)
                )
            else:
                record = store.session(int(session)) if session else None
                if record is None:
                    raise ValueError("choose a session")
                records = [record]
            settings = settings_from_table(profile, by_rule(limits, limit_ids), by_rule(delays, delay_ids))
            return result_view(what_if(store, records, profile, settings))
        except ValueError as exc:
            return dmc.Alert(str(exc), color="red", title="Cannot run", id="whatif-error")
