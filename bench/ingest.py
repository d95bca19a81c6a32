"""3. Ingest: observations per second through codec + event log on one core, and MQTT to stored.

Codec + event log. Input built in memory with the simulators' encoders: Masimo lines
(`simulators.masimo.format_masimo_line`, 3 observations each: SpO2, pulse, PI) and Nonin Data Format 2
packets (`simulators.nonin.encode_packet`, 3 observations each: SpO2, pulse, one 25-sample pleth block).
The bytes are fed to the product's codecs (`MasimoAsciiCodec`, `NoninF2Codec`) in 4 KiB chunks, each
reading is stamped into `monitor.model.Observation`s as the gateway's adapter does (identity, receive time,
sequence; a waveform block as one observation with its samples), and appended with
`monitor.store.EventLog.append` in batches of up to 2000 (the core's batch) to a SQLite file on disk. The
loop runs pinned to one CPU (sched_setaffinity). Reported: the whole path, and its parts (codec and
stamping alone; append alone) so a miss says where the time goes; and, for information, the same with the
core's alarm engine fed every stored event (`monitor.core.Core._store` does both).

MQTT to stored. Real mosquitto; `monitor.core.Core` in this process; a publisher process
(`python -m bench.publisher`) publishes N pre-encoded observations (`monitor.wire.encode_observation`, 20
rooms) at QoS 1 as fast as paho's in-flight window (the product's `MqttLink`: 100) allows; timed from the
publisher's first publish to the core's `stored` counter reaching N.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import PYTHON, Stack, median_iqr
from monitor.alarm_profile import load_profile
from monitor.alarm_runner import AlarmRunner
from monitor.devices.masimo_ascii import MasimoAsciiCodec
from monitor.devices.nonin_f2 import NoninF2Codec
from monitor.model import DeviceReading, Observation, WaveformBlock
from monitor.store import EventLog
from simulators.masimo import format_masimo_line
from simulators.nonin import encode_packet
from simulators.physiology import Vitals

CHUNK = 4096
BATCH = 2000
ROOMS = 20


def masimo_input(lines: int) -> bytes:
    when = datetime(2026, 11, 24, 14, 0, 0)
    return b"".join(
        format_masimo_line(Vitals(spo2=90 + i % 10, pulse=60 + i % 40, pi=1.0 + (i % 30) / 10), when)
        for i in range(lines)
    )


def nonin_input(packets: int) -> bytes:
    pleth = [128 + int(60 * ((k % 25) / 25.0)) for k in range(25)]
    return b"".join(encode_packet(90 + i % 10, 60 + i % 40, pleth) for i in range(packets))


class Stamper:
    """What the adapter does to a codec's output: identity, receive time, per-device sequence."""

    def __init__(self, room: str, device: str) -> None:
        self.room, self.device = room, device
        self.seq = int(time.time() * 1_000_000)

    def observations(self, events: list[Any], now: float) -> list[Observation]:
        out: list[Observation] = []
        for event in events:
            if isinstance(event, DeviceReading):
                device_ts = event.device_time.timestamp() if event.device_time else None
                conditions = tuple(sorted(event.conditions))
                for m in event.measurements:
                    self.seq += 1
                    out.append(
                        Observation(
                            "clinic",
                            self.room,
                            self.device,
                            self.seq,
                            now,
                            m.code,
                            m.value,
                            m.unit,
                            m.valid,
                            device_ts,
                            conditions,
                        )
                    )
            elif isinstance(event, WaveformBlock):
                self.seq += 1
                out.append(
                    Observation(
                        "clinic",
                        self.room,
                        self.device,
                        self.seq,
                        now,
                        event.code,
                        None,
                        "1",
                        True,
                        None,
                        (),
                        event.samples,
                        event.sample_rate,
                    )
                )
        return out


def _decode(codec: Any, data: bytes, rooms: list[Stamper]) -> list[Observation]:
    out: list[Observation] = []
    n = len(rooms)
    for k, start in enumerate(range(0, len(data), CHUNK)):
        now = time.time()
        out += rooms[k % n].observations(codec.feed(data[start : start + CHUNK]), now)
    return out


def one_run(protocol: str, data: bytes, db: Path, *, alarms: bool) -> dict[str, float]:
    codec = MasimoAsciiCodec() if protocol == "masimo" else NoninF2Codec()
    rooms = [Stamper(f"room{i + 1}", "oximeter") for i in range(ROOMS)]
    log = EventLog(db)
    runner = AlarmRunner(load_profile(None)) if alarms else None
    # codec and stamping alone
    t0 = time.perf_counter()
    observations = _decode(codec, data, rooms)
    t_codec = time.perf_counter() - t0
    # append alone, in the core's batches
    t0 = time.perf_counter()
    for start in range(0, len(observations), BATCH):
        now = time.time()
        new = log.append_new(observations[start : start + BATCH], now)
        if runner is not None:
            for event in new:
                runner.feed(now, event)
    t_store = time.perf_counter() - t0
    stored = log.count()
    log.close()
    if stored != len(observations):
        raise RuntimeError(f"stored {stored} of {len(observations)} observations")
    n = len(observations)
    return {
        "observations": n,
        "codec_obs_per_s": n / t_codec,
        "store_obs_per_s": n / t_store,
        "path_obs_per_s": n / (t_codec + t_store),
    }


