"""A full job leaves a clean JSON log trail with ids, and no secret in any line at any level."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.conftest import CALLBACK_SECRET
from tests.e2e.conftest import ALPHA, Stack, sim_task, wait_until


async def test_a_full_job_logs_json_with_ids_and_no_secrets(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    response = await api.post(
        "/v1/jobs",
        json={"prompt": f"log trail {marker} [sim callback=duplicate:2]"},
        headers={"X-Request-ID": f"req-{marker}"},
    )
    job = response.json()
    await wait_until(api, job["id"])
    await api.get(f"/v1/jobs/{job['id']}/events")
    await api.get("/v1/jobs", headers={"Authorization": "Bearer wrong-key-" + marker})
    callback_url = (await sim_task(sim, job["evolink_task_id"]))["request"]["body"]["callback_url"]
    token = callback_url.rsplit("/", 1)[1]

    lines = stack.service.output().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    secrets = [ALPHA, "e2e-beta-key", "sk-evo-e2e", CALLBACK_SECRET, token, "wrong-key-" + marker]
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"a secret reached the log: {line}"

    mine = [r for r in records if r.get("job_id") == job["id"]]
    assert mine, "no log line names the job"
    assert any(r.get("evolink_task_id") == job["evolink_task_id"] for r in mine)
    traced = [r for r in records if r.get("request_id") == f"req-{marker}"]
    assert {r.get("caller") for r in traced} >= {"alpha"}
    assert any(r.get("event") == "request" and r.get("route") == "/v1/jobs" for r in traced)
    callbacks = [r for r in records if r.get("route") == "/callbacks/evolink/{job_id}/{token}"]
    assert callbacks, "callback requests are logged by their route template"
    [warning] = [r for r in records if r.get("event") == "evolink_is_a_simulator"]
    assert warning["level"] == "warning", "start-up must warn that EvoLink is the simulator"
