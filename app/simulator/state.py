"""The simulator's live state, shared by its routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.simulator.callbacks import CallbackDispatcher
from app.simulator.config import SimulatorConfig
from app.simulator.faults import FaultQueue
from app.simulator.tasks import SimTask, TaskStore


@dataclass(slots=True)
class Simulator:
    """Everything one simulator instance holds; made by the lifespan."""

    config: SimulatorConfig
    store: TaskStore
    faults: FaultQueue
    dispatcher: CallbackDispatcher

    def visible_task(self, task_id: str) -> SimTask | None:
        """The task as `GET /v1/tasks` sees it: None once unknown or past the task TTL."""
        task = self.store.get(task_id)
        ttl = self.config.task_ttl_seconds
        if task is None or (ttl is not None and self.store.clock() > task.end_at + ttl):
            return None
        return task

    def reset(self) -> None:
        """Forget tasks, requests and queued faults; cancel pending callbacks."""
        self.dispatcher.cancel_all()
        self.store.clear()
        self.faults.clear()


def get_simulator(request: Request) -> Simulator:
    """The simulator the app's lifespan made."""
    simulator = getattr(request.app.state, "simulator", None)
    if not isinstance(simulator, Simulator):
        raise RuntimeError("the simulator's lifespan has not run")
    return simulator


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]
