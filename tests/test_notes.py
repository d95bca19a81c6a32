"""Side effects in nurse notes: what a nurse writes, and what must (and must not) raise an alert."""

from __future__ import annotations

import time

import pytest

from monitor.model import SEVERITIES, SIDE_EFFECTS
from monitor.notes import Finding, find_side_effects, highlight_spans

# (note, the exact set of (effect, severity) the note affirms)
CASES: list[tuple[str, set[tuple[str, str | None]]]] = [
    # --- the examples of the brief
    ("denies nausea", set()),
    ("no confusion", set()),
    ("patient confused and nauseous", {("confusion", None), ("nausea", None)}),
    ("denies nausea but is dizzy", {("dizziness", None)}),
    ("no nausea or vomiting", set()),
    ("nausea resolved", set()),
    ("not confused, mildly agitated", {("agitation", "mild")}),
    ("? nausea", {("nausea", None)}),
    ("possible nausea", {("nausea", None)}),
    ("no longer nauseous", set()),
    ("nausea improving", {("nausea", None)}),
    ("severe headache", {("headache", "severe")}),
    ("vomited twice", {("vomiting", None)}),
    ("history of migraine", set()),
    ("mother had nausea", set()),
    # --- synonyms and word forms, case, British and American spelling
    ("Pt NAUSEATED, feels sick", {("nausea", None)}),
    ("Queasy.", {("nausea", None)}),
    ("sick to her stomach", {("nausea", None)}),
    ("Threw up into the bowl", {("vomiting", None)}),
    ("emesis x1, small volume", {("vomiting", None)}),
    ("Light-headed on sitting up", {("dizziness", None)}),
    ("says the room is spinning", {("dizziness", None)}),
    ("Disorientated to time", {("confusion", None)}),
    ("emergence reaction, combative", {("agitation", None)}),
    ("Depersonalisation and derealization described", {("dissociation", None)}),
    ("out of body experience, calm", {("dissociation", None)}),
    ("head hurts", {("headache", None)}),
    ("drooling ++", {("hypersalivation", None)}),
    ("c/o chest tightness", {("chest_pain", None)}),
    ("pain in her chest radiating to L arm", {("chest_pain", None)}),
    ("N/V", {("nausea", None), ("vomiting", None)}),
    # --- typos: a few common ones tolerated, no fuzzy matching
    ("dizzyness and nausia", {("dizziness", None), ("nausea", None)}),
    ("vomitted once", {("vomiting", None)}),
    ("nasuea", set()),
    # --- negation a naive keyword search gets wrong
    ("No nausea, vomiting or dizziness.", set()),
    ("Denies: headache, chest pain, N/V", set()),
    ("Neither dizzy nor nauseous", set()),
    ("Pt has not vomited", set()),
    ("Without chest pain", set()),
    ("Negative for confusion", set()),
    ("No signs of agitation or hypersalivation", set()),
    ("free of headache", set()),
    ("Nil nausea", set()),
    ("Nausea: nil. Vomiting: denied.", set()),
    ("Headache - none", set()),
    ("nausea and vomiting have resolved", set()),
    ("Dissociation wore off by 11:10", set()),
    ("Nausea not present", set()),
    ("nausea-free", set()),
    ("isn't dizzy", set()),
    ("Nausea, vomiting resolved", set()),
    ("Denies pain, nausea or dizziness", set()),
    ("Headache: 0/10", set()),
    ("no n/v", set()),
    ("Never lost touch with surroundings, no dissociation", set()),
    # --- negation must stop where the note moves on
    ("No nausea; vomited x2", {("vomiting", None)}),
    ("Denies nausea, vomited x2", {("vomiting", None)}),
    ("Denies nausea, dizzy on standing", {("dizziness", None)}),
    ("No headache. Nauseous", {("nausea", None)}),
    ("not nauseous however very agitated", {("agitation", "severe")}),
    ("dizzy but nausea has settled", {("dizziness", None)}),
    ("No vomiting, still nauseous", {("nausea", None)}),
    ("No confusion and is restless", {("agitation", None)}),
    ("Not in distress, nauseous", {("nausea", None)}),
    ("denies nausea and now dizzy", {("dizziness", None)}),
    ("Not confused, agitated", set()),  # documented: read as a list
    ("Nausea, now resolved", {("nausea", None)}),  # documented: the comma is not crossed backwards
    ("Vomiting and infusion stopped", {("vomiting", None)}),
    ("nothing to report apart from headache", {("headache", None)}),
    ("no symptoms other than mild nausea", {("nausea", "mild")}),
    ("No nausea at 10:00.\nNauseous at 10:30.", {("nausea", None)}),
    # --- not negations
    ("no change in nausea", {("nausea", None)}),
    ("headache not resolved", {("headache", None)}),
    ("nausea partially resolved", {("nausea", None)}),
    ("nausea no better after ondansetron", {("nausea", None)}),
    ("not sure if dissociating", {("dissociation", None)}),
    ("not very dizzy", {("dizziness", "mild")}),
    ("ketamine is a dissociative anaesthetic", set()),
    ("CADSS dissociation score 12", set()),
    ("emesis bag given", set()),
    ("stopped vomiting", {("vomiting", None)}),
    ("vomiting so infusion stopped", {("vomiting", None)}),
    # --- history, someone else, hypotheticals
    ("family history of migraine", set()),
    ("Hx vertigo, now dizzy", {("dizziness", None)}),
    ("Husband says she is dizzy", {("dizziness", None)}),
    ("mother's migraine", set()),
    ("Advised to call if dizzy or nauseous", set()),
    ("Explained side effects: nausea, dizziness, dissociation", set()),
    ("Ondansetron PRN for nausea", set()),
    ("ondansetron given prophylactically, nausea mild", {("nausea", "mild")}),
    ("history of migraine, vertigo and vomiting", set()),
    ("monitor for chest pain", set()),
    ("dissociated heavily last session", set()),
    ("anxious, not agitated", set()),
    ("panic attack at 10:20", set()),
    # --- severity
    ("mildly nauseous", {("nausea", "mild")}),
    ("a little dizzy", {("dizziness", "mild")}),
    ("slight headache", {("headache", "mild")}),
    ("Moderate nausea", {("nausea", "moderate")}),
    ("mild to moderate headache", {("headache", "moderate")}),
    ("very mild nausea", {("nausea", "mild")}),
    ("severely agitated", {("agitation", "severe")}),
    ("marked dissociation", {("dissociation", "severe")}),
    ("extremely confused", {("confusion", "severe")}),
    ("significant hypersalivation", {("hypersalivation", "severe")}),
    ("crushing chest pain", {("chest_pain", "severe")}),
    ("nausea is mild", {("nausea", "mild")}),
    ("headache (moderate)", {("headache", "moderate")}),
    ("Headache 3/10.", {("headache", "mild")}),
    ("headache, 8 / 10", {("headache", "severe")}),
    ("mild nausea, severe headache", {("nausea", "mild"), ("headache", "severe")}),
    ("nausea, mild headache", {("nausea", None), ("headache", "mild")}),
    ("severe nausea and vomiting", {("nausea", "severe"), ("vomiting", None)}),
    (
        "dizzy, mildly confused and quite restless",
        {("dizziness", None), ("confusion", "mild"), ("agitation", "moderate")},
    ),
    # --- whole notes
    ("", set()),
    ("   \n  ", set()),
    ("BP 142/88, SpO2 97 %, comfortable.", set()),
    (
        "10:40 Pt reports mild nausea, no vomiting. Denies headache or chest pain. Appears dissociated, "
        "calm, responding to voice. Mother at bedside.",
        {("nausea", "mild"), ("dissociation", None)},
    ),
    (
        "Restless and drooling; suctioned. Not confused. Dizziness resolved after lying flat.",
        {("agitation", None), ("hypersalivation", None)},
    ),
]


