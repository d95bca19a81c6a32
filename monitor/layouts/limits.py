"""The session's alarm limits at the bedside: what is in force, and (for a supervisor) changing one.

A change is a `limit_change` event recorded with its author; the server refuses it from anyone but a
supervisor, whatever this section shows. The section is folded away: limits are looked up, not watched.
"""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
from dash import html

from monitor.limits_view import LimitRow


def _current_id(rule_id: str) -> str:
    return f"limit-current-{rule_id}"


def section(rows: tuple[LimitRow, ...]) -> html.Details:
    body = [
        html.Tr(
            [
                html.Td(row.label),
                html.Td(row.current, id=_current_id(row.rule_id), className="limit-current"),
                html.Td(row.changed, id=f"limit-changed-{row.rule_id}", className="limit-changed"),
                html.Td(
                    dmc.Group(
                        [
                            dmc.NumberInput(
                                id={"type": "limit-input", "rule": row.rule_id},
                                placeholder=f"{row.limit:g}",
                                w=110,
                                size="xs",
                            ),
                            dmc.Button(
                                "Set",
                                id={"type": "limit-set", "rule": row.rule_id},
                                size="xs",
                                variant="outline",
                            ),
                        ],
                        gap="xs",
                    )
                ),
            ],
            **{"data-rule": row.rule_id},
        )
        for row in rows
    ]
    return html.Details(
        id="limits",
        className="limits live-only",
        children=[
            html.Summary("Alarm limits for this session"),
            html.P(
                "Supervisors may change a limit for this session only; the change is recorded with their "
                "name. The next session starts from the clinic's profile again.",
                className="limits-note",
            ),
            html.Table(html.Tbody(body), className="limits-table"),
            html.Span("", id="limit-feedback", className="measure-feedback"),
        ],
    )


def props(rows: tuple[LimitRow, ...]) -> dict[str, dict[str, Any]]:
    """What the bedside stream pushes when a limit changes."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out[_current_id(row.rule_id)] = {"children": row.current}
        out[f"limit-changed-{row.rule_id}"] = {"children": row.changed}
    return out
