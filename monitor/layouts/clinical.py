"""Recording side effects and notes at the bedside: one tap per side effect (with its severity), a note
box, and the list of what was recorded with the words that raised an alert marked."""

from __future__ import annotations

import dash_mantine_components as dmc
from dash import html

from monitor.model import SIDE_EFFECTS
from monitor.views import NoteView

EFFECT_LABELS = {effect: effect.replace("_", " ").capitalize() for effect in SIDE_EFFECTS}
EFFECT_LABELS["agitation"] = "Agitation / emergence"


def entry() -> html.Div:
    return html.Div(
        className="clinical-entry",
        children=[
            dmc.Group(
                [
                    html.Span("Side effect", className="section-label"),
                    dmc.SegmentedControl(
                        id="effect-severity",
                        value="moderate",
                        size="sm",
                        data=[{"value": s, "label": s.capitalize()} for s in ("mild", "moderate", "severe")],
                    ),
                    dmc.TextInput(
                        id="author",
                        placeholder="Your name or initials",
                        size="sm",
                        w=200,
                        persistence=True,
                        persistence_type="local",
                    ),
                ],
                gap="md",
            ),
            dmc.Group(
                [
                    dmc.Button(
                        label,
                        id={"type": "record-effect", "effect": effect},
                        size="md",
                        variant="light",
                        color="grape",
                    )
                    for effect, label in EFFECT_LABELS.items()
                ],
                gap="xs",
                mt="xs",
            ),
            dmc.Group(
                [
                    dmc.Textarea(
                        id="note-text",
                        placeholder="Note (e.g. 'patient nauseous, denies headache')",
                        autosize=True,
                        minRows=1,
                        maxRows=4,
                        w=600,
                    ),
                    dmc.Button("Add note", id="add-note", size="md"),
                    html.Span("", id="clinical-feedback", className="measure-feedback"),
                ],
                gap="xs",
                mt="xs",
                align="flex-end",
            ),
        ],
    )


def note_items(notes: tuple[NoteView, ...]) -> list[html.Div] | html.Div:
    if not notes:
        return html.Div("Nothing recorded yet", className="alarm-none")
    return [
        html.Div(
            className="note",
            **{"data-event": n.event_id},
            children=[
                html.Span(n.time, className="note-time"),
                html.Span(n.author, className="note-author"),
                html.Span(
                    [
                        html.Mark(text, className="note-mark", title=effect) if effect else text
                        for text, effect in n.parts
                    ],
                    className="note-text",
                ),
                html.Span(n.raised, className="note-raised"),
            ],
        )
        for n in notes
    ]
