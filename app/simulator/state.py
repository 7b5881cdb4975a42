"""The simulator's live state, shared by its routes."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.simulator.callbacks import CallbackDispatcher
from app.simulator.config import ErrorShapes, SimulatorConfig
from app.simulator.errors import DOCUMENTED_SHAPES, Shape, SimError, forced
from app.simulator.faults import ErrorStyle, FaultQueue, FaultSpec, QueuedPoll
from app.simulator.tasks import SimTask, TaskStore


class ShapeChooser:
    """Picks the shape of a forced error whose fault left it open, as the config says."""

    def __init__(self, mode: ErrorShapes, seed: int | None) -> None:
        self._mode = mode
        self._random = random.Random(seed)  # noqa: S311 - test variety, not security
        self._answered: Counter[int] = Counter()

    def choose(self, status: int, asked: Shape | None) -> Shape:
        """`asked` if given; else by mode (alternate: documented shape first, per status)."""
        if asked is not None:
            return asked
        if self._mode in ("string", "integer"):
            return "string" if self._mode == "string" else "integer"
        if self._mode == "random":
            return self._random.choice(("string", "integer"))
        documented = DOCUMENTED_SHAPES[status]
        turn = self._answered[status]
        self._answered[status] += 1
        if turn % 2 == 0:
            return documented
        return "integer" if documented == "string" else "string"


@dataclass(slots=True)
class Simulator:
    """Everything one simulator instance holds; made by the lifespan."""

    config: SimulatorConfig
    store: TaskStore
    faults: FaultQueue[FaultSpec]
    dispatcher: CallbackDispatcher
    # Failures for the next polls of any task, queued by the control API.
    poll_faults: FaultQueue[QueuedPoll] = field(default_factory=FaultQueue)
    shapes: ShapeChooser = field(init=False)

    def __post_init__(self) -> None:
        self.shapes = ShapeChooser(self.config.error_shape, self.config.error_seed)

    def visible_task(self, task_id: str) -> SimTask | None:
        """The task as `GET /v1/tasks` sees it: None once unknown or past the task TTL."""
        task = self.store.get(task_id)
        ttl = self.config.task_ttl_seconds
        if task is None or (ttl is not None and self.store.clock() > task.end_at + ttl):
            return None
        return task

    def forced_error(self, status: int, style: ErrorStyle) -> SimError:
        """The error a fault forces, its shape chosen now if the fault left it open."""
        shape = self.shapes.choose(status, style.shape)
        default = self.config.retry_after_seconds
        return forced(status, shape, style.body, style.retry_after, default)

    def reset(self) -> None:
        """Forget tasks, requests and queued faults; cancel pending callbacks."""
        self.dispatcher.cancel_all()
        self.store.clear()
        self.faults.clear()
        self.poll_faults.clear()


async def get_simulator(request: Request) -> Simulator:
    """The simulator the app's lifespan made."""
    simulator = getattr(request.app.state, "simulator", None)
    if not isinstance(simulator, Simulator):
        raise RuntimeError("the simulator's lifespan has not run")
    return simulator


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]
