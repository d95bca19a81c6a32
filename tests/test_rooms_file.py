"""A room file describes the devices of many rooms for one gateway process."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.devices.adapter import DeviceSpec
from monitor.devices.gateway import load_rooms


def test_rooms_devices_and_urls_with_colons_are_read(tmp_path: Path) -> None:
    path = tmp_path / "rooms.toml"
    path.write_text(
        'site = "north"\n'
        '[[room]]\nname = "room1"\ndevices = ["oximeter:masimo-ascii:/dev/ttyUSB0"]\n'
        '[[room]]\nname = "room2"\nsite = "south"\ndevices = ["ox:masimo-ascii:socket://10.0.0.12:4001"]\n'
    )
    rooms = load_rooms(path)
    assert [(r.site, r.room) for r in rooms] == [("north", "room1"), ("south", "room2")]
    assert rooms[1].devices == (DeviceSpec("ox", "masimo-ascii", "socket://10.0.0.12:4001"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [[room]] entries"),
        ('[[room]]\nname = "r 1"\ndevices = ["ox:masimo-ascii:/dev/null"]\n', "room 'r 1'"),
        ('[[room]]\nname = "r1"\ndevices = ["ox-only"]\n', "expected NAME:PROTOCOL:URL"),
        ("[[room]\n", "room file"),
    ],
)
def test_a_broken_room_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rooms.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_rooms(path)
