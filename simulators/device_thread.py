"""What every device simulator does the same way: run in a background thread and write without blocking.

A serial line has no memory: a device talking to nobody loses its bytes, and it does not stop or hang
because nobody listens. The simulators must behave the same, and more: a simulator that blocks on a full
pty, or whose thread dies of EAGAIN or EIO, takes the demo down with it. So the thread lifecycle (start,
stop, running, `with`) and the "offer the port what it takes, never block, never raise" write live here,
once, in `DeviceThread`; `PeriodicDevice` adds the loop of devices that talk unasked at a fixed rate.

What a device does with a chunk the port could not take stays the device's own business: the streaming
oximeters (Masimo, Nonin) send whole lines or packets or nothing (`DeviceThread._deliver`); the SunTech
cuff and the Alaris pump, which answer a host, keep their own rules for replies in their modules.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self

#: Writes bytes with os.write's contract: returns how many it took (None: all of them) and raises
#: BlockingIOError when it can take none.
Writer = Callable[[bytes], int | None]
#: Where a device's bytes go: a file descriptor (written with os.write) or a Writer.
Output = int | Writer


def writer(output: Output) -> Writer:
    """A Writer for `output`; a file descriptor is put in non-blocking mode (the simulator owns that side)."""
    if isinstance(output, int):
        os.set_blocking(output, False)
        fd = output
        return lambda data: os.write(fd, data)
    return output


class DeviceThread:
    """A simulated device on a port, run by one background thread that must never block or die.

    Subclasses name the device and the words logged for a port error and for the port working again,
    and implement `_run`, which loops until `self._stop` is set. `_offer` is how they write: it returns
    how many bytes the port took, 0 when it could take none (EAGAIN, EIO, a broken socket), and never
    raises OSError; `last_error` holds the port's error while it lasts (logged when it first appears,
    not at every write).
    """

    _device: ClassVar[str]  # "masimo": thread "masimo-simulator", log lines "masimo simulator: ..."
    _port_error: ClassVar[str]  # e.g. "output error, dropping lines"
    _port_recovered: ClassVar[str]  # e.g. "output writable again"

    def __init__(self, write: Writer) -> None:
        self._write = write
        self.last_error: OSError | None = None
        #: the rest of a partly written chunk, to send before anything new
        self._pending = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- writing --------------------------------------------------------------------------------------

    def _offer(self, data: bytes) -> int:
        """Bytes of `data` the port took; 0 on EAGAIN or an I/O error (logged once, not every write)."""
        try:
            taken = self._write(data)
        except BlockingIOError:
            return 0  # nobody is reading and the buffer is full: exactly what a real line would lose
        except OSError as exc:
            self._note_error(exc)
            return 0
        self._note_recovered()
        return len(data) if taken is None else max(0, min(int(taken), len(data)))

    def _note_error(self, exc: OSError) -> None:
        """Remember a port error; log it when it is new (EIO, no one on the other side, only at debug)."""
        if self.last_error is None or self.last_error.errno != exc.errno:
            level = logging.DEBUG if exc.errno == errno.EIO else logging.WARNING
            self._log.log(level, "%s simulator: %s: %s", self._device, self._port_error, exc)
        self.last_error = exc

    def _note_recovered(self) -> None:
        """A write went through: the port error, if any, is over."""
        if self.last_error is not None:
            self._log.info("%s simulator: %s", self._device, self._port_recovered)
            self.last_error = None

    def _deliver(self, chunk: bytes) -> bool:
        """Send `chunk` whole or not at all; True if the port took it (all of it, or a part).

        The rest of a partly taken chunk goes out first next time, so the reader never sees two chunks
        spliced together. While such a rest is still waiting, or when the port takes nothing, `chunk` is
        dropped (False): the caller counts it.
        """
        if self._pending:
            self._pending = self._pending[self._offer(self._pending) :]
            if self._pending:
                return False
        taken = self._offer(chunk)
        if taken == 0:
            return False
        self._pending = chunk[taken:]
        return True

    @property
    def _log(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)  # the device module's logger, as before

    # --- the thread -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start the device's thread (once: a stopped simulator is not restarted)."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} can be started once")
        self._thread = threading.Thread(target=self._run, name=f"{self._device}-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wait for it (safe to call twice or before start)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class PeriodicDevice(DeviceThread):
    """A device that talks unasked: `tick()` once every `period` seconds, the first at once.

    A tick that raises is logged and the next one comes on time (a simulator that dies mid-demo is worse
    than one that logs and goes on). After falling far behind (a suspended laptop) the schedule restarts
    from now instead of firing the missed ticks in a burst.
    """

    period: float

    def tick(self) -> bytes:
        raise NotImplementedError

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                self._log.exception("%s simulator: tick failed", self._device)
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay < -self.period:  # fell far behind (suspended, overloaded): resync, do not burst
                next_tick = time.monotonic()
                delay = 0.0
            if self._stop.wait(max(0.0, delay)):
                break
