"""The simulators: exact Masimo bytes, patient-like numbers, and a real pty/TCP link a gateway can open."""

from __future__ import annotations

import itertools
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest
import serial

from simulators.masimo import MasimoSimulator, format_masimo_line
from simulators.physiology import (
    SCENARIOS,
    Scenario,
    ScenarioPlayer,
    SetSensor,
    SetTarget,
    SimulatedPatient,
    Vitals,
    VitalSignal,
)
from simulators.pty_link import PtyLink
from simulators.run import ControlError, apply_command, build_parser

REPO = Path(__file__).resolve().parents[1]
WHEN = datetime(2016, 2, 22, 22, 47, 45)
SPO2_FIELD = re.compile(rb"SPO2=(\d{3}|---)%")


# --- format_masimo_line: exact bytes -----------------------------------------------------------------


def test_radical7_line_matches_the_reference_example() -> None:
    line = format_masimo_line(Vitals(spo2=98, pulse=97, pi=3.6), WHEN)
    assert line == (
        b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% "
        b"DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800\r\n"
    )


def test_rad8_line_is_radical7_without_pvi() -> None:
    when = datetime(2016, 3, 19, 13, 37, 12)
    line = format_masimo_line(Vitals(95.4, 61.6, 0.55), when, variant="rad8", serial="0000093112")
    assert line == (
        b"03/19/16 13:37:12 SN=0000093112 SPO2=095% BPM=062 PI=00.55% SPCO=--.-% SPMET=--.-% "
        b"DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n"
    )


def test_radical5_line_matches_published_example() -> None:
    # mdpnp poxrad_discrete.h: "09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800"
    when = datetime(2010, 9, 15, 15, 10, 29)
    line = format_masimo_line(Vitals(97, 64, 11.82), when, variant="radical5", alarm=0x20)
    assert line == b"09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800\r\n"


def test_radical7_sphb_line_keeps_the_captured_quirks() -> None:
    when = datetime(2016, 3, 17, 19, 19, 36)
    line = format_masimo_line(Vitals(98, 123, 0.55), when, variant="radical7-sphb", exc=0xC00)
    assert line == (
        b"03/17/16 19:19:36 SN=0000056661 SPO2=098% BPM=123 PI=00.55 SPCO=--% SPMET=--.-% SPHB=--.- SPOC=-- "
        b"RESVD=--- DESAT=-- PIDELTA=+-- PVI=--- ALARM=000000 EXC=0000C00 EXC1=00000000\r\n"
    )


def test_sensor_off_and_no_sensor_send_dashes_and_exception_bits() -> None:
    off = format_masimo_line(Vitals(98, 97, 3.6, sensor="off"), WHEN)
    assert off == (
        b"02/22/16 22:47:45 SN=0000056661 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% "
        b"DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000020\r\n"
    )
    none = format_masimo_line(Vitals(98, 97, 3.6, sensor="none"), WHEN, variant="radical5")
    assert none == b"02/22/16 22:47:45 SPO2=---% BPM=--- PI=--.--% ALARM=00 EXC=001\r\n"
    sphb_off = format_masimo_line(Vitals(98, 97, 3.6, sensor="off"), WHEN, variant="radical7-sphb")
    assert b" SPO2=---% BPM=--- PI=--.-- " in sphb_off
    assert b" EXC=0000020 " in sphb_off


def test_rounding_extremes_and_line_ending() -> None:
    line = format_masimo_line(Vitals(99.5, 130.4, 0.02), WHEN, variant="radical5", line_ending=b"\n\r")
    assert line == b"02/22/16 22:47:45 SPO2=100% BPM=130 PI=00.02% ALARM=00 EXC=800\n\r"
    assert b"SPO2=096%" in format_masimo_line(Vitals(95.5, 72, 3.5), WHEN)  # half up, not banker's
    assert b"PI=12.30%" in format_masimo_line(Vitals(97, 72, 12.3), WHEN)


def test_unknown_variant_and_bad_serial_are_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        format_masimo_line(Vitals(97, 72, 3.5), WHEN, variant="radical9")
    with pytest.raises(ValueError, match="serial"):
        format_masimo_line(Vitals(97, 72, 3.5), WHEN, serial="12 34")


# --- physiology --------------------------------------------------------------------------------------


def test_held_values_are_exact_and_release_resumes_without_a_jump() -> None:
    patient = SimulatedPatient(seed=7)
    patient.hold("spo2", 85)
    patient.hold("pulse", 130)
    patient.hold("pi", 2.5)
    for _ in range(120):
        vitals = patient.step(1.0)
        assert (vitals.spo2, vitals.pulse, vitals.pi) == (85.0, 130.0, 2.5)
    patient.release()
    after = [patient.step(1.0).spo2 for _ in range(180)]
    assert abs(after[0] - 85.0) < 1.5  # continues from the held value
    assert len(set(after)) > 100  # noise is back
    assert 95.0 < sum(after[-30:]) / 30 < 100.0  # and it relaxed to the baseline target
    with pytest.raises(ValueError):
        patient.hold("spo2", 101)
    with pytest.raises(ValueError):
        patient.hold("temperature", 37)  # type: ignore[arg-type]


