"""The published OpenAPI is complete, and property-based tests against it find no 5xx and no
answer that breaks it (schemathesis, against a real `evolink-jobs serve` and the simulator)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from tests.support import databases, processes

KEY = "e2e-alpha-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    database_url = f"sqlite+aiosqlite:///{tmp / 'openapi.db'}"
    databases.migrate(database_url)
    sim_port, api_port = processes.free_port(), processes.free_port()
    env = processes.service_env(
        database_url, f"http://127.0.0.1:{sim_port}", api_port, LOG_LEVEL="WARNING"
    )
    sim = processes.simulator(tmp, sim_port).start()
    api = processes.service(tmp, env, api_port).start()
    try:
        yield f"http://127.0.0.1:{api_port}"
    finally:
        api.terminate()
        sim.terminate()


@pytest.fixture(scope="module")
def api_schema(server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


def test_every_operation_documents_its_problems_and_examples(server: str) -> None:
    spec = httpx.get(f"{server}/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, f"{method} {path} documents no success"
            if path not in ("/healthz", "/metrics"):
                problem = responses["503"]["content"]["application/problem+json"]
                assert problem["schema"]["$ref"].endswith("/Problem"), f"{method} {path}"
            if operation.get("parameters") or operation.get("requestBody"):
                assert "application/problem+json" in responses["422"]["content"], path
    schemas = spec["components"]["schemas"]
    for name in ("JobCreate", "JobRead", "JobPage", "JobEventRead", "Problem"):
        assert schemas[name].get("examples"), f"{name} has no example"
    assert httpx.get(f"{server}/docs").status_code == 200


def test_api_conforms_to_its_schema(api_schema: schemathesis.BaseSchema, server: str) -> None:
    """Every operation, fed generated requests: no 5xx, and every answer matches the schema."""
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation's schema does not load: {result}"
        operations.append(result.ok())
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def conforms(case: schemathesis.Case[Any]) -> None:
            if case.headers and "Idempotency-Key" in case.headers:
                # A key reused with another body is rightly 422 (tests/jobs/test_idempotency.py);
                # here every generated request is a new one.
                case.headers["Idempotency-Key"] = uuid.uuid4().hex
            case.call_and_validate(
                base_url=server,
                headers={"Authorization": f"Bearer {KEY}"},
                # Schema-valid is not always acceptable: an opaque cursor must be one we issued,
                # metadata must fit 16 KiB. Those refusals are documented 4xx problems.
                excluded_checks=[checks.positive_data_acceptance],
            )

        conforms()
