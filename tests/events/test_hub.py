"""The hub: watches woken by signals, by the re-check when a signal was lost, and capped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

import pytest

from app.events.hub import ChangeHub, TooManyWaiters


async def test_a_signal_wakes_only_the_watches_of_its_job() -> None:
    hub = ChangeHub(cap=10)
    one, other = uuid.uuid4(), uuid.uuid4()
    with hub.watch(one) as watch, hub.watch(other) as bystander:
        hub.publish(one)
        assert await watch.changed(0.01)
        assert not await bystander.changed(0.01)
        watch.reading()
        assert not await watch.changed(0.01)  # a read clears it


async def test_the_recheck_wakes_a_watch_whose_job_moved_on_without_a_signal() -> None:
    hub = ChangeHub(cap=10)
    moved, same, unread = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    current = {moved: 20_000, same: 10_000, unread: 10_000}

    async def read(job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        return {job_id: current[job_id] for job_id in job_ids}

    with hub.watch(moved) as a, hub.watch(same) as b, hub.watch(unread) as c:
        a.seen, b.seen = 10_000, 10_000  # `c` has not read yet: it is about to
        assert await hub.recheck(read) == 1
        assert await a.changed(0.01)
        assert not await b.changed(0.01) and not await c.changed(0.01)


async def test_past_the_cap_a_watch_is_refused_with_retry_after() -> None:
    hub = ChangeHub(cap=2)
    job_id = uuid.uuid4()
    first, second = hub.watch(job_id), hub.watch(job_id)
    with pytest.raises(TooManyWaiters) as refused:
        hub.watch(uuid.uuid4())
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    first.close()
    first.close()  # idempotent: the place is given back once
    assert hub.waiting == 1
    hub.watch(job_id).close()
    second.close()
    assert hub.waiting == 0


async def test_wake_all_wakes_every_watch() -> None:
    hub = ChangeHub(cap=10)
    watches = [hub.watch(uuid.uuid4()) for _ in range(3)]
    hub.wake_all()
    assert all(await asyncio.gather(*(w.changed(0.01) for w in watches)))
