"""Side effects named in the nurse's free-text notes, with negation, so a typed note can raise an alert.

`find_side_effects("Denies nausea but is dizzy, mildly agitated")` gives dizziness and agitation (mild).
It is a small NegEx/ConText-style matcher (Chapman et al. 2001, "A simple algorithm for identifying negated
findings"; Harkema et al. 2009, ConText): the note is split into tokens, known phrases (side-effect terms,
negation cues, severity words, scope breakers) are matched longest-first, and each cue covers the terms in
its scope. Pure Python, no I/O, deterministic; a 10 kB note takes a few milliseconds.

Why not a library: negspacy marks negated *entities*, so it needs a spaCy pipeline that finds them (its
README loads the downloadable `en_core_web_sm` model); medspacy runs on `spacy.blank("en")` without a
model, but brings spaCy with its compiled dependencies plus PyRuSH, pysbd and QuickUMLS (and pins spaCy
below 3.8 on Python 3.11) for notes of a few sentences -- and with either we would still write every
target phrase, severity rule and KAP-specific exception below ourselves.

How a note is read (decisions where the clinical meaning is open):

* Vocabulary: the synonyms and word forms in `_TERMS`, case-insensitive, British and American spellings,
  hyphenated or not ("light-headed", "light headed", "lightheaded"). A few common misspellings are listed
  explicitly ("nausia", "vomitted", "dizzyness", "headach", "disassociated"); there is no fuzzy matching, so
  other typos ("nasuea") are not found -- fuzzy matching would also hit real words ("dozy" for "dizzy").
  "N/V", "N&V" and "PONV" name both nausea and vomiting; "HA" and "CP" are too ambiguous to read.
  Anxiety, panic and tearfulness are *not* agitation (Short 2018 lists anxiety and dysphoria apart from
  agitation) and are not reported; nor is "other".
  Ketamine's own vocabulary is not a finding: "dissociative anaesthetic", "CADSS dissociation score",
  "emesis bag" and "confusion assessment" are skipped.
* Negation cues before a term ("no", "not", "denies", "without", "negative for", "free of", "absence of",
  "no signs of", "no longer", "nil", "isn't"...) cover the terms that follow, up to a breaker ("but",
  "however", "although", "except", "still", "then", "because"...), a sentence end (. ; ! ? newline), another
  cue, or five words without a term. Cues after a term ("resolved", "has settled", "subsided", "gone",
  "wore off", "absent", "not present", "Nausea: none", "Nausea - no", "nausea-free") cover the terms just
  before them, within three words. "Resolved" is only a post-cue: "resolved nausea" is reported.
* Lists: a negation covers a coordinated list ("no nausea, vomiting or dizziness"; "not dizzy or
  nauseous"). After a comma or "and", or with two terms side by side, the next term stays in scope only if
  it is the same part of speech as the previous one (noun with noun, adjective with adjective; words
  before the first term count as a noun, "denies pain, nausea") and not a finite verb. So "denies nausea,
  dizzy on standing" reports dizziness, "denies nausea, vomited twice" reports vomiting, and "not confused,
  mildly agitated" reports agitation (a severity word is not a list item). "Not confused, agitated" is
  read as a list (both negated): write "but" to mean otherwise. After a post-cue, "Nausea, now resolved"
  is reported (a comma before the only term is not crossed backwards).
* Not negations: "no change in", "not improving", "not resolved", "partially resolved", "no better",
  "not sure if", "cannot rule out" -- the symptom is still there and is reported. "Nausea improving",
  "nausea better" and "nausea improved" are reported (still present; the nurse decides). Hedged mentions
  ("? nausea", "possible nausea", "query vomiting") are reported: an alert is a prompt to look.
* "Not very dizzy", "not too nauseous", "not as agitated" are reported as mild, not negated.
* Not this patient, not now: history ("history of migraine", "hx", "PMH", "previous", "known", "last
  session", "at baseline"), another person ("mother had nausea", "family history of migraine") and
  hypotheticals ("call if dizzy", "monitor for nausea", "side effects include vomiting", "ondansetron PRN
  for nausea") are not reported. Their scope also ends at a comma that does not continue a list of terms
  ("ondansetron given prophylactically, nausea mild" reports nausea), at "now"/"today"/"currently", at the
  patient as subject ("patient", "pt", "she") and at reporting verbs ("mother says she is dizzy" is
  reported). "Last session" and "previously" count on either side of the term ("vomited last session");
  other time words ("dizzy yesterday") are not read, and such a mention is reported.
* Severity: a severity word just before the term ("severe headache", "severely agitated", "a little
  dizzy", "mild to moderate nausea" -> the higher) or just after it ("nausea, mild"; "headache (severe)";
  "agitation is marked"), or a 0-10 score after it ("headache 7/10": 1-3 mild, 4-6 moderate, 7-10 severe;
  "headache 0/10" negates). "Very mild" is mild: "very", "quite", "really", "extremely" only intensify a
  severity word after them. Counts and frequency ("vomited twice", "persistent") are not a severity:
  None. A severity word is not shared across a list ("severe nausea and vomiting": vomiting has None).
* One finding per effect: the first affirmed mention, with that mention's span and severity; a later
  mention of the same effect (even a worse one) adds nothing. A negated mention earlier in the note does
  not hide a later affirmed one ("No nausea at 10:00. Nauseous at 10:30." reports the second).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from monitor.model import SEVERITIES, SIDE_EFFECTS

__all__ = ["Finding", "find_side_effects", "highlight_spans"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One side effect the note affirms: what, how bad (if the note says), and where it is written."""

    effect: str  # one of model.SIDE_EFFECTS except "other"
    severity: str | None  # one of model.SEVERITIES, or None when the note does not say
    start: int  # note[start:end] is the words that named it
    end: int
    text: str


