"""One network thread for many MQTT connections: what lets one gateway process serve many rooms.

paho's own `loop_start()` gives every client a thread and a socketpair (two more descriptors) and waits
with select(), which refuses descriptors numbered 1024 and up. A gateway keeps one connection per device
(each device's status topic carries its own Last Will), so 40 rooms meant 120 threads, 360 descriptors for
MQTT alone, and a crash once the process passed 1024 descriptors. Here the connections of a process share
one thread waiting with epoll (`selectors`, no limit on descriptor numbers) and one thread that
(re)connects them with backoff, so a broker that is slow to answer a connect never stalls the traffic of
the connections that are up. paho's external-loop API does the protocol: `loop_read`, `loop_write`,
`loop_misc` (keepalive), and the socket callbacks that tell us when to wait for what.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.bus import MqttLink

log = logging.getLogger(__name__)

#: reconnect backoff, as MqttLink's own (0.2 s doubling up to 5 s)
MIN_DELAY_S, MAX_DELAY_S = 0.2, 5.0
#: how often keepalives are checked (paho's loop does the same once a second)
MISC_S = 1.0

_shared: NetworkLoop | None = None
_shared_lock = threading.Lock()


class NetworkLoop:
    @classmethod
    def acquire(cls) -> NetworkLoop:
        """The process's shared loop (started on first use); `release` it when done."""
        global _shared
        with _shared_lock:
            if _shared is None:
                _shared = cls().start()
            _shared._users += 1
            return _shared

    def release(self) -> None:
        global _shared
        with _shared_lock:
            self._users -= 1
            if self._users > 0:
                return
            if _shared is self:
                _shared = None
        self.stop()

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._users = 0
        self._links: set[MqttLink] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._due: list[tuple[float, int, MqttLink]] = []  # (when, tie-break, link) to (re)connect
        self._order = itertools.count()
        self._due_changed = threading.Condition(self._lock)
        self._delay: dict[MqttLink, float] = {}
        self._io = threading.Thread(target=self._io_loop, name="mqtt-io", daemon=True)
        self._connector = threading.Thread(target=self._connect_loop, name="mqtt-connect", daemon=True)

    def start(self) -> NetworkLoop:
        self._io.start()
        self._connector.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._due_changed.notify_all()
        for thread in (self._io, self._connector):
            if thread.is_alive():
                thread.join(timeout=5)
        self._selector.close()

    # ---- links ----------------------------------------------------------------------------------------

    def attach(self, link: MqttLink) -> None:
        """Take over a link whose client had `connect_async`: connect it now, and again whenever it drops."""
        client = link.client
        client.on_socket_open = lambda c, u, sock: self._register(link, sock)
        client.on_socket_close = lambda c, u, sock: self._closed(link, sock)
        client.on_socket_register_write = lambda c, u, sock: self._want(link, sock, write=True)
        client.on_socket_unregister_write = lambda c, u, sock: self._want(link, sock, write=False)
        with self._lock:
            self._links.add(link)
        self._schedule(link, 0.0)

    def detach(self, link: MqttLink, timeout: float = 2.0) -> None:
        """Say goodbye to the broker (a clean DISCONNECT: no Last Will) and forget the link."""
        with self._lock:
            self._links.discard(link)
            self._delay.pop(link, None)
        link.client.disconnect()  # queued; the io thread writes it and paho closes the socket
        deadline = time.monotonic() + timeout
        while link.client.socket() is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    # ---- paho's socket callbacks (any thread; the selector takes changes from any thread) --------------

    def _register(self, link: MqttLink, sock: object) -> None:
        try:
            self._selector.register(sock, selectors.EVENT_READ, link)  # type: ignore[arg-type]
        except (KeyError, ValueError, OSError):
            log.exception("%s: could not watch its socket", link.client_id)

    def _want(self, link: MqttLink, sock: object, *, write: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        # not registered (yet, or any more): the socket is being opened or closed
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.modify(sock, events, link)  # type: ignore[arg-type]

    def _closed(self, link: MqttLink, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)  # type: ignore[arg-type]
        with self._lock:
            wanted = link in self._links
        if wanted:
            self._schedule(link, self._next_delay(link))

    # ---- (re)connecting -------------------------------------------------------------------------------

    def _next_delay(self, link: MqttLink) -> float:
        with self._lock:
            delay = self._delay.get(link)
            delay = MIN_DELAY_S if delay is None else min(delay * 2, MAX_DELAY_S)
            self._delay[link] = delay
            return delay

    def connected(self, link: MqttLink) -> None:
        """A CONNACK accepted the link: the next loss starts the backoff afresh."""
        with self._lock:
            self._delay.pop(link, None)

    def _schedule(self, link: MqttLink, delay: float) -> None:
        with self._lock:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), link))
            self._due_changed.notify()

    def _connect_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set() and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._due_changed.wait(wait)
                if self._stop.is_set():
                    return
                _, _, link = heapq.heappop(self._due)
                wanted = link in self._links
            if not wanted or link.client.socket() is not None:
                continue
            try:
                link.client.reconnect()  # blocking TCP (and TLS) connect; CONNECT is then queued
                with self._lock:
                    dropped = link not in self._links
                if dropped:  # stopped while we were connecting it
                    link.client.disconnect()
            except OSError as exc:
                log.debug("%s: cannot reach the broker yet: %s", link.client_id, exc)
                self._schedule(link, self._next_delay(link))
            except Exception:
                log.exception("%s: connecting failed", link.client_id)
                self._schedule(link, self._next_delay(link))

    # ---- traffic --------------------------------------------------------------------------------------

    def _io_loop(self) -> None:
        next_misc = time.monotonic() + MISC_S
        while not self._stop.is_set():
            try:
                ready = self._selector.select(timeout=max(0.0, min(MISC_S, next_misc - time.monotonic())))
            except (OSError, ValueError):  # closed while stopping
                if self._stop.is_set():
                    return
                raise
            for key, events in ready:
                self._serve(key.data, events)
            if time.monotonic() >= next_misc:
                next_misc = time.monotonic() + MISC_S
                with self._lock:
                    links = list(self._links)
                for link in links:
                    self._guard(link, link.client.loop_misc)
                    self._rewatch(link)

    def _serve(self, link: MqttLink, events: int) -> None:
        client = link.client
        if events & selectors.EVENT_WRITE:
            self._guard(link, client.loop_write)
            self._rewatch(link)
        if events & selectors.EVENT_READ:
            self._guard(link, client.loop_read)
            sock = client.socket()
            # TLS may hold decrypted bytes the socket no longer signals: read them now
            while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
                self._guard(link, client.loop_read)
                sock = client.socket()

    def _rewatch(self, link: MqttLink) -> None:
        """paho decides "nothing left to write" and unregisters in two steps; a publish from another
        thread between them would wait for the next one. Looking again after each write closes that gap."""
        sock = link.client.socket()
        if sock is not None and link.client.want_write():
            self._want(link, sock, write=True)

    @staticmethod
    def _guard(link: MqttLink, step) -> None:  # type: ignore[no-untyped-def]
        try:
            step()
        except Exception:  # one connection's trouble must not stop the others
            log.exception("%s: network step failed", link.client_id)
