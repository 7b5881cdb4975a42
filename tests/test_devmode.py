"""`evolink-jobs dev`: its caller can use every feature a new user tries first, webhooks too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from standardwebhooks import Webhook

from app.devmode import DEV_CALLER, DevPlan, banner, dev_settings
from app.main import create_app
from app.migrations import upgrade


def _plan(tmp_path: Path) -> DevPlan:
    return DevPlan(tmp_path / ".dev", "127.0.0.1", 8000, 8001, 3.0)


def test_the_dev_caller_has_a_webhook_secret_kept_across_restarts(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    first = dev_settings(plan).callers.get(DEV_CALLER)
    again = dev_settings(plan).callers.get(DEV_CALLER)
    assert first is not None and again is not None
    assert first.webhook_secrets and first.webhook_secrets == again.webhook_secrets
    assert first.key_sha256 == again.key_sha256
    secret = first.webhook_secrets[0]
    Webhook(secret)  # a secret standardwebhooks (the receiver's side) accepts
    text = banner(plan, dev_settings(plan))
    assert secret in text and (plan.data_dir / "api_key").read_text().strip() in text
    assert (plan.data_dir / "callers.toml").stat().st_mode & 0o077 == 0


async def test_a_job_may_notify_a_receiver_on_this_machine(tmp_path: Path) -> None:
    """The default policy refuses loopback; dev mode is where a local receiver is the point."""
    plan = _plan(tmp_path)
    settings = dev_settings(plan)
    key = (plan.data_dir / "api_key").read_text().strip()
    await asyncio.to_thread(upgrade, settings.database_url)
    app = create_app(settings, run_worker=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url=plan.api_url,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            answer = await client.post(
                "/v1/jobs",
                json={"prompt": "a fox", "notify_url": "http://127.0.0.1:9999/hooks/evolink"},
            )
    assert answer.status_code == 202, answer.text
    assert answer.json()["notify_url"] == "http://127.0.0.1:9999/hooks/evolink"