def find_side_effects(note: str) -> list[Finding]:
    """The side effects `note` affirms, in order of appearance, at most one per effect (the first)."""
    units = _units(note)
    not_affirmed = _not_affirmed(units)
    findings: list[Finding] = []
    seen: set[str] = set()
    for index, unit in enumerate(units):
        if unit.kind != "term" or index in not_affirmed:
            continue
        new = [effect for effect in unit.lex.effects if effect not in seen]
        if not new:
            continue
        severity = _severity(units, index)
        for effect in new:
            seen.add(effect)
            findings.append(Finding(effect, severity, unit.start, unit.end, note[unit.start : unit.end]))
    return findings


def highlight_spans(note: str) -> list[tuple[int, int, str]]:
    """(start, end, effect) of each finding, for highlighting the words on screen."""
    return [(finding.start, finding.end, finding.effect) for finding in find_side_effects(note)]


# --------------------------------------------------------------------------------------------------
# Vocabulary. Phrases are written lowercase; "{a|b|}" expands to each alternative (empty allowed);
# hyphens inside words are ignored when matching, so "light headed" also matches "light-headed".
# Part of speech decides how lists are read: n noun, a adjective or participle, v finite verb.

_TERMS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "nausea": (
        ("nausea{|s}", "n"),
        ("nauseousness", "n"),
        ("queasiness", "n"),
        ("nausia", "n"),
        ("nause{ous|ated|us}", "a"),
        ("{nausous|naseous|nauseos}", "a"),
        ("queasy", "a"),
        ("{feeling|feel} sick", "a"),
        ("{feels|felt} sick", "v"),
        ("sick to {|her|his|my|their|the} stomach", "a"),
    ),
    "vomiting": (
        ("{vomiting|vomitting|vomit|vomitus|emesis|emeses|retching|puking}", "n"),
        ("throwing up", "n"),
        ("being sick", "n"),
        ("dry heav{ing|es}", "n"),
        ("{vomited|vomitted|vomits|retched|puked}", "v"),
        ("{threw|throws|thrown} up", "v"),
        ("{was|been} sick", "v"),
    ),
    "dizziness": (
        ("{dizziness|dizzyness|diziness|dizzines|lightheadedness|vertigo|giddiness}", "n"),
        ("light headedness", "n"),
        ("{pre|near} syncope", "n"),
        ("presyncope", "n"),
        ("{room|room's} {|is |was }spinning", "n"),
        ("spinning room", "n"),
        ("{dizzy|dizzier|lightheaded|vertiginous|giddy|woozy|presyncopal}", "a"),
        ("light headed", "a"),
        ("{feeling|feel} faint", "a"),
        ("{feels|felt} faint", "v"),
    ),
    "confusion": (
        ("{confusion|disorientation|delirium}", "n"),
        ("{confused|disoriented|disorientated|delirious}", "a"),
    ),
    "agitation": (
        ("{agitation|restlessness|combativeness|aggression|thrashing}", "n"),
        ("emergence {reaction|reactions|delirium|phenomenon|phenomena|agitation}", "n"),
        ("{agitated|restless|combative|aggressive}", "a"),
    ),
    "dissociation": (
        ("{dissociation|disassociation}", "n"),
        ("{depersonali|dereali}{s|z}ation", "n"),
        ("out of body experience{|s}", "n"),
        ("{k hole|khole}", "n"),
        ("{dissociated|dissociative|dissociating|disassociated|disassociating}", "a"),
        ("{depersonali|dereali}{s|z}ed", "a"),
        ("out of {|her |his |my |their }body", "a"),
    ),
    "headache": (
        ("{headache|headaches|headach|migraine|migraines|cephalgia|cephalalgia}", "n"),
        ("head {ache|aches|pain}", "n"),
        ("{pounding|throbbing} head", "n"),
        ("head {pounding|hurting}", "n"),
        ("head {hurts|is hurting|is pounding}", "v"),
    ),
    "hypersalivation": (
        ("{hypersalivation|drooling|sialorrhea|sialorrhoea|ptyalism}", "n"),
        ("{excess|excessive|increased|copious} {saliva|salivation|secretions}", "n"),
        ("{hypersalivating|salivating}", "a"),
        ("{drooled|drools}", "v"),
    ),
    "chest_pain": (
        ("chest {|wall }pain{|s}", "n"),
        ("chest {tightness|pressure|discomfort|ache}", "n"),
        ("tight chest", "n"),
        ("{tightness|pressure|pain|discomfort} in {|the |her |his |my |their }chest", "n"),
        ("angina", "n"),
        ("chest {hurts|is hurting|feels tight|felt tight|is tight|was tight}", "v"),
    ),
}

