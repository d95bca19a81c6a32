"""What-if: recorded sessions re-run through the alarm engine with other limits and delays.

Identical settings give exactly the recorded alarms; a looser limit or a longer delay gives fewer; a
recorded acknowledgement still acknowledges the re-run's alarm of the same condition.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alarm_profile import load_profile
from monitor.cli import main
from monitor.store import EventLog
from monitor.whatif import (
    Setting,
    apply_settings,
    parse_setting,
    raised,
    rerun_session,
    sessions_between,
    what_if,
)
from simulators.recorded_session import Recorded, record_session

DAY = 86_400.0


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recorded, Recorded]:
    """Two 25-minute desaturation sessions in two rooms, a day apart."""
    db = tmp_path_factory.mktemp("whatif") / "kap.sqlite"
    log = EventLog(db)
    first = record_session(log, duration_s=25 * 60, room="room1", seed=3)
    second = record_session(log, duration_s=25 * 60, room="room2", seed=4, start=first.started_at + DAY)
    log.close()
    return db, first, second


def test_identical_settings_reproduce_the_recorded_alarms_exactly(two_days) -> None:  # type: ignore[no-untyped-def]
    db, first, _ = two_days
    log = EventLog(db)
    record = log.session(first.session_id)
    assert record is not None
    recorded = log.alarm_log(first.session_id)
    assert {t.condition for t in recorded} >= {"spo2_low", "spo2_very_low"}
    assert rerun_session(log, record, load_profile()) == recorded, "every transition, in order"
    result = what_if(log, [record], load_profile())
    assert result.recorded == result.whatif == len(raised(recorded))
    assert all(row.recorded == row.whatif for row in result.rows)
    by_rule = {row.condition: row for row in result.rows}
    assert by_rule["spo2_low"].recorded == sum(
        1 for t in raised(recorded).values() if t.condition == "spo2_low"
    )
    assert by_rule["pulse_high"].recorded == 0 and by_rule["spo2_low"].limit == (92, 92)


def test_a_looser_limit_or_a_longer_delay_raises_fewer_alarms(two_days) -> None:  # type: ignore[no-untyped-def]
    db, first, second = two_days
    log = EventLog(db)
    sessions = [log.session(first.session_id), log.session(second.session_id)]
    base = load_profile()
    looser = what_if(
        log, sessions, base, [Setting("spo2_low", "limit", 85), Setting("spo2_very_low", "limit", 80)]
    )  # type: ignore[arg-type]
    rows = {row.condition: row for row in looser.rows}
    assert rows["spo2_low"].recorded >= 2 and rows["spo2_low"].whatif < rows["spo2_low"].recorded
    assert rows["spo2_very_low"].whatif == 0 < rows["spo2_very_low"].recorded
    assert rows["spo2_low"].limit == (92, 85) and looser.whatif < looser.recorded
    longer = what_if(log, sessions, base, [parse_setting("spo2_low.delay=120")])  # type: ignore[arg-type]
    rows = {row.condition: row for row in longer.rows}
    assert rows["spo2_low"].whatif < rows["spo2_low"].recorded and rows["spo2_low"].delay_s == (15, 120)
    assert rows["spo2_very_low"].whatif == rows["spo2_very_low"].recorded, "the other rules are unchanged"
    stricter = what_if(log, sessions, base, [parse_setting("spo2_low.limit=96")])  # type: ignore[arg-type]
    assert {r.condition: r for r in stricter.rows}["spo2_low"].whatif >= rows["spo2_low"].recorded


def test_recorded_acknowledgements_follow_the_rerun_alarm_of_the_same_condition(two_days) -> None:  # type: ignore[no-untyped-def]
    db, first, _ = two_days
    log = EventLog(db)
    record = log.session(first.session_id)
    assert record is not None
    later = apply_settings(load_profile(), [Setting("spo2_very_low", "delay", 25)])
    rerun = rerun_session(log, record, later)
    recorded_ids = {t.id for t in log.alarm_log(first.session_id)}
    very_low = [t for t in rerun if t.condition == "spo2_very_low"]
    activations = {t.id for t in very_low if t.state == "active"}
    assert activations and not activations & recorded_ids, "other activation times, other ids"
    acknowledged = {t.id for t in very_low if t.state == "acknowledged"}
    assert acknowledged == activations, "the nurse's acknowledgement reached each re-run alarm"
    assert {t.id for t in very_low if t.state == "cleared"} == activations, "so the latched alarms cleared"


def test_settings_are_checked() -> None:
    assert parse_setting(" spo2_low.delay_s = 30 ") == Setting("spo2_low", "delay", 30.0)
    for bad, says in (
        ("spo2_low=90", "RULE.FIELD=NUMBER"),
        ("spo2_low.limit=ninety", "not a number"),
        ("spo2_low.limit=nan", "not a finite number"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_setting(bad)
    profile = load_profile()
    for setting, says in (
        (Setting("spo2_lo", "limit", 90), "no rule or technical condition 'spo2_lo'"),
        (Setting("spo2_low", "colour", 1), "not 'colour'"),
        (Setting("spo2_low", "delay", -1), "must not be negative"),
        (Setting("sensor_off", "limit", 1), "only a delay"),
    ):
        with pytest.raises(ValueError, match=says):
            apply_settings(profile, [setting])
    changed = apply_settings(
        profile, [Setting("sensor_off", "delay", 40), Setting("pulse_high", "hysteresis", 8)]
    )
    assert changed.technical.policy("sensor_off").delay_s == 40
    assert changed.technical.policy("sensor_off").priority == profile.technical.policy("sensor_off").priority
    assert changed.rule("pulse_high").hysteresis == 8  # type: ignore[union-attr]
    assert profile.rule("pulse_high").hysteresis == 5, "the loaded profile is untouched"  # type: ignore[union-attr]


def test_whatif_command_for_a_session_and_for_a_date_range(two_days, capsys) -> None:  # type: ignore[no-untyped-def]
    db, first, second = two_days
    assert (
        main(["whatif", "--db", str(db), "--session", str(first.session_id), "--set", "spo2_low.limit=85"])
        == 0
    )
    out = capsys.readouterr().out
    assert "what-if over 1 session(s), profile ketamine-default with spo2_low.limit=85" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["spo2_low"])
    assert row[3:6] == ["92", "->", "85"]
    recorded, whatif = int(row[-4]), int(row[-3])
    assert whatif < recorded

    log = EventLog(db)
    day_two = sessions_between(log, second.started_at - 3600, second.started_at + 3600)
    assert [r.room for r in day_two] == ["room2", "room2"], "the room's recording, then the patient's session"
    from datetime import datetime

    date = datetime.fromtimestamp(second.started_at).astimezone().strftime("%Y-%m-%d")
    assert main(["whatif", "--db", str(db), "--from", date, "--to", date]) == 0
    out = capsys.readouterr().out
    assert "what-if over 2 session(s)" in out, "only the second day's sessions"
    total = out.splitlines()[-1].split()
    assert total[0] == "total" and total[1] == total[2], "no change: what-if equals recorded"

    assert main(["whatif", "--db", str(db), "--session", "1", "--set", "spo2_lo.limit=3"]) == 2
    assert "no rule or technical condition 'spo2_lo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["whatif", "--db", str(db)])
