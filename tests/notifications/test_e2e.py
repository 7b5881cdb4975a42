"""Webhooks end to end, over real HTTP and real processes, on both databases: `serve` with the
simulator, a receiver verifying every delivery with `standardwebhooks`; retries, 410, a receiver
that is down for a while, a replica killed mid-delivery, two replicas delivering each event once,
and forbidden targets refused at submit time and again at connect time."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.archive.test_e2e import database
from tests.e2e.conftest import wait_until
from tests.notifications.conftest import (
    GAMMA_NEW,
    GAMMA_OLD,
    Receiver,
    callers_toml,
    new_secret,
)
from tests.support import processes
from tests.support.http_server import ScriptedServer, serving

# gamma rotates its secret (two of them); alpha has one.
KEY = "e2e-gamma-key-0123456789"
RETRY_SCHEDULE = ",".join(["0.5"] * 12)  # about 6 s of retries: quick, but a real schedule


@dataclass(frozen=True)
class Stack:
    api_url: str
    simulator_url: str
    database_url: str
    env: dict[str, str]
    tmp: Path
    kind: str


def stack_env(
    tmp: Path, database_url: str, simulator_url: str, port: int, **extra: str
) -> dict[str, str]:
    callers = callers_toml(tmp / "callers.toml", alpha_key="e2e-alpha-key-0123", gamma_key=KEY)
    return processes.service_env(
        database_url, simulator_url, port,
        API_KEYS="", CALLERS_FILE=str(callers), LOG_LEVEL="INFO",
        ARCHIVE_URL=f"file://{tmp / 'archive'}",
        NOTIFY_ALLOWED_HOSTS="localhost", NOTIFY_RETRY_SCHEDULE=RETRY_SCHEDULE,
        NOTIFY_TIMEOUT_SECONDS="2",
        **extra,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The simulator and one service whose allow-list names `localhost` (the receiver)."""
    tmp = tmp_path_factory.mktemp(f"webhooks-e2e-{request.param}")
    database_url = database(request.param, tmp, "webhooks_e2e")
    sim_port, api_port = processes.free_port(), processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env = stack_env(tmp, database_url, simulator_url, api_port)
    processes.migrate(env)
    sim = processes.simulator(tmp, sim_port, task_seconds=0.5).start()
    service = processes.service(tmp, env, api_port)
    try:
        service.start()
        yield Stack(
            f"http://127.0.0.1:{api_port}", simulator_url, database_url, env, tmp, request.param
        )
    finally:
        service.terminate()
        sim.terminate()


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    with serving(server):
        yield server


def at_localhost(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


@pytest.fixture
def receiver(receiver_server: ScriptedServer) -> Receiver:
    """Verifies with gamma's two secrets, and with a wrong one (which must never verify)."""
    return Receiver(receiver_server, [GAMMA_NEW, GAMMA_OLD, new_secret()])


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack.api_url) as c:
        yield c


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)