_MULTI_TERMS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("{n/v|n&v|n+v|ponv}", ("nausea", "vomiting")),
)

#: words that look like a side effect but name something else (a drug class, a scale, a bag)
_NOT_TERMS: Final[tuple[str, ...]] = (
    "dissociative {anaesthetic|anesthetic|anaesthesia|anesthesia|agent|drug|dose|doses}",
    "dissociative states scale",
    "dissociation {scale|score|scores}",
    "confusion assessment",
    "{emesis|vomit|sick} {bag|bags|bowl|basin}",
    "migraineur",
)

# Cue classes: neg (negated), hist (historical), exp (someone else), hypo (hypothetical).
_PRE_CUES: Final[dict[str, tuple[str, ...]]] = {
    "neg": (
        "no",
        "not",
        "never",
        "neither",
        "without",
        "w/o",
        "deny",
        "denying",
        "{negative|neg} for",
        "free {of|from}",
        "absence of",
        "resolution of",
        "no {sign|signs|evidence|symptoms|complaint|complaints} of",
        "no c/o",
        "no {further|more|longer|ongoing|new|recurrence of}",
        "{is|was|are|were|does|do|did|has|have|had|wo}n't",
        "{isnt|wasnt|doesnt|dont|didnt|hasnt|havent}",
    ),
    "hist": (
        "{history|hx} of",
        "{hx|h/o|pmh|pmhx|previous|prior|known|chronic|usually|normally|typically}",
        "{past|family} {medical |}history{| of}",
        "{suffers|suffered} {from|with}",
    ),
    "exp": (
        "{mother|mum|mom|father|dad|parent|parents|sister|brother|sibling|husband|wife|partner|spouse|son"
        "|daughter|child|grandmother|grandfather|aunt|uncle|cousin|friend|relative|roommate}{|'s}",
        "family member{|s}",
        "{fhx|fh}",
        "{another|other} patient{|s}",
    ),
    "hypo": (
        "if",
        "unless",
        "should",
        "in case{| of}",
        "in the event of",
        "{monitor|monitoring|monitored|watch|watching|observe|observing|look out} for",
        "{risk|risks} {of|for}",
        "at risk of",
        "side effect{|s}",
        "{warned|educated|counselled|counseled|explained|discussed|advised}{| about| on| re}",
        "{prophylaxis|prophylactic|prophylactically|prn|prevent|prevention}",
        "{can|may|might|could} {cause|experience|feel|become|develop}",
    ),
}

