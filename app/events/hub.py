"""The waiters of one process, and what wakes them.

A waiter (a `Prefer: wait` request or a stream) takes a `Watch` on a job and sleeps on it while
holding no database connection. It is woken by a change signal for its job (PostgreSQL
`LISTEN` or, on SQLite, this process's own commits), by `wake_all` after the listener has been
away, or by the periodic re-check, which reads the watched jobs' sequences in one query and wakes
the watches that are behind: a lost signal only delays a waiter.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType

from app.errors import AppError
from app.metrics import WAITERS, WAITERS_REFUSED

WAITERS_RETRY_AFTER_SECONDS = 5


class TooManyWaiters(AppError):
    status, code, title = 503, "too_many_waiters", "Too many waiting requests"

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"This process already holds {cap} waiting requests and streams (MAX_WAITERS); "
            "retry shortly, or poll without Prefer: wait."
        )
        self.headers = {"Retry-After": str(WAITERS_RETRY_AFTER_SECONDS)}


class Watch:
    """One waiter's interest in one job: woken when the job may have changed."""

    def __init__(self, hub: ChangeHub, job_id: uuid.UUID) -> None:
        self.hub = hub
        self.job_id = job_id
        self.seen: int | None = None  # the job's sequence as last read by the waiter
        self._changed = asyncio.Event()
        self._closed = False

    def wake(self) -> None:
        """The job may have changed since the waiter last read it."""
        self._changed.set()

    def reading(self) -> None:
        """The waiter is about to read the job: a change from now on wakes it again."""
        self._changed.clear()

    async def changed(self, within: float | None = None) -> bool:
        """Sleep until woken or `within` seconds pass (None: until woken); whether it was."""
        if within is not None and within <= 0:
            return self._changed.is_set()
        try:
            await asyncio.wait_for(self._changed.wait(), within)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Give the watch's place back (idempotent)."""
        if not self._closed:
            self._closed = True
            self.hub._remove(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# Reads the current sequence of each of these jobs (absent: deleted); the hub's only query.
SequenceReader = Callable[[Iterable[uuid.UUID]], Awaitable[dict[uuid.UUID, int]]]


class ChangeHub:
    """Every watch of this process, at most `cap` at once."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.closing = False
        self._watches: dict[uuid.UUID, set[Watch]] = defaultdict(set)
        self._count = 0

    def close(self) -> None:
        """The process is shutting down: every waiter answers with what it has, now."""
        self.closing = True
        self.wake_all()

    @property
    def waiting(self) -> int:
        """How many watches are open."""
        return self._count

    def open_watches(self) -> list[Watch]:
        """Every open watch."""
        return [watch for watches in self._watches.values() for watch in watches]

    def watch(self, job_id: uuid.UUID) -> Watch:
        """A new watch on `job_id`; TooManyWaiters (503) when `cap` are already open."""
        if self._count >= self.cap:
            WAITERS_REFUSED.inc()
            raise TooManyWaiters(self.cap)
        watch = Watch(self, job_id)
        self._watches[job_id].add(watch)
        self._count += 1
        WAITERS.inc()
        return watch

    def publish(self, job_id: uuid.UUID) -> None:
        """`job_id` changed: wake its watches."""
        for watch in self._watches.get(job_id, ()):
            watch.wake()

    def wake_all(self) -> None:
        """Signals may have been lost (the listener was away): every waiter reads again."""
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()

    async def recheck(self, read: SequenceReader) -> int:
        """Wake the watches whose job moved past what they last read; how many were woken."""
        job_ids = [job_id for job_id, watches in self._watches.items() if watches]
        if not job_ids:
            return 0
        current = await read(job_ids)
        woken = 0
        for job_id in job_ids:
            for watch in list(self._watches.get(job_id, ())):
                if watch.seen is not None and current.get(job_id) != watch.seen:
                    watch.wake()
                    woken += 1
        return woken

    def _remove(self, watch: Watch) -> None:
        watches = self._watches.get(watch.job_id)
        if watches is not None and watch in watches:
            watches.discard(watch)
            self._count -= 1
            WAITERS.dec()
            if not watches:
                del self._watches[watch.job_id]