async def submit(api: httpx.AsyncClient, notify_url: str, prompt: str = "a fox") -> str:
    response = await api.post(
        "/v1/jobs", json={"prompt": f"{prompt} #{uuid.uuid4().hex[:8]}", "notify_url": notify_url}
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def wait_for(
    api: httpx.AsyncClient,
    job_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
    within: float = 60,
) -> list[dict[str, Any]]:
    """The job's notifications, once `done` says so."""
    deadline = time.monotonic() + within
    while True:
        data: list[dict[str, Any]] = (await api.get(f"/v1/jobs/{job_id}/notifications")).json()[
            "data"
        ]
        if done(data):
            return data
        assert time.monotonic() < deadline, f"notifications never got there: {data}"
        await asyncio.sleep(0.1)


def settled(data: list[dict[str, Any]]) -> bool:
    return bool(data) and all(n["status"] != "pending" for n in data)


async def test_a_completed_job_is_delivered_signed_once_archived(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    job_id = await submit(api, at_localhost(receiver.url))
    [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "delivered", shown
    [delivery] = receiver.deliveries
    # Rotation: both of gamma's secrets verify it (two signatures); a wrong secret does not.
    assert delivery.verified_with == [GAMMA_NEW, GAMMA_OLD]
    assert delivery.event_id == shown["event_id"]
    body = delivery.json()
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert body["type"] == "job.completed" and body["data"] == job
    assert job["archive_status"] == "archived" and len(job["images"]) == job["n"]


async def test_a_failed_job_is_delivered(api: httpx.AsyncClient, receiver: Receiver) -> None:
    job_id = await submit(
        api, at_localhost(receiver.url), "a fox [sim outcome=failed code=content_policy_violation]"
    )
    [shown] = await wait_for(api, job_id, settled)
    [delivery] = receiver.deliveries
    assert shown["status"] == "delivered" and delivery.json()["type"] == "job.failed"
    assert delivery.json()["data"]["error"]["code"] == "content_policy_violation"
    assert delivery.verified_with == [GAMMA_NEW, GAMMA_OLD]


async def test_500_twice_then_200_is_three_attempts_one_event(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.answers = [500, 500]
    job_id = await submit(api, at_localhost(receiver.url))
    [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "delivered"
    assert [a["http_status"] for a in shown["attempts"]] == [500, 500, 200]
    assert len(receiver.deliveries) == 3
    assert {d.event_id for d in receiver.deliveries} == {shown["event_id"]}
    assert all(d.verified_with == [GAMMA_NEW, GAMMA_OLD] for d in receiver.deliveries)


async def test_410_stops_delivery(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.answers = [410]
    job_id = await submit(api, at_localhost(receiver.url))
    [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "failed" and shown["next_attempt_at"] is None
    assert [a["http_status"] for a in shown["attempts"]] == [410]
    assert len(receiver.deliveries) == 1


async def test_a_receiver_down_for_a_while_gets_the_event_when_it_returns(
    api: httpx.AsyncClient,
) -> None:
    down = ScriptedServer()  # its port is chosen; nothing listens there yet
    late = Receiver(down, [GAMMA_NEW])
    job_id = await submit(api, at_localhost(late.url))
    failing = await wait_for(api, job_id, lambda d: bool(d) and len(d[0]["attempts"]) >= 2)
    assert failing[0]["status"] == "pending"
    assert all(a["http_status"] is None and a["error"] for a in failing[0]["attempts"])
    with serving(down):
        [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "delivered"
    assert [d.event_id for d in late.deliveries] == [shown["event_id"]]
    assert late.deliveries[0].verified_with == [GAMMA_NEW]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hooks", "http://169.254.169.254/latest/"])
async def test_targets_off_the_allow_list_are_refused_at_submit(
    api: httpx.AsyncClient, url: str
) -> None:
    response = await api.post("/v1/jobs", json={"prompt": "a fox", "notify_url": url})
    assert response.status_code == 422 and response.json()["code"] == "notify_url_refused"


@contextlib.contextmanager
def running(*started: processes.Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in started:
            with contextlib.suppress(Exception):
                process.terminate()


async def own_database(stack: Stack, name: str) -> str:
    """A database of the stack's kind for processes of a test's own, migrated."""
    url = await asyncio.to_thread(database, stack.kind, stack.tmp, name)
    await asyncio.to_thread(processes.migrate, {**stack.env, "DATABASE_URL": url})
    return url


async def test_forbidden_targets_are_refused_again_at_connect_time(
    stack: Stack, receiver: Receiver
) -> None:
    """Accepted while the allow-list named localhost; delivered by a process without the list,
    which refuses localhost (127.0.0.1) at submit time and again when connecting."""
    database_url = await own_database(stack, "webhooks_connect")
    port = processes.free_port()
    allowing = stack_env(stack.tmp, database_url, stack.simulator_url, port)
    strict = {**allowing, "NOTIFY_ALLOWED_HOSTS": ""}
    first = processes.service(stack.tmp, allowing, port)
    with running(first.start()):
        async with client(f"http://127.0.0.1:{port}") as api:
            job_id = await submit(api, at_localhost(receiver.url), "a fox [sim duration=3]")
    second = processes.service(stack.tmp, strict, port)
    with running(second.start()):
        async with client(f"http://127.0.0.1:{port}") as api:
            refused = await api.post(
                "/v1/jobs", json={"prompt": "a fox", "notify_url": at_localhost(receiver.url)}
            )
            assert refused.status_code == 422 and "resolves to" in refused.json()["detail"]
            await wait_until(api, job_id, within=60)
            [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "failed"
    [attempt] = shown["attempts"]
    assert attempt["error"].startswith("address refused") and attempt["http_status"] is None
    assert receiver.deliveries == []


async def test_a_replica_killed_mid_delivery_is_taken_over(
    stack: Stack, receiver_server: ScriptedServer
) -> None:
    release = threading.Event()
    hung = Receiver(receiver_server, [GAMMA_NEW])

    async def first_hangs(request: Request) -> Response:
        answer = await handle(request)
        if len(hung.deliveries) == 1:
            await asyncio.to_thread(release.wait, 60)
        return answer

    handle = hung._handle
    url = receiver_server.route(hung.path, first_hangs)
    database_url = await own_database(stack, "webhooks_kill")
    port = processes.free_port()
    env = stack_env(stack.tmp, database_url, stack.simulator_url, port)
    doomed = processes.service(stack.tmp, env, port)
    try:
        with running(doomed.start()):
            async with client(f"http://127.0.0.1:{port}") as api:
                job_id = await submit(api, at_localhost(url))
            deadline = time.monotonic() + 60
            while not hung.deliveries:
                assert time.monotonic() < deadline, doomed.output()
                await asyncio.sleep(0.02)
            doomed.kill()  # mid-delivery: its claim is never released
    finally:
        release.set()
    heir = processes.service(stack.tmp, env, port)
    with running(heir.start()):
        async with client(f"http://127.0.0.1:{port}") as api:
            [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "delivered"
    assert [d.event_id for d in hung.deliveries] == [shown["event_id"]] * 2
    assert all(d.verified_with == [GAMMA_NEW] for d in hung.deliveries)
    assert [a["http_status"] for a in shown["attempts"]] == [200]  # the heir's


async def test_two_replicas_deliver_each_event_exactly_once(
    stack: Stack, receiver: Receiver
) -> None:
    if stack.kind == "sqlite":
        pytest.skip("several replicas need PostgreSQL (SQLite runs one process)")
    database_url = await own_database(stack, "webhooks_replicas")
    ports = [processes.free_port(), processes.free_port()]
    replicas = [
        processes.service(
            stack.tmp, stack_env(stack.tmp, database_url, stack.simulator_url, port), port
        )
        for port in ports
    ]
    with running(*(replica.start() for replica in replicas)):
        job_ids = []
        for index in range(8):
            async with client(f"http://127.0.0.1:{ports[index % 2]}") as api:
                job_ids.append(await submit(api, at_localhost(receiver.url)))
        async with client(f"http://127.0.0.1:{ports[0]}") as api:
            shown = [(await wait_for(api, job_id, settled))[0] for job_id in job_ids]
    assert all(n["status"] == "delivered" and len(n["attempts"]) == 1 for n in shown)
    received = [d.event_id for d in receiver.deliveries]
    assert sorted(received) == sorted(n["event_id"] for n in shown)  # each exactly once
    assert all(d.verified_with == [GAMMA_NEW, GAMMA_OLD] for d in receiver.deliveries)


async def test_a_standalone_worker_delivers_for_an_api_only_replica(
    stack: Stack, receiver: Receiver
) -> None:
    if stack.kind == "sqlite":
        pytest.skip("separate API and worker processes need PostgreSQL (SQLite runs one process)")
    database_url = await own_database(stack, "webhooks_split")
    port = processes.free_port()
    env = stack_env(stack.tmp, database_url, stack.simulator_url, port)
    api_only = processes.service(stack.tmp, env, port, "--no-worker")
    worker = processes.worker(stack.tmp, env, "webhooks")
    with running(api_only.start(), worker.start()):
        async with client(f"http://127.0.0.1:{port}") as api:
            job_id = await submit(api, at_localhost(receiver.url))
            [shown] = await wait_for(api, job_id, settled)
    assert shown["status"] == "delivered"
    assert [d.event_id for d in receiver.deliveries] == [shown["event_id"]]