def codec_and_store(runs: int, lines: int, packets: int) -> dict[str, Any]:
    """Median and IQR over `runs` of each input, pinned to one CPU, a new SQLite file on disk each run."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    out: dict[str, Any] = {"cpu": cpu}
    try:
        inputs = {"masimo": masimo_input(lines), "nonin": nonin_input(packets)}
        with tempfile.TemporaryDirectory(prefix="kap-bench-ingest-", dir=_disk_dir()) as tmp:
            for alarms in (False, True):
                for protocol, data in inputs.items():
                    results = [
                        one_run(protocol, data, Path(tmp) / f"{protocol}-{alarms}-{i}.sqlite", alarms=alarms)
                        for i in range(runs)
                    ]
                    key = protocol + ("+alarms" if alarms else "")
                    out[key] = {
                        "observations": results[0]["observations"],
                        **{
                            metric: median_iqr([r[metric] for r in results])
                            for metric in ("path_obs_per_s", "codec_obs_per_s", "store_obs_per_s")
                        },
                    }
    finally:
        os.sched_setaffinity(0, before)
    return out


def _disk_dir() -> str:
    """A directory on a real disk (not tmpfs), so SQLite's writes are what they would be in a clinic."""
    var = Path(__file__).resolve().parent.parent / "var"
    var.mkdir(exist_ok=True)
    return str(var)


def _broker_dropped(broker: str) -> int | None:
    """mosquitto's own count of messages it dropped ($SYS, refreshed every second with sys_interval 1)."""
    import paho.mqtt.subscribe as subscribe

    host, port = broker.rsplit(":", 1)
    try:  # paho's helper prints a harmless "Client is not connected" as it disconnects
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            message = subscribe.simple(
                "$SYS/broker/publish/messages/dropped",
                hostname=host,
                port=int(port),
                msg_count=1,
                keepalive=5,
            )
    except Exception:
        return None
    return int(message.payload)  # type: ignore[union-attr]


def _one_mqtt_run(count: int, tag: str, broker_conf: tuple[str, ...]) -> dict[str, float]:
    from monitor.core import Core

    with Stack("ingest-mqtt") as st:
        broker = st.mosquitto("sys_interval 1", *broker_conf)
        db_dir = Path(tempfile.mkdtemp(prefix="kap-bench-mqtt-", dir=_disk_dir()))
        st.on_close(lambda: shutil.rmtree(db_dir, ignore_errors=True))
        core = Core(broker, str(db_dir / "kap.sqlite"), client_id=f"kap-core-bench-{tag}").start()
        st.on_close(core.stop)
        if not core.link.wait_connected(10):
            raise RuntimeError("core did not connect")
        time.sleep(0.3)  # its subscription acknowledged
        pub = st.start(
            "publisher",
            [PYTHON, "-m", "bench.publisher", "--broker", broker, "--count", str(count), "--go", str(st.dir)],
        )
        pub.wait_for_output("ready", timeout=60)
        (st.dir / "go").touch()
        # until everything is stored, or nothing more arrives for 3 s (the broker dropped the rest)
        last, last_change = -1, time.monotonic()
        while core.stored < count and time.monotonic() - last_change < 3:
            if core.stored != last:
                last, last_change = core.stored, time.monotonic()
                t_stored = time.time()
            time.sleep(0.002)
        if core.stored >= count:
            t_stored = time.time()
        pub.wait_for_output("published", timeout=60)
        started, acked = _publisher_times(pub.output())
        time.sleep(1.2)  # $SYS refresh
        return {
            "stored": core.stored,
            "lost": count - core.stored,
            "broker_dropped": _broker_dropped(broker),
            "stored_obs_per_s": core.stored / (t_stored - started),
            "publish_acked_obs_per_s": count / (acked - started),
        }


def mqtt_to_stored(runs: int, count: int) -> dict[str, Any]:
    """With mosquitto's defaults once (does a burst lose anything?), then `runs` times with the broker's
    queue for a slow subscriber unbounded (`max_queued_messages 0`), which is the throughput figure."""
    default = _one_mqtt_run(count, "default", ())
    unbounded = [_one_mqtt_run(count, f"unbounded{i}", ("max_queued_messages 0",)) for i in range(runs)]
    return {
        "observations": count,
        "default_broker": default,
        "stored_obs_per_s": median_iqr([r["stored_obs_per_s"] for r in unbounded]),
        "publish_acked_obs_per_s": median_iqr([r["publish_acked_obs_per_s"] for r in unbounded]),
        "lost_unbounded": [r["lost"] for r in unbounded],
    }


def _publisher_times(output: str) -> tuple[float, float]:
    started = acked = 0.0
    for line in output.splitlines():
        if line.startswith("started "):
            started = float(line.split()[1])
        elif line.startswith("published "):
            acked = float(line.split()[-1])
    return started, acked