_POST_CUES: Final[dict[str, tuple[str, ...]]] = {
    "neg": (
        "{resolved|settled|subsided|abated|ceased|stopped|cleared|disappeared|dissipated|gone|absent|free}",
        "{none|ruled out|went away|gone away|wore off|worn off}",
        "not {present|noted|seen|observed|reported|evident|apparent}",
        "not {an issue|a problem|a concern}",
        "no longer {present|an issue|a problem}",
    ),
    "hist": ("{at baseline|historically}",),
}

#: cover the terms on both sides: "last session: vomited", "vomited last session"
_BOTH_CUES: Final[dict[str, tuple[str, ...]]] = {
    "hist": ("{last|previous|prior} {session|time|infusion|treatment}", "{in the past|previously}"),
}

#: before a term they negate it ("denied nausea"); right after one, they negate that ("nausea: denied")
_DUAL_CUES: Final[tuple[str, ...]] = ("{denies|denied|nil|negative|neg}",)

#: contain a cue but do not negate: the symptom is still there
_PSEUDO: Final[tuple[str, ...]] = (
    "no {change|changes|improvement|relief|better|worse|difference}{| in| of}",
    "not {improved|improving|better|worse|only|just|certain|sure|clear}{| if| whether}",
    "{unsure|unclear|uncertain} {if|whether}",
    "without {relief|improvement|change}",
    "{not|not yet|not fully|not completely|not entirely|partially|partly|almost|nearly|mostly|largely}"
    " {resolved|settled|subsided|gone|stopped|ceased|cleared}",
    "{hasn't|has not|haven't|have not|isn't|is not} {resolved|settled|subsided|gone|stopped|ceased|cleared}",
    "{unresolved|yet to resolve|not resolving|not settling}",
    "{cannot|can't|can not|not} {rule|ruled} out",
    "{gone|went} to",
    "not free",
    "free text",
)

#: end every cue's scope
_BREAKERS: Final[tuple[str, ...]] = (
    "{but|however|although|though|except|yet|whereas|while|whilst|besides|still|instead|which|who}",
    "{so|because|as|since|therefore|hence|thus|then|after|until|when}",
    "{apart|aside} from",
    "other than",
    "except for",
    "due to",
)

#: also end the scope of history, someone else and hypotheticals: what follows is about the patient now
_CONTEXT_BREAKERS: Final[tuple[str, ...]] = (
    "{now|currently|presently|today|tonight}",
    "{at present|right now|this session|during session|on review}",
    "{patient|patient's|pt|pt's|client|he|she|they}",
    "{reports|reported|reporting|states|stated|says|said|notes|complains|complained|complaining|c/o}",
)

_SEVERITY_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "mild": (
        "{mild|mildly|slight|slightly|minor|minimal|minimally|somewhat|marginally|barely|faint|faintly}",
        "{a little|a little bit|little bit|a bit|bit|a touch|low grade|very mild|very slight}",
        "not {very|too|that|overly|particularly|severely|significantly|as}",
    ),
    "moderate": ("{moderate|moderately|quite|fairly}",),
    "severe": (
        "{severe|severely|marked|markedly|extreme|extremely|intense|intensely|very|really|significant}",
        "{significantly|profound|profoundly|considerable|considerably|violent|violently|excruciating}",
        "{crushing|unbearable|worst|terrible|terribly|awful|awfully|heavy|heavily|deep|deeply|profuse}",
        "{profusely|uncontrollable|uncontrollably|uncontrolled}",
    ),
}

