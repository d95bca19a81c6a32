"""Real parts for the tests: mosquitto on loopback, headless Chromium, and the CLI as subprocesses.

With CI=true a missing broker or browser fails the run; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent


def need(what: str, path: str | None) -> str:
    """A required system part: its path, or a skip (a failure under CI)."""
    if path:
        return path
    message = f"{what} is not installed (make test installs it with apt)"
    if IN_CI:
        pytest.fail(message + "; CI=true requires it")
    pytest.skip(message)
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class Mosquitto:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = need(
        "mosquitto",
        shutil.which("mosquitto")
        or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None),
    )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield Mosquitto(port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@dataclass
class LockedBroker:
    """A mosquitto started with `kap-monitor broker-config`'s files: accounts, ACLs, maybe TLS."""

    written: object  # monitor.broker_config.WrittenConfig
    plain_port: int | None
    tls_port: int | None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.plain_port}"

    @property
    def tls_address(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def credentials(self, username: str) -> Path:
        return self.written.credentials_file(username)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def locked_mosquitto(tmp_path: Path) -> Iterator[callable]:
    """Start mosquitto as a clinic would: `start(rooms, plain=True, tls=None)` with `tls` a
    (cafile, certfile, keyfile) triple turns the TLS listener on; `plain=False` makes it TLS-only."""
    import pwd

    from monitor.broker_config import ListenerSettings, write_broker_config

    binary = need(
        "mosquitto",
        shutil.which("mosquitto")
        or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None),
    )
    started: list[subprocess.Popen[bytes]] = []

    def start(
        rooms: list[tuple[str, str]], *, plain: bool = True, tls: tuple[Path, Path, Path] | None = None
    ) -> LockedBroker:
        directory = tmp_path / f"broker{len(started)}"
        plain_port, tls_port = (free_port() if plain else None), (free_port() if tls else None)
        settings = ListenerSettings(
            bind="127.0.0.1",
            plain_port=plain_port,
            tls_port=tls_port or 8883,
            cafile=str(tls[0]) if tls else None,
            certfile=str(tls[1]) if tls else None,
            keyfile=str(tls[2]) if tls else None,
            run_as=pwd.getpwuid(os.geteuid()).pw_name,  # tmp_path is private to this user
        )
        written = write_broker_config(directory, rooms, settings)
        log = open(directory / "mosquitto.log", "wb")  # noqa: SIM115 - the process holds it
        proc = subprocess.Popen([binary, "-c", str(written.conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(proc)
        for port in (plain_port, tls_port):
            if port is not None:
                wait_for_port(port)
        return LockedBroker(written, plain_port, tls_port)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=5)


@dataclass
class Proc:
    """A `kap-monitor` sub-command running as its own process, its output captured to a file."""

    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Proc:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", *self.args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.process.poll() is not None:
                raise AssertionError(f"{self.args[0]} exited {self.process.returncode}:\n{out}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.args[0]} did not print {text!r} in {timeout} s:\n{self.output()}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[callable]:
    """Start `kap-monitor` sub-commands; all are stopped at the end of the test."""
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        if args and args[0] == "web" and "--db" in args:
            ensure_test_user(Path(args[args.index("--db") + 1]))
        proc = Proc(list(args), tmp_path / f"{args[0]}-{len(started)}.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


#: who the browser tests sign in as (the dashboard requires sign-in): a supervisor may act in every room;
#: the same account as the demo's, so the demo's pages open the same way
TEST_USER, TEST_PASSWORD = "supervisor", "supervisor"


def ensure_test_user(
    db: Path, name: str = TEST_USER, password: str = TEST_PASSWORD, role: str = "supervisor"
) -> None:
    """A user who can sign in to the dashboard serving `db` (created once)."""
    from monitor.users import UserStore

    users = UserStore(db)
    try:
        users.ensure(name, role, password)
    finally:
        users.close()


def sign_in(driver, name: str, password: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Fill in and send the sign-in form the browser is on, as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "signin-name").send_keys(name)
    driver.find_element(By.ID, "signin-password").send_keys(password)
    driver.find_element(By.ID, "signin-submit").click()
    WebDriverWait(driver, timeout).until(lambda d: "/signin" not in d.current_url)


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Debian Chromium through selenium, with the browser console log available.

    A page that answers with the sign-in form is signed in to as `credentials` (TEST_USER by default; None
    leaves the form for the test) before the test goes on."""
    need("chromium", shutil.which("chromium"))
    driver_path = need("chromedriver", shutil.which("chromedriver"))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    class SigningInChrome(webdriver.Chrome):
        credentials: tuple[str, str] | None = (TEST_USER, TEST_PASSWORD)

        def get(self, url: str) -> None:
            super().get(url)
            if self.credentials and "/signin" in self.current_url and "/signin" not in url:
                sign_in(self, *self.credentials)

    options = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="kap-chromium-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or ""
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = SigningInChrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        _quit_browser(driver, profile)


def _quit_browser(driver: Any, profile: str) -> None:
    """Quit, but never hang the run on a stuck page: a renderer spinning at 100 % CPU (seen twice under
    heavy load) makes `quit()` wait for ever, so after 15 s every process of this profile is killed."""
    quitting = threading.Thread(target=driver.quit, daemon=True)
    quitting.start()
    quitting.join(15)
    if quitting.is_alive():
        subprocess.run(["pkill", "-9", "-f", f"--user-data-dir={profile}"], check=False)
        process = getattr(driver.service, "process", None)
        if process is not None:
            process.kill()
    shutil.rmtree(profile, ignore_errors=True)


@dataclass
class SimulatedRoom:
    """room1 of site clinic: a simulated oximeter under test control, its gateway and the core."""

    sim: Proc
    core: Proc
    gateway: Proc
    db: Path

    #: the SpO2 the simulator holds from the start, so a first screen has a known value
    START_SPO2 = 94


@pytest.fixture
def room1(mosquitto: Mosquitto, procs, tmp_path: Path) -> SimulatedRoom:  # type: ignore[no-untyped-def]
    link, db = tmp_path / "room1-ox", tmp_path / "kap.sqlite"
    sim = procs(
        "simulate",
        "--device",
        "oximeter:masimo-ascii",
        "--link",
        str(link),
        "--control",
        "--period",
        "0.2",
        "--seed",
        "7",
    )
    sim.wait_for_output("simulating")
    sim.send(f"spo2 {SimulatedRoom.START_SPO2}")
    core = procs("core", "--broker", mosquitto.address, "--db", str(db))
    core.wait_for_output("core: recording")
    gateway = procs(
        "gateway",
        "--broker",
        mosquitto.address,
        "--site",
        "clinic",
        "--room",
        "room1",
        "--device",
        f"oximeter:masimo-ascii:{link}",
    )
    gateway.wait_for_output("gateway: clinic/room1/oximeter")
    return SimulatedRoom(sim, core, gateway, db)


@pytest.fixture
def room(mosquitto: Mosquitto, procs, tmp_path: Path) -> Iterator[tuple[object, Path]]:  # type: ignore[no-untyped-def]
    """room1 with all three simulated devices (20x speed: a BP takes ~1.3 s), its gateway and the core."""
    from simulators.room import SimulatedRoom, rooms_toml
    from simulators.scenario_files import load_scenario

    simulated = SimulatedRoom("room1", load_scenario("stable"), tmp_path / "links", speed=20, seed=5).start()
    config, db = tmp_path / "rooms.toml", tmp_path / "kap.sqlite"
    config.write_text(rooms_toml([simulated]))
    procs("core", "--broker", mosquitto.address, "--db", str(db)).wait_for_output("core: recording")
    procs("gateway", "--broker", mosquitto.address, "--config", str(config)).wait_for_output("room1/pump")
    try:
        yield simulated, db
    finally:
        simulated.stop()
