"""The locked-down broker, for real: mosquitto started with `kap-monitor broker-config`'s files.

Who may connect (no anonymous client, no wrong password), who may write where (a gateway only into its own
room, never alarms or clinical events), who may read what (a gateway only its own room's commands), the
TLS listener with a CA made here, and a clear message from the CLI when the broker says no.
"""

from __future__ import annotations

import os
import queue
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from monitor import mdc, wire
from monitor.broker_config import hash_password, read_credentials, verify_password
from monitor.bus import BrokerConfig, MqttLink
from monitor.cli import main
from monitor.store import EventLog
from tests.conftest import LockedBroker, need

pytestmark = pytest.mark.integration

ROOMS = [("clinic", "room1"), ("clinic", "room2")]


def link_as(
    broker: LockedBroker,
    username: str | None,
    *,
    subscriptions: tuple[str, ...] = (),
    tls_ca: Path | None = None,
) -> tuple[MqttLink, queue.Queue[tuple[str, bytes]]]:
    """A started MqttLink logged in with the account's generated credentials file (None: anonymous)."""
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    user = password = None
    if username is not None:
        credentials = read_credentials(broker.credentials(username))
        user, password = credentials.username, credentials.password
    port = broker.tls_port if tls_ca else broker.plain_port
    config = BrokerConfig("127.0.0.1", port or 0, user, password, str(tls_ca) if tls_ca else None)
    link = MqttLink(
        config,
        f"test-{username}-{time.monotonic_ns()}",
        subscriptions=subscriptions,
        on_message=lambda topic, payload, retained: received.put((topic, payload)),
    ).start()
    return link, received