#: intensify the severity word after them ("very mild" is mild); on their own they are severity words
_INTENSIFIERS: Final[frozenset[str]] = frozenset({"very", "really", "quite", "extremely", "fairly"})

_WORD_KINDS: Final[dict[str, str]] = {"and": "and", "plus": "and", "or": "or", "nor": "or"}
_PUNCT_KINDS: Final[dict[str, str]] = {
    **dict.fromkeys(".;!?…\n", "stop"),
    ",": "comma",
    **dict.fromkeys(":-=–—", "sep"),
    "/": "or",
    **dict.fromkeys("&+", "and"),
}

#: skipped when looking past a comma or "and" for the next list item
_LIST_GLUE: Final[frozenset[str]] = frozenset({"any", "also", "either", "even"})
#: may stand between a severity word and its term: "feeling a little dizzy", "mild to moderate nausea"
_FILLER_BEFORE: Final[frozenset[str]] = frozenset(
    {"to", "and", "a", "an", "of", "feeling", "feels", "felt", "feel", "is", "was", "are", "were", "been"}
    | {"being", "become", "became", "becoming", "getting", "got", "looks", "appears", "seems", "now", "still"}
)
#: may stand between a term and its severity word or score: "nausea is now mild", "headache rated 7/10"
_FILLER_AFTER: Final[frozenset[str]] = frozenset(
    {"is", "was", "now", "remains", "remained", "still", "currently", "rated", "at", "became", "becoming"}
    | {"getting", "has", "been", "described", "as", "score", "scored", "nrs", "vas", "pain", "of", "and"}
)

_PRE_WINDOW: Final = 5  # words a pre-cue reaches past without meeting a term (NegEx uses five)
_POST_WINDOW: Final = 3  # words between a term and the post-cue that covers it
_SEVERITY_REACH: Final = 4  # units searched either side of a term for its severity word

_TOKEN: Final = re.compile(
    r"(?P<score>\d+(?:\.\d+)?\s*/\s*10(?!\d)(?!\.\d))"
    r"|\d+(?:[.,:]\d+)*"
    r"|[^\W\d_]+(?:['’][^\W\d_]+)*"
    r"|\n"
    r"|[^\w\s]"
)


# --------------------------------------------------------------------------------------------------
# Lexicon: every phrase as a tuple of normalised tokens, looked up by its first token.


@dataclass(frozen=True, slots=True)
class _Lex:
    kind: str  # term, pre, post, dual, both, pseudo, break, ctxbreak, mod
    effects: tuple[str, ...] = ()  # term
    pos: str = ""  # term: n, a, v
    value: str = ""  # pre/post/dual: cue class; mod: severity


@dataclass(frozen=True, slots=True)
class _Unit:
    kind: str  # a _Lex kind, or word, score, stop, comma, sep, or, and, punct
    start: int
    end: int
    norm: str  # lowercase tokens, space-separated
    lex: _Lex


_NO_LEX: Final = _Lex("word")