@pytest.mark.parametrize(("note", "expected"), CASES, ids=[note[:40] or "empty" for note, _ in CASES])
def test_finds_exactly_these(note: str, expected: set[tuple[str, str | None]]) -> None:
    findings = find_side_effects(note)
    assert {(f.effect, f.severity) for f in findings} == expected
    assert len(findings) == len(expected)


def test_the_table_is_large_and_well_formed() -> None:
    assert len(CASES) >= 40
    effects = set(SIDE_EFFECTS) - {"other"}
    for _, expected in CASES:
        assert all(effect in effects and severity in (*SEVERITIES, None) for effect, severity in expected)
    named = {effect for _, expected in CASES for effect, _ in expected}
    assert named == effects


def test_findings_in_order_of_appearance_and_span_is_the_words() -> None:
    note = "Headache. Later VERY dizzy and light-headed, threw up x1"
    assert find_side_effects(note) == [
        Finding("headache", None, 0, 8, "Headache"),
        Finding("dizziness", "severe", 21, 26, "dizzy"),
        Finding("vomiting", None, 45, 53, "threw up"),
    ]


def test_first_affirmed_mention_wins() -> None:
    note = "No nausea at first. Mild nausea at 10:10, severe nausea at 10:30."
    [finding] = find_side_effects(note)
    assert (finding.severity, finding.start) == ("mild", note.index("nausea at 10:10"))


def test_one_phrase_can_name_two_effects() -> None:
    note = "Pt c/o n&v"
    assert highlight_spans(note) == [(7, 10, "nausea"), (7, 10, "vomiting")]


@pytest.mark.parametrize(
    ("note", "words"),
    [
        ("Denies nausea but is LIGHT-HEADED.", ["LIGHT-HEADED"]),
        ("room's spinning; pain in the chest", ["room's spinning", "pain in the chest"]),
        ("Emergence   delirium, sick to stomach", ["Emergence   delirium", "sick to stomach"]),
        ("Naïve patient (café) – dizzy, ça va", ["dizzy"]),
        ("k-hole, drooled", ["k-hole", "drooled"]),
    ],
)
def test_highlight_spans_give_the_exact_words(note: str, words: list[str]) -> None:
    spans = highlight_spans(note)
    assert [note[start:end] for start, end, _ in spans] == words
    assert [(f.start, f.end, f.effect) for f in find_side_effects(note)] == spans
    assert all(f.text == note[f.start : f.end] for f in find_side_effects(note))


def test_ten_kilobyte_note_is_fast() -> None:
    sentence = (
        "Pt denies nausea, vomiting or chest pain; mildly dizzy on standing, history of migraine, "
        "mother had vertigo. BP stable at 10:30, calm and talking. "
    )
    note = sentence * (10_240 // len(sentence) + 1)
    assert len(note) >= 10_240
    find_side_effects(note)  # warm-up
    started = time.perf_counter()
    findings = find_side_effects(note)
    elapsed = time.perf_counter() - started
    assert [(f.effect, f.severity) for f in findings] == [("dizziness", "mild")]
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms"


def test_deterministic_and_pure() -> None:
    note = "Not confused, mildly agitated. ? nausea. Hx migraine."
    assert find_side_effects(note) == find_side_effects(note) == find_side_effects(str(note))