def test_vital_signal_follows_a_ramp_with_first_order_lag() -> None:
    signal_ = VitalSignal(97.0, lo=50, hi=100, response_seconds=10.0)  # no noise: pure dynamics
    signal_.set_target(89.0, ramp_seconds=30.0)
    values = [signal_.step(1.0) for _ in range(90)]
    assert values[0] > 96.5  # no step change
    assert all(b <= a for a, b in itertools.pairwise(values))  # monotone, no overshoot
    assert values[-1] == pytest.approx(89.0, abs=0.1)
    assert min(values) >= 89.0


def test_stable_patient_is_bounded_smooth_and_mean_reverting() -> None:
    for seed in range(5):
        player = SCENARIOS["stable"].play(SimulatedPatient(seed=seed))
        spo2 = [player.step(1.0).spo2 for _ in range(600)]
        assert min(spo2) >= 94.0 and max(spo2) <= 100.0, seed
        steps = [abs(b - a) for a, b in itertools.pairwise(spo2)]
        assert max(steps) < 2.0, seed  # no random jumps between consecutive seconds
        pulse = [player.step(1.0).pulse for _ in range(600)]
        assert min(pulse) >= 55.0 and max(pulse) <= 90.0, seed
    patient = SimulatedPatient(seed=3)
    hour = [patient.step(1.0).spo2 for _ in range(3600)]
    assert sum(hour) / len(hour) == pytest.approx(97.5, abs=1.0)  # noise pulls back to the baseline


def test_same_seed_same_patient_other_seed_other_patient() -> None:
    def trace(seed: int) -> list[Vitals]:
        player = SCENARIOS["ketamine-iv"].play(SimulatedPatient(seed=seed), speed=10)
        return [player.step(1.0) for _ in range(300)]

    assert trace(42) == trace(42)
    assert trace(42) != trace(43)


def test_scenario_steps_fire_at_scaled_times() -> None:
    player = SCENARIOS["sensor-off"].play(SimulatedPatient(seed=1), speed=10)  # 10 s simulated per s
    transitions: list[tuple[float, str]] = []
    state = "on"
    for tick in range(1, 351):  # 35 wall seconds in 0.1 s ticks
        vitals = player.step(0.1)
        if vitals.sensor != state:
            state = vitals.sensor
            transitions.append((round(tick * 0.1, 6), state))
    # script: off 30-40 s, off 120-140 s, none 200-215 s, repeating every 300 s (all divided by 10)
    expected = [(3.0, "off"), (4.0, "on"), (12.0, "off"), (14.0, "on"), (20.0, "none"), (21.5, "on")]
    assert transitions == [*expected, (33.0, "off"), (34.0, "on")]


def test_a_step_fires_at_its_exact_time_inside_a_long_tick() -> None:
    scenario = Scenario("probe", "test", (SetTarget(60.0, "spo2", 89.0, ramp_seconds=30.0),))
    patient = SimulatedPatient(seed=1)
    player = ScenarioPlayer(scenario, patient, speed=60)
    player.step(0.5)  # simulated 0..30 s
    assert patient.signal("spo2").target == 97.5
    player.step(1.7)  # simulated 30..132 s: the step fires at 60 s, not at 132 s
    assert player.fired[0][0] == 60.0
    assert patient.signal("spo2").target == 89.0
    assert patient.vitals().spo2 < 92.0  # ramp finished at 90 s; 42 s of following since


def test_scenario_scripts_are_validated() -> None:
    with pytest.raises(ValueError, match="order"):
        Scenario("x", "", (SetSensor(20, "off"), SetSensor(10, "on")))
    with pytest.raises(ValueError, match="repeat_every"):
        Scenario("x", "", (SetSensor(20, "off"),), repeat_every=20)


def _play(name: str, seconds: int, seed: int = 11) -> list[Vitals]:
    player = SCENARIOS[name].play(SimulatedPatient(seed=seed))
    return [player.step(1.0) for _ in range(seconds)]


def test_ketamine_iv_scenario_is_plausible() -> None:
    session = _play("ketamine-iv", 80 * 60)
    pulse_start = sum(v.pulse for v in session[:120]) / 120
    pulse_end_of_infusion = sum(v.pulse for v in session[38 * 60 : 40 * 60]) / 120
    assert 5.0 < pulse_end_of_infusion - pulse_start < 15.0
    spo2 = [v.spo2 for v in session]
    assert 88.0 < min(spo2) < 93.0  # brief, mild desaturations
    dips = sum(1 for a, b in itertools.pairwise(spo2) if a >= 93.0 > b)
    assert 2 <= dips <= 6
    assert sum(v.pulse for v in session[-120:]) / 120 < pulse_end_of_infusion - 3.0  # recovering after


