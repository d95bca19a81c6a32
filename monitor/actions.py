"""What the bedside buttons record: clinical events made from a page's room, the user and the clock.

Kept out of the Dash callbacks so the rules (who, when, which id) live in one tested place; the core
validates these exactly like events from any other clinic system.
"""

from __future__ import annotations

import uuid

from monitor.clock import Clock
from monitor.model import SEVERITIES, SIDE_EFFECTS, ClinicalEvent

DEFAULT_AUTHOR = "bedside"


def _author(author: str | None) -> str:
    text = (author or "").strip()[:64]
    return text or DEFAULT_AUTHOR


def _event(
    page: dict[str, str], clock: Clock, type_: str, author: str | None, **fields: object
) -> ClinicalEvent:
    return ClinicalEvent(
        page["site"], page["room"], clock.now(), type_, _author(author), uuid.uuid4().hex, **fields
    )  # type: ignore[arg-type]


def acknowledge(page: dict[str, str], clock: Clock, author: str | None, alarm_id: str = "") -> ClinicalEvent:
    """`alarm_id` "" acknowledges every active alarm of the room."""
    return _event(page, clock, "alarm_ack", author, alarm_id=alarm_id)


def limit_change(page: dict[str, str], clock: Clock, rule: str, limit: float) -> ClinicalEvent:
    """This session's new limit for one rule of the alarm profile (the author is the signed-in user)."""
    return _validated(_event(page, clock, "limit_change", None, rule=rule, limit=limit))


def pause_audio(page: dict[str, str], clock: Clock, author: str | None) -> ClinicalEvent:
    return _event(page, clock, "audio_pause", author)


def side_effect(
    page: dict[str, str], clock: Clock, author: str | None, effect: str, severity: str
) -> ClinicalEvent:
    if effect not in SIDE_EFFECTS or severity not in SEVERITIES:
        raise ValueError(f"unknown side effect {effect!r} or severity {severity!r}")
    return _event(page, clock, "side_effect", author, effect=effect, severity=severity)


def note(page: dict[str, str], clock: Clock, author: str | None, text: str) -> ClinicalEvent | None:
    """None for an empty note: nothing to record."""
    text = (text or "").strip()
    return _event(page, clock, "note", author, text=text) if text else None


def _validated(event: ClinicalEvent) -> ClinicalEvent:
    """Run a page's event through the decoder the core uses, so a nurse sees a refusal at once, with its
    reason, instead of the core refusing it quietly."""
    from monitor import wire

    topic = wire.parse_topic(wire.events_topic(event.site, event.room))
    return wire.decode_clinical_event(topic, wire.encode_clinical_event(event), event.ts)


def session_start(page: dict[str, str], clock: Clock, author: str | None, **fields: object) -> ClinicalEvent:
    """Raises wire.WireError with the reason when a field is missing or wrong."""
    data = {k: v for k, v in fields.items() if v not in (None, "")}
    return _validated(_event(page, clock, "session_start", author, data=data))


def dose(page: dict[str, str], clock: Clock, author: str | None, **fields: object) -> ClinicalEvent:
    data = {k: v for k, v in fields.items() if v not in (None, "")}
    return _validated(_event(page, clock, "dose", author, data=data))


def assessment(
    page: dict[str, str],
    clock: Clock,
    author: str | None,
    kind: str,
    *,
    score: int | None = None,
    answers: list[int] | None = None,
) -> ClinicalEvent:
    data: dict[str, object] = {"kind": kind}
    if answers:
        data["answers"] = answers
    else:
        data["score"] = score
    return _validated(_event(page, clock, "assessment", author, data=data))


def session_end(
    page: dict[str, str], clock: Clock, author: str | None, summary: dict[str, object]
) -> ClinicalEvent:
    return _validated(_event(page, clock, "session_end", author, data={"summary": summary}))
