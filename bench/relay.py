"""A counting TCP relay on loopback: the bytes that really cross the wire to the browser.

DevTools reports WebSocket payloads after permessage-deflate has been undone, so its count is what the
page's JavaScript handles, not what the network carried. The browser opens the page through this relay
(`http://127.0.0.1:<relay port>/...`); every byte the server sends back is counted (TCP payload: HTTP
headers and bodies, WebSocket frame headers and compressed payloads; not the TCP/IP headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class CountingRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.to_browser = 0
        self.to_server = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="relay")
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def start(self) -> CountingRelay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_browser: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                with self._lock:
                    if to_browser:
                        self.to_browser += len(data)
                    else:
                        self.to_server += len(data)
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        # a cancelled connection (at stop) ends quietly: asyncio's stream callback would report it otherwise
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._pipe(reader, up_writer, False), self._pipe(up_reader, writer, True))

    def take(self) -> int:
        """Bytes sent to the browser since the last take."""
        with self._lock:
            count, self.to_browser = self.to_browser, 0
        return count

    def stop(self) -> None:
        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=5)
