"""Fault tests: a whole simulated room (oximeter, cuff, pump on ptys), its gateway and the core as real
processes, a real mosquitto with persistence; one part fails mid-session and comes back, and every
observation the gateway produced is in the event log exactly once, in order (produced == stored, the
sequence numbers without a hole).

"Produced" is what the gateway's devices produced (each device's observations carry consecutive
sequence numbers; the gateway logs how many it made when it stops); "stored" is what the core wrote.
"""

from __future__ import annotations

import json
import re
import resource
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.bus import MqttLink
from tests.conftest import Proc
from tests.faults_support import RestartableMosquitto, stored_seqs, wait_until

pytestmark = pytest.mark.integration

DEVICES = ("oximeter", "nibp", "pump")
PRODUCED = re.compile(r"kap-gw-clinic-room1-(\w+): (\d+) observations produced, \d+ messages acknowledged")


@dataclass
class Rig:
    broker: RestartableMosquitto
    room: object  # simulators.room.SimulatedRoom
    db: Path
    procs: object
    config: Path
    outbox: Path
    core: Proc | None = None
    gateway: Proc | None = None

    def start_core(self) -> Proc:
        self.core = self.procs("core", "--broker", self.broker.address, "--db", str(self.db))  # type: ignore[operator]
        self.core.wait_for_output("core: recording")
        return self.core

    def start_gateway(self) -> Proc:
        self.gateway = self.procs(  # type: ignore[operator]
            "gateway",
            "--broker",
            self.broker.address,
            "--config",
            str(self.config),
            "--outbox",
            str(self.outbox),
        )
        self.gateway.wait_for_output("room1/pump")
        return self.gateway

    def stored(self, device: str = "oximeter") -> int:
        try:
            return len(stored_seqs(self.db, device))
        except sqlite3.OperationalError:  # the core has not made its tables yet
            return 0

    def wait_stored_growing(self, more: int = 10, timeout: float = 20) -> None:
        start = self.stored()
        wait_until(lambda: self.stored() >= start + more, timeout, f"{more} more oximeter readings stored")

    def stop_gateway_and_count(self) -> dict[str, int]:
        """Stop the gateway cleanly: how many observations each device produced, as it reports."""
        assert self.gateway is not None
        self.gateway.stop()
        produced = {m[1]: int(m[2]) for m in PRODUCED.finditer(self.gateway.output())}
        assert set(produced) == set(DEVICES), self.gateway.output()[-3000:]
        return produced

    def assert_nothing_lost(self, produced: dict[str, int], timeout: float = 30) -> None:
        """Every produced observation stored once, in order, with no hole in the sequence."""
        wait_until(
            lambda: all(self.stored(d) >= produced[d] for d in DEVICES), timeout, f"all of {produced} stored"
        )
        for device in DEVICES:
            seqs = stored_seqs(self.db, device)
            assert len(seqs) == produced[device], (device, len(seqs), produced[device])
            assert seqs == sorted(seqs), f"{device}: stored out of order"
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{device}: a hole in the sequence"
        assert produced["oximeter"] >= 10 and min(produced.values()) > 0  # the session really ran


@pytest.fixture
def rig(tmp_path: Path, procs) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    from simulators.room import SimulatedRoom, rooms_toml
    from simulators.scenario_files import load_scenario

    broker = RestartableMosquitto(tmp_path).start()
    room = SimulatedRoom("room1", load_scenario("stable"), tmp_path / "links", speed=20, seed=11).start()
    config = tmp_path / "rooms.toml"
    config.write_text(rooms_toml([room]))
    rig = Rig(broker, room, tmp_path / "kap.sqlite", procs, config, tmp_path / "outbox.sqlite")
    try:
        yield rig
    finally:
        for proc in (rig.gateway, rig.core):
            if proc is not None:
                proc.stop()
        room.stop()
        broker.stop()


