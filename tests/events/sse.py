"""Reading a job's event stream in tests, as a browser's EventSource would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


@dataclass
class Stream:
    """What one stream carried: its events, and how many heartbeat comments came between."""

    events: list[Event] = field(default_factory=list)
    heartbeats: int = 0
    ended: bool = False

    @property
    def statuses(self) -> list[str]:
        """The job's statuses in the order they came, repeats folded."""
        seen: list[str] = []
        for event in self.events:
            if not seen or seen[-1] != event.data["status"]:
                seen.append(event.data["status"])
        return seen


async def read(response: httpx.Response, into: Stream) -> AsyncIterator[Event]:
    """Each event of an open stream (recorded in `into`), until the service ends it."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                event = Event(event_id, kind, json.loads("\n".join(data)))
                into.events.append(event)
                yield event
            kind, data = "message", []
        elif line.startswith(":"):
            into.heartbeats += 1
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)
    into.ended = True
