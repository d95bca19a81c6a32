"""Export one recorded session: its observations as a tidy table (CSV, Parquet), its whole event log
(JSON lines, see monitor.session_archive) or a standalone HTML report (monitor.report_html).

The tidy table has one row per observation with a number: time (UTC), device, MDC code and reference id,
label, value, UCUM unit, validity and the device's technical conditions at that moment. Waveform blocks
(the pleth, 75 samples a second) are left out of it: a block is not one value, and one row per sample
would bury the vitals in millions of rows. They are kept, sample for sample, in the JSON-lines event log.

`export_session(store, session_id, fmt)` is what the CLI and the replay page call; `export_filename`
names the file.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Final

import pandas as pd

from monitor import mdc, session_archive
from monitor.store import EventLog

FORMATS: Final = ("csv", "parquet", "jsonl", "html")
MEDIA_TYPES: Final = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/jsonl",
    "html": "text/html",
}
COLUMNS: Final = (
    "session_id",
    "site",
    "room",
    "time_utc",
    "device",
    "seq",
    "mdc_code",
    "metric",
    "label",
    "value",
    "unit",
    "valid",
    "conditions",
    "device_time_utc",
)


class UnknownSession(LookupError):
    def __init__(self, session_id: int) -> None:
        super().__init__(f"no session {session_id} in this database")
        self.session_id = session_id


def _utc(ts: object) -> pd.Timestamp | None:
    return None if ts is None else pd.Timestamp(float(ts), unit="s", tz="UTC")  # type: ignore[arg-type]


def observations_table(store: EventLog, session_id: int) -> pd.DataFrame:
    """The session's observations, one row each, in log order (waveform blocks left out)."""
    if store.session(session_id) is None:
        raise UnknownSession(session_id)
    rows = []
    for event in store.raw_events(session_id):
        body = event["body"]
        assert isinstance(body, dict)
        if event["type"] != "obs" or "samples" in body:
            continue
        metric = mdc.BY_CODE.get(int(event["code"]))  # type: ignore[call-overload]
        rows.append(
            (
                session_id,
                event["site"],
                event["room"],
                _utc(event["ts"]),
                event["device"],
                event["seq"],
                event["code"],
                metric.ref_id if metric else "",
                metric.label if metric else "",
                event["value"],
                event["unit"],
                bool(event["valid"]),
                ";".join(body.get("conditions", ())),
                _utc(body.get("device_ts")),
            )
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("time_utc", "device_time_utc"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return table.astype({"value": "float64", "valid": "bool", "seq": "int64", "mdc_code": "int64"})


def export_session(store: EventLog, session_id: int, fmt: str) -> bytes:
    """The session in one of FORMATS. Raises UnknownSession, or ValueError for an unknown format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if store.session(session_id) is None:
        raise UnknownSession(session_id)
    if fmt == "jsonl":
        return session_archive.export_jsonl(store, session_id)
    if fmt == "html":
        from monitor.report_html import session_report

        return session_report(store, session_id).encode()
    table = observations_table(store, session_id)
    if fmt == "csv":
        return table.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ").encode()
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def export_filename(store: EventLog, session_id: int, fmt: str) -> str:
    """`kap-session-12-room1-20261124-1420.csv`: the id, room and start (UTC), never a patient's name."""
    record = store.session(session_id)
    if record is None:
        raise UnknownSession(session_id)
    started = datetime.fromtimestamp(record.started_at, UTC).strftime("%Y%m%d-%H%M")
    return f"kap-session-{session_id}-{record.room}-{started}.{fmt}"