def test_desaturation_scenario_drops_to_about_86_then_recovers() -> None:
    spo2 = [v.spo2 for v in _play("desaturation", 600)]
    assert 83.5 < min(spo2[60:300]) < 88.0
    assert min(spo2[:60]) > 94.0
    assert sum(spo2[400:600]) / 200 > 95.5


def test_sensor_off_scenario_uses_both_technical_states() -> None:
    states = [v.sensor for v in _play("sensor-off", 300)]
    assert states.count("off") == 30 and states.count("none") == 15
    assert states[0] == "on" and states[-1] == "on"


# --- MasimoSimulator ------------------------------------------------------------------------------------


def test_simulator_writes_whole_lines_and_counts_what_was_dropped() -> None:
    taken: list[bytes] = []
    budget = [10, None, None, 0]  # part of line 1, its rest, all of line 2, nothing (EAGAIN) for line 3

    def output(data: bytes) -> int | None:
        allowance = budget.pop(0)
        if allowance == 0:
            raise BlockingIOError
        taken.append(data if allowance is None else data[:allowance])
        return allowance

    sim = MasimoSimulator(output, seed=5, clock=lambda: WHEN)
    lines = [sim.tick() for _ in range(3)]
    # line 1 went out in two parts, line 2 followed it; line 3 was dropped: the stream holds whole lines
    assert b"".join(taken) == lines[0] + lines[1]
    assert (sim.lines_written, sim.lines_dropped) == (2, 1)
    assert sim.last_line == lines[2]
    assert sim.last_vitals is not None
    assert sim.last_line == format_masimo_line(sim.last_vitals, WHEN)


def _read_until(port: serial.Serial, wanted: bytes, timeout: float) -> list[bytes]:
    lines: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = port.readline()
        if line:
            lines.append(line)
            if wanted in line:
                return lines
    raise AssertionError(f"{wanted!r} not seen in {timeout} s; last lines: {lines[-3:]!r}")


def test_simulator_over_a_real_pty_read_with_pyserial() -> None:
    with PtyLink() as link, MasimoSimulator(link.write, period=0.05, seed=2) as sim:
        with serial.serial_for_url(link.slave_path, timeout=1) as port:
            lines = _read_until(port, b"EXC=000800\r\n", timeout=3)
            lines += [port.readline() for _ in range(3)]
        assert sim.running
    complete = [line for line in lines if line.endswith(b"\r\n")][1:]  # the first may be cut by open()
    assert len(complete) >= 3
    for line in complete:
        assert re.fullmatch(
            rb"\d\d/\d\d/\d\d \d\d:\d\d:\d\d SN=0000056661 SPO2=\d{3}% BPM=\d{3} PI=\d\d\.\d\d% "
            rb"SPCO=--\.-% SPMET=--\.-% DESAT=-- PIDELTA=\+-- PVI=--- ALARM=0000 EXC=000800\r\n",
            line,
        ), line


def test_simulator_survives_a_full_pty_with_no_reader() -> None:
    with PtyLink() as link:
        sim = MasimoSimulator(link.master_fd, period=0.002, seed=4)  # raw fd: the kernel buffer fills up
        with sim:
            deadline = time.monotonic() + 5
            while sim.lines_dropped == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert sim.lines_dropped > 0  # EAGAIN happened...
            assert sim.running  # ...and the thread lived through it
            sim.patient.hold("spo2", 85)
            with serial.serial_for_url(link.slave_path, timeout=1) as port:
                _read_until(port, b"SPO2=085%", timeout=3)


def test_late_reader_sees_fresh_lines_not_a_stale_backlog() -> None:
    with PtyLink() as link, MasimoSimulator(link.write, period=0.002, seed=6) as sim:
        time.sleep(0.3)  # ~150 lines with nobody reading
        assert link.unread_bytes() <= link.max_backlog + 2 * len(sim.last_line or b"")
        assert sim.lines_dropped == 0
        sim.patient.hold("spo2", 85)
        time.sleep(0.1)
        with serial.serial_for_url(link.slave_path, timeout=1) as port:
            lines = [port.readline() for _ in range(5)]
    values = [m.group(1) for line in lines if (m := SPO2_FIELD.search(line))]
    assert values and set(values) == {b"085"}, lines  # nothing from before the hold


def test_pty_link_symlink_is_created_replaced_when_stale_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "oximeter"
    path.symlink_to("/dev/pts/does-not-exist")  # left behind by a SIGKILLed run
    with PtyLink(path) as link:
        assert os.readlink(path) == link.slave_path
    assert not path.exists() and not path.is_symlink()
    regular = tmp_path / "not-a-link"
    regular.write_text("keep me")
    with pytest.raises(FileExistsError):
        PtyLink(regular)
    assert regular.read_text() == "keep me"


