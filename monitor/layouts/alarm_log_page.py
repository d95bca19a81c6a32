"""`/alarms`: the alarm log of a session, filterable, exportable as CSV."""

from __future__ import annotations

from datetime import datetime

import dash_mantine_components as dmc
from dash import dcc, html

from monitor.model import ALARM_KINDS, ALARM_STATES, PRIORITIES
from monitor.store import EventLog


def session_options(store: EventLog) -> list[dict[str, str]]:
    return [
        {
            "value": str(sid),
            "label": f"{room} — {datetime.fromtimestamp(start):%Y-%m-%d %H:%M}"
            + (" (open)" if end is None else ""),
        }
        for sid, _site, room, start, end in store.sessions()
    ]


def table(rows: list[dict[str, object]]) -> dmc.Table | dmc.Text:
    if not rows:
        return dmc.Text("No alarm in this session matches.", c="dimmed")
    head = ["time", "priority", "kind", "state", "message", "value", "limit", "device", "user"]
    return dmc.Table(
        striped=True,
        highlightOnHover=True,
        withTableBorder=True,
        children=[
            dmc.TableThead(dmc.TableTr([dmc.TableTh(h.capitalize()) for h in head])),
            dmc.TableTbody(
                [
                    dmc.TableTr(
                        [dmc.TableTd("" if r[h] is None else str(r[h])) for h in head],
                        className=f"log-row prio-{r['priority']}",
                    )
                    for r in rows
                ]
            ),
        ],
    )


def layout(store: EventLog) -> html.Div:
    options = session_options(store)
    return html.Div(
        [
            dmc.Group(
                [dmc.Title("Alarm log", order=2), html.A("All rooms", href="/")], justify="space-between"
            ),
            dmc.Group(
                [
                    dmc.Select(
                        id="log-session",
                        data=options,
                        value=options[0]["value"] if options else None,
                        label="Session",
                        w=280,
                        allowDeselect=False,
                    ),
                    dmc.MultiSelect(
                        id="log-priority", data=list(PRIORITIES), label="Priority", w=220, clearable=True
                    ),
                    dmc.MultiSelect(
                        id="log-state", data=list(ALARM_STATES), label="State", w=260, clearable=True
                    ),
                    dmc.MultiSelect(
                        id="log-kind", data=list(ALARM_KINDS), label="Kind", w=260, clearable=True
                    ),
                    dmc.TextInput(id="log-text", label="Contains", w=200),
                    dmc.Button("Export CSV", id="log-export", variant="outline"),
                    html.A("Replay this session", id="log-replay", href="/replay"),
                ],
                align="flex-end",
                my="md",
            ),
            html.Div(id="log-count", className="last-reading"),
            html.Div(id="log-table"),
            dcc.Download(id="log-download"),
        ]
    )
