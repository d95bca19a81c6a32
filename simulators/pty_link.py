"""A pseudo-terminal that stands in for a serial cable between a simulated device and the gateway.

The simulator writes the master side; the gateway opens the slave path (`/dev/pts/N`, or the stable
symlink `link`) with pyserial exactly as it would open `/dev/ttyUSB0`. See device-protocols.md section 6.

A pty is not a wire, though: while nobody reads the slave, the kernel buffers about 20 KB of what the
master writes (minutes of Masimo lines) and a gateway opening late would first read minutes-old vital
signs as if they were current. A real RS-232 device has no such memory: bytes nobody reads are lost. So
`write()` discards the unread backlog once it exceeds `max_backlog` bytes, keeping what a late reader
sees fresh. (pyserial also flushes its input on open, but that only clears 4 KB of the 20 KB.)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pty
import struct
import termios
import tty
from pathlib import Path
from types import TracebackType
from typing import Final, Self

log = logging.getLogger(__name__)

#: About eight Radical-7 lines: a reader that falls further behind than this is not reading at all.
DEFAULT_MAX_BACKLOG: Final = 1024


class PtyLink:
    """`pty.openpty()` with both ends in raw mode, a non-blocking master, and an optional symlink.

    The link keeps its own descriptor on the slave open for its whole life: that keeps the raw termios
    settings in place between gateway connections, keeps master writes from failing with EIO when no
    gateway has the port open, and lets `write()` measure and discard the unread backlog.

    A symlink left behind by a killed process (SIGKILL skips cleanup) is replaced; an existing file that
    is not a symlink is never overwritten.
    """

    def __init__(self, link: str | os.PathLike[str] | None = None, *, max_backlog: int = DEFAULT_MAX_BACKLOG):
        self.max_backlog = max_backlog
        self.master_fd, self._slave_fd = pty.openpty()
        self.link: Path | None = None
        try:
            tty.setraw(self.master_fd)
            tty.setraw(self._slave_fd)
            os.set_blocking(self.master_fd, False)
            self.slave_path: str = os.ttyname(self._slave_fd)
            if link is not None:
                self.link = Path(link)
                self._make_symlink(self.link)
        except BaseException:
            os.close(self.master_fd)
            os.close(self._slave_fd)
            raise
        self._closed = False

    def _make_symlink(self, link: Path) -> None:
        if not link.parent.is_dir():
            raise FileNotFoundError(f"cannot create {link}: directory {link.parent} does not exist")
        if link.is_symlink():
            log.warning("replacing stale symlink %s -> %s", link, os.readlink(link))
        elif link.exists():
            raise FileExistsError(f"{link} exists and is not a symlink; refusing to replace it")
        temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        os.symlink(self.slave_path, temporary)
        os.replace(temporary, link)  # atomic: a gateway polling for the path never sees it half-made

    @property
    def closed(self) -> bool:
        return self._closed

    def unread_bytes(self) -> int:
        """Bytes written to the master that no reader of the slave has consumed yet."""
        raw = fcntl.ioctl(self._slave_fd, termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def discard_unread(self) -> None:
        """Drop what no one has read, as a serial line drops bytes nobody listened to."""
        termios.tcflush(self._slave_fd, termios.TCIFLUSH)

    def write(self, data: bytes) -> int:
        """Write to the master without blocking, first discarding a stale backlog (see module docstring).

        Same contract as `os.write` on a non-blocking descriptor: returns the bytes taken, raises
        BlockingIOError when none can be taken. Usable directly as a MasimoSimulator output.
        """
        if self._closed:
            raise OSError(f"{self.slave_path}: link closed")
        if self.unread_bytes() > self.max_backlog:
            self.discard_unread()
        return os.write(self.master_fd, data)

    def close(self) -> None:
        """Close both descriptors and remove the symlink if it still points at our slave. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.link is not None:
            try:
                if self.link.is_symlink() and os.readlink(self.link) == self.slave_path:
                    self.link.unlink()
            except OSError as exc:
                log.warning("could not remove %s: %s", self.link, exc)
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PtyLink(slave_path={self.slave_path!r}, link={self.link!s}, closed={self._closed})"
