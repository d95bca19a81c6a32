"""The alarm log of a session: filtered rows and a CSV a reviewer can open."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from monitor import alarm_log
from monitor.model import AlarmTransition
from monitor.store import EventLog


def transition(id_: str, state: str, priority: str, ts: float, **kw: object) -> AlarmTransition:
    return AlarmTransition(
        "clinic",
        "room1",
        id_,
        ts,
        state,
        priority,
        kw.pop("kind", "physiological"),  # type: ignore[arg-type]
        kw.pop("condition", "spo2_low"),
        kw.pop("message", "SpO2 90 % < 92 %"),
        **kw,
    )  # type: ignore[arg-type]


def test_a_sessions_log_filters_and_exports(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "kap.sqlite")
    log.append(
        [
            transition("a", "active", "medium", 100.0, value=90.0, limit=92.0, device="oximeter"),
            transition("a", "acknowledged", "medium", 110.0, user="Ana"),
            transition(
                "b",
                "active",
                "high",
                120.0,
                kind="clinical",
                condition="side_effect:vomiting",
                message="Vomiting (severe)",
            ),
        ],
        received_at=130.0,
    )
    session = log.sessions()[0][0]
    every = alarm_log.rows(log.alarm_log(session))
    assert [(r["alarm_id"], r["state"]) for r in every] == [
        ("a", "active"),
        ("a", "acknowledged"),
        ("b", "active"),
    ]
    assert every[1]["user"] == "Ana" and every[0]["value"] == 90.0 and every[0]["limit"] == 92.0
    high = alarm_log.rows(log.alarm_log(session), alarm_log.AlarmFilter(priorities=frozenset({"high"})))
    assert [r["alarm_id"] for r in high] == ["b"]
    text = alarm_log.rows(log.alarm_log(session), alarm_log.AlarmFilter(text="VOMIT"))
    assert [r["alarm_id"] for r in text] == ["b"]
    table = pd.read_csv(io.StringIO(alarm_log.to_csv(every)))
    assert list(table.columns) == list(alarm_log.COLUMNS)
    assert table["state"].tolist() == ["active", "acknowledged", "active"]
    assert log.alarm_log(9999) == []
