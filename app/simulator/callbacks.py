"""Callback delivery the way EvoLink does it: one POST, 10 s timeout, 3 retries after 1, 2, 4 s."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from app.simulator.config import SimulatorConfig
from app.simulator.snapshots import stale_object, task_object
from app.simulator.tasks import CallbackAttempt, SimTask, TaskStore

logger = structlog.get_logger(__name__)


class CallbackDispatcher:
    """Schedules each task's final callback at its end time and records every attempt."""

    def __init__(
        self, client: httpx.AsyncClient, store: TaskStore, config: SimulatorConfig
    ) -> None:
        self._client = client
        self._store = store
        self._config = config
        self._scheduled: dict[str, asyncio.Task[None]] = {}
        self._others: set[asyncio.Task[Any]] = set()

    def schedule(self, task: SimTask) -> None:
        """(Re)schedule the task's final callback, replacing any earlier schedule."""
        previous = self._scheduled.pop(task.id, None)
        if previous is not None:
            previous.cancel()
        if task.callback_url is None:
            return
        if task.faults.callback == "lost":
            task.callback_state = "lost"
            return
        task.callback_state = "scheduled"
        job = asyncio.create_task(self._final_at_end(task), name=f"callback {task.id}")
        self._scheduled[task.id] = job
        job.add_done_callback(lambda done: self._forget(task.id, done))

    async def deliver_final(self, task: SimTask) -> None:
        """Deliver the final callback now, with retries (for the `early` fault, awaited inline)."""
        if task.callback_url is None:
            return
        task.callback_state = "sending"
        body = task_object(task, max(self._store.clock(), task.end_at))
        copies = task.faults.callback_count if task.faults.callback == "duplicate" else 1
        results = await asyncio.gather(
            *(self._deliver(task, task.callback_url, body, "final", copy) for copy in range(copies))
        )
        if task.faults.callback == "stale":
            results.append(
                await self._deliver(task, task.callback_url, stale_object(task), "stale")
            )
        task.callback_state = "delivered" if all(results) else "failed"

    async def send_now(self, task: SimTask, url: str, retries: bool) -> list[CallbackAttempt]:
        """Send the task's current body to `url` on demand; returns the attempts it took."""
        before = len(task.callback_attempts)
        job = asyncio.create_task(
            self._deliver(task, url, task_object(task, self._store.clock()), "manual", 0, retries)
        )
        self._others.add(job)
        job.add_done_callback(self._others.discard)
        await job
        return task.callback_attempts[before:]

    def cancel_all(self) -> None:
        """Cancel every pending delivery (reset and shutdown)."""
        for job in [*self._scheduled.values(), *self._others]:
            job.cancel()
        self._scheduled.clear()

    async def aclose(self) -> None:
        """Cancel pending deliveries and wait for them to unwind."""
        jobs = [*self._scheduled.values(), *self._others]
        self.cancel_all()
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _final_at_end(self, task: SimTask) -> None:
        await asyncio.sleep(
            max(0.0, task.end_at + task.faults.callback_delay - self._store.clock())
        )
        await self.deliver_final(task)

    async def _deliver(
        self,
        task: SimTask,
        url: str,
        body: dict[str, Any],
        kind: str,
        copy: int = 0,
        retries: bool = True,
    ) -> bool:
        delays = (0.0, *self._config.retry_delays) if retries else (0.0,)
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                await asyncio.sleep(delay)
            if await self._attempt(task, url, body, kind, copy, attempt):
                return True
        logger.info("simulator.callback_gave_up", task_id=task.id, kind=kind, copy=copy)
        return False

    async def _attempt(
        self, task: SimTask, url: str, body: dict[str, Any], kind: str, copy: int, attempt: int
    ) -> bool:
        status_code: int | None = None
        error: str | None = None
        try:
            # httpx's timeout bounds each read; EvoLink's 10 s bounds the whole exchange.
            async with asyncio.timeout(self._config.callback_timeout):
                response = await self._client.post(url, json=body)
            status_code = response.status_code
        except TimeoutError:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        delivered = status_code is not None and 200 <= status_code < 300
        at = self._store.clock()
        task.callback_attempts.append(
            CallbackAttempt(kind, copy, attempt, at, url, status_code, error, delivered)
        )
        logger.info(
            "simulator.callback_attempt",
            task_id=task.id,
            kind=kind,
            copy=copy,
            attempt=attempt,
            status_code=status_code,
            error=error,
        )
        return delivered

    def _forget(self, task_id: str, done: asyncio.Task[None]) -> None:
        if self._scheduled.get(task_id) is done:
            del self._scheduled[task_id]
        if not done.cancelled() and done.exception() is not None:
            logger.error("simulator.callback_crashed", task_id=task_id, exc_info=done.exception())
