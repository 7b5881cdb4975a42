"""The simulator's ASGI application."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.simulator import api, control
from app.simulator.callbacks import CallbackDispatcher
from app.simulator.config import SimulatorConfig
from app.simulator.faults import FaultQueue
from app.simulator.state import Simulator
from app.simulator.tasks import Clock, TaskStore


def create_simulator_app(
    config: SimulatorConfig,
    *,
    callback_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = time.time,
) -> FastAPI:
    """Build the simulator; `callback_transport` and `clock` let tests stand in for the world."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for every callback, closed (after pending deliveries are cancelled) on exit.
        async with httpx.AsyncClient(
            transport=callback_transport,
            timeout=httpx.Timeout(config.callback_timeout),
            headers={"User-Agent": "evolink-simulator"},
        ) as client:
            store = TaskStore(clock, config.initial_credits)
            dispatcher = CallbackDispatcher(client, store, config)
            app.state.simulator = Simulator(config, store, FaultQueue(), dispatcher)
            try:
                yield
            finally:
                await dispatcher.aclose()

    app = FastAPI(
        title="EvoLink simulator",
        description="A local stand-in for EvoLink's task API. Not EvoLink.",
        lifespan=lifespan,
    )
    app.include_router(api.router)
    app.include_router(control.router)
    return app
