"""Sessions listed, exported (CSV, Parquet, JSON lines, HTML) and imported, from real SQLite files through
the real `kap-monitor` entry point.

The session is recorded in simulated time by simulators.recorded_session (scripted desaturations, pleth
blocks, cuff, pump, nurse's events, and the alarm engine run as the core runs it), then ended by the nurse.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from monitor import mdc
from monitor.audit import AuditLog
from monitor.cli import main
from monitor.export import export_filename, export_session
from monitor.model import ClinicalEvent
from monitor.store import EventLog
from simulators.recorded_session import Recorded, record_session

KAP = [sys.executable, "-m", "monitor.cli"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recorded]:
    """A 26-minute session with two desaturations and a note, ended by the nurse."""
    db = tmp_path_factory.mktemp("export") / "kap.sqlite"
    log = EventLog(db)
    rec = record_session(log, duration_s=26 * 60)
    end = ClinicalEvent(
        rec.site, rec.room, rec.ended_at, "session_end", "RN Ana", "end-1", data={"summary": {"mg": 35.0}}
    )
    log.append([end], rec.ended_at + 0.02)
    log.close()
    return db, rec


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KAP, *args], capture_output=True, text=True, timeout=120)


def export(db: Path, session_id: int, fmt: str, output: Path) -> None:
    out = run(
        "export", "--db", str(db), "--session", str(session_id), "--format", fmt, "--output", str(output)
    )
    assert out.returncode == 0, out.stderr


def test_sessions_lists_every_session_with_patient_code_and_alarm_count(recorded, capsys) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    alarms = {t.id for t in EventLog(db).alarm_log(rec.session_id)}
    assert len(alarms) >= 2, "the scripted desaturations raised alarms"
    out = run("sessions", "--db", str(db))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "SITE", "ROOM", "START"]
    row = next(line.split() for line in lines if line.split()[0] == str(rec.session_id))
    assert row[2] == rec.room and "K-4242" in row and row[-1] == str(len(alarms))
    assert "ketamine" in row and "iv-infusion" in row
    recording = next(
        line for line in lines[1:] if line.split()[0] != str(rec.session_id) and "times" not in line
    )
    assert recording.split()[-1] == "0" and " - " in recording, "the room's recording before the patient"


def test_a_missing_or_foreign_database_is_refused_and_nothing_is_created(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere" / "kap.sqlite"
    assert main(["sessions", "--db", str(missing)]) == 2
    assert "no such database" in capsys.readouterr().err
    assert main(["export", "--db", str(missing), "--session", "1", "--format", "csv"]) == 2
    assert main(["whatif", "--db", str(missing), "--session", "1"]) == 2
    assert not missing.parent.exists(), "nothing was created"
    foreign = tmp_path / "notes.sqlite"
    foreign.write_bytes(b"this is not sqlite\n" * 10)
    assert main(["sessions", "--db", str(foreign)]) == 2
    assert "not a KAP Monitor database" in capsys.readouterr().err
    assert foreign.read_bytes() == b"this is not sqlite\n" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


def test_csv_and_parquet_hold_one_row_per_observation_without_waveforms(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    csv_file, parquet_file = tmp_path / "s.csv", tmp_path / "s.parquet"
    for fmt, file in (("csv", csv_file), ("parquet", parquet_file)):
        export(db, rec.session_id, fmt, file)
    from_parquet = pd.read_parquet(parquet_file)
    from_csv = pd.read_csv(csv_file)
    log = EventLog(db)
    stored = [
        e for _, e in log.log(rec.site, rec.room, types=("obs",), session_id=rec.session_id) if not e.samples
    ]
    assert len(from_parquet) == len(from_csv) == len(stored) > 1000
    assert mdc.PLETH.code not in set(from_parquet["mdc_code"]), "waveform blocks stay in the jsonl"
    assert str(from_parquet["time_utc"].dt.tz) == "UTC"
    spo2 = from_parquet[from_parquet["metric"] == "MDC_PULS_OXIM_SAT_O2"]
    assert spo2["value"].tolist() == [o.value for o in stored if o.code == mdc.SPO2.code]
    assert spo2["value"].min() < 88, "the desaturation is in the table"
    assert set(spo2["unit"]) == {"%"} and set(spo2["label"]) == {"SpO2"} and spo2["valid"].all()
    first = stored[0]
    assert from_parquet["time_utc"].iloc[0] == pd.Timestamp(first.ts, unit="s", tz="UTC")
    assert from_csv["time_utc"].iloc[0].endswith("Z")
    assert pd.Timestamp(from_csv["time_utc"].iloc[0]) == from_parquet["time_utc"].iloc[0]
    assert from_csv["seq"].tolist() == from_parquet["seq"].tolist() == [o.seq for o in stored]
    systolic = from_csv[from_csv["mdc_code"] == mdc.NIBP_SYS.code]
    assert len(systolic) == 5 and set(systolic["device"]) == {"nibp"}


def test_the_html_report_opens_offline_with_its_figures_and_the_session(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    report = tmp_path / "report.html"
    export(db, rec.session_id, "html", report)
    html = report.read_text()
    assert "<script src" not in html and 'src="http' not in html, "no external script"
    assert len(html) > 3_000_000, "plotly.js itself is inlined"
    call = html.split("Plotly.newPlot(")[1]
    figure, _ = json.JSONDecoder().raw_decode(call.split(",", 1)[1].strip())
    names = {trace.get("name") for trace in figure}
    assert {
        "SpO2",
        "Systolic",
        "ketamine (clements, estimate)",
        "ketamine (domino, estimate)",
        "alarms",
    } <= names
    assert "KAP session report — K-4242" in html
    for section in ("Doses", "Discharge check", "Alarms", "Notes and side effects", "Assessments"):
        assert f"<h2>{section}" in html
    assert "spo2_very_low" in html and "patient nauseous, denies headache" in html
    assert "side_effect:nausea (medium)" in html, "the note's alert is shown beside it"
    assert "ESTIMATE" in html and "pain_nrs" in html and "moaas" in html


def test_export_session_is_what_the_cli_writes_and_names_no_patient(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    log = EventLog(db)
    name = export_filename(log, rec.session_id, "csv")
    assert name == f"kap-session-{rec.session_id}-{rec.room}-20261124-1420.csv" and "K-4242" not in name
    out = subprocess.run(
        [*KAP, "export", "--db", str(db), "--session", str(rec.session_id), "--format", "csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / name).read_bytes() == export_session(log, rec.session_id, "csv")
    assert main(["export", "--db", str(db), "--session", "999", "--format", "csv"]) == 2
    # patient data left the system: the audit trail says who took which session, and how
    exports = [e for e in AuditLog(db).entries() if e.action == "session_export"]
    assert exports and exports[-1].user.startswith("cli:")
    assert (exports[-1].room, exports[-1].client) == (rec.room, "local")
    assert exports[-1].detail == f"session {rec.session_id} as csv (command line)"


def test_jsonl_round_trip_is_byte_identical_and_importing_twice_adds_nothing(
    recorded, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    site_b = tmp_path / "site-b.sqlite"
    export(db, rec.session_id, "jsonl", first)
    lines = first.read_bytes().splitlines()
    source = EventLog(db)
    rows = list(source.raw_events(rec.session_id))
    assert len(lines) == len(rows) + 1, "a header, then every event of the session"
    types = {json.loads(line)["type"] for line in lines}
    assert types == {"session", "obs", "status", "clinical", "alarm"}
    assert any("samples" in json.loads(line).get("body", {}) for line in lines[1:]), "waveforms kept"

    imported = run("import", "--db", str(site_b), str(first))
    assert imported.returncode == 0, imported.stderr
    assert (
        f"imported {len(rows)} events in 1 session(s), 0 duplicates skipped, 0 line(s) rejected"
        in imported.stdout
    )
    target = EventLog(site_b)
    [moved] = target.session_records()
    assert moved.patient_code == "K-4242" and moved.ended_at == rec.ended_at and moved.alarms > 0
    export(site_b, moved.id, "jsonl", second)
    assert second.read_bytes() == first.read_bytes()
    assert target.alarm_log(moved.id) == source.alarm_log(rec.session_id)

    again = run("import", "--db", str(site_b), str(first))
    assert again.returncode == 0
    assert f"imported 0 events in 1 session(s), {len(rows)} duplicates skipped" in again.stdout
    assert len(list(target.raw_events(moved.id))) == len(rows)
    assert len(target.session_records()) == 1


def test_malformed_lines_are_reported_by_number_and_the_good_lines_kept(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    lines = export_session(EventLog(db), rec.session_id, "jsonl").decode().splitlines()
    other_room = json.loads(lines[20])
    other_room["room"] = "room9"
    bad_value = json.loads(lines[30])
    assert bad_value["type"] == "obs"
    bad_value["value"] = "ninety"
    lines[9] = lines[9][: len(lines[9]) // 2]  # cut short
    lines[20] = json.dumps(other_room)
    lines[30] = json.dumps(bad_value)
    lines[40] = '{"type": "gossip", "site": "clinic", "room": "replay1"}'
    start = next(i for i, line in enumerate(lines) if '"session_start"' in line)
    named = json.loads(lines[start])
    named["body"]["data"]["patient_code"] = "Jane Doe"
    lines[start] = json.dumps(named)
    stray = json.loads(lines[50])
    stray["body"]["home_address"] = "12 High Street"
    lines[50] = json.dumps(stray)
    file = tmp_path / "damaged.jsonl"
    file.write_text("\n".join(lines) + "\n")
    target = tmp_path / "kap.sqlite"
    out = run("import", "--db", str(target), str(file))
    assert out.returncode == 1, "something was rejected"
    rejected = [line for line in out.stderr.splitlines() if ": rejected: " in line]
    reasons = {int(line.split(":")[1]): line.split(": rejected: ")[1] for line in rejected}
    assert sorted(reasons) == sorted([10, 21, 31, 41, 51, start + 1])
    assert "not JSON" in reasons[10] and "room9" in reasons[21] and "$.value" in reasons[31]
    assert "gossip" in reasons[41]
    assert "home_address" in reasons[51], "no stray data slips into the log"
    assert "never a name" in reasons[start + 1]
    good = len(lines) - 1 - 6
    assert f"imported {good} events in 1 session(s), 0 duplicates skipped, 6 line(s) rejected" in out.stdout
    [session] = EventLog(target).session_records()
    assert len(list(EventLog(target).raw_events(session.id))) == good


def test_an_open_session_imported_elsewhere_is_closed_there_but_not_at_home(tmp_path: Path) -> None:
    home = tmp_path / "home.sqlite"
    log = EventLog(home)
    rec = record_session(log, duration_s=120, pleth=False, room="room2")
    exported = export_session(log, rec.session_id, "jsonl")
    assert json.loads(exported.splitlines()[0])["ended_at"] is None
    elsewhere = EventLog(tmp_path / "elsewhere.sqlite")
    from monitor.session_archive import import_jsonl

    report = import_jsonl(elsewhere, io.BytesIO(exported))
    [moved] = elsewhere.session_records()
    last = max(float(e["ts"]) for e in elsewhere.raw_events(moved.id))  # type: ignore[arg-type]
    assert report.sessions[0].closed_at == moved.ended_at == last > rec.started_at, "closed at its last event"
    assert elsewhere.recordings() == [], "it never becomes the room's open recording there"
    back_home = import_jsonl(log, io.BytesIO(exported))
    assert back_home.imported == 0 and back_home.duplicates > 0
    assert log.session(rec.session_id).ended_at is None, "the live session at home stays open"  # type: ignore[union-attr]


def test_a_file_saved_by_an_editor_with_a_bom_and_crlf_still_imports(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, rec = recorded
    exported = export_session(EventLog(db), rec.session_id, "jsonl")
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"\xef\xbb\xbf" + exported.replace(b"\n", b"\r\n"))
    target = tmp_path / "kap.sqlite"
    assert main(["import", "--db", str(target), str(edited)]) == 0
    [moved] = EventLog(target).session_records()
    assert export_session(EventLog(target), moved.id, "jsonl") == exported
