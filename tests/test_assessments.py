"""Assessment scales and the schedule: what is due, what is overdue, what counts for a slot."""

from __future__ import annotations

import pytest

from monitor.assessments import (
    CADSS6,
    DEFAULT_SCHEDULE,
    MOAAS,
    MOAAS_LABELS,
    PAIN_NRS,
    SCALES,
    Due,
    ScheduleRule,
    default_schedule,
    due_assessments,
    validate,
)

T0 = 1_700_000_000.0  # dosing start
MIN = 60.0

CADSS_OK = {"cadss_1": 2, "cadss_2": 3, "cadss_6": 1, "cadss_7": 0, "cadss_15": 4, "cadss_22": 1}


# --- scales -----------------------------------------------------------------------------------------------


def test_pain_nrs() -> None:
    assert validate(PAIN_NRS, 0) == 0
    assert validate(PAIN_NRS, 10) == 10
    assert validate(PAIN_NRS, {"pain": 7}) == 7
    assert validate(PAIN_NRS, 6.0) == 6  # a whole number sent as a float is fine


@pytest.mark.parametrize(
    ("kind", "answers", "message"),
    [
        (PAIN_NRS, 11, "11 is outside 0-10"),
        (PAIN_NRS, -1, "outside 0-10"),
        (PAIN_NRS, 3.5, "whole number"),
        (PAIN_NRS, True, "whole number"),
        (PAIN_NRS, {"pain": 3, "mood": 2}, "unknown item"),
        (MOAAS, 6, "6 is outside 0-5"),
        (CADSS6, 7, "give a score for each item"),
        (CADSS6, {**CADSS_OK, "cadss_22": 5}, "cadss_22: 5 is outside 0-4"),
        (CADSS6, {k: v for k, v in CADSS_OK.items() if k != "cadss_15"}, "missing answer.*cadss_15"),
        ("bprs", 3, "unknown assessment"),
    ],
)
def test_invalid_answers_say_what_is_wrong(kind: str, answers: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(kind, answers)  # type: ignore[arg-type]


def test_moaas_has_the_six_published_levels() -> None:
    assert len(MOAAS_LABELS) == 6
    assert MOAAS_LABELS[5].startswith("Responds readily to name spoken in normal tone")
    assert MOAAS_LABELS[4] == "Lethargic response to name spoken in normal tone"
    assert MOAAS_LABELS[0] == "Does not respond to painful trapezius squeeze"
    assert [validate(MOAAS, score) for score in range(6)] == [0, 1, 2, 3, 4, 5]


def test_cadss6_is_items_1_2_6_7_15_22_scored_0_to_24() -> None:
    scale = SCALES[CADSS6]
    assert [item.key for item in scale.items] == [
        "cadss_1",
        "cadss_2",
        "cadss_6",
        "cadss_7",
        "cadss_15",
        "cadss_22",
    ]
    assert (scale.low, scale.high) == (0, 24)
    assert validate(CADSS6, CADSS_OK) == 11
    assert validate(CADSS6, dict.fromkeys(CADSS_OK, 4)) == 24
    assert all("paraphrase" in item.text or "unverified" in item.text for item in scale.items)


# --- schedule ---------------------------------------------------------------------------------------------


def due(
    done: list[tuple[str, float]], now_min: float, dosing_start: float | None = T0
) -> list[tuple[str, str, str]]:
    return [
        (d.kind, d.state, d.label)
        for d in due_assessments(DEFAULT_SCHEDULE, dosing_start, done, T0 + now_min * MIN)
    ]


PRE = [(PAIN_NRS, T0 - 10 * MIN)]  # the pre-dose pain score, 10 min before dosing


def test_before_dosing_only_the_pre_dose_pain_score_is_due() -> None:
    result = due_assessments(DEFAULT_SCHEDULE, None, [], T0 - 20 * MIN)
    assert result == [Due(PAIN_NRS, None, "due", "Pain NRS before dosing")]
    assert due_assessments(DEFAULT_SCHEDULE, None, PRE, T0 - 5 * MIN) == []


def test_the_pre_dose_pain_score_becomes_overdue_once_dosing_has_started() -> None:
    assert due([], 4) == [(PAIN_NRS, "due", "Pain NRS before dosing")]
    assert due([], 5) == [(PAIN_NRS, "overdue", "Pain NRS before dosing")]
    assert due([(PAIN_NRS, T0 + 8 * MIN)], 9) == []  # recorded late: no longer listed


def test_nothing_is_listed_before_its_slot() -> None:
    assert due(PRE, 0) == []
    assert due(PRE, 14.9) == []


def test_due_at_the_slot_and_overdue_after_the_grace() -> None:
    assert due(PRE, 15) == [(MOAAS, "due", "MOAA/S at 15 min"), (CADSS6, "due", "CADSS-6 at 15 min")]
    assert due(PRE, 19.9) == [(MOAAS, "due", "MOAA/S at 15 min"), (CADSS6, "due", "CADSS-6 at 15 min")]
    assert due(PRE, 20) == [(MOAAS, "overdue", "MOAA/S at 15 min"), (CADSS6, "overdue", "CADSS-6 at 15 min")]
    slots = due_assessments(DEFAULT_SCHEDULE, T0, PRE, T0 + 20 * MIN)
    assert [d.due_at for d in slots] == [T0 + 15 * MIN, T0 + 15 * MIN]


def test_an_entry_up_to_the_grace_early_counts_for_the_slot() -> None:
    done = [*PRE, (MOAAS, T0 + 10 * MIN), (CADSS6, T0 + 9.9 * MIN)]
    assert due(done, 16) == [(CADSS6, "due", "CADSS-6 at 15 min")]  # 5.1 min early is too early


def test_an_entry_counts_until_the_next_slot() -> None:
    done = [*PRE, (MOAAS, T0 + 29.5 * MIN), (CADSS6, T0 + 29.5 * MIN)]
    assert due(done, 29.9) == []
    # ... and, done 30 s before the 30-min slot, it also counts for that one (within the grace)
    assert due(done, 31) == []


def test_a_missed_slot_gives_way_to_the_next() -> None:
    assert due(PRE, 31) == [(MOAAS, "due", "MOAA/S at 30 min"), (CADSS6, "due", "CADSS-6 at 30 min")]


def test_end_of_dosing_and_recovery() -> None:
    done = [*PRE, *((kind, T0 + m * MIN) for m in (15, 30, 45) for kind in (MOAAS, CADSS6))]
    assert due(done, 60) == [
        (PAIN_NRS, "due", "Pain NRS at end of dosing"),
        (MOAAS, "due", "MOAA/S at 60 min"),
        (CADSS6, "due", "CADSS-6 at 60 min"),
    ]
    # the last dosing slot closes one interval later; recovery MOAA/S starts; the pain score waits until done
    assert due(done, 76) == [
        (PAIN_NRS, "overdue", "Pain NRS at end of dosing"),
        (MOAAS, "due", "MOAA/S (recovery) at 75 min"),
    ]
    done += [(PAIN_NRS, T0 + 77 * MIN), (MOAAS, T0 + 77 * MIN)]
    assert due(done, 80) == []
    assert due(done, 95) == [(MOAAS, "overdue", "MOAA/S (recovery) at 90 min")]
    assert due(done, 244) == [(MOAAS, "due", "MOAA/S (recovery) at 240 min")]  # open-ended until discharge


def test_a_longer_dosing_window() -> None:
    rules = default_schedule(dosing_window_s=4 * 3600)
    result = due_assessments(rules, T0, PRE, T0 + 180 * MIN)
    assert [(d.kind, d.label) for d in result] == [
        (MOAAS, "MOAA/S at 180 min"),
        (CADSS6, "CADSS-6 at 180 min"),
    ]


def test_deterministic_sorted_by_slot_time_then_rule_order() -> None:
    rules = (
        ScheduleRule(CADSS6, 0, 30 * MIN, 30 * MIN, 300, "CADSS-6 once"),
        ScheduleRule(MOAAS, 10 * MIN, 0, 60 * MIN, 300),
        ScheduleRule(PAIN_NRS, 0, 25 * MIN, 25 * MIN, 300, "Pain NRS once"),
    )
    first = due_assessments(rules, T0, [], T0 + 31 * MIN)
    assert first == due_assessments(rules, T0, [], T0 + 31 * MIN)
    assert [(d.label, d.state) for d in first] == [
        ("Pain NRS once", "overdue"),
        ("CADSS-6 once", "due"),
        ("MOAA/S at 30 min", "due"),
    ]


def test_schedule_rule_validation() -> None:
    with pytest.raises(ValueError, match="unknown assessment"):
        ScheduleRule("gcs", 60, 0, 60, 0)
    with pytest.raises(ValueError, match="before from_s"):
        ScheduleRule(MOAAS, 60, 100, 50, 0)
    with pytest.raises(ValueError, match="negative"):
        ScheduleRule(MOAAS, -60, 0, 50, 0)
