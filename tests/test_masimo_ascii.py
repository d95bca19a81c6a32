"""MasimoAsciiCodec: bytes in, events out (no ports, no clocks)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from monitor import mdc
from monitor.conditions import CONDITION_TEXT, SENSOR_PROBLEMS
from monitor.devices.masimo_ascii import (
    ALARM_CONDITIONS,
    EXCEPTION_CONDITIONS,
    MasimoAsciiCodec,
    MasimoLineError,
    parse_line,
)
from monitor.model import DeviceReading, Measurement, RejectedFrame

# The example line from the reference (device-protocols.md section 1a), a Radical-7 without PVI on it.
EXAMPLE = (
    b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- "
    b"PIDELTA=+-- ALARM=0000 EXC=000800"
)
EXAMPLE_TIME = datetime(2016, 2, 22, 22, 47, 45)
EXAMPLE_EXTRA = {
    "SN": "0000056661",
    "SPCO": "--.-%",
    "SPMET": "--.-%",
    "DESAT": "--",
    "PIDELTA": "+--",
    "ALARM": "0000",
    "EXC": "000800",
}


def spo2(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(code=mdc.SPO2.code, value=value, unit=mdc.SPO2.unit, valid=valid)


def pulse(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(code=mdc.PULSE_RATE.code, value=value, unit=mdc.PULSE_RATE.unit, valid=valid)


def pi(value: float | None, valid: bool = True) -> Measurement:
    return Measurement(code=mdc.PERFUSION_INDEX.code, value=value, unit=mdc.PERFUSION_INDEX.unit, valid=valid)


def line(fields: str, stamp: str = "02/22/16 22:47:45") -> bytes:
    return f"{stamp} {fields}".encode("ascii")


def decode(data: bytes) -> list[DeviceReading | RejectedFrame]:
    return MasimoAsciiCodec().feed(data)


def only_reading(data: bytes) -> DeviceReading:
    events = decode(data + b"\r\n")
    assert len(events) == 1, events
    assert isinstance(events[0], DeviceReading), events
    return events[0]


def readings(events: list[DeviceReading | RejectedFrame]) -> list[DeviceReading]:
    return [event for event in events if isinstance(event, DeviceReading)]


def rejects(events: list[DeviceReading | RejectedFrame]) -> list[RejectedFrame]:
    return [event for event in events if isinstance(event, RejectedFrame)]


# --- model variants -------------------------------------------------------------------------------------


def test_reference_example_line_decodes_fully() -> None:
    codec = MasimoAsciiCodec()
    assert codec.feed(EXAMPLE + b"\r\n") == [
        DeviceReading(
            measurements=(spo2(98.0), pulse(97.0), pi(3.6)),
            conditions=frozenset(),
            device_time=EXAMPLE_TIME,
            extra=EXAMPLE_EXTRA,
        )
    ]
    assert (codec.frames_ok, codec.rejected) == (1, 0)


def test_measurements_carry_mdc_codes_and_ucum_units() -> None:
    reading = only_reading(EXAMPLE)
    assert [(m.code, m.unit) for m in reading.measurements] == [
        (150456, "%"),
        (149530, "/min"),
        (150448, "%"),
    ]


def test_radical7_with_pvi() -> None:
    reading = only_reading(
        line(
            "SN=0000056661 SPO2=095% BPM=061 PI=01.20% SPCO=01.5% SPMET=00.8% DESAT=02 PIDELTA=+05 "
            "PVI=012 ALARM=0000 EXC=000800"
        )
    )
    assert reading.measurements == (spo2(95.0), pulse(61.0), pi(1.2))
    assert reading.conditions == frozenset()
    assert reading.device_time == EXAMPLE_TIME
    assert reading.extra == {
        "SN": "0000056661",
        "SPCO": "01.5%",
        "SPMET": "00.8%",
        "DESAT": "02",
        "PIDELTA": "+05",
        "PVI": "012",
        "ALARM": "0000",
        "EXC": "000800",
    }


def test_rad8_without_pvi() -> None:
    reading = only_reading(
        line(
            "SN=0000012345 SPO2=100% BPM=150 PI=20.00% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- "
            "ALARM=0005 EXC=000800",
            stamp="12/31/23 23:59:59",
        )
    )
    assert reading.measurements == (spo2(100.0), pulse(150.0), pi(20.0))
    assert reading.conditions == {"device_spo2_high", "device_pulse_high"}
    assert reading.device_time == datetime(2023, 12, 31, 23, 59, 59)
    assert "PVI" not in reading.extra


def test_radical5_with_three_digit_exc() -> None:
    healthy = only_reading(line("SPO2=097% BPM=072 PI=02.10% ALARM=0000 EXC=800", stamp="01/05/09 07:03:02"))
    assert healthy == DeviceReading(
        measurements=(spo2(97.0), pulse(72.0), pi(2.1)),
        conditions=frozenset(),
        device_time=datetime(2009, 1, 5, 7, 3, 2),
        extra={"ALARM": "0000", "EXC": "800"},
    )
    off = only_reading(line("SPO2=097% BPM=072 PI=02.10% ALARM=0000 EXC=020"))
    assert off.conditions == {"sensor_off"}
    assert off.measurements == (spo2(97.0, valid=False), pulse(72.0, valid=False), pi(2.1, valid=False))
    zero = only_reading(line("SPO2=097% BPM=072 PI=02.10% ALARM=0000 EXC=000"))
    assert zero.conditions == frozenset()
    assert all(m.valid for m in zero.measurements)


def test_radical7_build_with_sphb_spoc_resvd_exc1() -> None:
    reading = only_reading(
        line(
            "SN=0000056661 SPO2=099% BPM=088 PI=05.10% SPCO=--.-% SPMET=01.1% SPHB=13.4 SPOC=18.2 "
            "DESAT=-- PIDELTA=+-- PVI=015 RESVD=0000 ALARM=0000 EXC=000800 EXC1=00000000"
        )
    )
    assert reading.measurements == (spo2(99.0), pulse(88.0), pi(5.1))
    assert reading.conditions == frozenset()
    assert reading.extra["SPHB"] == "13.4"
    assert reading.extra["SPOC"] == "18.2"
    assert reading.extra["RESVD"] == "0000"
    assert reading.extra["EXC1"] == "00000000"


def test_fields_in_any_order_and_any_subset() -> None:
    shuffled = only_reading(line("EXC=000800 PI=03.60% ALARM=0000 BPM=097 SPO2=098%"))
    assert shuffled.measurements == (spo2(98.0), pulse(97.0), pi(3.6))
    only_pulse = only_reading(line("BPM=120"))
    assert only_pulse.measurements == (pulse(120.0),)
    assert only_pulse.conditions == frozenset()
    nothing_measured = only_reading(line("SN=0000056661 EXC=000001"))
    assert nothing_measured.measurements == ()
    assert nothing_measured.conditions == {"no_sensor"}


def test_units_are_optional_and_stripped() -> None:
    reading = only_reading(line("SPO2=98 BPM=097 PI=0.5"))
    assert reading.measurements == (spo2(98.0), pulse(97.0), pi(0.5))


# --- missing values -------------------------------------------------------------------------------------


def test_dashes_are_missing_values() -> None:
    reading = only_reading(line("SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=000800"))
    assert reading.measurements == (spo2(None, valid=False), pulse(None, valid=False), pi(None, valid=False))
    assert reading.conditions == frozenset()


def test_one_dashed_value_leaves_the_others_valid() -> None:
    reading = only_reading(line("SPO2=097% BPM=--- PI=01.00% ALARM=0000 EXC=000800"))
    assert reading.measurements == (spo2(97.0), pulse(None, valid=False), pi(1.0))


# --- ALARM and EXC bitfields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "condition"),
    [
        ("0001", "device_spo2_high"),
        ("0002", "device_spo2_low"),
        ("0004", "device_pulse_high"),
        ("0008", "device_pulse_low"),
        ("0010", "device_alarm_active"),
        ("0020", "device_alarm_silenced"),
        ("0040", "low_battery"),
        ("0100", "device_spco_high"),
        ("0200", "device_spco_low"),
        ("0400", "device_spmet_high"),
        ("0800", "device_spmet_low"),
        ("1000", "device_desat_index"),
        ("2000", "device_pi_delta"),
    ],
)
def test_each_alarm_bit(word: str, condition: str) -> None:
    reading = only_reading(line(f"SPO2=098% BPM=097 PI=03.60% ALARM={word} EXC=000800"))
    assert reading.conditions == {condition}
    assert all(m.valid for m in reading.measurements)  # device alarms say nothing about the sensor


@pytest.mark.parametrize(
    ("word", "condition"),
    [
        ("000001", "no_sensor"),
        ("000002", "sensor_defective"),
        ("000004", "low_perfusion"),
        ("000008", "pulse_search"),
        ("000010", "interference"),
        ("000020", "sensor_off"),
        ("000040", "ambient_light"),
        ("000080", "sensor_unrecognized"),
        ("000100", "sensor_incompatible"),
        ("000400", "low_signal_iq"),
        ("001000", "no_cable"),
    ],
)
def test_each_exc_bit(word: str, condition: str) -> None:
    reading = only_reading(line(f"SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC={word}"))
    assert reading.conditions == {condition}


def test_exc_masimo_set_bit_is_healthy() -> None:
    reading = only_reading(line("SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC=000800"))
    assert reading.conditions == frozenset()
    assert reading.measurements == (spo2(98.0), pulse(97.0), pi(3.6))


def test_combined_bits_hex_case_insensitive_and_unknown_bits_ignored() -> None:
    reading = only_reading(line("SPO2=088% BPM=097 PI=03.60% ALARM=c03a EXC=00a80c"))
    # ALARM 0xC03A = 0x8000|0x4000 (unknown) + 0x20 + 0x10 + 0x08 + 0x02
    # EXC 0x00A80C = 0x8000|0x2000 (unknown) + 0x800 (Masimo SET) + 0x08 + 0x04
    assert reading.conditions == {
        "device_alarm_silenced",
        "device_alarm_active",
        "device_pulse_low",
        "device_spo2_low",
        "pulse_search",
        "low_perfusion",
    }
    assert reading.extra["ALARM"] == "c03a"  # raw words kept so unmapped bits stay visible
    assert reading.extra["EXC"] == "00a80c"


def test_bit_tables_only_name_known_conditions() -> None:
    for condition in (*ALARM_CONDITIONS.values(), *EXCEPTION_CONDITIONS.values()):
        assert condition in CONDITION_TEXT
    assert 0x800 not in EXCEPTION_CONDITIONS


@pytest.mark.parametrize("word", ["000001", "000002", "000020", "000080", "000100", "001000", "000821"])
def test_sensor_problem_makes_numbers_invalid(word: str) -> None:
    reading = only_reading(line(f"SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC={word}"))
    assert reading.conditions & SENSOR_PROBLEMS
    assert reading.measurements == (spo2(98.0, valid=False), pulse(97.0, valid=False), pi(3.6, valid=False))


@pytest.mark.parametrize("word", ["000004", "000008", "000010", "000040", "000400"])
def test_signal_quality_conditions_keep_numbers_valid(word: str) -> None:
    reading = only_reading(line(f"SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC={word}"))
    assert not reading.conditions & SENSOR_PROBLEMS
    assert reading.measurements == (spo2(98.0), pulse(97.0), pi(3.6))


def test_exc1_is_merged_into_exc() -> None:
    reading = only_reading(line("SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC=000800 EXC1=00000024"))
    assert reading.conditions == {"sensor_off", "low_perfusion"}
    assert reading.measurements == (spo2(98.0, valid=False), pulse(97.0, valid=False), pi(3.6, valid=False))


# --- out of range ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("SPO2=101% BPM=097 PI=03.60%", (spo2(101.0, valid=False), pulse(97.0), pi(3.6))),
        ("SPO2=-01% BPM=097 PI=03.60%", (spo2(-1.0, valid=False), pulse(97.0), pi(3.6))),
        ("SPO2=098% BPM=351 PI=03.60%", (spo2(98.0), pulse(351.0, valid=False), pi(3.6))),
        ("SPO2=098% BPM=097 PI=100.01%", (spo2(98.0), pulse(97.0), pi(100.01, valid=False))),
        ("SPO2=100% BPM=350 PI=00.00%", (spo2(100.0), pulse(350.0), pi(0.0))),  # bounds are valid
        ("SPO2=000% BPM=000 PI=100.0%", (spo2(0.0), pulse(0.0), pi(100.0))),
    ],
)
def test_out_of_range_values_are_invalid_but_the_line_counts(
    fields: str, expected: tuple[Measurement, ...]
) -> None:
    codec = MasimoAsciiCodec()
    events = codec.feed(line(f"{fields} ALARM=0002 EXC=000800") + b"\r\n")
    assert len(events) == 1
    reading = events[0]
    assert isinstance(reading, DeviceReading)
    assert reading.measurements == expected
    assert reading.conditions == {"device_spo2_low"}
    assert (codec.frames_ok, codec.rejected) == (1, 0)


# --- unknown keys, timestamps ---------------------------------------------------------------------------


def test_unknown_keys_are_kept_as_strings() -> None:
    reading = only_reading(line("SPO2=098% FOO=bar BPM=097 NEWFIELD=12.5% EMPTY= PI=03.60%"))
    assert reading.measurements == (spo2(98.0), pulse(97.0), pi(3.6))
    assert reading.extra == {"FOO": "bar", "NEWFIELD": "12.5%", "EMPTY": ""}


@pytest.mark.parametrize(
    "stamp",
    ["13/45/16 22:47:45", "02/22/16 25:00:00", "02/30/16 10:00:00", "2016-02-22 22:47:45", "22:47:45", ""],
)
def test_malformed_or_missing_timestamp_keeps_the_values(stamp: str) -> None:
    reading = only_reading(f"{stamp} SPO2=098% BPM=097 PI=03.60% EXC=000020".strip().encode())
    assert reading.device_time is None
    assert reading.measurements == (spo2(98.0, valid=False), pulse(97.0, valid=False), pi(3.6, valid=False))
    assert reading.conditions == {"sensor_off"}


def test_timestamp_is_24_hour_month_first() -> None:
    reading = only_reading(line("SPO2=098%", stamp="07/04/21 13:05:09"))
    assert reading.device_time == datetime(2021, 7, 4, 13, 5, 9)


# --- line framing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\r\n", b"\n\r", b"\n", b"\r", b"\r\n\r\n"])
def test_line_endings(ending: bytes) -> None:
    codec = MasimoAsciiCodec()
    second = EXAMPLE.replace(b"SPO2=098%", b"SPO2=094%").replace(b"22:47:45", b"22:47:46")
    events = codec.feed(EXAMPLE + ending + second + ending)
    assert [(r.measurements[0].value, r.device_time) for r in readings(events)] == [
        (98.0, EXAMPLE_TIME),
        (94.0, datetime(2016, 2, 22, 22, 47, 46)),
    ]
    assert len(events) == 2
    assert (codec.frames_ok, codec.rejected) == (2, 0)


def test_blank_lines_are_skipped() -> None:
    codec = MasimoAsciiCodec()
    events = codec.feed(b"\r\n\r\n   \r\n\t\n" + EXAMPLE + b"\r\n\n\r\n")
    assert len(events) == 1
    assert isinstance(events[0], DeviceReading)
    assert (codec.frames_ok, codec.rejected) == (1, 0)


def test_partial_line_stays_buffered_until_its_line_end() -> None:
    codec = MasimoAsciiCodec()
    assert codec.feed(EXAMPLE[:40]) == []
    assert codec.feed(EXAMPLE[40:]) == []  # complete text, but no line end yet
    assert (codec.frames_ok, codec.rejected) == (0, 0)
    events = codec.feed(b"\r")
    assert [r.measurements for r in readings(events)] == [(spo2(98.0), pulse(97.0), pi(3.6))]
    assert codec.feed(b"\n") == []
    assert codec.feed(EXAMPLE[:10]) == []
    assert (codec.frames_ok, codec.rejected) == (1, 0)


def test_line_end_split_across_feeds_with_lf_cr() -> None:
    codec = MasimoAsciiCodec()
    assert len(codec.feed(EXAMPLE + b"\n")) == 1
    assert codec.feed(b"\r" + EXAMPLE[:5]) == []
    assert len(codec.feed(EXAMPLE[5:] + b"\n\r")) == 1
    assert codec.frames_ok == 2


# --- garbage --------------------------------------------------------------------------------------------


def test_garbage_before_between_and_after_valid_lines() -> None:
    first = EXAMPLE
    second = line("SPO2=091% BPM=110 PI=00.40% ALARM=0002 EXC=000804", stamp="02/22/16 22:47:46")
    stream = (
        b"\x00\xff\xfe\x80\r\n"  # binary junk before
        + first
        + b"\r\nhello world\r\n"  # no KEY=value pair
        + b"\xc3\xa9t\xc3\xa9 SPO2=097%\r\n"  # non-ASCII
        + second
        + b"\r\nSPO2=098% ALARM=ZZZZ\r\n"  # unparsable bitfield
        + b"\x02\x03\x1b[0m\r\n"  # control bytes after
    )
    codec = MasimoAsciiCodec()
    events = codec.feed(stream)
    assert [type(e) for e in events] == [
        RejectedFrame,
        DeviceReading,
        RejectedFrame,
        RejectedFrame,
        DeviceReading,
        RejectedFrame,
        RejectedFrame,
    ]
    good = readings(events)
    assert good[0].measurements == (spo2(98.0), pulse(97.0), pi(3.6))
    assert good[1].measurements == (spo2(91.0), pulse(110.0), pi(0.4))
    assert good[1].conditions == {"device_spo2_low", "low_perfusion"}
    assert [(r.reason, r.data) for r in rejects(events)] == [
        ("non-ASCII or control byte 0x00 at offset 0", b"\x00\xff\xfe\x80"),
        ("no KEY=value pair in line", b"hello world"),
        ("non-ASCII or control byte 0xc3 at offset 0", b"\xc3\xa9t\xc3\xa9 SPO2=097%"),
        ("ALARM value 'ZZZZ' is not a hexadecimal bitfield", b"SPO2=098% ALARM=ZZZZ"),
        ("non-ASCII or control byte 0x02 at offset 0", b"\x02\x03\x1b[0m"),
    ]
    assert (codec.frames_ok, codec.rejected) == (2, 5)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (line("SPO2=098% EXC=00080G"), "EXC value '00080G' is not a hexadecimal bitfield"),
        (line("SPO2=098% EXC=0x0800"), "EXC value '0x0800' is not a hexadecimal bitfield"),
        (line("SPO2=098% EXC="), "EXC value '' is not a hexadecimal bitfield"),
        (line("SPO2=098% EXC=000800 EXC1=--"), "EXC1 value '--' is not a hexadecimal bitfield"),
        (line("SPO2=9?8% BPM=097"), "SPO2 value '9?8%' is neither a number nor dashes"),
        (line("SPO2=098% BPM=abc"), "BPM value 'abc' is neither a number nor dashes"),
        (line("SPO2=098% PI="), "PI value '' is neither a number nor dashes"),
        (line("SPO2=098% BPM=097 oops PI=03.60%"), "malformed token 'oops': expected KEY=value"),
        (line("SPO2=098% BPM=097 SPO2=090%"), "duplicate key 'SPO2'"),
        (b"02/22/16 22:47:45", "no KEY=value pair in line"),
        (b"02/22/16 22:47:45 SPO2=098%\x7f", "non-ASCII or control byte 0x7f at offset 27"),
    ],
)
def test_malformed_lines_are_rejected_with_a_reason(bad_line: bytes, reason: str) -> None:
    codec = MasimoAsciiCodec()
    events = codec.feed(bad_line + b"\r\n" + EXAMPLE + b"\r\n")
    assert events[0] == RejectedFrame(reason=reason, data=bad_line)
    assert isinstance(events[1], DeviceReading)
    assert events[1].measurements == (spo2(98.0), pulse(97.0), pi(3.6))
    assert len(events) == 2
    assert (codec.frames_ok, codec.rejected) == (1, 1)


def test_junk_glued_in_front_of_a_line_is_cut_at_the_timestamp() -> None:
    codec = MasimoAsciiCodec()
    truncated_previous = EXAMPLE[:50]  # lost its tail and its line end
    events = codec.feed(b"\x00\x00\xff" + truncated_previous + EXAMPLE + b"\r\n")
    assert events == [
        RejectedFrame(
            reason="incomplete or garbled data before a line's timestamp",
            data=b"\x00\x00\xff" + truncated_previous,
        ),
        DeviceReading(
            measurements=(spo2(98.0), pulse(97.0), pi(3.6)),
            device_time=EXAMPLE_TIME,
            extra=EXAMPLE_EXTRA,
        ),
    ]
    assert (codec.frames_ok, codec.rejected) == (1, 1)


def test_tail_of_a_line_after_connecting_mid_stream_keeps_its_values() -> None:
    codec = MasimoAsciiCodec()
    events = codec.feed(b"47:45 SN=0000056661 SPO2=098% BPM=097\r\n" + EXAMPLE + b"\r\n")
    good = readings(events)
    assert [r.device_time for r in good] == [None, EXAMPLE_TIME]
    assert good[0].measurements == (spo2(98.0), pulse(97.0))
    assert (codec.frames_ok, codec.rejected) == (2, 0)


def test_rejected_data_is_truncated() -> None:
    codec = MasimoAsciiCodec()
    junk = b"\x01" * 900
    events = codec.feed(junk + b"\r\n")
    assert events == [RejectedFrame(reason="non-ASCII or control byte 0x01 at offset 0", data=b"\x01" * 200)]


def test_over_long_line_without_terminator_is_dropped_and_decoding_resyncs() -> None:
    codec = MasimoAsciiCodec()
    assert codec.feed(EXAMPLE + b"\r\n")[0] == only_reading(EXAMPLE)
    events = codec.feed(b"A" * 1000)
    assert events == []  # not over the bound yet
    events = codec.feed(b"B" * 100)
    assert events == [
        RejectedFrame(
            reason="line longer than 1024 bytes without a line end; dropped up to the next line end",
            data=b"A" * 200,
        )
    ]
    assert codec.rejected == 1
    for _ in range(100):  # a device spewing without line ends must not grow memory or the reject count
        assert codec.feed(b"C" * 1000) == []
    assert len(codec._buffer) <= 1024
    assert codec.rejected == 1
    events = codec.feed(b"CCC SPO2=050%\r\n" + EXAMPLE + b"\r\n")  # tail of the long line is dropped
    assert readings(events) == [only_reading(EXAMPLE)]
    assert len(events) == 1
    assert (codec.frames_ok, codec.rejected) == (2, 1)


def test_over_long_line_in_one_chunk_with_its_terminator() -> None:
    codec = MasimoAsciiCodec()
    events = codec.feed(EXAMPLE + b"\r\n" + b"x=" + b"9" * 2000 + b"\r\n" + EXAMPLE + b"\r\n")
    assert [type(e) for e in events] == [DeviceReading, RejectedFrame, DeviceReading]
    assert events[1] == RejectedFrame(
        reason="line longer than 1024 bytes without a line end; dropped up to the next line end",
        data=b"x=" + b"9" * 198,
    )
    assert (codec.frames_ok, codec.rejected) == (2, 1)


def test_good_line_at_the_end_of_an_over_long_run_is_not_lost() -> None:
    codec = MasimoAsciiCodec()
    events = codec.feed(b"\xaa" * 3000 + EXAMPLE + b"\r\n")
    assert events == [
        RejectedFrame(
            reason="line longer than 1024 bytes without a line end; dropped up to the next line end",
            data=b"\xaa" * 200,
        ),
        only_reading(EXAMPLE),
    ]
    assert (codec.frames_ok, codec.rejected) == (1, 1)


def test_smaller_bound_is_configurable() -> None:
    codec = MasimoAsciiCodec(max_line=64)
    events = codec.feed(EXAMPLE + b"\r\n" + line("SPO2=098%") + b"\r\n")
    assert [type(e) for e in events] == [RejectedFrame, DeviceReading]
    assert isinstance(events[0], RejectedFrame)
    assert events[0].reason.startswith("line longer than 64 bytes")


# --- chunking -------------------------------------------------------------------------------------------

MIXED_STREAM = (
    b"\x00\xff\r\n"
    + EXAMPLE
    + b"\r\n"
    + line("SPO2=---% BPM=--- PI=--.--% ALARM=0010 EXC=000021")
    + b"\n\r"
    + b"garbage without pairs\n"
    + b"\xfe\xfe"
    + line("SPO2=099% BPM=060 PI=10.00% ALARM=0000 EXC=800", stamp="02/22/16 22:47:47")
    + b"\r"
    + b"Z" * 2500
    + b"\r\n"
    + b"\x17" * 1500
    + EXAMPLE
    + b"\r\n"
    + line("SPO2=120% BPM=097 ALARM=0000 EXC=000800 EXC1=0000")
    + b"\r\n"
    + EXAMPLE[:30]  # partial line left in the buffer
)


def _feed_in_chunks(chunks: list[bytes]) -> tuple[list[DeviceReading | RejectedFrame], int, int]:
    codec = MasimoAsciiCodec()
    events: list[DeviceReading | RejectedFrame] = []
    for chunk in chunks:
        events.extend(codec.feed(chunk))
    return events, codec.frames_ok, codec.rejected


def test_mixed_stream_in_one_chunk() -> None:
    events, frames_ok, rejected = _feed_in_chunks([MIXED_STREAM])
    assert [r.measurements[0] for r in readings(events)] == [
        spo2(98.0),
        spo2(None, valid=False),
        spo2(99.0),
        spo2(98.0),
        spo2(120.0, valid=False),
    ]
    assert readings(events)[1].conditions == {"device_alarm_active", "no_sensor", "sensor_off"}
    assert [r.reason for r in rejects(events)] == [
        "non-ASCII or control byte 0x00 at offset 0",
        "no KEY=value pair in line",
        "incomplete or garbled data before a line's timestamp",
        "line longer than 1024 bytes without a line end; dropped up to the next line end",
        "line longer than 1024 bytes without a line end; dropped up to the next line end",
    ]
    assert (frames_ok, rejected) == (5, 5)


def test_byte_at_a_time_equals_one_chunk() -> None:
    whole = _feed_in_chunks([MIXED_STREAM])
    one_by_one = _feed_in_chunks([MIXED_STREAM[i : i + 1] for i in range(len(MIXED_STREAM))])
    assert one_by_one == whole


@pytest.mark.parametrize("seed", range(20))
def test_random_chunking_equals_one_chunk(seed: int) -> None:
    rng = random.Random(seed)
    chunks: list[bytes] = []
    position = 0
    while position < len(MIXED_STREAM):
        size = rng.choice([1, 2, 3, 7, 64, 500, 1100, 4000])
        chunks.append(MIXED_STREAM[position : position + size])
        position += size
    assert _feed_in_chunks(chunks) == _feed_in_chunks([MIXED_STREAM])


# --- helper and interface -------------------------------------------------------------------------------


def test_parse_line_helper() -> None:
    assert parse_line(EXAMPLE) == only_reading(EXAMPLE)
    with pytest.raises(MasimoLineError, match="no KEY=value pair"):
        parse_line(b"nothing here")
    with pytest.raises(ValueError, match="EXC value 'xyz'"):
        parse_line(b"SPO2=098% EXC=xyz")


def test_codec_interface() -> None:
    codec = MasimoAsciiCodec()
    assert MasimoAsciiCodec.protocol == "masimo-ascii"
    assert codec.initial_commands() == b""
    assert (codec.frames_ok, codec.rejected) == (0, 0)
    assert codec.feed(b"") == []
