"""The command line: every sub-command explains itself; bad arguments get a clear error, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def kap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", ["demo", "simulate", "gateway", "core", "web", "status"])
def test_every_sub_command_has_help(command: str) -> None:
    result = kap(command, "--help")
    assert result.returncode == 0
    assert f"kap-monitor {command}" in result.stdout
    assert "--" in result.stdout


def test_top_level_help_names_the_sub_commands_and_the_safety_line() -> None:
    result = kap("--help")
    assert result.returncode == 0
    for command in ("demo", "simulate", "gateway", "core", "web"):
        assert command in result.stdout
    assert "not a certified medical device" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gateway", "--room", "r1", "--device", "oximeter:masimo-ascii"], "expected NAME:PROTOCOL:URL"),
        (["gateway", "--room", "r1", "--device", "ox:nonsense:/dev/ttyS0"], "unknown protocol 'nonsense'"),
        (["gateway", "--room", "room 1", "--device", "ox:masimo-ascii:/dev/ttyS0"], "room 'room 1'"),
        (
            [
                "gateway",
                "--broker",
                "localhost:99999",
                "--room",
                "r1",
                "--device",
                "ox:masimo-ascii:/dev/null",
            ],
            "out of range",
        ),
        (["gateway", "--room", "r1"], "--room and at least one --device are required"),
        (["core", "--broker", "host:port"], "is not a number"),
        (["web", "--port", "0"], "out of range"),
        (["demo", "--rooms", "0"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = kap(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_room_file_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rooms = tmp_path / "rooms.toml"
    rooms.write_text('[[room]]\nname = "room1"\n')
    result = kap("gateway", "--config", str(rooms))
    assert result.returncode == 2
    assert "needs a name and at least one device" in result.stderr
