"""The web process's live feed: one MQTT subscription, room projections, and fan-out to open pages.

Each web worker keeps its own subscription (the broker fans out to workers); pages register an asyncio
queue and receive every event of their room as it arrives, pushed from paho's thread onto the page's
event loop. Pages coalesce what piled up, so a slow browser gets fewer, larger updates, never a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field

from monitor import wire
from monitor.actions import DEFAULT_AUTHOR
from monitor.audit import AuditEntry
from monitor.auth import SESSION_EXPORT, Guard, Refused
from monitor.bus import Broker, MqttLink
from monitor.clock import SYSTEM_CLOCK, Clock
from monitor.model import AlarmTransition, ClinicalEvent, CommandReply, DeviceStatus, Observation
from monitor.store import EventLog
from monitor.views import RoomState

log = logging.getLogger(__name__)

LiveEvent = Observation | DeviceStatus | CommandReply | AlarmTransition | ClinicalEvent
MAX_PENDING = 5000


@dataclass(eq=False)
class Subscription:
    """A page's view of the feed: `room` None means every room."""

    room: tuple[str, str] | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[LiveEvent] = field(default_factory=asyncio.Queue)
    dropped: int = 0

    async def next_batch(self, timeout: float) -> list[LiveEvent]:
        """Everything that arrived, waiting at most `timeout` for the first event."""
        try:
            first = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return []
        batch = [first]
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    def _offer(self, event: LiveEvent) -> None:
        if self.queue.qsize() >= MAX_PENDING:
            self.dropped += 1  # the page is gone or frozen; it re-reads the store when it comes back
            return
        self.queue.put_nowait(event)


class LiveHub:
    def __init__(
        self, broker: Broker, log_store: EventLog, *, clock: Clock = SYSTEM_CLOCK, guard: Guard | None = None
    ) -> None:
        """`guard` checks every action against the signed-in user; without one, every action is refused."""
        self.store = log_store
        self.clock = clock
        self.guard = guard
        self.rejected: Counter[str] = Counter()
        self._rooms: dict[tuple[str, str], RoomState] = {}
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        client_id = f"kap-web-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.link = MqttLink(
            broker,
            client_id,
            on_message=self._on_message,
            subscriptions=[
                f"{wire.ROOT}/+/+/+/obs",
                f"{wire.ROOT}/+/+/+/status",
                f"{wire.ROOT}/+/+/+/reply",
                f"{wire.ROOT}/+/+/alarms",
                f"{wire.ROOT}/+/+/events",
            ],
        )

    def start(self) -> LiveHub:
        self._seed_from_store()
        self.link.start()
        return self

    def stop(self) -> None:
        self.link.stop()

    def _seed_from_store(self) -> None:
        for rec in self.store.recordings():
            state = RoomState(rec.site, rec.room)
            for obs in self.store.latest_observations(rec.site, rec.room):
                state.apply(obs)
            for status in self.store.statuses(rec.site, rec.room):
                state.apply(status)
            for _, event in self.store.log(
                rec.site, rec.room, types=("clinical", "alarm"), session_id=rec.session_id
            ):
                state.apply(event)  # the open session's notes, doses, assessments and alarms
            self._rooms[(rec.site, rec.room)] = state

    # ---- queries for pages ----------------------------------------------------------------------------

    def rooms(self) -> list[RoomState]:
        with self._lock:
            return [self._rooms[k] for k in sorted(self._rooms)]

    def find_room(self, room: str) -> RoomState | None:
        with self._lock:
            for (_, name), state in sorted(self._rooms.items()):
                if name == room:
                    return state
        return None

    def room_state(self, key: tuple[str, str]) -> RoomState | None:
        with self._lock:
            return self._rooms.get(key)

    def subscribe(self, room: tuple[str, str] | None) -> Subscription:
        sub = Subscription(room, asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def send_command(
        self,
        site: str,
        room: str,
        device: str,
        name: str,
        args: dict[str, object] | None = None,
        *,
        requested_by: str = "",
    ) -> str:
        """Publish a command for a device's gateway; its answer comes back as a CommandReply event.

        Raises auth.Refused when the signed-in user may not; the command is requested by that user."""
        user, _ = self._authorize(f"command:{name}", site, room)
        request_id = uuid.uuid4().hex[:12]
        payload = wire.encode_command(name, args, request_id=request_id, requested_by=user)
        self.link.publish(wire.cmd_topic(site, room, device), payload)
        return request_id

    def record(self, event: ClinicalEvent) -> None:
        """A note, side effect or alarm action from a page: to the core, which validates and stores it.

        The one door for a page's actions: raises auth.Refused (audited) when the signed-in user may not
        take it; otherwise the event's author is that user and its `client` their address, whatever the
        page said (a name typed on the page is kept as `typed_author`)."""
        user, client = self._authorize(event.type, event.site, event.room)
        data: dict[str, object] = {**event.data, "client": client}
        typed = event.author.strip()
        if typed and typed not in (user, DEFAULT_AUTHOR):
            data["typed_author"] = typed[:64]
        event = dataclasses.replace(event, author=user, data=data)
        self.link.publish(wire.events_topic(event.site, event.room), wire.encode_clinical_event(event))

    def authorize_export(self, site: str, room: str, detail: str) -> str:
        """A session leaving the system (a download from the replay page): the signed-in user may take it
        out (auth.Refused, audited, otherwise) and the audit trail says who took what, when, from where."""
        user, client = self._authorize(SESSION_EXPORT, site, room)
        assert self.guard is not None
        self.guard.audit.append(
            AuditEntry(self.clock.now(), user, SESSION_EXPORT, client, site, room, detail=detail)
        )
        return user

    def _authorize(self, action: str, site: str, room: str) -> tuple[str, str]:
        if self.guard is None:
            raise Refused("sign-in is not set up on this server: no action can be recorded")
        user, client = self.guard.authorize(action, site, room)
        return user.name, client

    # ---- from the broker ------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            parsed = wire.parse_topic(topic)
            event: LiveEvent
            if parsed.kind == "obs":
                event = wire.decode_observation(parsed, payload)
            elif parsed.kind == "status":
                event = wire.decode_status(parsed, payload)
            elif parsed.kind == "reply":
                event = wire.decode_reply(parsed, payload)
            elif parsed.kind == "alarms":
                event = wire.decode_alarm(parsed, payload)
            elif parsed.kind == "events":
                event = wire.decode_clinical_event(parsed, payload, self.clock.now())
            else:
                return
        except wire.WireError as exc:
            if self.rejected[exc.kind] == 0:
                log.warning("web: rejected message on %s: %s", topic, exc)
            self.rejected[exc.kind] += 1
            return
        key = (event.site, event.room)
        with self._lock:
            state = self._rooms.get(key)
            if state is None:
                state = self._rooms[key] = RoomState(*key)
            state.apply(event)
            targets = [s for s in self._subs if s.room is None or s.room == key]
        for sub in targets:
            # a page whose loop has closed unsubscribes itself; until then there is nobody to tell
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub._offer, event)
