"""Fixtures for the simulator tests: a fake clock, a callback receiver and running simulators."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.simulator import SimulatorConfig, create_simulator_app
from app.simulator.tasks import Clock

API_KEY = "sk-evo-test"
SIM_URL = "http://sim.test"
CALLBACK_URL = "http://receiver.test/callbacks/secret-token"

# Everything shrunk so the suite runs in seconds; the 1/2/4 ratio of the retries is kept.
FAST = SimulatorConfig(
    task_seconds=0.2,
    retry_delays=(0.05, 0.1, 0.2),
    callback_timeout=1.0,
    callback_delay_seconds=0.3,
    hang_seconds=30.0,
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_757_156_493.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass(frozen=True)
class Received:
    """One callback as the receiver saw it."""

    at: float
    path: str
    body: dict[str, Any]


class Receiver:
    """A callback endpoint: records every POST and answers from a script of statuses, then 200."""

    def __init__(self) -> None:
        self.calls: list[Received] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        self._arrived = asyncio.Event()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.transport = httpx.ASGITransport(app=self.app)

    async def _handle(self, request: Request) -> Response:
        self.calls.append(Received(time.time(), request.url.path, await request.json()))
        self._arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)

    async def wait_for(self, count: int, within: float = 5.0) -> list[Received]:
        """Wait until at least `count` callbacks arrived."""
        async with asyncio.timeout(within):
            while len(self.calls) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.calls


@asynccontextmanager
async def running_simulator(
    config: SimulatorConfig, transport: httpx.AsyncBaseTransport, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """A simulator with its lifespan running, and a client authenticated against it."""
    app = create_simulator_app(config, callback_transport=transport, clock=clock)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=SIM_URL,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client


StartSim = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
def receiver() -> Receiver:
    """A fresh callback receiver."""
    return Receiver()


@pytest.fixture
async def start_sim(receiver: Receiver) -> AsyncIterator[StartSim]:
    """Start simulators (config and clock of the test's choosing), stopped at the test's end."""
    async with AsyncExitStack() as stack:

        async def start(
            config: SimulatorConfig = FAST, clock: Clock = time.time
        ) -> httpx.AsyncClient:
            return await stack.enter_async_context(
                running_simulator(config, receiver.transport, clock)
            )

        yield start


@pytest.fixture
async def sim(start_sim: StartSim) -> httpx.AsyncClient:
    """A simulator on the real clock with FAST settings."""
    return await start_sim()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock."""
    return FakeClock()


@pytest.fixture
async def clocked_sim(start_sim: StartSim, clock: FakeClock) -> httpx.AsyncClient:
    """A simulator on the fake clock (tasks of 10 s), for status progression without sleeping."""
    return await start_sim(SimulatorConfig(task_seconds=10.0), clock)


def body(**fields: Any) -> dict[str, Any]:
    """A valid create body, with fields overridden (None removes one)."""
    base: dict[str, Any] = {"model": "gpt-4o-image", "prompt": "a red fox in snow"}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


async def create(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    """POST a create request."""
    return await client.post("/v1/images/generations", json=body(**fields), headers=headers)


async def create_ok(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **fields: Any
) -> str:
    """Create a task that must be accepted; returns its id."""
    response = await create(client, headers, **fields)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]
    assert isinstance(task_id, str)
    return task_id


async def control_view(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """The control API's view of a task."""
    response = await client.get(f"/_sim/tasks/{task_id}")
    assert response.status_code == 200, response.text
    view = response.json()
    assert isinstance(view, dict)
    return view


async def wait_callback_state(
    client: httpx.AsyncClient,
    task_id: str,
    states: Iterable[str] = ("delivered", "failed"),
    within: float = 5.0,
) -> dict[str, Any]:
    """Poll the control API until the task's callback reaches one of `states`."""
    wanted = set(states)
    async with asyncio.timeout(within):
        while True:
            view = await control_view(client, task_id)
            if view["callback"]["state"] in wanted:
                return view
            await asyncio.sleep(0.01)