def _expand(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [text for alternative in match.group(1).split("|") for text in _expand(head + alternative + tail)]


def _raw_tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, lowercase token); a hyphen joining two words ("light-headed") is dropped."""
    found = [
        (m.start(), m.end(), "#score" if m.group("score") else m.group().lower().replace("’", "'"))
        for m in _TOKEN.finditer(text)
    ]
    tokens = []
    for i, (start, end, token) in enumerate(found):
        if (
            token == "-"
            and 0 < i < len(found) - 1
            and found[i - 1][1] == start
            and found[i + 1][0] == end
            and found[i - 1][2][0].isalnum()
            and found[i + 1][2][0].isalnum()
        ):
            continue
        tokens.append((start, end, token))
    return tokens


def _build_lexicon() -> dict[str, list[tuple[tuple[str, ...], _Lex]]]:
    entries: dict[tuple[str, ...], _Lex] = {}

    def add(patterns: tuple[str, ...], lex: _Lex) -> None:
        for pattern in patterns:
            for phrase in _expand(pattern):
                key = tuple(token for _, _, token in _raw_tokens(phrase))
                if key in entries and entries[key] != lex:
                    raise ValueError(f"phrase {phrase!r} is both {entries[key]} and {lex}")
                entries[key] = lex

    for effect, phrases in _TERMS.items():
        for pattern, pos in phrases:
            add((pattern,), _Lex("term", (effect,), pos))
    for pattern, effects in _MULTI_TERMS:
        add((pattern,), _Lex("term", effects, "n"))
    add(_NOT_TERMS, _Lex("pseudo"))
    for cue, patterns in _PRE_CUES.items():
        add(patterns, _Lex("pre", value=cue))
    for cue, patterns in _POST_CUES.items():
        add(patterns, _Lex("post", value=cue))
    for cue, patterns in _BOTH_CUES.items():
        add(patterns, _Lex("both", value=cue))
    add(_DUAL_CUES, _Lex("dual", value="neg"))
    add(_PSEUDO, _Lex("pseudo"))
    add(_BREAKERS, _Lex("break"))
    add(_CONTEXT_BREAKERS, _Lex("ctxbreak"))
    for severity, patterns in _SEVERITY_WORDS.items():
        add(patterns, _Lex("mod", value=severity))

    by_first: dict[str, list[tuple[tuple[str, ...], _Lex]]] = {}
    for key, lex in entries.items():
        by_first.setdefault(key[0], []).append((key, lex))
    for candidates in by_first.values():
        candidates.sort(key=lambda entry: -len(entry[0]))
    return by_first


_LEXICON: Final = _build_lexicon()
assert set(_TERMS) == set(SIDE_EFFECTS) - {"other"}
assert set(_SEVERITY_WORDS) == set(SEVERITIES)


def _score_severity(text: str) -> str | None:
    """The band of a 0-10 rating: "none" for 0, None when it is no rating."""
    value = float(text.split("/")[0])
    if value == 0:
        return "none"
    if value > 10:
        return None
    return "mild" if value < 4 else "moderate" if value < 7 else "severe"


def _units(note: str) -> list[_Unit]:
    """The note as a sequence of matched phrases and single tokens, longest phrase first."""
    tokens = _raw_tokens(note)
    norms = [token for _, _, token in tokens]
    units: list[_Unit] = []
    i = 0
    while i < len(tokens):
        start, end, token = tokens[i]
        for key, lex in _LEXICON.get(token, ()):
            if tuple(norms[i : i + len(key)]) == key:
                units.append(_Unit(lex.kind, start, tokens[i + len(key) - 1][1], " ".join(key), lex))
                i += len(key)
                break
        else:
            if token == "#score":
                severity = _score_severity(note[start:end])
                if severity == "none":  # "headache 0/10" says there is none
                    units.append(_Unit("post", start, end, token, _Lex("post", value="neg")))
                else:
                    units.append(_Unit("score", start, end, token, _Lex("mod", value=severity or "")))
            else:
                kind = _WORD_KINDS.get(token) or _PUNCT_KINDS.get(token)
                if kind is None:
                    kind = "word" if token[0].isalnum() else "punct"
                units.append(_Unit(kind, start, end, token, _NO_LEX))
            i += 1
    return units


# --------------------------------------------------------------------------------------------------
# Scopes


def _joins(previous_pos: str, next_pos: str) -> bool:
    """Whether a term continues a list after a comma, "and" or side by side (see the module docstring)."""
    return next_pos != "v" and previous_pos in ("", next_pos)


def _role(units: list[_Unit], i: int) -> str:
    """pre, post, both or "" for the unit at i: dual cues and a bare "no" after "Nausea:" face backwards."""
    unit = units[i]
    if unit.kind not in ("pre", "post", "dual", "both"):
        return ""
    j = i - 1
    while j >= 0 and units[j].kind == "sep":
        j -= 1
    after_term = j >= 0 and units[j].kind == "term"
    if unit.kind == "dual":
        return "post" if after_term else "pre"
    if unit.kind == "pre" and unit.norm == "no" and after_term and j < i - 1:
        at_end = i + 1 == len(units) or units[i + 1].kind in ("stop", "comma")
        return "post" if at_end else "pre"
    return unit.kind


def _next_item(units: list[_Unit], j: int, step: int) -> int | None:
    """Index of the next unit past list glue ("and", "or", "any", brackets) in direction `step`."""
    while 0 <= j < len(units):
        unit = units[j]
        if not (unit.kind in ("and", "or", "punct") or (unit.kind == "word" and unit.norm in _LIST_GLUE)):
            return j
        j += step
    return None


def _scope(units: list[_Unit], cue_index: int, cue: str, step: int) -> list[int]:
    """Indices of the terms a cue covers, walking forwards (step 1) or backwards (step -1)."""
    covered: list[int] = []
    window = _PRE_WINDOW if step > 0 else _POST_WINDOW
    about_context = cue != "neg"
    last_pos = ""  # part of speech of the last covered term
    joined = False  # an "or" since the last covered term
    words = 0
    j = cue_index + step
    while 0 <= j < len(units):
        unit = units[j]
        kind = unit.kind
        if kind == "term":
            if covered and not joined and not (words == 0 and _joins(last_pos, unit.lex.pos)):
                break
            covered.append(j)
            last_pos, joined, words = unit.lex.pos, False, 0
        elif kind in ("stop", "break", "pre", "post", "dual", "both") or (
            about_context and kind == "ctxbreak"
        ):
            break
        elif kind in ("comma", "and"):
            if not covered and (step < 0 or (about_context and kind == "comma")):
                # "vomiting and infusion stopped", "ondansetron given prophylactically, nausea mild"
                break
            item = _next_item(units, j + step, step)
            # before the first term, the words the cue covered are taken as a noun: "denies pain, nausea"
            if item is None or units[item].kind != "term" or not _joins(last_pos or "n", units[item].lex.pos):
                break
            words = 0
            j = item
            continue
        elif kind == "or":
            joined = True
        elif kind not in ("sep", "punct"):
            words += 1
            if words > window:
                break
        j += step
    return covered


def _not_affirmed(units: list[_Unit]) -> set[int]:
    """Indices of term units that some cue negates or places in the past, in someone else or in an if."""
    covered: set[int] = set()
    for i, unit in enumerate(units):
        role = _role(units, i)
        if role in ("pre", "both"):
            covered.update(_scope(units, i, unit.lex.value, 1))
        if role in ("post", "both"):
            covered.update(_scope(units, i, unit.lex.value, -1))
    return covered


# --------------------------------------------------------------------------------------------------
# Severity


def _highest(units: list[_Unit], indices: list[int]) -> str | None:
    """The most severe of the severity words at `indices`, an intensifier before another one ignored."""
    ranks = [
        SEVERITIES.index(units[k].lex.value)
        for k in indices
        if units[k].lex.value
        and not (units[k].norm in _INTENSIFIERS and k + 1 < len(units) and units[k + 1].kind == "mod")
    ]
    return SEVERITIES[max(ranks)] if ranks else None


def _severity(units: list[_Unit], i: int) -> str | None:
    before: list[int] = []
    j = i - 1
    while j >= 0 and i - j <= _SEVERITY_REACH:
        unit = units[j]
        if unit.kind == "mod":
            before.append(j)
        elif not (unit.norm in _FILLER_BEFORE or (unit.kind == "comma" and before)):
            break
        j -= 1
    if before:
        return _highest(units, before)

    j = i + 1
    while j < len(units) and j - i <= _SEVERITY_REACH:
        unit = units[j]
        if unit.kind == "score":
            return unit.lex.value or None
        if unit.kind == "mod":
            run = [j]
            while j + 1 < len(units) and (units[j + 1].kind == "mod" or units[j + 1].norm == "to"):
                j += 1
                if units[j].kind == "mod":
                    run.append(j)
            owner = units[j + 1] if j + 1 < len(units) else None
            return None if owner is not None and owner.kind == "term" else _highest(units, run)
        if not (unit.kind in ("sep", "punct", "comma") or unit.norm in _FILLER_AFTER):
            break
        j += 1
    return None