def drain_until(received: queue.Queue[tuple[str, bytes]], topic: str, timeout: float = 5.0) -> list[str]:
    """Every topic that arrived up to and including `topic` (which must arrive)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, _ = received.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(got)
        if got == topic:
            return seen
    raise AssertionError(f"{topic} never arrived; got {seen}")


def assert_only_own_arrives(
    sender: MqttLink, received: queue.Queue[tuple[str, bytes]], forbidden: list[str], own: str
) -> None:
    """Publish the forbidden topics, then `own`, on one connection: QoS 1 keeps them in order, so when
    `own` arrives alone, none of the others ever will."""
    for topic in forbidden:
        sender.publish(topic, b'{"command": "measure"}')
    sender.publish(own, b'{"command": "measure"}')
    assert drain_until(received, own) == [own]


def test_password_hashes_are_mosquitto_passwd_compatible(tmp_path: Path) -> None:
    binary = need("mosquitto_passwd", shutil.which("mosquitto_passwd"))
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run([binary, "-b", str(passwd), "alice", "correct horse"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert verify_password(theirs, "correct horse")
    assert not verify_password(theirs, "correct hors")
    ours = hash_password("correct horse")
    assert ours.startswith("$7$101$") and verify_password(ours, "correct horse")
    assert hash_password("correct horse") != ours, "a fresh salt every time"


def test_broker_config_writes_private_files_and_keeps_passwords(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pwd

    rooms_file = tmp_path / "rooms.toml"
    rooms_file.write_text(
        'site = "clinic"\n[[room]]\nname = "room1"\ndevices = ["ox:masimo-ascii:/dev/null"]\n'
    )
    out = tmp_path / "broker"
    args = ["broker-config", "--dir", str(out), "--config", str(rooms_file), "--room", "east/room9"]
    args += ["--run-as", pwd.getpwuid(os.geteuid()).pw_name, "--port", "1884"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for account in ("core", "web", "status", "gw-clinic-room1", "gw-east-room9"):
        assert account in printed
        mode = stat.S_IMODE((out / "credentials" / f"{account}.cred").stat().st_mode)
        assert mode == 0o600, f"{account}: credentials readable by others ({oct(mode)})"
    assert stat.S_IMODE((out / "passwd").stat().st_mode) == 0o600
    conf = (out / "mosquitto.conf").read_text()
    for line in ("allow_anonymous false", "persistence true", "max_queued_messages 100000", "listener 1884"):
        assert line in conf.splitlines()
    assert "8883" not in conf, "no TLS listener without a certificate"
    acl = (out / "acl").read_text()
    assert "user gw-east-room9\ntopic read kap/east/room9/+/cmd\ntopic write kap/east/room9/+/obs\n" in acl
    before = read_credentials(out / "credentials" / "gw-clinic-room1.cred")
    passwd_lines = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert verify_password(passwd_lines["gw-clinic-room1"], before.password)

    assert main([*args, "--room", "room2"]) == 0  # a room added later: the others keep their passwords
    assert "password kept" in capsys.readouterr().out
    assert read_credentials(out / "credentials" / "gw-clinic-room1.cred") == before
    assert main([*args, "--rotate"]) == 0
    assert read_credentials(out / "credentials" / "gw-clinic-room1.cred") != before


def test_broker_config_refuses_half_a_tls_setup(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["broker-config", "--dir", str(tmp_path), "--room", "room1", "--no-plain"])
    assert "TLS certificate and key are required" in capsys.readouterr().err


def test_anonymous_and_wrong_password_clients_are_refused(locked_mosquitto) -> None:  # type: ignore[no-untyped-def]
    broker = locked_mosquitto(ROOMS)
    anonymous = MqttLink(broker.address, "test-anonymous").start()
    wrong = MqttLink(
        BrokerConfig("127.0.0.1", broker.plain_port or 0, "core", "not-the-password"), "t-w"
    ).start()
    try:
        assert not anonymous.wait_connected(5)
        assert anonymous.refused == "Not authorized"
        assert not wrong.wait_connected(5)
        assert wrong.refused == "Not authorized"
    finally:
        anonymous.stop()
        wrong.stop()


def test_a_gateway_can_write_only_its_own_rooms_readings(locked_mosquitto) -> None:  # type: ignore[no-untyped-def]
    broker = locked_mosquitto(ROOMS)
    core, received = link_as(broker, "core", subscriptions=("kap/#",))
    gateway, _ = link_as(broker, "gw-clinic-room1")
    try:
        assert core.wait_connected(5) and gateway.wait_connected(5)
        time.sleep(0.2)  # the core's subscription is in place
        forged = [
            wire.obs_topic("clinic", "room2", "oximeter"),  # another room's readings
            wire.status_topic("clinic", "room2", "oximeter"),
            wire.alarms_topic("clinic", "room1"),  # clearing or raising alarms is the core's
            wire.events_topic("clinic", "room1"),  # clinical events come from signed-in staff
            wire.cmd_topic("clinic", "room1", "cuff"),  # commands come from the dashboard
            "kap/clinic/room1/oximeter/anything-else",
        ]
        assert_only_own_arrives(gateway, received, forged, wire.obs_topic("clinic", "room1", "oximeter"))
    finally:
        core.stop()
        gateway.stop()


def test_a_gateway_reads_only_its_own_rooms_commands(locked_mosquitto) -> None:  # type: ignore[no-untyped-def]
    broker = locked_mosquitto(ROOMS)
    subscriptions = (wire.cmd_topic("clinic", "room2", "+"), "kap/#", wire.cmd_topic("clinic", "room1", "+"))
    gateway, received = link_as(broker, "gw-clinic-room1", subscriptions=subscriptions)
    web, _ = link_as(broker, "web")
    try:
        assert gateway.wait_connected(5) and web.wait_connected(5)
        time.sleep(0.2)
        other_room, events = wire.cmd_topic("clinic", "room2", "cuff"), wire.events_topic("clinic", "room1")
        assert_only_own_arrives(
            web, received, [other_room, events], wire.cmd_topic("clinic", "room1", "cuff")
        )
    finally:
        gateway.stop()
        web.stop()


def test_a_real_gateway_publishes_through_the_locked_broker_to_the_core(  # type: ignore[no-untyped-def]
    locked_mosquitto, procs, tmp_path: Path
) -> None:
    broker = locked_mosquitto(ROOMS)
    link, db = tmp_path / "room1-ox", tmp_path / "kap.sqlite"
    sim = procs(
        "simulate", "--device", "oximeter:masimo-ascii", "--link", str(link), "--control", "--period", "0.2"
    )
    sim.wait_for_output("simulating")
    sim.send("spo2 93")
    core = procs(
        "core", "--broker", broker.address, "--db", str(db), "--credentials", str(broker.credentials("core"))
    )
    core.wait_for_output("core: recording")
    gateway = procs(
        "gateway",
        "--broker",
        broker.address,
        "--credentials",
        str(broker.credentials("gw-clinic-room1")),
        "--site",
        "clinic",
        "--room",
        "room1",
        "--device",
        f"oximeter:masimo-ascii:{link}",
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
    )
    assert "gw-clinic-room1@" in gateway.wait_for_output("gateway: clinic/room1/oximeter")

    def stored_spo2() -> list[float | None]:
        return [o.value for o in EventLog(db).observations("clinic", "room1", codes=[mdc.SPO2.code])]

    deadline = time.monotonic() + 15
    while 93 not in stored_spo2():
        assert time.monotonic() < deadline, f"no SpO2 93 stored; gateway said:\n{gateway.output()}"
        time.sleep(0.1)
    status = procs(
        "status",
        "--broker",
        broker.address,
        "--credentials",
        str(broker.credentials("status")),
        "--wait",
        "1",
    )
    assert status.process.wait(timeout=20) == 0
    line = next(line for line in status.output().splitlines() if "oximeter" in line)
    assert "room1" in line and "online" in line


def test_a_wrong_password_gets_a_clear_message_not_a_traceback(
    locked_mosquitto, procs, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    broker = locked_mosquitto(ROOMS)
    gateway = procs(
        "gateway",
        "--broker",
        broker.address,
        "--username",
        "gw-clinic-room1",
        "--password",
        "guessed",
        "--room",
        "room1",
        "--device",
        f"oximeter:masimo-ascii:{tmp_path / 'no-such-pty'}",
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
    )
    assert gateway.process.wait(timeout=20) == 1
    out = gateway.output()
    assert f"kap-monitor gateway: the broker at {broker.address} refused account 'gw-clinic-room1'" in out
    assert "Not authorized" in out and "Traceback" not in out

    core = procs("core", "--broker", broker.address, "--db", str(tmp_path / "k.sqlite"))
    assert core.process.wait(timeout=20) == 1
    assert "refused an anonymous client" in core.output() and "Traceback" not in core.output()

    status = procs("status", "--broker", broker.address, "--username", "status", "--password", "guessed")
    assert status.process.wait(timeout=20) == 1
    assert "refused the connection: Not authorized" in status.output() and "Traceback" not in status.output()

    web = procs("web", "--broker", broker.address, "--db", str(tmp_path / "k.sqlite"), "--username", "web")
    assert web.process.wait(timeout=30) == 1
    assert "refused account 'web': Not authorized" in web.output() and "Traceback" not in web.output()

    missing = procs("core", "--broker", broker.address, "--credentials", str(tmp_path / "nope.cred"))
    assert missing.process.wait(timeout=20) == 2
    assert "nope.cred" in missing.output() and "Traceback" not in missing.output()


def make_test_ca(directory: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A throwaway CA and a broker certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    openssl = need("openssl", shutil.which("openssl"))
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        directory / f"{name}{s}" for s in (".key", ".crt", "-server.key", ".csr", "-server.crt")
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        f"/CN=KAP test {name}",
    )
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    extensions = directory / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(extensions),
    )
    return ca, cert, key


def test_the_tls_only_listener_works_with_its_ca_and_refuses_plain_mqtt(
    locked_mosquitto, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ca, cert, key = make_test_ca(tmp_path / "pki")
    broker = locked_mosquitto(ROOMS, plain=False, tls=(ca, cert, key))
    assert broker.plain_port is None and "listener 1883" not in broker.written.conf.read_text()
    core, received = link_as(broker, "core", subscriptions=("kap/#",), tls_ca=ca)
    gateway, _ = link_as(broker, "gw-clinic-room1", tls_ca=ca)
    plain = MqttLink(BrokerConfig("127.0.0.1", broker.tls_port or 0, "core", "x"), "test-plain").start()
    other_ca, _, _ = make_test_ca(tmp_path / "other", "other")
    untrusted, _ = link_as(broker, "core", tls_ca=other_ca)
    try:
        assert core.wait_connected(10) and gateway.wait_connected(10)
        time.sleep(0.2)
        other_room, own = (wire.obs_topic("clinic", room, "oximeter") for room in ("room2", "room1"))
        assert_only_own_arrives(gateway, received, [other_room], own)  # the ACLs hold over TLS too
        assert not plain.wait_connected(2) and not plain.connected, "plain MQTT on the TLS port"
        assert not untrusted.wait_connected(2), "a broker certificate from a CA we do not trust"
    finally:
        for link in (core, gateway, plain, untrusted):
            link.stop()


def test_one_gateway_process_serves_many_rooms_each_with_its_own_account(  # type: ignore[no-untyped-def]
    locked_mosquitto, procs, tmp_path: Path
) -> None:
    broker = locked_mosquitto(ROOMS)
    links, db = tmp_path / "links", tmp_path / "kap.sqlite"
    args = ("--rooms", "2", "--link-dir", str(links), "--scenario", "stable", "--speed", "20", "--seed", "3")
    procs("simulate", *args).wait_for_output("simulating 2 rooms")
    procs(
        "core", "--broker", broker.address, "--db", str(db), "--credentials", str(broker.credentials("core"))
    ).wait_for_output("core: recording")
    gateway = procs(
        "gateway",
        "--broker",
        broker.address,
        "--config",
        str(links / "rooms.toml"),
        "--credentials-dir",
        str(broker.written.directory / "credentials"),
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
    )
    out = gateway.wait_for_output("clinic/room2/pump")
    assert "gw-clinic-room1@" in out and "gw-clinic-room2@" in out

    def rooms_with_spo2() -> set[str]:
        log = EventLog(db) if db.exists() else None
        return {r for r in ("room1", "room2") if log and log.observations("clinic", r, codes=[mdc.SPO2.code])}

    deadline = time.monotonic() + 20
    while rooms_with_spo2() != {"room1", "room2"}:
        assert time.monotonic() < deadline, (
            f"stored rooms {rooms_with_spo2()}; gateway said:\n{gateway.output()}"
        )
        time.sleep(0.2)
