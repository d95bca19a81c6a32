"""SerialTransport on real ptys: one read per message, sleeping until a whole Nonin packet is there, the
link lost when the other end goes, and ports whose descriptor numbers are past select()'s 1024."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from monitor.devices.nonin_f2 import PACKET_SIZE, NoninF2Codec
from monitor.devices.transport import LinkLost, SerialTransport
from simulators.nonin import encode_packet
from simulators.pty_link import PtyLink
from tests.conftest import IN_CI

PACKET = encode_packet(97, 72, list(range(100, 125)))


@contextlib.contextmanager
def opened(link: PtyLink, read_timeout: float = 1.0) -> Iterator[SerialTransport]:
    transport = SerialTransport(link.slave_path, 9600, read_timeout=read_timeout)
    transport.open()
    try:
        yield transport
    finally:
        transport.close()


def write_later(link: PtyLink, chunks: list[bytes], gap_s: float) -> threading.Thread:
    """Write `chunks` to the device side `gap_s` apart, as a device sending frames at its line rate."""

    def run() -> None:
        for chunk in chunks:
            time.sleep(gap_s)
            link.write(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_message_written_at_once_is_read_at_once() -> None:
    with PtyLink() as link, opened(link) as transport:
        line = b"SN=0000 SPO2=097% BPM=072 PI=01.20%\r\n" * 3
        link.write(line)
        assert transport.read() == line


def test_a_packet_sent_frame_by_frame_is_read_whole_once_it_is_complete() -> None:
    frames = [PACKET[i : i + 5] for i in range(0, PACKET_SIZE, 5)]
    with PtyLink() as link, opened(link, read_timeout=3.0) as transport:
        started = time.monotonic()
        writer = write_later(link, frames, gap_s=1 / 75)  # 75 frames a second, as the oximeter sends them
        data = transport.read(wanted=PACKET_SIZE)
        took = time.monotonic() - started
        writer.join()
    assert data == PACKET  # one wake-up for the 25 frames
    assert 0.3 <= took < 1.0  # woken by the last frame (25 / 75 s), not by the 3 s timeout


def test_fewer_bytes_than_wanted_still_come_at_the_timeout_and_any_byte_wakes_a_plain_read() -> None:
    with PtyLink() as link, opened(link, read_timeout=0.4) as transport:
        link.write(PACKET[:60])
        started = time.monotonic()
        assert transport.read(wanted=PACKET_SIZE) == PACKET[:60]  # nothing lost, nothing waits forever
        assert time.monotonic() - started >= 0.35
        writer = write_later(link, [b"\x06"], gap_s=0.05)
        started = time.monotonic()
        assert transport.read() == b"\x06"  # back to waking at the first byte
        assert time.monotonic() - started < 0.3
        writer.join()
        assert transport.read() == b""  # silence: empty after the timeout


def test_codec_and_transport_together_wake_once_per_packet() -> None:
    codec = NoninF2Codec()
    frames = [packet[i : i + 5] for packet in [PACKET] * 3 for i in range(0, PACKET_SIZE, 5)]
    reads = readings = 0
    with PtyLink() as link, opened(link, read_timeout=3.0) as transport:
        writer = write_later(link, frames, gap_s=1 / 150)  # twice the real rate, to keep the test short
        while readings < 3:
            data = transport.read(wanted=codec.bytes_wanted())
            reads += 1
            readings += sum(1 for event in codec.feed(data) if type(event).__name__ == "DeviceReading")
        writer.join()
    assert reads == 3


def test_the_device_side_closing_loses_the_link() -> None:
    link = PtyLink()
    with opened(link, read_timeout=2.0) as transport:
        closer = threading.Timer(0.1, link.close)
        closer.start()
        started = time.monotonic()
        with pytest.raises(LinkLost):
            for _ in range(5):
                transport.read(wanted=PACKET_SIZE)
        assert time.monotonic() - started < 1.5  # at once, not after a read timeout
        closer.join()


@pytest.fixture
def descriptors_past_1024() -> Iterator[None]:
    """Fill the descriptor table up to 1030, so the next port opened gets a number select() refuses."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = hard if hard == resource.RLIM_INFINITY else max(hard, 1100)
    try:  # root (as CI runs) may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), raised))
    except (ValueError, OSError) as exc:
        message = f"cannot open 1100 descriptors here (hard limit {hard}: {exc})"
        if IN_CI:
            pytest.fail(message + "; CI=true requires this test to run")
        pytest.skip(message)
    fillers: list[int] = []
    try:
        while not fillers or fillers[-1] < 1030:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_port_numbered_past_1024_reads_and_writes(descriptors_past_1024: None) -> None:
    with PtyLink() as link, opened(link, read_timeout=0.5) as transport:
        assert transport._fd is not None and transport._fd >= 1024
        transport.write(b"\x02\x70\x02\x02\x02\x03")  # the Nonin's "select data format 2"
        time.sleep(0.05)
        assert os.read(link.master_fd, 64) == b"\x02\x70\x02\x02\x02\x03"
        link.write(PACKET)
        assert transport.read(wanted=PACKET_SIZE) == PACKET
