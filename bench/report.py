"""The table: one row per figure, with its spread, the target it answers to, and whether it is met."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bench.harness import machine_line

MET, MISSED, INFO = "met", "MISSED", ""


@dataclass
class Row:
    number: str
    benchmark: str
    figure: str
    n: str = ""
    target: str = ""
    status: str = INFO
    note: str = ""


def ms(d: dict[str, float]) -> str:
    return f"p50 {d['p50']:.1f} / p95 {d['p95']:.1f} / max {d['max']:.1f} ms"


def rate(d: dict[str, Any], unit: str, scale: float = 1.0, digits: int = 0) -> str:
    return f"{d['median'] / scale:,.{digits}f} ± IQR {d['iqr'] / scale:,.{digits}f} {unit}"


def _status(ok: bool) -> str:
    return MET if ok else MISSED


def latency_rows(r: dict[str, Any]) -> list[Row]:
    one, many = r["one_room"], r["many_rooms"]
    p95 = many["dom_ms"]["p95"]
    rows = [
        Row("1", "device byte -> DOM, 1 room", ms(one["dom_ms"]), str(one["dom_ms"]["n"])),
        Row(
            "1",
            f"device byte -> DOM, {many['rooms']} rooms",
            ms(many["dom_ms"]),
            str(many["dom_ms"]["n"]),
            "p95 <= 50 ms",
            _status(p95 <= 50 and many["never_shown"] == 0),
        ),
        Row(
            "1",
            f"  of which device -> MQTT subscriber, {many['rooms']} rooms",
            ms(many["device_to_mqtt_subscriber_ms"]),
            str(many["device_to_mqtt_subscriber_ms"]["n"]),
            note="pty, gateway, mosquitto, to a subscriber in the bench process; the rest is web + browser",
        )
        if "device_to_mqtt_subscriber_ms" in many
        else None,
        Row(
            "1",
            f"  ... to the next animation frame, {many['rooms']} rooms",
            ms(many["next_frame_ms"]),
            str(many["next_frame_ms"]["n"]),
            note="rAF after the DOM change (headless Chromium, no GPU)",
        ),
    ]
    return [row for row in rows if row is not None]


def baseline_rows(r: dict[str, Any]) -> list[Row]:
    p, b = r["product"], r["baseline"]
    kb = 1000.0
    return [
        Row(
            "2",
            "polling baseline: device -> DOM",
            ms(b["dom_ms"]),
            str(b["dom_ms"]["n"]),
            note=f"{b['superseded']} of {b['sends']} values never shown (replaced before the next poll)",
        ),
        Row("2", "  product, same stack", ms(p["dom_ms"]), str(p["dom_ms"]["n"])),
        Row(
            "2",
            "  latency ratio baseline / product",
            f"p95 {r['latency_p95_ratio']:.1f}x, p50 {r['latency_p50_ratio']:.1f}x",
            "",
            ">= 15x lower",
            _status(r["latency_p95_ratio"] >= 15),
        ),
        Row(
            "2",
            "polling baseline: bytes to browser",
            rate(b["bytes_per_s"], "KB/s", kb, 1),
            str(b["bytes_per_s"]["n"]),
            note=f"wire {b['wire_bytes_per_s']['median'] / kb:.1f} KB/s",
        ),
        Row(
            "2",
            "  product, same page (number + trend)",
            rate(p["bytes_per_s"], "KB/s", kb, 2),
            str(p["bytes_per_s"]["n"]),
            note=f"wire {p['wire_bytes_per_s']['median'] / kb:.3f} KB/s (deflate)",
        ),
        Row(
            "2",
            "  bytes ratio baseline / product",
            f"{r['bytes_ratio']:.0f}x (wire {r['wire_bytes_ratio']:.0f}x)",
        ),
    ]


def ingest_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    cs = r.get("codec_and_store")
    if cs:
        for key, label in (("masimo", "Masimo lines"), ("nonin", "Nonin frames")):
            d = cs[key]
            ok = d["path_obs_per_s"]["median"] >= 50_000
            rows.append(
                Row(
                    "3",
                    f"codec + event log, {label}, 1 core",
                    rate(d["path_obs_per_s"], "obs/s"),
                    f"{d['path_obs_per_s']['n']} runs x {d['observations']:,}",
                    ">= 50,000 obs/s",
                    _status(ok),
                )
            )
            rows.append(Row("3", "  codec + stamping alone", rate(d["codec_obs_per_s"], "obs/s")))
            rows.append(Row("3", "  EventLog.append alone", rate(d["store_obs_per_s"], "obs/s")))
            a = cs[key + "+alarms"]
            rows.append(
                Row(
                    "3",
                    "  same path + core's alarm engine",
                    rate(a["path_obs_per_s"], "obs/s"),
                    note="what monitor.core.Core._store also does per event",
                )
            )
    mq = r.get("mqtt")
    if mq:
        d = mq["default_broker"]
        rows.append(
            Row(
                "3",
                "MQTT QoS 1 -> Core stored",
                rate(mq["stored_obs_per_s"], "obs/s"),
                f"{mq['stored_obs_per_s']['n']} runs x {mq['observations']:,}",
                note=f"broker max_queued_messages 0; publisher acked at "
                f"{mq['publish_acked_obs_per_s']['median']:,.0f} obs/s",
            )
        )
        rows.append(
            Row(
                "3",
                "  same burst, mosquitto defaults",
                f"stored {d['stored']:,} of {mq['observations']:,}",
                "1 run",
                "nothing lost",
                _status(d["lost"] == 0),
                note=f"broker dropped {d['broker_dropped']} (max_queued_messages 1000)",
            )
        )
    return rows


def capacity_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    limit = r.get("single_gateway_limit")
    if limit:
        rows.append(
            Row(
                "4",
                f"{limit['rooms']} rooms in ONE gateway process",
                "fails: device links die with 'filedescriptor out of range in select()'",
                "",
                "",
                "fails",
                note="pyserial and paho wait with select(), limited to descriptors < 1024; the runs from "
                "here on split the rooms over gateways of 30",
            )
        )
    for run in r["runs"]:
        if "error" in run:
            rows.append(Row("4", f"{run['rooms']} rooms", "error", "", "", "fails", note=run["error"][-160:]))
            continue
        gateways = f", {run['gateways']} gateways" if run.get("gateways", 1) > 1 else ""
        page = (
            f"p95 {run['p95_ms']:.0f} ms"
            if "dom_ms" in run["latency"]
            else "the pages stopped answering WebDriver (30 s)"
            if "Timeout" in run["latency"]["error"]
            else "latency not measured: " + run["latency"]["error"][:60]
        )
        rows.append(
            Row(
                "4",
                f"{run['rooms']} rooms{gateways} + 4 bedside + home",
                f"server CPU {run['server_cpu_pct_of_machine']:.1f} % of machine, {page}",
                str(run["latency"].get("dom_ms", {}).get("n", "")),
                "< 50 % and p95 < 100 ms",
                "passes" if run["passes"] else "fails",
                note=f"whole machine {run['machine_cpu_pct']:.0f} % (with simulator and Chromium; other "
                f"processes {run['foreign_pct_of_machine']:.0f} %); 5 windows received "
                f"{run['browser_bytes_per_s'] / 1000:.1f} KB/s, home page "
                f"{run['browser_bytes_per_s_by_component'].get('room-grid.children', 0) / 1000:.1f} KB/s; "
                f"gateway descriptors {run['gateway_fds']}",
            )
        )
    largest = r["largest_passing"]
    line = r.get("server_cpu_line_pct")
    per_room = f"; server CPU {line[0]:.1f} + {line[1]:.2f} % of machine per room" if line else ""
    rows.append(Row("4", "largest N passing (CPU and p95)", f"{largest} rooms{per_room}", "", "", ""))
    ok_runs = [run for run in r["runs"] if "error" not in run]
    at_100 = [run for run in ok_runs if run["rooms"] >= 100]
    over = [run for run in ok_runs if run["server_cpu_pct_of_machine"] >= 50 and run["rooms"] <= 100]
    projected = line[0] + 100 * line[1] if line else None
    projection = f"; {projected:.0f} % on the line through the runs" if projected is not None else ""
    if at_100:
        run = at_100[0]
        cpu = run["server_cpu_pct_of_machine"]
        shards = run.get("gateways", 1)
        how = f" ({shards} gateways)" if shards > 1 else ""
        saturated = " on a saturated machine" if run["machine_cpu_pct"] >= 95 else ""
        figure = f"{cpu:.1f} % of machine at {run['rooms']} rooms{how}{saturated}{projection}"
        status = _status(max(cpu, projected or 0) < 50)
    elif over:
        figure, status = f"over 50 % already at {over[0]['rooms']} rooms", MISSED
    else:
        figure, status = f"not tried (up to {max(r['tried'])} rooms){projection}", "not tried"
    rows.append(Row("4", "100 rooms: server CPU", figure, "", "100 rooms within 50 % CPU", status))
    return rows


def bytes_rows(r: dict[str, Any]) -> list[Row]:
    kb = 1000.0
    bed, home = r["bedside"], r["home"]
    return [
        Row(
            "5",
            "bedside page with pleth, bytes/s",
            rate(bed["bytes_per_s"], "KB/s", kb, 2),
            str(bed["bytes_per_s"]["n"]),
            "< 5 KB/s",
            _status(bed["bytes_per_s"]["median"] < 5000),
            note=f"DevTools payload; wire {bed['wire_bytes_per_s']['median'] / kb:.2f} KB/s (deflate)",
        ),
        Row(
            "5",
            f"home page, {r['rooms']} rooms, bytes/s",
            rate(home["bytes_per_s"], "KB/s", kb, 2),
            str(home["bytes_per_s"]["n"]),
            note=f"wire {home['wire_bytes_per_s']['median'] / kb:.2f} KB/s",
        ),
    ]


def replay_rows(r: dict[str, Any]) -> list[Row]:
    if "server" not in r:  # not built, or no figures
        return [Row("6", "replay", r.get("status", "no result"), note=r.get("why", ""))]
    server, chromium, recorded = r["server"], r.get("browser", {}), r["session"]
    what = f"{recorded['hours']:g} h session ({recorded['events']:,} events)"

    def sec(d: dict[str, float]) -> str:
        return f"p50 {d['p50']:.2f} / p95 {d['p95']:.2f} / max {d['max']:.2f} s"

    rows = []
    if "first_render_cold_s" in chromium:
        first = chromium["first_render_cold_s"]
        rows.append(
            Row(
                "6",
                f"replay, {what}: first render in Chromium",
                f"{first:.2f} s (not indexed yet); again {sec(chromium['first_render_warm_s'])}",
                "",
                "< 1 s",
                _status(first < 1.0),
                note="from asking for /replay/<id>/<3 h in> to clock, numbers, alarms, pleth, trend and "
                "timeline drawn; a bedside page with the same charts takes "
                f"{chromium['bedside_page_s']['p50']:.2f} s",
            )
        )
        scrub = chromium["scrub_s"]
        rows.append(
            Row(
                "6",
                "  scrub to a new position, Chromium",
                ms({k: 1000 * scrub[k] for k in ("p50", "p95", "max")}),
                str(scrub["n"]),
                "< 200 ms",
                _status(scrub["p95"] < 0.2),
                note="from clicking Go to the page's clock and numbers showing the new time",
            )
        )
    else:
        rows.append(Row("6", "replay in Chromium", "not measured", note=chromium.get("error", "")[:160]))
    rows.append(
        Row(
            "6",
            "  server side: index, first render, scrub p95, timeline p95",
            f"{server['build_s']['p50']:.2f} s, {server['first_render_s']['p50']:.2f} s, "
            f"{1000 * server['scrub_s']['p95']:.0f} ms, {1000 * server['timeline_s']['p95']:.0f} ms",
            str(server["scrub_s"]["n"]),
            note=f"generated at speed in {recorded['generated_in_s']:.0f} s; {r.get('why', '')}",
        )
    )
    return rows


def memory_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for name, p in r["processes"].items():
        rows.append(
            Row(
                "7",
                f"RSS {name}",
                f"{p['rss_start_mib']:.1f} -> {p['rss_end_mib']:.1f} MiB ({p['growth_mib']:+.1f})",
                note=f"{p['growth_mib_per_sim_hour']:+.2f} MiB/simulated h, "
                f"{p['growth_mib_per_wall_hour']:+.1f} MiB/wall h (fit)",
            )
        )
    minutes = r["duration_s"] / 60
    rows.append(
        Row(
            "7",
            "product growth (gateway+core+web)",
            f"{r['product_growth_mib']:+.1f} MiB over {minutes:.0f} min = {r['simulated_hours']:.1f} sim h",
            "",
            "< 20 MB",
            _status(r["product_growth_mib"] < 20 / 1.048576),
            note=f"fit {r['product_growth_mib_per_wall_hour']:+.0f} MiB per wall hour at {r['rooms']} "
            "real rooms' data",
        )
    )
    return rows


ROWS = {
    "latency": latency_rows,
    "baseline": baseline_rows,
    "ingest": ingest_rows,
    "capacity": capacity_rows,
    "bytes": bytes_rows,
    "replay": replay_rows,
    "memory": memory_rows,
}


def rows_for(name: str, result: dict[str, Any]) -> list[Row]:
    if "error" in result:
        return [Row("?", name, "error", status="ERROR", note=result["error"].splitlines()[-1][:100])]
    return ROWS[name](result)


def render(
    machine: dict[str, Any], mode: str, rows: list[Row], seconds: float, foreign: dict[str, Any] | None = None
) -> str:
    headers = ("#", "benchmark", "figure", "n", "target", "status")
    cells = [(r.number, r.benchmark, r.figure, r.n, r.target, r.status) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda c: "  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip()  # noqa: E731
    out = [
        f"KAP Monitor benchmarks ({mode}, {seconds / 60:.1f} min)",
        "machine: " + machine_line(machine),
        "",
    ]
    out += [line(headers), line(tuple("-" * w for w in widths))]
    out += [line(c) for c in cells]
    notes = [f"  [{r.number}] {r.benchmark.strip(' .')}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "notes:", *notes]
    if foreign:
        busy = {k: v for k, v in foreign.items() if v["pct_of_machine"] >= 2}
        if busy:
            out += ["", "other processes on this machine during the run (they share its cores):"]
            out += [
                f"  {name}: {v['pct_of_machine']:.0f} % of the machine"
                + "".join(f"; {t['process']} {t['pct_of_one_core']:.0f} % of a core" for t in v["top"][:2])
                for name, v in busy.items()
            ]
    return "\n".join(out)


def as_json(rows: list[Row]) -> list[dict[str, str]]:
    return [asdict(r) for r in rows]


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