def alarm_rows(db: Path, condition: str) -> list[tuple[str, str]]:
    """(alarm id, state) of each stored transition of a condition, in log order."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "SELECT json_extract(body, '$.id'), state FROM events WHERE type = 'alarm'"
            " AND json_extract(body, '$.condition') = ? ORDER BY id",
            (condition,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_broker_stopped_10_s_and_restarted(rig: Rig) -> None:
    """A broker restart as an update or a crashed host gives it: the gateway keeps readings in its
    outbox, the core's queued messages survive in the broker's persistence, and all arrive once."""
    rig.start_core()
    rig.start_gateway()
    rig.wait_stored_growing()
    rig.broker.stop()
    time.sleep(10)
    rig.broker.start()
    rig.wait_stored_growing(timeout=30)  # core and gateway reconnected by themselves

    def back_online() -> bool:  # mosquitto publishes the Last Wills as it stops: each device said offline
        last = [alarm_rows(rig.db, f"device_offline:{d}")[-1:] for d in DEVICES]
        return all(not rows or rows[0][1] == "cleared" for rows in last)

    wait_until(back_online, 20, "every device back online after the outage")
    produced = rig.stop_gateway_and_count()
    rig.assert_nothing_lost(produced)
    gateway_log = rig.gateway.output()  # type: ignore[union-attr]
    assert "lost broker connection" in gateway_log
    assert "outbox" in gateway_log and "delivered; publishing directly again" in gateway_log


def test_core_killed_and_restarted(rig: Rig) -> None:
    """`kill -9` of the core: what it had not committed was not acknowledged, so the broker delivers it
    again; the restarted engine knows the alarm that was active and clears that same alarm."""
    rig.start_core()
    rig.start_gateway()
    rig.wait_stored_growing()
    rig.room.ports["pump"].unplug()  # type: ignore[attr-defined]
    wait_until(lambda: alarm_rows(rig.db, "device_offline:pump"), 20, "pump offline alarm stored")
    (alarm_id, state), *_ = alarm_rows(rig.db, "device_offline:pump")
    assert state == "active"
    rig.core.kill()  # type: ignore[union-attr]  # SIGKILL
    time.sleep(2)  # readings keep coming; the broker queues them for the core's session
    rig.room.ports["pump"].plug()  # type: ignore[attr-defined]
    time.sleep(2)
    rig.start_core()
    wait_until(
        lambda: "cleared" in {s for _, s in alarm_rows(rig.db, "device_offline:pump")}, 30, "alarm cleared"
    )
    transitions = alarm_rows(rig.db, "device_offline:pump")
    assert transitions == [(alarm_id, "active"), (alarm_id, "cleared")]  # not raised again by the new core
    rig.wait_stored_growing()
    produced = rig.stop_gateway_and_count()
    rig.assert_nothing_lost(produced)


def test_serial_cable_pulled_and_restored(rig: Rig) -> None:
    """The oximeter's cable out for 3 s: the device goes offline and back, and every reading the gateway
    made before and after is stored (what the device sent into a pulled cable is gone, as on a ward)."""
    rig.start_core()
    rig.start_gateway()
    rig.wait_stored_growing()
    port = rig.room.ports["oximeter"]  # type: ignore[attr-defined]
    port.unplug()
    time.sleep(3)
    port.plug()
    rig.wait_stored_growing(timeout=30)
    assert [s for _, s in alarm_rows(rig.db, "device_offline:oximeter")] == ["active", "cleared"]
    produced = rig.stop_gateway_and_count()
    rig.assert_nothing_lost(produced)
    with sqlite3.connect(rig.db) as conn:
        states = [
            r[0]
            for r in conn.execute(
                "SELECT state FROM events WHERE type = 'status' AND device = 'oximeter' ORDER BY id"
            )
        ]
    assert "offline" in states and states[states.index("offline") :].count("online") >= 1


def test_event_log_cannot_be_written(rig: Rig) -> None:
    """The disk fills (a file-size limit on the core process: its writes fail with EFBIG, as on a full
    disk): the core says so, a high-priority technical alarm reaches the rooms' screens, nothing is
    acknowledged, and when space is back everything is stored and the alarm clears."""
    from monitor.live import LiveHub
    from monitor.store import EventLog
    from monitor.views import alarm_panel_view

    alarms: list[dict[str, object]] = []
    watcher = MqttLink(
        rig.broker.address,
        "fault-test-alarms",
        subscriptions=["kap/+/+/alarms"],
        on_message=lambda topic, payload, retained: alarms.append(json.loads(payload)),
    ).start()
    try:
        core = rig.start_core()
        rig.start_gateway()
        rig.wait_stored_growing()
        hub = LiveHub(rig.broker.address, EventLog(rig.db)).start()  # what the dashboard's pages render
        assert hub.link.wait_connected(5)
        limit = 32 * 1024  # below the event log's files: every write past it fails
        resource.prlimit(core.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        wait_until(
            lambda: any(
                a["condition"] == "event_log_write_failed" and a["state"] == "active" for a in alarms
            ),
            20,
            "a technical alarm on the room's alarms topic",
        )
        raised = next(a for a in alarms if a["condition"] == "event_log_write_failed")
        assert raised["priority"] == "high" and raised["kind"] == "technical"
        assert "cannot write the event log" in str(raised["message"])
        assert "cannot write the event log" in core.output()
        assert core.process.poll() is None  # not a silent stop, not a crash

        def on_the_bedside_panel() -> bool:
            panel = alarm_panel_view(hub.find_room("room1"), time.time())  # type: ignore[arg-type]
            return any(a.priority == "high" and "Recording stopped" in a.message for a in panel.alarms)

        wait_until(on_the_bedside_panel, 10, "the alarm on the bedside page's alarm panel")
        hub.stop()
        stuck = rig.stored()
        time.sleep(4)
        assert rig.stored() == stuck  # nothing written meanwhile (and nothing acknowledged)
        resource.prlimit(
            core.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
        wait_until(
            lambda: any(
                a["condition"] == "event_log_write_failed" and a["state"] == "cleared" for a in alarms
            ),
            20,
            "the alarm cleared",
        )
        rig.wait_stored_growing()
        produced = rig.stop_gateway_and_count()
        rig.assert_nothing_lost(produced)
        assert [s for _, s in alarm_rows(rig.db, "event_log_write_failed")] == ["active", "cleared"]
    finally:
        watcher.stop()


def test_core_refuses_an_event_log_it_cannot_open(tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    """An event log that cannot even be opened stops the core at once with the reason, not a traceback."""
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    core = procs("core", "--broker", "127.0.0.1:1", "--db", str(not_a_directory / "kap.sqlite"))
    assert core.process.wait(timeout=20) == 2
    out = core.output()
    assert f"kap-monitor core: cannot open the event log {not_a_directory / 'kap.sqlite'}" in out
    assert "Traceback" not in out


def test_gateway_killed_during_broker_outage(rig: Rig) -> None:
    """The broker is down and the gateway is killed (`kill -9`) with readings only in its outbox: the next
    gateway process delivers them first, and nothing the first one produced is missing."""
    rig.start_core()
    first = rig.start_gateway()
    rig.wait_stored_growing()
    rig.broker.stop()
    time.sleep(3)  # readings pile up in the outbox file
    first.kill()  # SIGKILL: no clean stop, nothing flushed
    with sqlite3.connect(rig.outbox) as conn:
        waiting = conn.execute("SELECT topic, payload FROM outbox ORDER BY stream, ord").fetchall()
    last_produced = {}  # device -> the last seq the killed gateway made (all of the outage is in the file)
    for topic, payload in waiting:
        if topic.endswith("/obs"):
            device = topic.split("/")[3]
            last_produced[device] = max(last_produced.get(device, 0), json.loads(payload)["seq"])
    assert last_produced.get("oximeter"), "the outage's readings are in the file"
    rig.broker.start()
    rig.start_gateway()
    rig.wait_stored_growing(timeout=30)
    produced = rig.stop_gateway_and_count()  # the second process's own
    wait_until(lambda: all(rig.stored(d) >= produced[d] for d in DEVICES), 30, "second run stored")
    for device in DEVICES:
        seqs = stored_seqs(rig.db, device)
        assert len(seqs) == len(set(seqs))
        jumps = [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1]
        assert len(jumps) == 1, f"{device}: one jump, between the two processes' sequences: {jumps}"
        before, after = seqs[: jumps[0]], seqs[jumps[0] :]
        if device in last_produced:
            assert before[-1] == last_produced[device], f"{device}: the killed gateway's last readings lost"
        assert len(after) == produced[device]
