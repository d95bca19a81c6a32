"""The discharge check: each rule, and the sentences a nurse reads when something is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from monitor import mdc
from monitor.discharge import (
    DIASTOLIC,
    PULSE,
    SPO2,
    SYSTOLIC,
    VITAL_CODES,
    Item,
    aldrete_score,
    discharge_check,
)

SESSION = datetime(2025, 3, 4, 13, 45, tzinfo=UTC).timestamp()
DOSING = datetime(2025, 3, 4, 14, 0, tzinfo=UTC).timestamp()  # 14:00 UTC
INFUSION_END = DOSING + 40 * 60  # 14:40
MIN = 60.0
BASELINE = {SYSTOLIC: 125.0, DIASTOLIC: 80.0, PULSE: 70.0, SPO2: 98.0}


def vitals(now: float, **values: float) -> dict[str, tuple[float, float]]:
    readings = {SYSTOLIC: 132.0, DIASTOLIC: 84.0, PULSE: 76.0, SPO2: 97.0, **values}
    return {name: (value, now - 2 * MIN) for name, value in readings.items()}


def check(now_min_after_end: float = 65, **overrides: Any):  # type: ignore[no-untyped-def]
    now = INFUSION_END + now_min_after_end * MIN
    kwargs: dict[str, Any] = {
        "now": now,
        "session_start": SESSION,
        "dosing_start": DOSING,
        "dosing_end": INFUSION_END,
        "routes_given": {"iv-infusion"},
        "drug": "ketamine",
        "baseline": dict(BASELINE),
        "latest_vitals": vitals(now),
        "latest_moaas": (5, now - 5 * MIN),
        "latest_aldrete": (10, now - 5 * MIN),
        "active_alarms": 0,
    }
    kwargs.update(overrides)
    return discharge_check(**kwargs)


def item(result: Any, name: str) -> Item:
    (found,) = [i for i in result.items if i.name == name]
    return found


def test_a_patient_who_meets_every_criterion() -> None:
    result = check()
    assert result.ok
    assert [i.name for i in result.items] == [
        "Blood pressure",
        "Pulse",
        "SpO2",
        "MOAA/S",
        "Modified Aldrete",
        "Alarms",
        "Observation time",
    ]
    assert all(i.ok for i in result.items)
    assert item(result, "Observation time").detail == "60 min observed since dosing ended at 14:40 (default)"


def test_blood_pressure_must_be_within_20_mmhg_of_baseline() -> None:
    now = INFUSION_END + 65 * MIN
    result = check(latest_vitals=vitals(now, systolic=150.0))
    assert not result.ok
    bp = item(result, "Blood pressure")
    assert bp == Item(
        "Blood pressure", False, "systolic 150 is 25 mmHg above baseline 125 (within 20 needed)"
    )
    assert item(check(latest_vitals=vitals(now, systolic=145.0)), "Blood pressure").ok  # exactly +20
    low = item(check(latest_vitals=vitals(now, diastolic=55.0)), "Blood pressure")
    assert low.detail == "diastolic 55 is 25 mmHg below baseline 80 (within 20 needed)"


def test_pulse_must_be_within_20_percent_of_baseline() -> None:
    now = INFUSION_END + 65 * MIN
    assert item(check(latest_vitals=vitals(now, pulse=84.0)), "Pulse").ok
    fast = item(check(latest_vitals=vitals(now, pulse=90.0)), "Pulse")
    assert fast == Item("Pulse", False, "pulse 90/min, baseline 70: needs 56-84")


def test_spo2_threshold_follows_a_low_baseline_but_never_below_93() -> None:
    now = INFUSION_END + 65 * MIN
    assert item(check(latest_vitals=vitals(now, spo2=94.0)), "SpO2").ok
    low = item(check(latest_vitals=vitals(now, spo2=93.0)), "SpO2")
    assert low == Item("SpO2", False, "SpO2 93 %: needs 94 % or more on room air")
    copd = {**BASELINE, SPO2: 94.0}
    assert item(check(baseline=copd, latest_vitals=vitals(now, spo2=93.0)), "SpO2").ok
    assert not item(check(baseline={**BASELINE, SPO2: 90.0}, latest_vitals=vitals(now, spo2=92.0)), "SpO2").ok


def test_vitals_must_be_recent() -> None:
    now = INFUSION_END + 65 * MIN
    readings = vitals(now)
    readings[SYSTOLIC] = (130.0, now - 20 * MIN)
    bp = item(check(latest_vitals=readings), "Blood pressure")
    assert bp.detail == "systolic last measured at 15:25 (20 min ago): measure again"
    readings.pop(SPO2)
    assert item(check(latest_vitals=readings), "SpO2").detail == "SpO2 not measured"


def test_a_missing_baseline_is_said() -> None:
    baseline = {SYSTOLIC: 125.0, DIASTOLIC: 80.0, SPO2: 98.0}
    assert item(check(baseline=baseline), "Pulse").detail == "no baseline pulse recorded before dosing"


def test_moaas_must_be_5_recent_and_after_dosing() -> None:
    now = INFUSION_END + 65 * MIN
    assert (
        item(check(latest_moaas=None), "MOAA/S").detail == "MOAA/S not recorded since dosing started at 14:00"
    )
    assert item(check(latest_moaas=(5, DOSING - 10 * MIN)), "MOAA/S").detail == (
        "MOAA/S not recorded since dosing started at 14:00"
    )
    drowsy = item(check(latest_moaas=(4, now - 3 * MIN)), "MOAA/S")
    assert drowsy == Item(
        "MOAA/S", False, "MOAA/S 4 at 15:42: needs 5 (responds readily to name spoken in normal tone)"
    )
    stale = item(check(latest_moaas=(5, now - 40 * MIN)), "MOAA/S")
    assert stale.detail == "MOAA/S last recorded at 15:05 (40 min ago): reassess"
    assert item(check(latest_moaas=5), "MOAA/S") == Item(
        "MOAA/S", True, "MOAA/S 5"
    )  # a bare score is trusted


def test_modified_aldrete_must_be_9_or_more() -> None:
    assert item(check(latest_aldrete=9), "Modified Aldrete").ok
    assert item(check(latest_aldrete=8), "Modified Aldrete").detail == "Modified Aldrete 8: needs 9 or more"
    assert not check(latest_aldrete=None).ok


def test_aldrete_score_helper() -> None:
    answers = {"activity": 2, "respiration": 2, "circulation": 1, "consciousness": 2, "oxygen_saturation": 2}
    assert aldrete_score(answers) == 9
    with pytest.raises(ValueError, match="missing oxygen_saturation"):
        aldrete_score({k: v for k, v in answers.items() if k != "oxygen_saturation"})
    with pytest.raises(ValueError, match="must be 0, 1 or 2"):
        aldrete_score({**answers, "activity": 3})
    with pytest.raises(ValueError, match="unknown item"):
        aldrete_score({**answers, "colour": 2})


def test_active_alarms_block_discharge() -> None:
    assert item(check(active_alarms=2), "Alarms") == Item("Alarms", False, "2 alarms still active")
    assert item(check(active_alarms=1), "Alarms").detail == "1 alarm still active"


def test_observation_time_for_ketamine_default_and_override() -> None:
    waiting = item(check(now_min_after_end=23), "Observation time")
    assert waiting == Item(
        "Observation time",
        False,
        "observation time: 37 min left (60 min after dosing ended at 14:40, default)",
    )
    assert item(check(now_min_after_end=60), "Observation time").ok
    longer = item(check(now_min_after_end=60, min_observation_s=90 * MIN), "Observation time")
    assert (
        longer.detail == "observation time: 30 min left (90 min after dosing ended at 14:40, clinic protocol)"
    )


def test_esketamine_needs_two_hours_after_the_last_spray() -> None:
    last_spray = DOSING + 10 * MIN  # three devices, 5 min apart: the last at 14:10
    now = last_spray + 83 * MIN
    result = check(
        now_min_after_end=(now - INFUSION_END) / MIN,
        drug="esketamine",
        routes_given={"intranasal"},
        dosing_end=last_spray,
        latest_vitals=vitals(now),
        latest_moaas=(5, now - MIN),
        latest_aldrete=(10, now - MIN),
    )
    assert not result.ok
    assert item(result, "Observation time").detail == (
        "observation time: 37 min left (120 min after dosing ended at 14:10, esketamine label)"
    )
    assert [i.name for i in result.items if not i.ok] == ["Observation time"]
    shorter = check(drug="esketamine", routes_given={"intranasal"}, min_observation_s=60 * MIN)
    assert item(shorter, "Observation time").detail.endswith("esketamine label)")  # a protocol cannot cut it


def test_an_infusion_without_a_recorded_end_cannot_be_counted() -> None:
    result = check(dosing_end=None)
    assert item(result, "Observation time").detail == (
        "end of the infusion not recorded: observation time cannot be counted"
    )
    im_only = check(dosing_end=None, routes_given={"im"}, now_min_after_end=25)  # counted from the IM dose
    assert item(im_only, "Observation time").ok


def test_no_dose_given() -> None:
    result = check(dosing_start=None, dosing_end=None, routes_given=set(), latest_moaas=5)
    assert item(result, "Observation time") == Item("Observation time", True, "no dose given")


def test_clock_times_in_the_clinic_time_zone() -> None:
    vienna = timezone(timedelta(hours=1))
    result = check(latest_moaas=None, tz=vienna)
    assert item(result, "MOAA/S").detail == "MOAA/S not recorded since dosing started at 15:00"


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="unknown drug"):
        check(drug="arketamine")
    with pytest.raises(ValueError, match="before the session started"):
        check(now=SESSION - 1)
    with pytest.raises(ValueError, match="min_observation_s"):
        check(min_observation_s=-1.0)


def test_vital_codes_map_mdc_measurements_to_names() -> None:
    assert VITAL_CODES[mdc.NIBP_SYS.code] == SYSTOLIC
    assert VITAL_CODES[mdc.SPO2.code] == SPO2
    assert VITAL_CODES[mdc.PULSE_RATE.code] == PULSE