# --- run.py: control commands, arguments, the real process ------------------------------------------------


def test_control_commands() -> None:
    patient = SimulatedPatient(seed=1)
    assert apply_command(patient, "spo2 85\n") == "spo2 held at 85"
    assert apply_command(patient, "PULSE 130") == "pulse held at 130"
    apply_command(patient, "pi 2.5  # low perfusion")
    assert patient.step(1.0) == Vitals(85.0, 130.0, 2.5, "on")
    apply_command(patient, "sensor off")
    assert patient.vitals().sensor == "off"
    apply_command(patient, "release spo2")
    assert not patient.signal("spo2").held and patient.signal("pulse").held
    apply_command(patient, "target pulse 90 60")
    assert patient.signal("pulse").target == 90.0
    assert apply_command(patient, "   ") is None
    for bad in ("spo2 abc", "spo2 150", "fly away", "sensor sideways", "release heart", "pulse"):
        with pytest.raises(ControlError):
            apply_command(patient, bad)


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither --link nor --tcp
        ["--link", "/tmp/x", "--tcp", "127.0.0.1:0"],
        ["--link", "/tmp/x", "--device", "oximeter:nonin"],
        ["--link", "/tmp/x", "--device", "oximeter"],
        ["--link", "/tmp/x", "--speed", "0"],
        ["--link", "/tmp/x", "--scenario", "nope"],
        ["--tcp", "localhost"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulators.run", *args],
        cwd=REPO,
        bufsize=0,  # unbuffered pipes: select() on them then tells the truth about unread lines
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _readline(stream: IO[bytes] | None, timeout: float) -> bytes:
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return stream.readline()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


def _stderr_until(proc: subprocess.Popen[bytes], wanted: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        line = _readline(proc.stderr, remaining)
        if wanted in line:
            return line
    raise AssertionError(f"{wanted!r} not on stderr")


def test_run_process_control_and_sigterm(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    link = tmp_path / "oximeter"
    proc = _start("--link", str(link), "--period", "0.05", "--seed", "1", "--control")
    processes.append(proc)
    announcement = _readline(proc.stdout, 10).decode()
    assert re.fullmatch(
        rf"simulating masimo-ascii on {re.escape(str(link))} \(pty /dev/pts/\d+\)\n", announcement
    )
    assert proc.stdin is not None
    with serial.serial_for_url(str(link), timeout=1) as port:
        port.readline()
        proc.stdin.write(b"spo2 85\n")
        proc.stdin.flush()
        _read_until(port, b"SPO2=085%", timeout=2)
        proc.stdin.write(b"make coffee\n")
        proc.stdin.flush()
        assert b"unknown command" in _stderr_until(proc, b"error", timeout=2)
        proc.stdin.write(b"sensor off\n")
        proc.stdin.flush()
        _read_until(port, b"SPO2=---% BPM=--- PI=--.--%", timeout=2)  # still alive after the bad command
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    assert not link.is_symlink()


def test_run_process_stdin_eof_keeps_running_and_sigint_exits_0(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    link = tmp_path / "oximeter"
    proc = _start("--link", str(link), "--period", "0.05", "--control", "--variant", "radical5")
    processes.append(proc)
    _readline(proc.stdout, 10)
    assert proc.stdin is not None
    proc.stdin.close()
    _stderr_until(proc, b"stdin closed", timeout=3)
    with serial.serial_for_url(str(link), timeout=1) as port:
        _read_until(port, b" ALARM=00 EXC=800\r\n", timeout=2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(5) == 0
    assert not link.is_symlink()


def test_run_process_serves_tcp(processes: list[subprocess.Popen[bytes]]) -> None:
    proc = _start("--tcp", "127.0.0.1:0", "--period", "0.05", "--scenario", "desaturation", "--speed", "20")
    processes.append(proc)
    announcement = _readline(proc.stdout, 10).decode()
    match = re.fullmatch(r"simulating masimo-ascii on (socket://127\.0\.0\.1:\d+)\n", announcement)
    assert match, announcement
    with serial.serial_for_url(match.group(1), timeout=1) as port:
        lines = _read_until(port, b"EXC=000800\r\n", timeout=3)
    assert lines[-1].startswith(datetime.now().strftime("%m/%d/%y").encode())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0


def test_run_process_bad_argument_exits_2(processes: list[subprocess.Popen[bytes]]) -> None:
    proc = _start("--link", "/tmp/never-created", "--device", "oximeter:nonin")
    processes.append(proc)
    assert proc.wait(10) == 2
    assert proc.stderr is not None and b"unknown protocol" in proc.stderr.read()
